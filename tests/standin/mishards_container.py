"""Run the Mishards stand-in image for tests: settings as environment or a mounted `.env`, host network."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.standin.container import TEST_LABEL, docker, free_port, milvus_calls

CONTAINER_ENV_FILE = "/source/mishards/.env"  # where environs' read_env() finds it (and where the seed mounts it)


def database_uri(host: str, port: int, user: str, password: str, database: str) -> str:
    return f"mysql+pymysql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"


@dataclass
class MishardsContainer:
    name: str
    port: int
    host: str = "127.0.0.1"

    def calls(self, calls: list[list[object]], timeout_s: float = 10) -> list[dict[str, object]]:
        return milvus_calls(self.host, self.port, calls, timeout_s)

    def logs(self) -> str:
        done = docker("logs", self.name, check=False)
        return done.stdout + done.stderr

    def running(self) -> bool:
        return docker("inspect", "-f", "{{.State.Running}}", self.name, check=False).stdout.strip() == "true"

    def exit_code(self, timeout: float = 60) -> int:
        return int(docker("wait", self.name, timeout=timeout).stdout.strip())

    def wait_serving(self, timeout: float = 30) -> float:
        began = time.monotonic()
        while "Listening on port" not in self.logs():
            if not self.running() or time.monotonic() - began > timeout:
                raise RuntimeError(f"Mishards stand-in {self.name} not serving; logs:\n{self.logs()}")
            time.sleep(0.1)
        return time.monotonic() - began

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


def run_mishards(
    image: str,
    name: str,
    env: dict[str, str],
    env_file: Path | None = None,
    init: bool = False,
    port: int | None = None,
) -> MishardsContainer:
    """Start it (not waiting); SERVER_PORT is a free port unless `env` or `port` names one."""
    port = port or int(env.get("SERVER_PORT") or free_port())
    args = ["run", "-d", "--name", name, "--label", TEST_LABEL, "--network", "host"]
    args += ["--init"] if init else []
    for key, value in {"SERVER_PORT": str(port), **env}.items():
        args += ["-e", f"{key}={value}"]
    if env_file is not None:
        args += ["-v", f"{env_file}:{CONTAINER_ENV_FILE}:ro"]
    docker(*args, image)
    return MishardsContainer(name, port)
