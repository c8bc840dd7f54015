"""Fixtures for the Milvus stand-in image and containers (tests/standin/README.md)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugin_mysql import MariaDB
from tests.standin.build import ensure_mishards_image, ensure_standin_image
from tests.standin.container import StandinContainer, docker, start_standin

# A password with every character that a URL would have to encode: Milvus takes it raw (db/Utils.cpp:238-265).
MILVUS_META_PASSWORD = "Mv!2021#x@y/z%q"
_meta_numbers = itertools.count(1)


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def standin_image() -> str:
    """Tag of the cpu-flavour stand-in image, built once (cached by content across runs). Skips without Docker."""
    if not _docker_works():
        pytest.skip("no Docker engine (run scripts/setup-test-env)")
    return ensure_standin_image("cpu")


@pytest.fixture(scope="session")
def standin_gpu_image() -> str:
    if not _docker_works():
        pytest.skip("no Docker engine (run scripts/setup-test-env)")
    return ensure_standin_image("gpu")


@pytest.fixture(scope="session")
def mishards_image() -> str:
    """Tag of the Mishards stand-in image (tests/standin/mishards), built once. Skips without Docker."""
    if not _docker_works():
        pytest.skip("no Docker engine (run scripts/setup-test-env)")
    return ensure_mishards_image()


@dataclass(frozen=True)
class MilvusMeta:
    """A database for Milvus's metadata on the test MariaDB, an account with every right on it (the writer's,
    and a reader's in Milvus 1.x too), and one with SELECT only."""

    server: MariaDB
    database: str
    user: str
    password: str
    select_user: str

    def uri(self, user: str | None = None, password: str | None = None) -> str:
        """The meta URI as Milvus parses it: the password raw."""
        pw = self.password if password is None else password
        return f"mysql://{user or self.user}:{pw}@{self.server.host}:{self.server.port}/{self.database}"

    def connect(self) -> Any:
        return self.server.admin(self.database)


def create_milvus_meta(server: MariaDB) -> MilvusMeta:
    n = next(_meta_numbers)
    meta = MilvusMeta(server, f"milvus_meta_{n}", f"milvus{n}", MILVUS_META_PASSWORD, f"milvus_select{n}")
    conn = server.admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{meta.database}`")
            cur.execute(f"CREATE DATABASE `{meta.database}`")
            for user in (meta.user, meta.select_user):
                cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, meta.password))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{meta.database}`.* TO %s@'%%'", (meta.user,))
            cur.execute(f"GRANT SELECT ON `{meta.database}`.* TO %s@'%%'", (meta.select_user,))
    finally:
        conn.close()
    return meta


@pytest.fixture
def milvus_meta(mariadb: MariaDB) -> MilvusMeta:
    """A fresh Milvus meta database and its accounts (the password holds !#@/%)."""
    mariadb.thaw()
    mariadb.start()
    return create_milvus_meta(mariadb)


@pytest.fixture
def standin_db_dir(tmp_path: Path) -> Path:
    """An empty directory standing for the shared volume's db/ (bind-mounted at /var/lib/milvus/db)."""
    path = tmp_path / "db"
    path.mkdir()
    return path


class StandinFactory:
    """Starts stand-in containers with unique names; `remove_all` runs in teardown."""

    def __init__(self, image: str, work_dir: Path, meta: MilvusMeta) -> None:
        self.image = image
        self.work_dir = work_dir
        self.meta = meta
        self.prefix = f"standin-{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def start(
        self,
        node: str,
        role: str,
        db_dir: Path,
        epoch: int = 1,
        meta_uri: str | None = None,
        image: str | None = None,
        work_dir: Path | None = None,
        **kwargs: Any,
    ) -> StandinContainer:
        """Start a stand-in; `work_dir` (default: one per node) holds its conf/, wal/ and logs/, so a node
        started again with the same name keeps its local WAL."""
        name = f"{self.prefix}-{node}-{len(self.names)}"
        self.names.append(name)
        return start_standin(
            image or self.image,
            name,
            node,
            role,
            db_dir,
            work_dir or self.work_dir / node,
            meta_uri or self.meta.uri(),
            epoch=epoch,
            **kwargs,
        )

    def remove_all(self) -> None:
        if self.names:
            docker("rm", "-f", "-v", *self.names, check=False)


@pytest.fixture
def standin_factory(standin_image: str, tmp_path: Path, milvus_meta: MilvusMeta) -> Iterator[StandinFactory]:
    """`standin_factory.start(node, role, db_dir, epoch=1, ...)` -> running StandinContainer."""
    factory = StandinFactory(standin_image, tmp_path / "standin", milvus_meta)
    try:
        yield factory
    finally:
        factory.remove_all()
