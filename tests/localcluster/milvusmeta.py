"""What a local cluster's Milvus nodes share besides the volume: their MySQL metadata and their base config.

Every node's Milvus logs in to one database on the cluster's MariaDB (`general.meta_uri`) with one account,
whose password holds `!#@/%` (the characters that URL encoding, a greedy regex and shells each treat
differently; Milvus 1.x takes the URI's password raw and a `:` can never work, so there is none). The
containers run on Docker's bridge, so the URI names the address they reach the host's MariaDB at, where
it listens too (`BridgedMariaDB`).

Each node's base server_config.yaml (the test nodes' 1.x layout, version 0.5) gets what the cluster relies on:
`storage.auto_flush_interval` (acknowledged inserts reach the shared volume at the next flush), the shipped
template's `wal` section as an operator would leave it (`recovery_error_ignore: false`: the agent renders what
each role needs, README "Where the WAL lives") and the stand-in's `standin:` knobs (Milvus ignores the section).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from tests.plugin_mysql import MariaDB
from tests.standin.milvusconf import StandinKnobs

MILVUS_USER = "milvus"
MILVUS_PASSWORD = "Mv1!#@/%pw"  # no ':' (Milvus's meta_uri regex gives it to the user part)
DOCKER_BRIDGE_GATEWAY = "172.17.0.1"  # Docker's default; bridge_gateway() asks the engine


class BridgedMariaDB(MariaDB):
    """A MariaDB that also listens on Docker's bridge, where the Milvus containers reach it (MariaDB 10.11 binds
    a comma-separated list); its clients on the host keep using 127.0.0.1."""

    def __init__(self, directory: Path, server_binary: str, bridge: str) -> None:
        super().__init__(directory, server_binary)
        self.bridge = bridge

    def start(self, timeout_s: float = 30.0) -> None:
        host = self.host
        self.host = f"{host},{self.bridge}"  # start() binds self.host; settings() hands it to clients
        try:
            super().start(timeout_s)
        finally:
            self.host = host


@dataclass(frozen=True)
class MilvusMeta:
    """The Milvus metadata database on a MariaDB, and the account every Milvus logs in with."""

    server: MariaDB
    database: str
    host: str  # where the containers reach the MariaDB
    user: str = MILVUS_USER
    password: str = MILVUS_PASSWORD

    def uri(self) -> str:
        """The agent's `milvus.meta_uri`: no password (it comes from the secret file)."""
        return f"mysql://{self.user}@{self.host}:{self.server.port}/{self.database}"

    def connect(self) -> pymysql.connections.Connection:
        """A connection to the metadata database, for the checker (root, over the server's socket)."""
        return self.server.admin(self.database)

    def write_password(self, path: Path) -> Path:
        path.write_text(self.password + "\n")
        path.chmod(0o600)
        return path


def grant_milvus_meta(server: MariaDB, database: str, host: str) -> MilvusMeta:
    """Create the (empty) database and the Milvus account with every right on it (Milvus creates its tables)."""
    conn = server.admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cur.execute(f"CREATE DATABASE `{database}`")
            cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (MILVUS_USER, MILVUS_PASSWORD))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@'%%'", (MILVUS_USER,))
    finally:
        conn.close()
    return MilvusMeta(server, database, host)


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge, where a container reaches a service on the host."""
    done = subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True, timeout=30)
    try:
        configs = json.loads(done.stdout)[0]["IPAM"]["Config"]
        return next(c["Gateway"] for c in configs if "Gateway" in c)
    except (ValueError, LookupError, StopIteration):
        return DOCKER_BRIDGE_GATEWAY


@dataclass(frozen=True)
class BaseConfig:
    """What a local cluster's base server_config.yaml adds to the test nodes' (AgentNode.write_base_config)."""

    auto_flush_interval_s: int = 1
    standin: StandinKnobs = field(default_factory=StandinKnobs)

    def sections(self) -> dict[str, dict[str, Any]]:
        return {
            "storage": {"auto_flush_interval": self.auto_flush_interval_s},
            "wal": {"enable": True, "recovery_error_ignore": False},  # core/conf/server_config.template:95-99
            "standin": asdict(self.standin),
        }
