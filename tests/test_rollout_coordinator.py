"""The rolling upgrade through a real coordinator, real MariaDB and `coordinatorctl rollout`, with simulated
agents: each reports what it runs, restarts its reader for a config version other than the one it runs (as the
agent does), never restarts its rw container for one, drains when told to, and fails to start a broken version.

The local cluster tests (test_cluster_rollout.py) run the same with real agents, Milvus stand-ins and a client.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from jfsmilvus.common.clusterconfig import ClusterConfig, parse_cluster_config, render_cluster_config
from jfsmilvus.v1 import coordinator_pb2, coordinator_pb2_grpc, node_pb2

from tests.plugin_agent import wait_until
from tests.plugin_coordinator import REPO, CoordinatorProcess, ctl

OLD, NEW, BROKEN = "standin:1.0.0", "standin:1.1.1", "standin:broken"
RESTART_REPORTS = 3  # a reader's restart takes this many reports without Milvus serving


@dataclass
class SimAgent:
    """One node's agent and Milvus, as far as the coordinator can tell from its reports."""

    name: str
    address: str
    images: dict[int, str]  # config version -> image (the simulation reads the version's image)
    broken: set[str]  # images that never start
    role: str = "none"
    version: int = 0  # the config version its container was built from
    epoch: int = 0
    starting: int = RESTART_REPORTS
    stop: node_pb2.WriterStop | None = None
    restarts: list[tuple[float, int]] = field(default_factory=list)  # (when, version)

    def observation(self) -> node_pb2.NodeObservation:
        serving = self.role != "none" and self.starting == 0 and self.images.get(self.version) not in self.broken
        role = {"rw": node_pb2.ROLE_RW, "ro": node_pb2.ROLE_RO}.get(self.role, node_pb2.ROLE_UNSPECIFIED)
        obs = node_pb2.NodeObservation(
            node=self.name, address=self.address, role_running=role if serving else node_pb2.ROLE_UNSPECIFIED,
            highest_epoch_seen=self.epoch, milvus_port=19530, milvus_http_port=19121, writer_seen_healthy_age_s=-1,
            config_version=self.version,
        )  # fmt: skip
        obs.gpus.available = False
        obs.mounts.add(volume="v", mountpoint="/mnt", mounted=True, read_only=self.role != "rw", state="healthy")
        obs.container.state = "running" if serving else "absent"
        obs.container.role = role if serving else node_pb2.ROLE_UNSPECIFIED
        if self.stop is not None:
            obs.last_writer_stop.CopyFrom(self.stop)
        return obs

    def start(self, role: str, version: int) -> None:
        self.role, self.version, self.starting = role, version, RESTART_REPORTS
        self.restarts.append((time.time(), version))

    def answer(self, response: coordinator_pb2.ReportResponse) -> None:
        if self.starting > 0:
            self.starting -= 1
        if not response.leader or not response.HasField("assignment"):
            return
        a = response.assignment
        self.epoch = max(self.epoch, a.epoch)
        wanted = response.cluster_config.version if response.HasField("cluster_config") else self.version
        if a.role == node_pb2.ROLE_RW:
            if a.drain_id and self.role == "rw":  # a graceful stop: Milvus flushes, exit 0
                self.stop = node_pb2.WriterStop(epoch=a.epoch, drain_id=a.drain_id, exit_code=0, seconds=0.2)
                self.role = "none"
            elif self.role != "rw" and not a.drain_id and a.lease_ms > 0:
                self.start("rw", wanted)
        elif a.role == node_pb2.ROLE_RO and (self.role != "ro" or wanted != self.version):
            self.start("ro", wanted)


class SimCluster:
    def __init__(self, coordinator: CoordinatorProcess, names: tuple[str, ...] = ("node-a", "node-b", "node-c")):
        self.c = coordinator
        self.images: dict[int, str] = {}
        self.broken: set[str] = set()
        self.agents = {n: SimAgent(n, f"127.0.0.{ord(n[-1]) - ord('a') + 2}", self.images, self.broken) for n in names}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.stub = coordinator_pb2_grpc.CoordinatorServiceStub(grpc.insecure_channel(coordinator.address))

    def _loop(self) -> None:
        while not self._stop.is_set():
            for agent in self.agents.values():
                request = coordinator_pb2.ReportRequest(observation=agent.observation())
                with contextlib.suppress(grpc.RpcError):
                    agent.answer(self.stub.Report(request, timeout=2))
            with contextlib.suppress(grpc.RpcError):
                self._refresh_images()
            time.sleep(0.2)

    def _refresh_images(self) -> None:
        for v in {a.version for a in self.agents.values()} - set(self.images):
            if v == 0:
                continue
            got = self.stub.GetClusterConfig(coordinator_pb2.GetClusterConfigRequest(version=v), timeout=2)
            self.images[v] = parse_cluster_config(got.body, f"version {v}").image

    def start(self) -> SimCluster:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def writer(self) -> str:
        return self.c.status().writer

    def image_of(self, name: str) -> str:
        return self.images.get(self.agents[name].version, "")


@pytest.fixture
def sim(coordinator_factory: Callable[..., CoordinatorProcess]) -> Iterator[SimCluster]:
    c = coordinator_factory(settle_s=0.5, drain_timeout_s=10)
    c.start()
    wait_until(c.leads, 20, "the coordinator to lead")
    body = render_cluster_config(ClusterConfig(image=OLD, flavor="cpu"))
    answer = c.stub().CommitClusterConfig(coordinator_pb2.CommitClusterConfigRequest(body=body, reason="v1"), timeout=5)
    assert answer.version == 1, answer
    cluster = SimCluster(c)
    for agent in cluster.agents.values():
        agent.start("ro", 1)
    cluster.start()
    try:
        wait_until(lambda: "and healthy" in c.why(), 30, lambda: f"a healthy cluster: {c.why()}")
        yield cluster
    finally:
        cluster.stop()


def rollout(c: CoordinatorProcess, *args: str) -> tuple[int, list[str], str]:
    done = ctl(c.address, "rollout", *args)
    return done.returncode, done.stdout.splitlines(), done.stderr


def test_dry_run_prints_the_plan_and_changes_nothing(sim: SimCluster) -> None:
    writer = sim.writer()
    code, out, err = rollout(sim.c, "--image", NEW, "--dry-run")
    assert code == 0, (out, err)
    text = "\n".join(out)
    readers = sorted(n for n in sim.agents if n != writer)
    assert f"1. {readers[0]} (reader)" in text and f"2. {readers[1]} (reader)" in text
    assert f"switchover: {writer} -> " in text and f"4. {writer} (the old writer" in text
    assert sim.c.stub().GetClusterConfig(coordinator_pb2.GetClusterConfigRequest(), timeout=3).current == 1
    assert rollout(sim.c, "status")[1] == ["no rollout yet"]


def test_a_rollout_upgrades_the_readers_one_at_a_time_then_switches_over_then_the_old_writer(sim: SimCluster) -> None:
    writer = sim.writer()
    began = time.time()
    code, out, err = rollout(sim.c, "--image", NEW, "--yes", "--settle", "1", "--reason", "1.1.1")
    assert code == 0, (out, err, sim.c.log()[-3000:])
    assert all(sim.image_of(n) == NEW for n in sim.agents), {n: sim.image_of(n) for n in sim.agents}
    new_writer = sim.writer()
    assert new_writer != writer
    # never two nodes restarting at once: each restart for version 2 starts after the one before it served
    restarts = sorted((at, n) for n, a in sim.agents.items() for at, v in a.restarts if v == 2)
    assert [n for _, n in restarts][-1] == writer  # the old writer last
    assert len({n for _, n in restarts}) == 3
    text = "\n".join(out)
    assert "switching the writer over to" in text and "done: every node runs version 2" in text
    history = ctl(sim.c.address, "-o", "json", "history")
    kinds = [e["kind"] for e in json.loads(history.stdout)]
    assert "rollout" in kinds and "switchover" in kinds
    status = json.loads(ctl(sim.c.address, "-o", "json", "rollout", "status").stdout)
    assert status["status"] == "done" and status["done"][-1] == writer
    print("\n".join(out))
    print(f"[rollout sim] 3 nodes in {time.time() - began:.1f}s")


def test_a_broken_image_halts_on_the_first_reader_which_goes_back_and_resume_completes_once_fixed(
    sim: SimCluster,
) -> None:
    writer = sim.writer()
    first = sorted(n for n in sim.agents if n != writer)[0]
    sim.broken.add(BROKEN)
    code, out, err = rollout(sim.c, "--image", BROKEN, "--yes", "--settle", "1", "--node-timeout", "4")
    assert code == 1, (out, err)
    assert f"{first} was not healthy on version 2 within 4s" in err, err
    wait_until(lambda: sim.image_of(first) == OLD and sim.agents[first].starting == 0, 20, f"{first} back on {OLD}")
    assert sim.writer() == writer and all(sim.image_of(n) == OLD for n in sim.agents)
    wait_until(lambda: "and healthy" in sim.c.why(), 20, lambda: f"the cluster serving: {sim.c.why()}")
    status = json.loads(ctl(sim.c.address, "-o", "json", "rollout", "status").stdout)
    assert status["status"] == "halted" and status["done"] == []
    sim.broken.discard(BROKEN)  # the image is fixed in the registry
    code, out, err = rollout(sim.c, "resume", "--yes")
    assert code == 0, (out, err)
    assert all(sim.image_of(n) == BROKEN for n in sim.agents) and sim.writer() != writer


def test_a_halted_rollout_rolls_back_the_same_way(sim: SimCluster) -> None:
    writer = sim.writer()
    sim.broken.add(BROKEN)
    assert rollout(sim.c, "--image", BROKEN, "--yes", "--node-timeout", "3")[0] == 1
    code, out, err = rollout(sim.c, "rollback", "--yes")
    assert code == 0, (out, err)
    assert sim.writer() == writer and all(sim.image_of(n) == OLD for n in sim.agents)
    got = sim.c.stub().GetClusterConfig(coordinator_pb2.GetClusterConfigRequest(), timeout=3)
    assert got.current == 3 and parse_cluster_config(got.body, "v3").image == OLD
    assert rollout(sim.c, "rollback", "--yes")[0] == 1  # a rollback is not rolled back


def test_a_second_rollout_is_refused_while_one_is_halted(sim: SimCluster) -> None:
    sim.broken.add(BROKEN)
    assert rollout(sim.c, "--image", BROKEN, "--yes", "--node-timeout", "3")[0] == 1
    code, _, err = rollout(sim.c, "--image", NEW, "--yes")
    assert code == 1 and "is halted" in err and "resume" in err


def test_a_coordinator_restart_mid_rollout_continues_it_from_mysql_and_the_command_follows_on(
    sim: SimCluster,
) -> None:
    writer = sim.writer()
    command = [sys.executable, "-m", "coordinator.ctl", "--coordinator", sim.c.address, "rollout"]
    following = subprocess.Popen(
        [*command, "--image", NEW, "--yes", "--settle", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip

    def one_done() -> bool:
        shown = ctl(sim.c.address, "-o", "json", "rollout", "status")
        return shown.returncode == 0 and len(json.loads(shown.stdout)["done"]) >= 1

    wait_until(one_done, 60, "the first reader upgraded")
    sim.c.kill()
    sim.c.start()
    out, err = following.communicate(timeout=180)
    assert following.returncode == 0, (out, err, sim.c.log()[-3000:])
    assert "following the rollout again" in err and "done: every node runs version 2" in out
    assert all(sim.image_of(n) == NEW for n in sim.agents) and sim.writer() != writer
    switchovers = [e for e in sim.c.events() if e.kind == "switchover"]
    assert len(switchovers) == 1


def commit(c: CoordinatorProcess, image: str, expected: int) -> coordinator_pb2.CommitClusterConfigResponse:
    body = render_cluster_config(ClusterConfig(image=image, flavor="cpu"))
    request = coordinator_pb2.CommitClusterConfigRequest(body=body, reason="edit", expected_current=expected)
    return c.stub().CommitClusterConfig(request, timeout=5)


def test_a_config_edit_that_needs_a_restart_waits_pinned_until_rollout_rolls_it_out(sim: SimCluster) -> None:
    writer = sim.writer()
    edited = commit(sim.c, NEW, 1)  # what `coordinatorctl config edit` sends
    assert edited.restart_needed and edited.nodes_pinned == 3 and "coordinatorctl rollout" in edited.message
    time.sleep(1.5)
    assert all(sim.image_of(n) == OLD for n in sim.agents)  # pinned: nothing restarts by itself
    code, out, err = rollout(sim.c, "--dry-run")
    assert code == 0 and "Plan: config version 1 -> 2" in out[0], (out, err)
    code, out, err = rollout(sim.c, "--yes", "--settle", "1")
    assert code == 0, (out, err)
    assert "done: every node runs version 2" in "\n".join(out)
    assert all(sim.image_of(n) == NEW for n in sim.agents) and sim.writer() != writer
    code, _, err = rollout(sim.c, "--yes")
    assert code == 1 and "no node is pinned behind config version 2" in err


def test_no_config_version_is_committed_while_a_rollout_is_halted(sim: SimCluster) -> None:
    sim.broken.add(BROKEN)
    assert rollout(sim.c, "--image", BROKEN, "--yes", "--node-timeout", "3")[0] == 1
    with pytest.raises(grpc.RpcError) as refused:
        commit(sim.c, NEW, 2)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is halted" in refused.value.details() and "nothing was changed" in refused.value.details()
    assert sim.c.stub().GetClusterConfig(coordinator_pb2.GetClusterConfigRequest(), timeout=3).current == 2
