"""`coordinatorctl forget NODE` (issue 15, "no command removes a node"): the pure refusals, the leader's
forgetting on a real MariaDB (the row, the report, the memory), and the RPC over real mutual TLS: operator
only, the name checked, recorded with who asked, and the command line's outputs and exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from jfsmilvus.v1 import coordinator_pb2, coordinator_pb2_grpc, node_pb2

from coordinator import ctl
from coordinator.certs import make_certs
from coordinator.config import CoordinatorConfig
from coordinator.core import Memory, Request, Timing
from coordinator.daemon import Coordinator
from coordinator.forget import ForgetRefused, UnknownNode
from coordinator.model import ClusterRow, Durable, NodeRecord, Report
from coordinator.phases import Transition
from coordinator.requests import forget_refusal, forget_silence_s, without_node
from coordinator.server import cluster_status
from coordinator.store import ClusterStore
from coordinator.storeapi import StoreError
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess
from tests.plugin_mysql import MysqlDatabase
from tests.test_coordinator_answers import config as answers_config
from tests.test_identities import credentials

TIMING = Timing(startup_wait_s=0.2, report_interval_s=0.1, detect_after_s=0.3)
SILENCE_S = forget_silence_s(TIMING)  # 0.5 s: five report intervals


def report(node: str, role: str = "ro", epoch: int = 1, age_s: float = 0.0) -> Report:
    return Report(
        node=node,
        address=f"10.0.0.{ord(node[-1]) - ord('a') + 1}",
        received_at=time.monotonic() - age_s,
        role_running=role,
        container_role=role,
        highest_epoch=epoch,
        gpu_health="healthy",
        mount_state="healthy",
    )


# -- the pure refusals ------------------------------------------------------------------------------------
def test_forget_refusals_name_why_in_one_line() -> None:
    nodes = {n: NodeRecord(n, f"10.0.0.{i}") for i, n in enumerate(("node-a", "node-b", "node-c"), start=1)}
    durable = Durable(ClusterRow("test", "node-a", 3), nodes)
    now = time.monotonic()
    memory = Memory(leader_since=now - 60)
    reports = {"node-a": report("node-a", "rw", 3), "node-b": report("node-b"), "node-c": report("node-c", age_s=60)}

    def why(node: str, memory: Memory = memory, pending: Request | None = None) -> str | None:
        return forget_refusal(durable, memory, reports, node, time.monotonic(), TIMING, pending)

    assert "node-a is the writer at epoch 3" in (why("node-a") or "")
    assert "node-b still reports" in (why("node-b") or "")
    assert why("node-c") is None
    moving = replace(memory, transition=Transition("failover", "node-c", "node-b", 4, "x", now))
    assert "takes part in the failover to node-b" in (why("node-c", moving) or "")
    asked = Request("switchover", "node-c", "planned")
    assert "a switchover to node-c is asked for" in (why("node-c", pending=asked) or "")
    assert "a switchover to node-c" in (why("node-c", replace(memory, request=asked)) or "")
    del reports["node-c"]
    new_leader = Memory(leader_since=time.monotonic())
    assert "cannot tell yet whether node-c reports" in (why("node-c", new_leader) or "")
    assert why("node-c") is None  # not heard from by a leader that has led long enough
    for node in ("node-a", "node-b"):
        assert "\n" not in (why(node) or "")
    held = replace(memory, healthy_since={"node-b": 1.0, "node-c": 2.0}, failed_candidates={"node-c": 9.0})
    kept = without_node(held, "node-c")
    assert (dict(kept.healthy_since), dict(kept.failed_candidates)) == ({"node-b": 1.0}, {})


# -- the leader, in process, on a real MariaDB --------------------------------------------------------------
def config() -> CoordinatorConfig:
    return replace(answers_config(), leader_lease_s=10.0, timing=TIMING)


@pytest.fixture
def leader(mysql_db: MysqlDatabase) -> Iterator[Coordinator]:
    """A leader of node-a (the writer, rw at epoch 1), node-b (a reader that reports) and node-c (silent)."""
    store = ClusterStore(mysql_db.coordinator, "test")
    store.migrate()
    c = Coordinator(config(), store=store)
    c.tick()  # wins the lead
    assert c.leadership is not None
    for r in (report("node-a", "rw"), report("node-b"), report("node-c")):
        c.receive(r)
    c.tick()  # registers the three
    store.change_writer(c.leadership, 0, "node-a")
    c._invalidate_durable()
    time.sleep(SILENCE_S + 0.1)
    for r in (report("node-a", "rw"), report("node-b")):
        c.receive(r)
    c.tick()
    c.observations["node-c"] = (node_pb2.NodeObservation(node="node-c"), time.time())
    try:
        yield c
    finally:
        store.close()


def test_the_leader_forgets_a_silent_node_and_refuses_the_others(leader: Coordinator) -> None:
    c = leader
    assert {n.name for n in cluster_status(c, fresh=True).nodes} == {"node-a", "node-b", "node-c"}
    with pytest.raises(ForgetRefused, match="node-a is the writer"):
        c.forget_node("node-a", "", "operator alice")
    with pytest.raises(ForgetRefused, match=r"node-b still reports \(last \d"):
        c.forget_node("node-b", "", "operator alice")
    with pytest.raises(UnknownNode, match="node-q is not a known node"):
        c.forget_node("node-q", "", "operator alice")

    outcome = c.forget_node("node-c", "decommissioned", "operator alice")
    assert outcome.forgotten and "registered as a new node" in outcome.message
    assert "node-c" not in c.store.load().nodes and "node-c" not in c.snapshot_reports()
    assert "node-c" not in c.observations
    c.tick()
    assert {n.name for n in cluster_status(c).nodes} == {"node-a", "node-b"}
    assert "node-c" not in c.published.assignments
    events = c.store.events(kinds=("forget",))
    assert [(e.node, e.reason) for e in events] == [
        ("node-c", "node-c forgotten: decommissioned (asked by operator alice)")
    ]

    again = c.forget_node("node-c", "", "operator bob")
    assert not again.forgotten and again.message.startswith("node-c was already forgotten at ")
    assert "(asked by operator alice)" in again.message
    assert len(c.store.events(kinds=("forget",))) == 1  # nothing recorded for a no-op

    c.receive(report("node-c"))  # it came back
    c.tick()
    assert "node-c" in c.store.load().nodes


def test_a_follower_forgets_nothing(leader: Coordinator) -> None:
    leader._step_down()
    with pytest.raises(StoreError, match="does not lead"):
        leader.forget_node("node-c", "", "operator alice")
    assert "node-c" in leader.store.load().nodes


# -- over real mutual TLS, and the command line --------------------------------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    wanted = {"coordinator:coord-1": ["127.0.0.1"], "agent:node-a": ["127.0.0.1"], "operator:alice": [],
              "viewer:grafana": []}  # fmt: skip
    make_certs(str(directory), wanted, days=2)
    return directory


def ctl_args(coordinator: CoordinatorProcess, tls: Path, *command: str) -> list[str]:
    return ["--coordinator", coordinator.address, "--ca", str(tls / "ca.pem"), "--cert", str(tls / "alice.pem"),
            "--key", str(tls / "alice.key"), *command]  # fmt: skip


@pytest.mark.slow
def test_forget_over_mutual_tls_and_from_coordinatorctl(
    coordinator_factory: Callable[..., CoordinatorProcess], tls: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = coordinator_factory("coord-1", report_interval_s=0.2, detect_after_s=0.5)
    c.data["tls"] = {"ca": str(tls / "ca.pem"), "cert": str(tls / "coord-1.pem"), "key": str(tls / "coord-1.key")}
    c.credentials = credentials(tls, "alice")
    c.start()
    wait_until(c.leads, 15, "leadership over mutual TLS")
    agent = coordinator_pb2_grpc.CoordinatorServiceStub(grpc.secure_channel(c.address, credentials(tls, "node-a")))
    obs = node_pb2.NodeObservation(node="node-a", address="127.0.0.1", role_running=node_pb2.ROLE_STOPPED)
    obs.mounts.add(state="unmounted")  # never a candidate: it must not become the writer
    assert agent.Report(coordinator_pb2.ReportRequest(observation=obs), timeout=5).leader
    wait_until(lambda: any(n.name == "node-a" for n in c.status().nodes), 10, "node-a registered")

    forget = coordinator_pb2.ForgetNodeRequest(node="node-a", reason="gone")
    for caller in ("grafana", "node-a"):
        stub = coordinator_pb2_grpc.CoordinatorServiceStub(grpc.secure_channel(c.address, credentials(tls, caller)))
        with pytest.raises(grpc.RpcError) as refused:
            stub.ForgetNode(forget, timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
        assert "ForgetNode refused: it needs a operator certificate" in (refused.value.details() or "")
    with pytest.raises(grpc.RpcError) as bad:
        c.stub().ForgetNode(coordinator_pb2.ForgetNodeRequest(node="Node A\n"), timeout=5)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "node = " in (bad.value.details() or "")
    assert agent.Report(coordinator_pb2.ReportRequest(observation=obs), timeout=5).leader  # a report just now
    with pytest.raises(grpc.RpcError) as early:  # it reported just now
        c.stub().ForgetNode(forget, timeout=5)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "still reports" in early.value.details()

    assert ctl.main(ctl_args(c, tls, "forget", "node-a")) == ctl.EXIT_USAGE  # not on a terminal, no --yes
    assert "add --yes to confirm" in capsys.readouterr().err
    time.sleep(1.2)  # five report intervals without a report
    removal = ("node", "remove", "node-a", "--reason", "gone", "--yes", "-o", "json")  # issue 16's spelling
    assert ctl.main(ctl_args(c, tls, *removal)) == ctl.EXIT_OK
    done = json.loads(capsys.readouterr().out)
    assert done["forgotten"] is True and done["node"] == "node-a"
    assert [n["name"] for n in done["status"]["nodes"]] == []
    assert ctl.main(ctl_args(c, tls, "status", "-o", "json")) == ctl.EXIT_OK
    assert json.loads(capsys.readouterr().out)["nodes"] == []  # at once, not only after the next tick

    assert ctl.main(ctl_args(c, tls, "forget", "node-a", "--yes")) == ctl.EXIT_OK  # again: says so, exit 0
    assert capsys.readouterr().out.startswith("node-a was already forgotten at ")
    assert ctl.main(ctl_args(c, tls, "forget", "node-q", "--yes", "-o", "yaml")) == ctl.EXIT_FAILED
    assert "refused: node-q is not a known node" in capsys.readouterr().err
    reasons = [e.reason for e in c.events() if e.kind == "forget"]
    assert reasons == ["node-a forgotten: gone (asked by operator alice)"], reasons
