"""Fixtures for the Milvus stand-in image and containers (tests/standin/README.md)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standin.build import ensure_standin_image
from tests.standin.container import StandinContainer, docker, start_standin


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def standin_image() -> str:
    """Tag of the stand-in image, built once (cached by content across runs). Skips without a Docker engine."""
    if not _docker_works():
        pytest.skip("no Docker engine (run scripts/setup-test-env)")
    return ensure_standin_image()


@pytest.fixture
def standin_db_dir(tmp_path: Path) -> Path:
    """An empty directory standing for the shared volume's db/ (bind-mounted at /var/lib/milvus/db)."""
    path = tmp_path / "db"
    path.mkdir()
    return path


class StandinFactory:
    """Starts stand-in containers with unique names; `remove_all` runs in teardown."""

    def __init__(self, image: str, work_dir: Path) -> None:
        self.image = image
        self.work_dir = work_dir
        self.prefix = f"standin-{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def start(self, node: str, role: str, db_dir: Path, epoch: int = 1, address: str | None = None) -> StandinContainer:
        name = f"{self.prefix}-{node}-{len(self.names)}"
        self.names.append(name)
        conf_dir = self.work_dir / name / "conf"
        return start_standin(self.image, name, node, role, db_dir, conf_dir, epoch=epoch, address=address)

    def remove_all(self) -> None:
        if self.names:
            docker("rm", "-f", "-v", *self.names, check=False)


@pytest.fixture
def standin_factory(standin_image: str, tmp_path: Path) -> Iterator[StandinFactory]:
    """`standin_factory.start(node, role, db_dir, epoch=1, address=None)` -> running StandinContainer."""
    factory = StandinFactory(standin_image, tmp_path / "standin")
    try:
        yield factory
    finally:
        factory.remove_all()
