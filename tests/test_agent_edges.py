"""The agent at its edges: Docker gone, a port taken, Mishards' env file, mTLS, /metrics, systemd notify."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from jfsmilvus.common.tls import TlsSettings
from jfsmilvus.v1 import agent_pb2, agent_pb2_grpc

from agent.api import listen_address
from agent.config import AgentConfig
from agent.mishards.envfile import parse_env_values
from coordinator.certs import make_certs
from tests.plugin_agent import AgentNode, wait_until
from tests.test_agent_daemon import prepared

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_docker_unreachable_is_reported_and_the_agent_recovers_when_it_is_back(
    agent_node: Callable[..., AgentNode], tmp_path: Path
) -> None:
    node = prepared(agent_node)
    sock = tmp_path / "docker.sock"
    node.env["DOCKER_HOST"] = f"unix://{sock}"
    node.assign("ro", 1)
    node.start()
    wait_until(
        lambda: (
            any("Docker engine unreachable" in e for e in node.status().last_errors)
            or "Docker is unreachable" in node.log()
        ),
        20,
        "the Docker error",
    )
    assert node.process is not None and node.process.poll() is None
    proxy = subprocess.Popen(["socat", f"UNIX-LISTEN:{sock},fork", "UNIX-CONNECT:/var/run/docker.sock"])
    try:
        node.wait_role("ro")
    finally:
        proxy.kill()
        proxy.wait()


def test_a_taken_port_is_reported_and_retried(agent_node: Callable[..., AgentNode]) -> None:
    node = prepared(agent_node)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((node.address, node.http_port))
    blocker.listen()
    try:
        node.assign("ro", 1)
        node.start()
        wait_until(lambda: "is already taken" in node.log(), 30, "the port error")
        assert node.containers() == []  # the half-created container was removed
    finally:
        blocker.close()
    node.wait_role("ro", timeout=90)


def test_mishards_env_file_follows_the_assignment_and_refuses_bad_hosts(
    agent_node: Callable[..., AgentNode], mishards_image: str, tmp_path: Path
) -> None:
    """The settings are recorded in the env file (a `$` of the password percent-encoded) and handed to the
    Mishards container the agent runs; nothing answers at the writer's address here, so the start is held."""
    node = prepared(agent_node)
    env_file = tmp_path / "mishards.env"
    env_file.write_text("# operator's notes\nDEBUG=True\n")
    db_password = tmp_path / "mysql-password"
    db_password.write_text("my$ecret\n")
    db_password.chmod(0o600)
    node.write_config(
        mishards={
            "enabled": True,
            "env_file": str(env_file),
            "container_name": f"mishards-edge-{os.getpid()}",
            "image": mishards_image,
            "writer_hold_s": 600,
            "database_uri": "mysql+pymysql://root@127.0.0.1:3306/milvus?charset=utf8mb4",
            "database_password_file": str(db_password),
        }
    )
    node.assign("rw", 1, "--mishards-writer", "127.0.0.1:19530", "--mishards-hosts", "127.0.0.2,127.0.0.3")
    node.start()
    wait_until(lambda: "WOSERVER" in env_file.read_text(), 30, "the env file")
    values = parse_env_values(env_file.read_text())
    assert values["WOSERVER"] == "tcp://127.0.0.1:19530"
    assert values["DISCOVERY_STATIC_HOSTS"] == "127.0.0.2,127.0.0.3"
    assert values["DISCOVERY_CLASS_NAME"] == "static"
    assert values["SQLALCHEMY_DATABASE_URI"] == "mysql+pymysql://root:my%24ecret@127.0.0.1:3306/milvus?charset=utf8mb4"
    assert env_file.read_text().startswith("# operator's notes\nDEBUG=True\n")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "my$ecret" not in node.log() and "my%24ecret" not in node.log()
    wait_until(lambda: node.status().mishards.state == "held", 30, "the held start")
    assert "127.0.0.1:19530" in node.status().mishards.reason

    # An IPv6 host is refused; the old file stays as it was.
    before = env_file.read_text()
    node.assign("rw", 3, "--mishards-writer", "127.0.0.1:19530", "--mishards-hosts", "127.0.0.2,fe80::1")
    wait_until(lambda: any("IPv6" in e for e in node.status().last_errors), 20, "the refusal")
    assert env_file.read_text() == before


def make_tls(directory: Path) -> None:
    """ca.pem with agent (IP:127.0.0.1) and client certificates; other.pem/key signed by a different CA."""
    make_certs(str(directory), {"agent": ["127.0.0.1"], "coordinator:client": ["coordinator"]}, days=2)
    stranger = directory / "stranger-ca"
    make_certs(str(stranger), {"other": ["intruder"]}, days=2)
    for suffix in ("pem", "key"):
        (stranger / f"other.{suffix}").rename(directory / f"other.{suffix}")


def test_mutual_tls_only_with_certificates(agent_node: Callable[..., AgentNode], tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    make_tls(tls_dir)
    node = agent_node()
    node.write_config(
        tls={"ca": str(tls_dir / "ca.pem"), "cert": str(tls_dir / "agent.pem"), "key": str(tls_dir / "agent.key")}
    )
    ca = (tls_dir / "ca.pem").read_bytes()

    def creds(name: str | None) -> grpc.ChannelCredentials:
        if name is None:
            return grpc.ssl_channel_credentials(root_certificates=ca)
        return grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(tls_dir / f"{name}.key").read_bytes(),
            certificate_chain=(tls_dir / f"{name}.pem").read_bytes(),
        )

    node.channel_credentials = creds("client")
    node.start()
    assert node.status().node == node.name
    assert "mutual TLS" in node.log()

    for name in (None, "other"):
        node.channel_credentials = creds(name)
        with pytest.raises(grpc.RpcError) as info:
            node.status()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, name
    with grpc.insecure_channel(f"{node.address}:{node.agent_port}") as channel, pytest.raises(grpc.RpcError):
        agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest(), timeout=3)


def test_without_tls_the_api_listens_on_loopback_only() -> None:
    def config(address: str, **tls: object) -> AgentConfig:
        return AgentConfig(path=None, node_name="n", address=address, agent_port=19700, tls=TlsSettings(**tls))  # type: ignore[arg-type]

    assert listen_address(config("10.0.0.11")) == "127.0.0.1:19700"
    assert listen_address(config("127.0.0.5")) == "127.0.0.5:19700"
    assert listen_address(config("10.0.0.11", allow_insecure_remote=True)) == "10.0.0.11:19700"
    assert listen_address(config("10.0.0.11", ca="/c", cert="/c", key="/k")) == "10.0.0.11:19700"


def test_metrics_use_dcgm_names_and_our_own(agent_node: Callable[..., AgentNode], fake_nvml, tmp_path: Path) -> None:
    from tests.obsdata import value_of
    from tests.plugin_gpu import FakeXid, two_gpus

    gpus = two_gpus()
    fake_nvml.write(gpus)
    node = prepared(agent_node)
    node.env.update(fake_nvml.env())
    node.write_config(gpu={"enabled": True, "poll_interval_s": 1})
    node.assign("rw", 1)
    node.start()
    node.wait_role("rw")
    gpus.xids.append(FakeXid(seq=1, gpu=1, xid=79))
    fake_nvml.write(gpus)

    def metrics() -> str:
        with urllib.request.urlopen(f"http://{node.address}:{node.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    text = wait_until(lambda: t if "DCGM_FI_DEV_XID_ERRORS" in (t := metrics()) else None, 20, "the XID metric")
    uuid0 = gpus.gpus[0].uuid
    dcgm = {"gpu": "0", "UUID": uuid0, "modelName": "NVIDIA A100-SXM4-80GB", "Hostname": node.name}
    assert value_of(text, "DCGM_FI_DEV_GPU_UTIL", **dcgm) == 37
    assert value_of(text, "DCGM_FI_DEV_FB_USED", **dcgm) == 10240
    assert value_of(text, "DCGM_FI_DEV_XID_ERRORS", gpu="1") == 79
    assert value_of(text, "jfs_milvus_gpu_xid_events_total", gpu="1", xid="79", fatal="true") == 1
    assert value_of(text, "jfs_milvus_role", node=node.name, role="rw") == 2
    assert value_of(text, "jfs_milvus_epoch", node=node.name) == 1
    assert value_of(text, "jfs_milvus_gpu_health", gpu="1") == 2
    assert value_of(text, "jfs_milvus_mount_healthy", node=node.name) == 1
    assert value_of(text, "jfs_milvus_mount_health", node=node.name) == 0
    assert value_of(text, "jfs_milvus_mount_write_probe_seconds", node=node.name) is not None
    assert value_of(text, "jfs_milvus_container_running", node=node.name, state="running") == 1
    assert value_of(text, "jfs_milvus_container_restarts_total", node=node.name) is not None
    assert value_of(text, "process_resident_memory_bytes") is not None  # prometheus_client's, for the footprint


def test_systemd_notify_ready_watchdog_and_stopping(agent_node: Callable[..., AgentNode], tmp_path: Path) -> None:
    node = agent_node()
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(15)
    node.env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000")
    node.start()
    seen: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not ({"READY=1", "WATCHDOG=1"} <= set(seen)):
        seen += listener.recv(4096).decode().split("\n")
    assert "READY=1" in seen and "WATCHDOG=1" in seen
    node.stop()
    rest = []
    listener.settimeout(1)
    try:
        while True:
            rest += listener.recv(4096).decode().split("\n")
    except TimeoutError:
        pass
    assert "STOPPING=1" in rest
    listener.close()
