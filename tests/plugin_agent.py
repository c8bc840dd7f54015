"""A real agent daemon on this machine: its config, its process, and ways to drive and read it.

`agent_node` gives an `AgentNode`: a JuiceFS volume (real Redis + `juicefs format`), the cpu-flavour stand-in
Milvus image (`milvus.flavor: cpu`, `gpus: none`), a base server_config.yaml, free ports, Milvus's metadata in
a fresh MariaDB database (`milvus.meta_uri`, reached from Docker's bridge, with a password that holds `!#@/%`,
so every agent test shows the raw password reaching MySQL), and `start()` to run `jfs-milvus-agent run` as a
child process. The nodes of one test share that database, as a cluster's do. Everything it made (containers,
mounts, processes) is removed at teardown.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import grpc
import pytest
from jfsmilvus.v1 import agent_pb2, agent_pb2_grpc, node_pb2

from tests.agentconf import write_agent_yaml
from tests.localcluster.milvusmeta import BridgedMariaDB, MilvusMeta, grant_milvus_meta
from tests.plugin_juicefs import JfsTestVolume
from tests.standin.container import FAST_KNOBS, milvus_calls

REPO = Path(__file__).resolve().parent.parent
LABEL_NODE = "io.jfs-milvus.node"
COLLECTION = "agent_test"  # what AgentNode.write inserts into (dimension 4, L2)
_agent_meta_numbers = itertools.count(1)


_HANDED_OUT: set[int] = set()


def free_port(address: str = "127.0.0.1") -> int:
    """A port free now and never handed out before in this test run: the kernel may give the same free port
    to two binds in a row, and two parts of one node (its agent API, its Milvus HTTP port) then collide."""
    while True:
        with socket.socket() as s:
            s.bind((address, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str | Callable[[], str], interval: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    described = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout}s waiting for {described}; last: {last!r}")


class AgentNode:
    def __init__(
        self,
        root: Path,
        volume: JfsTestVolume,
        image: str,
        name: str,
        address: str = "127.0.0.1",
        meta: MilvusMeta | None = None,
    ):
        self.root = root
        self.volume = volume
        self.name = name
        self.address = address
        self.agent_port = free_port(address)
        self.metrics_port = free_port(address)
        self.milvus_port = free_port(address)
        self.http_port = free_port(address)
        self.container_name = f"milvus-{name}"
        self.state_dir = root / "state"
        self.data_dir = root / "milvus"
        self.base_config = root / "server_config.yaml"
        self.write_base_config()
        self.log_path = root / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = dict(os.environ, PYTHONUNBUFFERED="1")
        self.milvus: dict[str, Any] = {
            "image": image,
            "container_name": self.container_name,
            "base_config": str(self.base_config),
            "data_dir": str(self.data_dir),
            "port": self.milvus_port,
            "http_port": self.http_port,
            "flavor": "cpu",  # the stand-in is a CPU image here, run without GPUs
            "gpus": "none",
            "stop_timeout_s": 5,
            "start_timeout_s": 60,
            "health_timeout_s": 15,
        }
        self.meta = meta
        if meta is not None:
            password = meta.write_password(root / "milvus-mysql-password")
            self.milvus.update(meta_uri=meta.uri(), meta_password_file=str(password))
        self.extra: dict[str, Any] = {}
        self.channel_credentials: grpc.ChannelCredentials | None = None
        self.nvml_config: Path = root / "fake-nvml.conf"
        self.launcher: list[str] = []  # a command prefix (e.g. to start the agent in a cgroup)
        self.config_path = root / "agent.yaml"
        self.write_config()

    # -- config and process ----------------------------------------------------------------------------
    def write_base_config(self, **sections: dict[str, Any]) -> None:
        """The operator's base server_config.yaml: the 1.x layout, fast stand-in knobs, plus `sections`."""
        import yaml

        data: dict[str, Any] = {
            "version": 0.5,
            "general": {"timezone": "UTC+8"},
            "cache": {"cache_size": "1GB"},
            "wal": {"enable": True, "recovery_error_ignore": False},  # as core/conf/server_config.template:95-99
            "standin": dict(FAST_KNOBS),
        }
        for name, keys in sections.items():
            data.setdefault(name, {}).update(keys)
        self.base_config.write_text(yaml.safe_dump(data, sort_keys=False))

    def write_config(self, **changes: Any) -> str:
        self.extra.update(changes)
        sections = {
            "state_dir": str(self.state_dir),
            "log_level": "debug",
            "loop_interval_s": 0.5,
            "gpu": {"enabled": False},
            "milvus": self.milvus,
            **self.extra,
        }
        sections["node"] = {
            "name": self.name,
            "address": self.address,
            "agent_port": self.agent_port,
            "metrics_port": self.metrics_port,
        }
        path = write_agent_yaml(self.config_path, self.name, self.address, self.volume, **sections)
        return path

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "agent already running"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [*self.launcher, sys.executable, "-m", "agent.cli", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a local cluster outlives the command that started it
            env=self.env,
            cwd=REPO,
        )
        log.close()
        wait_until(self._api_up, 20, f"agent {self.name} API on port {self.agent_port}")

    def _api_up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"agent exited with {self.process.returncode}:\n{self.log()}")
        try:
            self.status()
        except grpc.RpcError:
            return False
        return True

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 15) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- driving ---------------------------------------------------------------------------------------
    def assign(self, role: str, epoch: int, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "agent.cli",
                "assign",
                role,
                "--epoch",
                str(epoch),
                "--config",
                str(self.config_path),
                *extra,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=30,
        )

    def channel(self) -> grpc.Channel:
        target = f"{self.address}:{self.agent_port}"
        if self.channel_credentials is not None:
            return grpc.secure_channel(target, self.channel_credentials)
        return grpc.insecure_channel(target)

    def status(self) -> node_pb2.NodeObservation:
        with self.channel() as channel:
            return agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest(), timeout=5)

    def push(self, assignment: node_pb2.Assignment) -> agent_pb2.AssignResponse:
        with self.channel() as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            return stub.Assign(agent_pb2.AssignRequest(assignment=assignment, coordinator="test"), timeout=5)

    def wait_role(self, role: str, timeout: float = 60) -> node_pb2.NodeObservation:
        want = {"ro": node_pb2.ROLE_RO, "rw": node_pb2.ROLE_RW, "none": node_pb2.ROLE_STOPPED}[role]
        return wait_until(
            lambda: (s := self.status()).role_running == want and s,
            timeout,
            f"{self.name} running {role}\n--- agent log ---\n{self.log()[-4000:]}",
        )

    # -- what is on the node ---------------------------------------------------------------------------
    def containers(self) -> list[Any]:
        client = docker.from_env()
        return client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={self.name}"})

    def http(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.address}:{self.http_port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read() or b"{}"
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, {"body": body[:200].decode(errors="replace")}
        except (urllib.error.URLError, OSError):
            return 0, {}

    def standin(self) -> dict[str, Any]:
        """The stand-in's own view (GET /standin): node, epoch, role, writable, flavor, pid, ..."""
        return self.http("GET", "/standin")[1]

    def milvus_calls(self, calls: list[list[Any]], timeout_s: float = 10) -> list[dict[str, Any]]:
        """pymilvus 1.0.1 calls against this node's Milvus (tests/standin/pymilvus_call.py)."""
        return milvus_calls(self.address, self.milvus_port, calls, timeout_s)

    def write(self, row_id: int) -> bool:
        """Insert one row with `row_id` into COLLECTION (created if missing) and flush it; True when Milvus
        answered both with code 0, i.e. the row is on the shared volume. Only for a writer: on a Milvus 1.x
        reader the insert is acknowledged into its local WAL and the flush never returns."""
        spec = {"collection_name": COLLECTION, "dimension": 4, "index_file_size": 1024, "metric_type": 1}
        answers = self.milvus_calls(
            [
                ["has_collection", COLLECTION],
                ["create_collection", spec],
                ["insert", COLLECTION, [[float(row_id), 0.0, 0.0, 1.0]], [row_id]],
                ["flush", [COLLECTION]],
            ]
        )
        return [a.get("code") for a in answers[2:]] == [0, 0]

    def has_row(self, row_id: int) -> bool:
        """This node's Milvus finds the row (a reader reads what a writer flushed to the shared volume)."""
        (answer,) = self.milvus_calls([["get_entity_by_id", COLLECTION, [row_id]]])
        return answer.get("code") == 0 and bool((answer.get("value") or [[]])[0])

    def mount_mode(self) -> str | None:
        path = os.path.join(self.volume.mountpoint, ".config")
        try:
            with open(path, encoding="utf-8") as f:
                return "ro" if json.load(f)["Meta"]["ReadOnly"] else "rw"
        except OSError:
            return None

    def config_role(self) -> str | None:
        import yaml

        path = self.data_dir / "conf" / "server_config.yaml"
        if not path.exists():
            return None
        return yaml.safe_load(path.read_text())["cluster"]["role"]

    def cleanup(self) -> None:
        self.kill()
        for container in self.containers():
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)


@pytest.fixture
def agent_milvus_meta(milvus_mariadb: BridgedMariaDB) -> MilvusMeta:
    """A fresh Milvus meta database for one test's agents, on the MariaDB their containers reach."""
    milvus_mariadb.thaw()
    milvus_mariadb.start()  # a no-op unless a test left it stopped
    return grant_milvus_meta(milvus_mariadb, f"agent_milvus_{next(_agent_meta_numbers)}", milvus_mariadb.bridge)


@pytest.fixture
def agent_node(
    make_volume: Callable[..., JfsTestVolume], standin_image: str, agent_milvus_meta: MilvusMeta, tmp_path: Path
) -> Iterator[Callable[..., AgentNode]]:
    made: list[AgentNode] = []

    def make(volume: JfsTestVolume | None = None, image: str | None = None) -> AgentNode:
        vol = volume or make_volume(probe_timeout_s=2.0)
        root = tmp_path / f"node{len(made)}"
        root.mkdir()
        name = f"n{len(made)}-{uuid.uuid4().hex[:6]}"
        node = AgentNode(root, vol, image or standin_image, name=name, meta=agent_milvus_meta)
        made.append(node)
        return node

    try:
        yield make
    finally:
        for node in made:
            node.cleanup()
