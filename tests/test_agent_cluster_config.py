"""The agent and the cluster config (issue 18): the merge over agent.yaml and its conflict lines, rule 7a of
the convergence table (pure), then real agents on the real Docker engine with the stand-in Milvus, answered by a
scripted coordinator (tests.fake_coordinator): a change that needs no restart applies without one, a change of
server_config restarts a reader into a container labelled with the new version, the writer is never restarted
for one (it reports the version it runs), conflicts show in the reports and in `jfs-milvus-agent status`, and
an agent restarted with no coordinator runs the version it took last."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import yaml
from jfsmilvus.common.clusterconfig import parse_cluster_config
from jfsmilvus.v1 import coordinator_pb2, node_pb2

from agent.clusterconf import NONE_TAKEN, TakenConfig, explicit_keys, merge_cluster_config
from agent.config import AgentConfig, MilvusSettings
from agent.milvus.container import ContainerState
from agent.milvus.converge import Action, Seen, Want, next_step
from tests.fake_coordinator import FakeCoordinator, ro, rw
from tests.plugin_agent import AgentNode, wait_until
from tests.test_agent_daemon import prepared

CLUSTER = """\
milvus:
  image: milvusdb/milvus:1.1.1-gpu
  flavor: cpu
  server_config:
    version: 0.5
    cache: {cache_size: 2GB}
gpu:
  fatal_xids: [48, 79]
timing:
  start_timeout_s: 900
"""


# -- the merge (pure) ---------------------------------------------------------------------------------------
def test_the_cluster_wins_for_its_keys_and_each_differing_local_value_is_a_conflict() -> None:
    milvus = MilvusSettings(image="my/milvus:1.0", start_timeout_s=900, gpus="list", gpu_indexes=(0,))
    local = AgentConfig(path="/etc/jfs-milvus/agent.yaml", node_name="node-a", address="10.0.0.1", milvus=milvus)
    taken = TakenConfig(7, CLUSTER, parse_cluster_config(CLUSTER, "v7"))
    agent_yaml = "node: {name: node-a}\nmilvus:\n  image: my/milvus:1.0\n  start_timeout_s: 900\n  gpus: [0]\n"
    explicit = explicit_keys(agent_yaml)
    merged, conflicts = merge_cluster_config(local, taken, explicit, {"version": 0.5}, "/var/lib/x/base.yaml")
    assert merged.milvus.image == "milvusdb/milvus:1.1.1-gpu" and merged.milvus.flavor == "cpu"
    assert merged.milvus.start_timeout_s == 900 and merged.gpu.fatal_xids == (48, 79)
    assert merged.milvus.base_config == "/var/lib/x/base.yaml"
    assert merged.node_name == "node-a" and merged.milvus.gpus == local.milvus.gpus  # the node's own
    assert conflicts == (
        "/etc/jfs-milvus/agent.yaml: milvus.image = 'my/milvus:1.0' is overridden by cluster config version 7 "
        "('milvusdb/milvus:1.1.1-gpu')",
        "/etc/jfs-milvus/agent.yaml: milvus.base_config /etc/jfs-milvus/server_config.yaml differs from the "
        "server_config of cluster config version 7, which is used",
    )  # start_timeout_s is set locally too, to the cluster's value: no conflict
    assert merge_cluster_config(local, NONE_TAKEN, explicit, None, "/x") == (local, ())
    # An empty server_config leaves each node's base file in use.
    empty = CLUSTER.replace("    version: 0.5\n    cache: {cache_size: 2GB}\n", "").replace(
        "server_config:", "server_config: {}"
    )
    merged, _ = merge_cluster_config(
        local, TakenConfig(8, empty, parse_cluster_config(empty, "v8")), explicit, {}, "/x"
    )
    assert merged.milvus.base_config == local.milvus.base_config


# -- rule 7a (pure) ------------------------------------------------------------------------------------------
def container(role: str, version: int | None, sha: str = "a", image: str = "img:1") -> ContainerState:
    return ContainerState(
        id="c1", name="milvus", image=image, status="running", role=role, epoch=3, config_sha256=sha,
        exit_code=None, started_at=None, error=None, config_version=version,
    )  # fmt: skip


def seen(c: ContainerState) -> Seen:
    return Seen(
        docker_error=None, containers=(c,), container_name="milvus", health_error=None, running_for_s=100,
        mount_mode=c.role, mount_state="healthy", mount_reasons=(), config_on_disk_sha256="a", backoff_left_s=0,
        health_timeout_s=60, start_timeout_s=60,
    )  # fmt: skip


@pytest.mark.parametrize("role", ["ro", "rw"])
def test_rule_7a_restarts_a_reader_never_the_writer_and_nothing_for_an_equal_build(role: str) -> None:
    want = Want(role=role, epoch=3, lease_valid=True, config_sha256="b", config_version=5, image="img:1")
    step = next_step(want, seen(container(role, 4)))
    if role == "ro":
        assert step.action is Action.STOP and "cluster config version 5 (it was built from version 4)" in step.reason
    else:
        assert step.action is Action.NOTHING and "version 5 is pending" in step.reason
        assert "never restarted for a config change" in step.reason
    # Another image is a restart too; the same build under another version number is none.
    image = next_step(replace(want, config_sha256="a", image="img:2"), seen(container(role, 4)))
    assert image.action is (Action.STOP if role == "ro" else Action.NOTHING)
    same = next_step(replace(want, config_sha256="a"), seen(container(role, 4)))
    assert same.action is Action.NOTHING and "healthy" in same.reason and "pending" not in same.reason
    # The same version with another render (a GPU lost): rule 7 as before, for both roles.
    assert next_step(replace(want, config_version=4), seen(container(role, 4))).action is Action.STOP


# -- real agents ---------------------------------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeCoordinator]:
    coordinator = FakeCoordinator()
    coordinator.start()
    yield coordinator
    coordinator.stop()


class Answers:
    """What the scripted coordinator answers: an assignment and the cluster config version to run."""

    def __init__(self, assignment: node_pb2.Assignment):
        self.assignment = assignment
        self.version = 0
        self.body = ""

    def __call__(self, request: coordinator_pb2.ReportRequest) -> coordinator_pb2.ReportResponse:
        answer = coordinator_pb2.ReportResponse(leader=True, assignment=self.assignment)
        answer.cluster_config.version, answer.cluster_config.body = self.version, self.body
        return answer


def cluster_body(node: AgentNode, **change: Any) -> str:
    """A cluster config that means what `node`'s agent.yaml and base file say, with `change` over it."""
    base = yaml.safe_load(node.base_config.read_text())
    data: dict[str, Any] = {
        "milvus": {"image": node.milvus["image"], "flavor": "cpu", "server_config": base},
        "timing": {"start_timeout_s": 60, "stop_timeout_s": 5, "health_timeout_s": 15},
    }
    for dotted, value in change.items():
        section, key = dotted.split("__")
        data[section][key] = value
    return yaml.safe_dump(data, sort_keys=False)


def coordinated(agent_node: Callable[..., AgentNode], fake: FakeCoordinator) -> AgentNode:
    node = prepared(agent_node)
    node.write_config(coordinators=[fake.address], coordination={"report_timeout_s": 0.5})
    return node


def label(node: AgentNode) -> str | None:
    (c,) = [c for c in node.containers() if c.status == "running"]
    return c.labels.get("io.jfs-milvus.cluster-config-version")


def reported(fake: FakeCoordinator) -> node_pb2.NodeObservation:
    obs = fake.last()
    assert obs is not None
    return obs


@pytest.mark.root
@pytest.mark.slow
def test_a_reader_applies_a_no_restart_change_in_place_and_restarts_for_a_server_config_change(
    agent_node: Callable[..., AgentNode], fake: FakeCoordinator
) -> None:
    answers = Answers(ro(1))
    fake.answer_with(answers)
    node = coordinated(agent_node, fake)
    node.start()
    first = node.wait_role("ro").container.id
    assert reported(fake).config_version == 0 and label(node) is None

    # Version 1 means what the node runs: taken with no restart; its container runs version 1.
    answers.version, answers.body = 1, cluster_body(node)
    wait_until(lambda: reported(fake).config_version == 1, 20, "version 1 reported")
    assert node.status().container.id == first and list(reported(fake).config_conflicts) == []

    # Version 2 changes a timing only: no restart, and agent.yaml's own value is now a conflict.
    answers.version, answers.body = 2, cluster_body(node, timing__health_timeout_s=20)
    wait_until(lambda: reported(fake).config_version == 2, 20, "version 2 reported")
    assert node.status().container.id == first
    conflicts = list(reported(fake).config_conflicts)
    assert conflicts == [
        f"{node.config_path}: milvus.health_timeout_s = 15 is overridden by cluster config version 2 (20)"
    ]
    status = subprocess.run(
        [sys.executable, "-m", "agent.cli", "status", "--config", str(node.config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Cluster config: version 2" in status.stdout, status.stdout + status.stderr
    assert f"conflict: {conflicts[0]}" in status.stdout

    # Version 3 changes the base server_config: the reader restarts into a container built from version 3.
    base = yaml.safe_load(node.base_config.read_text())
    base["cache"]["cache_size"] = "2GB"
    answers.version, answers.body = 3, cluster_body(node, milvus__server_config=base)
    wait_until(lambda: node.status().container.id not in ("", first) and node.status().container.healthy, 60,
               "the reader restarted")  # fmt: skip
    wait_until(lambda: reported(fake).config_version == 3, 20, "version 3 reported")
    assert label(node) == "3"
    rendered = yaml.safe_load((node.data_dir / "conf" / "server_config.yaml").read_text())
    assert rendered["cache"]["cache_size"] == "2GB" and rendered["cluster"]["role"] == "ro"
    assert "restarting ro container for cluster config version 3 (it was built from agent.yaml alone)" in node.log()
    assert any("base_config" in line for line in reported(fake).config_conflicts)  # its own file differs now

    # Restarted while no coordinator answers, the agent runs the version it took last: nothing restarts.
    running = node.status().container.id
    fake.stop()
    node.stop()
    node.start()
    time.sleep(3)
    status = node.wait_role("ro")
    assert status.container.id == running
    assert "running cluster config version 3, as last taken" in node.log()


@pytest.mark.root
@pytest.mark.slow
def test_the_writer_is_never_restarted_for_a_config_change(
    agent_node: Callable[..., AgentNode], fake: FakeCoordinator
) -> None:
    node = coordinated(agent_node, fake)
    answers = Answers(rw(1, 10_000, node.name))
    fake.answer_with(answers)
    node.start()
    first = node.wait_role("rw").container.id

    base = yaml.safe_load(node.base_config.read_text())
    base["cache"]["cache_size"] = "2GB"
    answers.version, answers.body = 4, cluster_body(node, milvus__server_config=base)
    wait_until(lambda: "cluster config version 4 is pending" in node.log(), 20, "the pending version said")
    time.sleep(3)  # several loops: still the same container, still the old build
    assert node.status().container.id == first and node.status().role_running == node_pb2.ROLE_RW
    assert reported(fake).config_version == 0  # it runs agent.yaml's build; the rollout switches it over
    assert label(node) is None
    assert "restarting rw container" not in node.log()
