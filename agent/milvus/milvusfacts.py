"""What an agent tells the doctor about the Milvus it renders: which meta database, and the writer's WAL recovery.

- `meta_target`: host, port and database of `general.meta_uri` (never the password), normalized so that two
  nodes naming one database compare equal: every node's Milvus must keep its metadata in the same database.
- `wal_recovery`: wal.enable and wal.recovery_error_ignore as Milvus reads them in the *rendered* rw config,
  and what the operator's base file says. With recovery_error_ignore false, a newly promoted writer whose local
  WAL does not match the LSNs another node wrote to MySQL exits at start ("Wal init error!", DBImpl.cpp:128-135;
  MILVUS1.md item 4). The v1.0 and 1.1 templates ship false; Milvus's own default is true (Config.cpp:170-172).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import yaml

from agent.milvus.metauri import MetaUri

SCALAR_MAX = 32


@dataclass(frozen=True)
class MetaTarget:
    """The database a `general.meta_uri` names, with the user it logs in as; no password."""

    host: str
    port: int
    database: str
    user: str

    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def meta_target(uri: MetaUri) -> MetaTarget:
    """Host names compare case-insensitively; the port as a number; database names as MySQL keeps them."""
    return MetaTarget(host=uri.host.lower().strip("[]"), port=int(uri.port), database=uri.database, user=uri.user)


def milvus_scalar(value: object) -> str | None:
    """The text Milvus reads for a YAML scalar the agent wrote (yaml.safe_dump of `value`); None: key absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if len(text) <= SCALAR_MAX else text[: SCALAR_MAX - 3] + "..."


@dataclass(frozen=True)
class WalRecovery:
    """wal.enable and wal.recovery_error_ignore: as rendered for rw, and as the base file has them (None: absent)."""

    rw_enable: str | None
    rw_recovery_error_ignore: str | None
    base_recovery_error_ignore: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _wal(config: Any) -> dict[str, Any]:
    wal = config.get("wal") if isinstance(config, dict) else None
    return wal if isinstance(wal, dict) else {}


def wal_recovery(base: dict[str, Any], rendered_rw: str) -> WalRecovery:
    """Read from the rendered rw text itself, so that it reports what the writer's Milvus would get."""
    rendered = _wal(yaml.safe_load(rendered_rw))
    return WalRecovery(
        rw_enable=milvus_scalar(rendered.get("enable")),
        rw_recovery_error_ignore=milvus_scalar(rendered.get("recovery_error_ignore")),
        base_recovery_error_ignore=milvus_scalar(_wal(base).get("recovery_error_ignore")),
    )
