"""One observation per agent cycle: what a report says was seen together, with the epoch read before seeing it.

An in-process agent in coordinated mode, with a Docker engine and a JuiceFS mount stood in for (no root, no
Docker): the race is between the loop thread starting a container and the reporter thread taking a newer
assignment, so the test holds the Docker start while the answer is taken, and reads the reports the coordinator
would get, through its own conversion (`coordinator.server.report_from_pb`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jfsmilvus.common.secrets import SecretRef
from jfsmilvus.v1 import coordinator_pb2

import agent.daemon
from agent.config import GpuSettings, JuicefsSettings, VolumeSettings, default_agent_config
from agent.coordination import LeaderAnswer
from agent.daemon import Agent
from agent.lease import lease_now
from agent.milvus.container import ContainerSpec, ContainerState
from agent.milvus.converge import Action
from agent.mount import MountStatus
from coordinator.model import Report
from coordinator.server import report_from_pb
from tests.fake_coordinator import ro, rw
from tests.plugin_juicefs import MOUNT_HELPER

NODE = "node-a"


class HeldDocker:
    """Docker as the loop sees it; `start` waits for `release` once `hold` is set."""

    def __init__(self) -> None:
        self.containers: list[ContainerState] = []
        self.hold = threading.Event()
        self.starting = threading.Event()
        self.release = threading.Event()

    def list_ours(self, name: str | None = None) -> list[ContainerState]:
        return list(self.containers)

    def device_inside(self, container_id: str, path: str) -> str | None:
        return None  # no mount namespace to read: rule 5d makes no judgement

    def runtimes(self) -> list[str]:
        return ["runc"]

    def started_at(self, container_id: str) -> str | None:
        return None

    def start(self, spec: ContainerSpec) -> ContainerState:
        if self.hold.is_set():
            self.starting.set()
            assert self.release.wait(10), "the test never released the start"
        labels = spec.labels
        state = ContainerState(
            id=f"c{len(self.containers) + 1}",
            name=spec.name,
            image=spec.image,
            status="running",
            role=spec.role,
            epoch=spec.epoch,
            config_sha256=labels.get("jfs-milvus.config-sha256"),
            exit_code=None,
            started_at=None,
            error=None,
        )
        self.containers = [state]
        return state

    def stop(self, container_id: str, timeout_s: float) -> int | None:
        self.containers = [c for c in self.containers if c.id != container_id]
        return 0

    def kill(self, container_id: str) -> None:
        self.containers = [c for c in self.containers if c.id != container_id]


class RwMount:
    """A healthy JuiceFS mount in whatever mode it was last asked for."""

    def __init__(self, volume: VolumeSettings) -> None:
        self.volume = volume
        self.mode: str | None = None

    def observe(self) -> MountStatus:
        mounted = self.mode is not None
        return MountStatus(
            volume=self.volume.name,
            mountpoint=self.volume.mountpoint,
            configured_in_fstab=True,
            mounted=mounted,
            mode=self.mode,  # type: ignore[arg-type]
            state="healthy" if mounted else "unmounted",
        )

    def ensure(self, mode: str) -> list[str]:
        self.mode = mode
        return []


@pytest.fixture
def docker() -> HeldDocker:
    return HeldDocker()


@pytest.fixture
def node(tmp_path: Path, docker: HeldDocker, monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    secret = tmp_path / "meta-password"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    mountpoint = tmp_path / "mnt"
    (mountpoint / "milvus" / "db").mkdir(parents=True)
    volume = VolumeSettings(name="vol", meta_url="redis://127.0.0.1:1/1", mountpoint=str(mountpoint))
    defaults = default_agent_config()
    milvus = dataclasses.replace(
        defaults.milvus,
        flavor="cpu",
        volume="vol",
        data_dir=str(tmp_path / "milvus"),
        base_config=str(tmp_path / "no-base.yaml"),
        meta_uri="mysql://milvus@127.0.0.1:1/milvus",
        meta_password=SecretRef(file=str(secret)),
    )
    config = dataclasses.replace(
        defaults,
        node_name=NODE,
        state_dir=str(tmp_path / "state"),
        coordinators=("127.0.0.1:1",),
        gpu=GpuSettings(enabled=False),
        # The agent's first cycle configures the mount: its files go under tmp_path, not this machine's.
        juicefs=JuicefsSettings(
            volumes=(volume,),
            mount_helper=MOUNT_HELPER,
            fstab=str(tmp_path / "fstab"),
            systemd_dir=str(tmp_path / "systemd"),
            secrets_dir=str(tmp_path / "secrets"),
        ),
        milvus=milvus,
    )
    monkeypatch.setattr(agent.daemon, "check_milvus_health", lambda *a, **k: "no answer (stood in)")
    monkeypatch.setattr(agent.daemon, "install_wrapper", lambda path: None)
    made = Agent(config, docker_url=f"unix://{tmp_path}/no-docker.sock")
    made.start()
    made.docker = made.watch.docker = made.facts.docker = docker  # type: ignore[assignment]
    made._mounts = {"vol": RwMount(volume)}  # type: ignore[dict-item]
    made._meta_db_error = lambda role: None  # type: ignore[method-assign]
    made.facts.refresh_milvus = lambda milvus: None  # type: ignore[method-assign]
    yield made


def answer(assignment: object) -> LeaderAnswer:
    return LeaderAnswer("coordinator c1", assignment, lease_now(), leader_term=1)  # type: ignore[arg-type]


def reported(node: Agent) -> Report:
    """The report the coordinator would get now, as its Report handler reads it."""
    request = node.report_request()
    return report_from_pb(coordinator_pb2.ReportRequest.FromString(request.SerializeToString()), received_at=0.0)


def acknowledges(report: Report, epoch: int) -> bool:
    """The coordinator's fence takes this report as the old writer's acknowledgement of `epoch`
    (coordinator.fence.fence_state)."""
    return report.highest_epoch >= epoch and report.container_role != "rw"


def old_writer_alive(docker: HeldDocker, epoch: int) -> bool:
    return docker.starting.is_set() or any(c.running and c.role == "rw" and c.epoch < epoch for c in docker.containers)


def test_a_newer_epoch_taken_while_an_older_writer_starts_is_not_reported_as_no_container(
    node: Agent, docker: HeldDocker
) -> None:
    assert node.authority.take_coordinator_answer(answer(rw(1, 30_000, NODE))) is None
    for _ in range(6):  # mount rw, write the config: everything but the start
        step = node.loop_once()
        assert step.action is not Action.START, step
        if step.action is Action.WRITE_CONFIG:
            break
    docker.hold.set()
    cycle = threading.Thread(target=node.loop_once, name="loop")
    cycle.start()
    assert docker.starting.wait(5), "the loop never started the writer"

    # While Docker starts the rw container at epoch 1, the leader moves the writer on: epoch 2, this node ro.
    assert node.authority.take_coordinator_answer(answer(ro(2, writer="node-b"))) is None
    during = reported(node)
    docker.release.set()
    cycle.join(10)
    after = reported(node)

    for report in (during, after):
        # The rw container of epoch 1 is being started or runs: no report may acknowledge epoch 2.
        assert old_writer_alive(docker, 2)
        assert not acknowledges(report, 2), (
            f"reported no rw container at epoch {report.highest_epoch} while the epoch-1 writer "
            f"{'starts' if report is during else 'runs'}"
        )

    # The next cycles see the old writer and stop it; only then does a report acknowledge epoch 2.
    for _ in range(4):
        node.loop_once()
        if not any(c.role == "rw" for c in docker.containers):
            break
    assert not any(c.role == "rw" for c in docker.containers)
    node.loop_once()
    assert acknowledges(reported(node), 2)


def test_the_snapshot_is_replaced_whole_never_changed_in_place(node: Agent) -> None:
    first = node.snapshot
    node.loop_once()
    second = node.snapshot
    assert second is not first and first.loops == 0 and second.loops == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        second.loops = 5  # type: ignore[misc]


def test_before_its_first_cycle_an_agent_claims_no_epoch(node: Agent, docker: HeldDocker) -> None:
    """Restarted beside a running writer of epoch 1, with epoch 2 on disk: it has observed nothing yet, so its
    report acknowledges no epoch rather than saying "no container at epoch 2"."""
    node.authority.take_coordinator_answer(answer(ro(2, writer="node-b")))
    restarted = Agent(node.config, docker_url="unix:///nonexistent/docker.sock")
    assert restarted.authority.state.highest_epoch == 2
    restarted.docker = restarted.watch.docker = restarted.facts.docker = docker  # type: ignore[assignment]
    docker.containers = [ContainerState("c9", "milvus", "img", "running", "rw", 1, "x", None, None, None)]
    assert not acknowledges(reported(restarted), 1)
    restarted._mounts = node._mounts
    restarted._meta_db_error = node._meta_db_error  # type: ignore[method-assign]
    restarted.facts.refresh_milvus = node.facts.refresh_milvus  # type: ignore[method-assign]
    restarted.loop_once()
    first = reported(restarted)
    assert first.highest_epoch == 2 and first.container_role == "rw" and not acknowledges(first, 2)
