"""A real `jfs-milvus-agent run` process that touches nothing of the machine: no Docker (DOCKER_HOST names a
socket that does not exist, so it waits for Docker and says so), no GPU, no volume unless given one under the
test's own directory, its state, data and config files there too. Enough for what the daemon says (its log, its
Status RPC, its now file), what it reads, and its reports to a real coordinator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from jfsmilvus.v1 import agent_pb2, agent_pb2_grpc, node_pb2

from tests.agentconf import write_agent_yaml
from tests.plugin_agent import free_port, wait_until
from tests.plugin_coordinator import CoordinatorProcess

REPO = Path(__file__).resolve().parent.parent
AGENT = [sys.executable, "-m", "agent.cli"]


class BareAgent:
    def __init__(self, root: Path, name: str = "node-a", address: str = "127.0.0.1", **sections: Any):
        self.root = root
        self.name = name
        self.agent_port = free_port()
        self.state_dir = root / "state"
        self.data_dir = root / "data"
        self.base_config = root / "server_config.yaml"
        self.config_path = root / "agent.yaml"
        self.log_path = root / "agent.log"
        milvus = {"data_dir": str(self.data_dir), "base_config": str(self.base_config), **sections.pop("milvus", {})}
        write_agent_yaml(
            self.config_path,
            name,
            address,
            None,
            node={"name": name, "address": address, "agent_port": self.agent_port, "metrics_port": free_port()},
            state_dir=str(self.state_dir),
            gpu={"enabled": False},
            milvus=milvus,
            **sections,
        )
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{root}/no-docker.sock", PYTHONUNBUFFERED="1")
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`jfs-milvus-agent ARGS --config` this node's config."""
        return subprocess.run(
            [*AGENT, *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            cwd=REPO,
        )

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*AGENT, "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=REPO,
            )
        wait_until(self._up, 30, f"agent {self.name}'s API on port {self.agent_port}")

    def _up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"agent {self.name} exited {self.process.returncode}:\n{self.log()}")
        try:
            self.status()
        except grpc.RpcError:
            return False
        return True

    def status(self) -> node_pb2.NodeObservation:
        with grpc.insecure_channel(f"127.0.0.1:{self.agent_port}") as channel:
            return agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest(), timeout=3)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def leader_and_agent(
    coordinator_factory: Callable[..., CoordinatorProcess], root: Path, **sections: Any
) -> tuple[CoordinatorProcess, BareAgent]:
    """A coordinator that leads, and a bare agent (started) that reports to it."""
    c = coordinator_factory()
    c.start()
    wait_until(c.leads, 15, "leadership")
    node = BareAgent(root, coordinators=[c.address], **sections)
    node.start()
    return c, node
