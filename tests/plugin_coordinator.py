"""Real coordinator daemons on this machine, against the test MariaDB: config, process, gRPC stub."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from jfsmilvus.v1 import coordinator_pb2, coordinator_pb2_grpc, node_pb2

from tests.plugin_agent import free_port, wait_until
from tests.plugin_mysql import MysqlDatabase

REPO = Path(__file__).resolve().parent.parent


def ctl(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`coordinatorctl --coordinator ADDRESS ARGS`, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "coordinator.ctl", "--coordinator", address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )


def report(
    c: CoordinatorProcess, node: str, role: int = node_pb2.ROLE_UNSPECIFIED, epoch: int = 0, mount: str = "healthy"
) -> coordinator_pb2.ReportResponse:
    """One Report as node `node` (at 127.0.0.2 for node-a, .3 for node-b, ...) would send it: no GPUs, a volume in
    state `mount`, a container running in `role` (none when unspecified)."""
    obs = node_pb2.NodeObservation(
        node=node,
        address=f"127.0.0.{ord(node[-1]) - ord('a') + 2}",
        role_running=role,
        highest_epoch_seen=epoch,
        milvus_port=19530,
        milvus_http_port=19121,
        writer_seen_healthy_age_s=-1,
    )
    obs.gpus.available = False
    obs.mounts.add(volume="v", mountpoint="/mnt", mounted=True, read_only=True, state=mount)
    obs.container.state = "running" if role else "absent"
    obs.container.role = role
    stub = coordinator_pb2_grpc.CoordinatorServiceStub(grpc.insecure_channel(c.address))
    return stub.Report(coordinator_pb2.ReportRequest(observation=obs), timeout=3)


class CoordinatorProcess:
    def __init__(self, root: Path, db: MysqlDatabase, name: str, cluster: str = "test", **timing: Any):
        self.root = root
        self.name = name
        self.port = free_port()
        self.metrics_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        password = root / f"{name}-mysql-password"
        password.write_text(db.coordinator.password.reveal() + "\n" if db.coordinator.password else "\n")
        password.chmod(0o600)
        self.config_path = root / f"{name}.yaml"
        self.log_path = root / f"{name}.log"
        self.data: dict[str, Any] = {
            "cluster": cluster,
            "log_level": "debug",
            "coordinator": {
                "id": name,
                "listen": self.address,
                "advertise": self.address,
                "metrics_port": self.metrics_port,
                "leader_lease_s": 4.0,
                "tick_s": 0.1,
            },
            "mysql": {
                "host": db.coordinator.host,
                "port": db.coordinator.port,
                "user": db.coordinator.user,
                "database": db.name,
                "password_file": str(password),
                "connect_timeout_s": 1.0,
            },
            "timing": {"startup_wait_s": 1.5, **timing},
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.credentials: grpc.ChannelCredentials | None = None  # set when it serves mutual TLS
        self._channel: grpc.Channel | None = None

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.data, sort_keys=False))

    def start(self) -> None:
        self.write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coordinator.cli", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a local cluster outlives the command that started it
            cwd=REPO,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        log.close()
        wait_until(self._up, 20, f"coordinator {self.name} on {self.address}")

    def _up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"coordinator {self.name} exited {self.process.returncode}:\n{self.log()}")
        try:
            self.why()
        except grpc.RpcError:
            return False
        return True

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stub(self) -> coordinator_pb2_grpc.CoordinatorServiceStub:
        """A stub on one channel kept for this process (a channel per call costs a connection per call)."""
        if self._channel is None:
            if self.credentials is not None:
                self._channel = grpc.secure_channel(self.address, self.credentials)
            else:
                self._channel = grpc.insecure_channel(self.address)
        return coordinator_pb2_grpc.CoordinatorServiceStub(self._channel)

    def events(self, limit: int = 200) -> list[coordinator_pb2.Event]:
        return list(self.stub().ListEvents(coordinator_pb2.ListEventsRequest(limit=limit), timeout=5))

    def why(self) -> str:
        return self.stub().Why(coordinator_pb2.WhyRequest(), timeout=3).sentence

    def status(self) -> coordinator_pb2.ClusterStatus:
        return self.stub().GetClusterStatus(coordinator_pb2.ClusterStatusRequest(), timeout=3)

    def leads(self) -> bool:
        try:
            return not self.why().startswith(("This coordinator follows", "No coordinator leads"))
        except grpc.RpcError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def coordinator_factory(mysql_db: MysqlDatabase, tmp_path: Path) -> Iterator[Callable[..., CoordinatorProcess]]:
    made: list[CoordinatorProcess] = []

    def make(name: str = "", **timing: Any) -> CoordinatorProcess:
        c = CoordinatorProcess(tmp_path, mysql_db, name or f"coord{len(made) + 1}", **timing)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.kill()
