"""`jfs-milvus-coordinator make-certs`: certificates that a coordinator serves mutual TLS with."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from jfsmilvus.v1 import coordinator_pb2, coordinator_pb2_grpc

from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess


def make_certs(directory: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "make-certs", str(directory), *names],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_certs_is_idempotent_and_keys_are_private(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    first = make_certs(tls, "coord-1=127.0.0.1", "operator")
    assert first.returncode == 0, first.stderr
    assert "made" in first.stdout and (tls / "coord-1.pem").exists()
    for key in ("ca.key", "coord-1.key", "operator.key"):
        assert stat.S_IMODE((tls / key).stat().st_mode) == 0o600
    san = subprocess.run(
        ["openssl", "x509", "-in", str(tls / "coord-1.pem"), "-noout", "-text"], capture_output=True, text=True
    )
    assert "IP Address:127.0.0.1" in san.stdout and "DNS:coord-1" in san.stdout
    again = make_certs(tls, "coord-1=127.0.0.1", "operator")
    assert again.returncode == 0 and "nothing to make" in again.stdout


@pytest.mark.slow
def test_a_coordinator_serves_mutual_tls_with_them(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    tls = tmp_path / "tls"
    assert make_certs(tls, "coord-1=127.0.0.1", "operator").returncode == 0
    c = coordinator_factory("coord-1")
    c.data["tls"] = {"ca": str(tls / "ca.pem"), "cert": str(tls / "coord-1.pem"), "key": str(tls / "coord-1.key")}
    c.write_config()
    ca = (tls / "ca.pem").read_bytes()
    operator = grpc.ssl_channel_credentials(
        ca, (tls / "operator.key").read_bytes(), (tls / "operator.pem").read_bytes()
    )
    c.stub = lambda: coordinator_pb2_grpc.CoordinatorServiceStub(grpc.secure_channel(c.address, operator))  # type: ignore[method-assign]
    c.start()
    wait_until(c.leads, 15, "leadership over mutual TLS")
    anonymous = coordinator_pb2_grpc.CoordinatorServiceStub(
        grpc.secure_channel(c.address, grpc.ssl_channel_credentials(ca))
    )
    with pytest.raises(grpc.RpcError) as info:
        anonymous.Why(coordinator_pb2.WhyRequest(), timeout=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "mutual TLS" in c.log()
