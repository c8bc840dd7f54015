"""Run stand-in containers for tests: write their server_config.yaml, start, talk HTTP, stop, remove."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTAINER_ROOT = "/var/lib/milvus"
TEST_LABEL = "org.jfs-milvus.test=standin"  # every container started here carries it


def render_config(role: str, address: str = "0.0.0.0", port: int = 19530, http_port: int = 19121) -> str:
    """A Milvus 1.x (config version 0.5) server_config.yaml: `network` holds flat dotted keys, as Milvus reads."""
    return (
        "version: 0.5\n"
        f"cluster:\n  enable: true\n  role: {role}\n"
        f"network:\n  bind.address: {address}\n  bind.port: {port}\n  http.enable: true\n  http.port: {http_port}\n"
        f"storage:\n  path: {CONTAINER_ROOT}\n  auto_flush_interval: 1\n"
        f"wal:\n  enable: true\n  path: {CONTAINER_ROOT}/wal\n"
    )


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class StandinContainer:
    name: str
    node: str
    epoch: int
    role: str
    http_url: str  # http://host:port of network.http.port
    bind_url: str  # http://host:port of network.bind.port (answers the same endpoints)

    def request(self, method: str, path: str, body: Any = None, base: str | None = None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body); HTTP errors are returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request((base or self.http_url) + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def write(self, record_id: str, payload: Any = None) -> tuple[int, Any]:
        return self.request("POST", "/write", {"id": record_id, "payload": payload})

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.request("GET", "/state") == (200, {"message": "Success", "code": 0}):
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline or not self.running():
                raise RuntimeError(f"stand-in {self.name} not ready; logs:\n{self.logs()}")
            time.sleep(0.1)

    def running(self) -> bool:
        result = docker("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def stop(self, timeout: int = 10) -> int:
        """`docker stop` (SIGTERM, SIGKILL after `timeout` s); the exit code."""
        docker("stop", "-t", str(timeout), self.name, timeout=timeout + 30)
        return int(docker("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout.strip())

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
    conf_dir: Path,
    epoch: int = 1,
    address: str | None = None,
) -> StandinContainer:
    """Start a stand-in with `db_dir` as its db/ and wait for /state.

    Without `address` the container's ports map to random host ports on 127.0.0.1; with it, the container
    uses the host network and binds `address` on two free ports written into its config.
    """
    conf_dir.mkdir(parents=True, exist_ok=True)
    db_dir.mkdir(parents=True, exist_ok=True)
    args = ["run", "-d", "--name", name, "--label", TEST_LABEL, "-e", f"JFS_MILVUS_NODE={node}"]
    args += ["-e", f"JFS_MILVUS_EPOCH={epoch}", "-v", f"{db_dir}:{CONTAINER_ROOT}/db"]
    args += ["-v", f"{conf_dir}:{CONTAINER_ROOT}/conf:ro"]
    if address is None:
        (conf_dir / "server_config.yaml").write_text(render_config(role))
        args += ["-p", "127.0.0.1::19530", "-p", "127.0.0.1::19121"]
    else:
        port, http_port = free_port(address), free_port(address)
        (conf_dir / "server_config.yaml").write_text(render_config(role, address, port, http_port))
        args += ["--network", "host"]
    docker(*args, image)
    if address is None:
        http_url = "http://" + docker("port", name, "19121/tcp").stdout.split()[0]
        bind_url = "http://" + docker("port", name, "19530/tcp").stdout.split()[0]
    else:
        http_url, bind_url = f"http://{address}:{http_port}", f"http://{address}:{port}"
    container = StandinContainer(name, node, epoch, role, http_url, bind_url)
    container.wait_ready()
    return container
