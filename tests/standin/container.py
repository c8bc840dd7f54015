"""Run stand-in containers for tests: write their server_config.yaml, start, call them, signal, stop, remove."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.standin.milvusconf import StandinKnobs

CONTAINER_ROOT = "/var/lib/milvus"
TEST_LABEL = "org.jfs-milvus.test=standin"  # every container started here carries it
REPO = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = REPO / ".venv-milvus1" / "bin" / "python"
CALL_SCRIPT = Path(__file__).resolve().parent / "pymilvus_call.py"
FAST_KNOBS = asdict(StandinKnobs(start_s=0.3, stop_s=0.1))  # most tests need no realistic delays


def render_config(
    role: str,
    meta_uri: str,
    address: str = "0.0.0.0",
    port: int = 19530,
    http_port: int = 19121,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> str:
    """A Milvus 1.x (config version 0.5) server_config.yaml: `network` holds flat dotted keys, as Milvus reads."""
    config: dict[str, Any] = {
        "version": "0.5",
        "cluster": {"enable": True, "role": role},
        "general": {"meta_uri": meta_uri},
        "network": {"bind.address": address, "bind.port": port, "http.enable": True, "http.port": http_port},
        "storage": {"path": CONTAINER_ROOT, "auto_flush_interval": 1},
        "wal": {"enable": True, "recovery_error_ignore": False, "path": f"{CONTAINER_ROOT}/wal"},
        "logs": {"path": f"{CONTAINER_ROOT}/logs"},
        "standin": dict(FAST_KNOBS),
    }
    for section, values in (overrides or {}).items():
        if values is None:
            config.pop(section, None)
        elif isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    return yaml.safe_dump(config, sort_keys=False)


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def milvus_calls(host: str, port: int, calls: list[list[Any]], timeout_s: float = 10) -> list[dict[str, Any]]:
    """Run pymilvus 1.0.1 calls (tests/standin/pymilvus_call.py) in .venv-milvus1; one answer per call."""
    if not CLIENT_PYTHON.exists():
        raise RuntimeError(f"{CLIENT_PYTHON} is missing: run scripts/setup-test-env")
    done = subprocess.run(
        [str(CLIENT_PYTHON), str(CALL_SCRIPT), host, str(port), str(timeout_s)],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=timeout_s * len(calls) + 30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pymilvus_call failed ({done.returncode}): {done.stderr[-2000:]}")
    return list(json.loads(done.stdout))


@dataclass
class StandinContainer:
    name: str
    node: str
    epoch: int
    role: str
    host: str  # where the container's ports are reachable from here
    grpc_port: int  # network.bind.port, published
    http_port: int  # network.http.port, published
    wal_dir: Path
    db_dir: Path
    logs_dir: Path = field(default_factory=Path)

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def request(self, method: str, path: str) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body); HTTP errors are returned, not raised."""
        req = urllib.request.Request(self.http_url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def info(self) -> dict[str, Any]:
        return dict(self.request("GET", "/standin")[1])

    def calls(self, calls: list[list[Any]], timeout_s: float = 10) -> list[dict[str, Any]]:
        return milvus_calls(self.host, self.grpc_port, calls, timeout_s)

    def call(self, method: str, *args: Any, timeout_s: float = 10) -> dict[str, Any]:
        return self.calls([[method, *args]], timeout_s)[0]

    def wait_ready(self, timeout: float = 30) -> float:
        """Seconds until /state answered Success; raises with the logs when it exits first."""
        began = time.monotonic()
        deadline = began + timeout
        while True:
            try:
                if self.request("GET", "/state") == (200, {"message": "Success", "code": 0}):
                    return time.monotonic() - began
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline or not self.running():
                raise RuntimeError(f"stand-in {self.name} not ready; logs:\n{self.logs()}")
            time.sleep(0.05)

    def running(self) -> bool:
        result = docker("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def exit_code(self, timeout: float = 30) -> int:
        """Wait for the container to exit; its exit code."""
        result = docker("wait", self.name, timeout=timeout)
        return int(result.stdout.strip())

    def signal(self, name: str) -> None:
        docker("kill", "--signal", name, self.name)

    def stop(self, timeout: int = 10, signal: str = "SIGINT") -> int:
        """Send `signal` (Milvus's graceful one is SIGINT), SIGKILL after `timeout` s; the exit code."""
        self.signal(signal)
        try:
            return self.exit_code(timeout)
        except subprocess.TimeoutExpired:
            docker("kill", self.name, check=False)
            return self.exit_code(30)

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


def start_standin(
    image: str,
    name: str,
    node: str,
    role: str,
    db_dir: Path,
    work_dir: Path,
    meta_uri: str,
    epoch: int = 1,
    overrides: dict[str, dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
    db_read_only: bool | None = None,
    wait: bool = True,
    config: Callable[[int, int], str] | None = None,
    wal_mount: bool = True,
) -> StandinContainer:
    """Start a stand-in with `db_dir` as its db/ (read-only for ro unless told), its own WAL and logs folders
    under `work_dir`, ports published on random 127.0.0.1 ports; wait for /state unless `wait` is False.
    `config(port, http_port)` gives the server_config.yaml instead of `render_config` (e.g. the agent's render);
    `wal_mount=False` mounts no WAL folder, as the agent starts a reader.

    The container uses the host network namespace's view of MySQL: `meta_uri` must name an address the
    container can reach (the tests' MariaDB listens on 127.0.0.1, so the container runs on the host network)."""
    conf_dir, wal_dir, logs_dir = work_dir / "conf", work_dir / "wal", work_dir / "logs"
    for path in (conf_dir, wal_dir, logs_dir, db_dir):
        path.mkdir(parents=True, exist_ok=True)
    port, http_port = free_port(), free_port()
    overrides = dict(overrides or {})
    network = {"bind.port": port, "http.port": http_port, **(overrides.pop("network", None) or {})}
    if config is None:
        text = render_config(
            role, meta_uri, port=port, http_port=http_port, overrides={"network": network, **overrides}
        )
    else:
        text = config(port, http_port)
    (conf_dir / "server_config.yaml").write_text(text)
    read_only = role == "ro" if db_read_only is None else db_read_only
    args = ["run", "-d", "--name", name, "--label", TEST_LABEL, "--network", "host"]
    args += ["-e", f"JFS_MILVUS_NODE={node}", "-e", f"JFS_MILVUS_EPOCH={epoch}"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    args += ["-v", f"{db_dir}:{CONTAINER_ROOT}/db{':ro' if read_only else ''}"]
    args += ["-v", f"{conf_dir}:{CONTAINER_ROOT}/conf:ro"]
    if wal_mount:
        args += ["-v", f"{wal_dir}:{CONTAINER_ROOT}/wal"]
    args += ["-v", f"{logs_dir}:{CONTAINER_ROOT}/logs"]
    docker(*args, image)
    container = StandinContainer(name, node, epoch, role, "127.0.0.1", port, http_port, wal_dir, db_dir, logs_dir)
    if wait:
        container.wait_ready()
    return container


def wal_lines(wal_dir: Path) -> list[str]:
    try:
        return (wal_dir / "mxlog.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []


def chmod_tree(path: Path, mode: int) -> None:
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), mode)
