"""Who may do what (issue 15), over real mutual TLS with certificates from `make-certs`: each RPC of both
services from each kind of caller, allowed or refused with PERMISSION_DENIED and one line, logged with the
caller; a certificate without a kind is refused with how to issue one; operator actions record who asked."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from jfsmilvus.common.authz import Caller, caller_from, parse_identity, refusal
from jfsmilvus.common.tls import TlsSettings, server_credentials
from jfsmilvus.v1 import agent_pb2, agent_pb2_grpc, coordinator_pb2, coordinator_pb2_grpc, node_pb2

from agent.api import AgentServicer
from agent.observation import AgentObservation
from agent.snapshot import NodeSnapshot
from coordinator.certs import CertError, _openssl, make_certs, parse_spec
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess

WANTED = {
    "coordinator:coord-1": ["127.0.0.1"],
    "agent:node-a": ["127.0.0.1"],
    "agent:node-b": ["127.0.0.1"],
    "operator:alice": [],
    "viewer:grafana": [],
}
CALLERS = ("coord-1", "node-a", "node-b", "alice", "grafana", "legacy")


def legacy_cert(tls: Path, name: str) -> None:
    """A certificate of the same CA as make-certs made it before kinds existed: no jfs-milvus URI."""
    (tls / f"{name}.ext").write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl(
        tls,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
    )
    _openssl(
        tls, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
    )  # fmt: skip


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    make_certs(str(directory), WANTED, days=2)
    legacy_cert(directory, "legacy")
    return directory


def credentials(tls: Path, name: str) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        (tls / "ca.pem").read_bytes(), (tls / f"{name}.key").read_bytes(), (tls / f"{name}.pem").read_bytes()
    )


def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    try:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


# -- the identity in the certificate ----------------------------------------------------------------------
def test_make_certs_writes_the_kind_and_name_as_a_san_uri(tls: Path) -> None:
    text = subprocess.run(
        ["openssl", "x509", "-in", str(tls / "node-a.pem"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "URI:jfs-milvus://agent/node-a" in text and "IP Address:127.0.0.1" in text
    assert parse_spec("coord-2=10.0.0.5").kind == "coordinator"  # the older form keeps working
    assert parse_spec("operator").kind == "operator" and parse_spec("gpu-node-1").kind == "agent"
    assert parse_spec("viewer:grafana").kind == "viewer"
    with pytest.raises(CertError, match="not one of coordinator, agent, operator, viewer"):
        parse_spec("admin:root")
    with pytest.raises(CertError, match="lower-case letters"):
        parse_spec("agent:Node_A")
    assert parse_identity(["jfs-milvus://agent/node-a", "spiffe://x"]) == ("agent", "node-a")
    assert parse_identity(["jfs-milvus://agent/node-a", "jfs-milvus://operator/x"]) is None  # ambiguous


def test_the_same_command_makes_an_old_certificate_again_with_its_kind(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    make_certs(str(tls), {"operator:ops": []}, days=2)
    legacy_cert(tls, "coord-9")
    run = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "make-certs", str(tls), "coord-9=127.0.0.1", "operator:ops"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "coord-9.pem (coordinator coord-9)" in run.stdout and "ops.pem" not in run.stdout


def test_the_table_is_the_issues() -> None:
    agent = Caller(tls=True, kind="agent", name="node-a")
    assert refusal("CoordinatorService.Report", agent, "node-a") is None
    assert "only for node node-a" in (refusal("CoordinatorService.Report", agent, "node-b") or "")
    assert refusal("CoordinatorService.Report", Caller(tls=False), "node-b") is None  # loopback, no TLS
    assert caller_from({"transport_security_type": [b"insecure"]}) == Caller(tls=False)
    no_kind = refusal("CoordinatorService.Why", Caller(tls=True, subject="CN=old"))
    assert no_kind is not None and "make-certs DIR KIND:NAME" in no_kind and "\n" not in no_kind


# -- the coordinator --------------------------------------------------------------------------------------
@pytest.fixture
def coordinator(coordinator_factory: Callable[..., CoordinatorProcess], tls: Path) -> Iterator[CoordinatorProcess]:
    c = coordinator_factory("coord-1")
    c.data["tls"] = {"ca": str(tls / "ca.pem"), "cert": str(tls / "coord-1.pem"), "key": str(tls / "coord-1.key")}
    c.credentials = credentials(tls, "alice")
    c.start()
    wait_until(c.leads, 15, "leadership over mutual TLS")
    yield c


def report(node: str) -> coordinator_pb2.ReportRequest:
    obs = node_pb2.NodeObservation(node=node, address="127.0.0.1", role_running=node_pb2.ROLE_STOPPED)
    obs.mounts.add(state="healthy", mounted=True, read_only=True, health=node_pb2.HEALTH_HEALTHY)
    return coordinator_pb2.ReportRequest(observation=obs)


COORDINATOR_CALLS: dict[str, tuple[Callable[[Any], Any], tuple[str, ...]]] = {
    "Report as node-a": (lambda s: s.Report(report("node-a"), timeout=5), ("node-a",)),
    "SetPaused": (lambda s: s.SetPaused(coordinator_pb2.SetPausedRequest(paused=False), timeout=5), ("alice",)),
    "SetPriority": (
        lambda s: s.SetPriority(coordinator_pb2.SetPriorityRequest(node="node-a", priority=2), timeout=5),
        ("alice",),
    ),
    "SetMaintenance": (
        lambda s: s.SetMaintenance(coordinator_pb2.SetMaintenanceRequest(node="node-a", on=False), timeout=5),
        ("alice",),
    ),
    "Failover": (
        lambda s: s.Failover(coordinator_pb2.FailoverRequest(to="node-q", force=True), timeout=5),
        ("alice",),
    ),
    "Switchover": (lambda s: s.Switchover(coordinator_pb2.SwitchoverRequest(to="node-q"), timeout=5), ("alice",)),
    "GetClusterStatus": (
        lambda s: s.GetClusterStatus(coordinator_pb2.ClusterStatusRequest(), timeout=5),
        ("alice", "grafana"),
    ),
    "ListEvents": (lambda s: s.ListEvents(coordinator_pb2.ListEventsRequest(limit=5), timeout=5), ("alice", "grafana")),
    "Why": (lambda s: s.Why(coordinator_pb2.WhyRequest(), timeout=5), ("alice", "grafana")),
    "GetNodeObservations": (
        lambda s: s.GetNodeObservations(coordinator_pb2.NodeObservationsRequest(), timeout=5),
        ("alice", "grafana"),
    ),
    # The rolling upgrade, every action (its status too): operators only.
    "Rollout": (lambda s: list(s.Rollout(coordinator_pb2.RolloutRequest(action="status"), timeout=5)), ("alice",)),
}


@pytest.mark.slow
def test_each_coordinator_rpc_from_each_kind_of_caller(coordinator: CoordinatorProcess, tls: Path) -> None:
    # node-a must be known for priority and maintenance.
    agent_a = coordinator_pb2_grpc.CoordinatorServiceStub(
        grpc.secure_channel(coordinator.address, credentials(tls, "node-a"))
    )
    wait_until(lambda: agent_a.Report(report("node-a"), timeout=5).leader, 10, "node-a's report")
    wait_until(lambda: any(n.name == "node-a" for n in coordinator.status().nodes), 10, "node-a registered")
    for caller in CALLERS:
        stub = coordinator_pb2_grpc.CoordinatorServiceStub(
            grpc.secure_channel(coordinator.address, credentials(tls, caller))
        )
        for rpc, (call, allowed) in COORDINATOR_CALLS.items():
            code, details = code_of(lambda stub=stub, call=call: call(stub))
            if caller in allowed:
                assert code == grpc.StatusCode.OK, (caller, rpc, code, details)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (caller, rpc, code, details)
                assert "\n" not in details and "refused" in details, details
                if caller == "legacy":
                    assert "make-certs DIR KIND:NAME" in details, details
    # The attacks of the issue, with another node's agent certificate.
    forger = coordinator_pb2_grpc.CoordinatorServiceStub(
        grpc.secure_channel(coordinator.address, credentials(tls, "node-b"))
    )
    code, details = code_of(lambda: forger.Report(report("node-a"), timeout=5))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "only for node node-b, not 'node-a'" in details, details
    log = coordinator.log()
    assert "refused CoordinatorService.Report from agent node-b" in log
    assert "refused CoordinatorService.SetPaused from viewer grafana" in log
    # Operator actions record who asked.
    reasons = [e.reason for e in coordinator.events()]
    assert any("node-a priority set to 2 (asked by operator alice)" in r for r in reasons), reasons
    assert any(r.startswith("resumed (asked by operator alice)") for r in reasons), reasons


# -- the agent --------------------------------------------------------------------------------------------
class FakeAgent:
    def __init__(self) -> None:
        self.pushed: list[Any] = []

    def status(self) -> AgentObservation:
        return AgentObservation(node="node-a", address="127.0.0.1", seen=NodeSnapshot(highest_epoch=1))

    def push_assignment(self, assignment: Any, leader_term: int = 0) -> str | None:
        self.pushed.append(assignment)
        return None


@pytest.mark.parametrize(
    ("caller", "status_ok", "assign_ok"),
    [
        ("coord-1", True, True),
        ("alice", True, False),
        ("grafana", True, False),
        ("node-b", False, False),  # the issue's attack: another node's agent certificate
        ("legacy", False, False),
    ],
)
def test_the_agent_takes_assign_only_from_a_coordinator(
    tls: Path, caller: str, status_ok: bool, assign_ok: bool, caplog: pytest.LogCaptureFixture
) -> None:
    agent = FakeAgent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(agent), server)  # type: ignore[arg-type]
    settings = TlsSettings(ca=str(tls / "ca.pem"), cert=str(tls / "node-a.pem"), key=str(tls / "node-a.key"))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(settings))
    server.start()
    try:
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials(tls, caller)) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            code, _ = code_of(lambda: stub.Status(agent_pb2.StatusRequest(), timeout=5))
            assert (code == grpc.StatusCode.OK) is status_ok, code
            attack = agent_pb2.AssignRequest(
                assignment=node_pb2.Assignment(role=node_pb2.ROLE_RO, epoch=10**9), coordinator="x", leader_term=1
            )
            with caplog.at_level(logging.WARNING):
                code, details = code_of(lambda: stub.Assign(attack, timeout=5))
            assert (code == grpc.StatusCode.OK) is assign_ok, (code, details)
            if not assign_ok:
                assert code == grpc.StatusCode.PERMISSION_DENIED and not agent.pushed
                assert "refused AgentService.Assign from" in caplog.text
    finally:
        server.stop(0)
