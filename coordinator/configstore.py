"""The cluster config in MySQL: its versions, the cluster's current one, and each node's pin.

Tables (coordinator/schema.py, migration 2): `cluster_config_versions` (cluster, version, body, author, reason,
restart_needed, created_at; versions only grow, a rollback is a new version with an old body),
`cluster.config_version` (the current version; NULL: none yet) and `nodes.config_version` (NULL: the node
follows the current version; a number pins it to that version, 0 to none: its agent.yaml alone).

Reads need no leadership. A commit is one transaction under the cluster row's leader condition (the store's
`_LEADS`), short and on the store's own connection: the new version, the current version moved to it, the
pins, and the event, all or nothing. A version that needs a restart pins every node that followed the old
current version to it, in the same transaction, so no node restarts until the rollout moves its pin; one that
needs none unpins the nodes pinned to the old current version (they run the new one at once).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coordinator.store import _LEADS, ClusterStore, Leadership, StoreError, _clip

LOG = logging.getLogger(__name__)

CONFIG_EVENT = "config"  # the event kind of a committed version
AUTHOR_MAX = 255


class ConfigConflict(StoreError):
    """The cluster's current version is not the one the change was made against (someone else committed)."""


@dataclass(frozen=True)
class ConfigVersion:
    version: int
    body: str
    author: str
    reason: str
    created_unix: float
    restart_needed: bool


@dataclass(frozen=True)
class ConfigState:
    """The cluster's current version (0: none) and the pinned nodes' pins (a node not in `pins` follows it)."""

    current: int
    pins: Mapping[str, int | None]


@dataclass(frozen=True)
class CommitOutcome:
    version: int
    nodes_pinned: int
    nodes_unpinned: int


def _version_of(row: tuple[Any, ...]) -> ConfigVersion:
    version, body, author, reason, created, restart = row
    return ConfigVersion(int(version), body, author, reason, float(created), bool(restart))


_COLUMNS = "version, body, author, reason, UNIX_TIMESTAMP(created_at), restart_needed"


def config_state(store: ClusterStore) -> ConfigState:
    """The current version and the pins, from one consistent snapshot."""

    def body(cur: Any) -> ConfigState:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            cur.execute("SELECT config_version FROM cluster WHERE id = 1")
            row = cur.fetchone()
            # Only the pinned nodes: the others follow the current version (a node not named has no pin).
            cur.execute("SELECT name, config_version FROM nodes WHERE config_version IS NOT NULL")
            pins = {name: (None if v is None else int(v)) for name, v in cur.fetchall()}
        finally:
            cur.execute("COMMIT")
        current = int(row[0]) if row is not None and row[0] is not None else 0
        return ConfigState(current=current, pins=pins)

    return store._call("config_state", body)


def read_version(store: ClusterStore, version: int) -> ConfigVersion | None:
    def body(cur: Any) -> ConfigVersion | None:
        cur.execute(
            f"SELECT {_COLUMNS} FROM cluster_config_versions WHERE cluster = %s AND version = %s",
            (store.cluster_name, version),
        )
        row = cur.fetchone()
        return None if row is None else _version_of(row)

    return store._call("read_config_version", body)


def read_versions(store: ClusterStore, versions: list[int]) -> dict[int, ConfigVersion]:
    if not versions:
        return {}

    def body(cur: Any) -> dict[int, ConfigVersion]:
        marks = ", ".join(["%s"] * len(versions))
        cur.execute(
            f"SELECT {_COLUMNS} FROM cluster_config_versions WHERE cluster = %s AND version IN ({marks})",
            (store.cluster_name, *versions),
        )
        return {v.version: v for v in map(_version_of, cur.fetchall())}

    return store._call("read_config_versions", body)


def history(store: ClusterStore, limit: int = 50) -> list[ConfigVersion]:
    """The newest `limit` versions, oldest first."""

    def body(cur: Any) -> list[ConfigVersion]:
        cur.execute(
            f"SELECT {_COLUMNS} FROM cluster_config_versions WHERE cluster = %s ORDER BY version DESC LIMIT %s",
            (store.cluster_name, limit),
        )
        return [_version_of(row) for row in reversed(cur.fetchall())]

    return store._call("config_history", body)


def commit_version(
    store: ClusterStore,
    leadership: Leadership,
    body_text: str,
    *,
    author: str,
    reason: str,
    expected_current: int,
    restart: bool,
    event_reason: str,
    epoch: int = 0,
) -> CommitOutcome:
    """A new version with `body_text` (already validated), made current, with the pins and the event; NotLeader
    when we do not lead, ConfigConflict when the current version is not `expected_current`."""
    params = (store.cluster_name, leadership.coordinator, leadership.term)

    def body(cur: Any) -> CommitOutcome:
        cur.execute("START TRANSACTION")
        try:
            cur.execute(f"SELECT config_version FROM cluster WHERE {_LEADS} FOR UPDATE", params)
            row = cur.fetchone()
            if row is None:
                cur.execute("ROLLBACK")
                store._not_leader_or_ok(cur, leadership)
                raise StoreError("commit_config: the cluster row matched nothing")
            current = int(row[0] or 0)
            if current != expected_current:
                raise ConfigConflict(
                    f"the cluster config is at version {current} now, not {expected_current} as the change was "
                    "made against: look at the new version and make the change again"
                )
            cur.execute(
                "SELECT COALESCE(MAX(version), 0) FROM cluster_config_versions WHERE cluster = %s",
                (store.cluster_name,),
            )
            version = int(cur.fetchone()[0]) + 1
            cur.execute(
                "INSERT INTO cluster_config_versions (cluster, version, body, author, reason, restart_needed,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s, NOW(6))",
                (store.cluster_name, version, body_text, author[:AUTHOR_MAX], _clip(reason), restart),
            )
            pinned = unpinned = 0
            if restart:
                cur.execute("UPDATE nodes SET config_version = %s WHERE config_version IS NULL", (current,))
                pinned = cur.rowcount
            else:
                cur.execute("UPDATE nodes SET config_version = NULL WHERE config_version = %s", (current,))
                unpinned = cur.rowcount
            cur.execute("UPDATE cluster SET config_version = %s, updated_at = NOW(6) WHERE id = 1", (version,))
            cur.execute(
                "INSERT INTO events (at, kind, node, epoch, reason, phases, leader_term)"
                " VALUES (NOW(6), %s, NULL, %s, %s, '[]', %s)",
                (CONFIG_EVENT, epoch, event_reason.replace("{version}", str(version)), leadership.term),
            )
            cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            raise
        return CommitOutcome(version=version, nodes_pinned=pinned, nodes_unpinned=unpinned)

    outcome = store._call("commit_config", body)
    LOG.info(
        "cluster %s: config version %d committed (term %d), %d nodes pinned",
        store.cluster_name,
        outcome.version,
        leadership.term,
        outcome.nodes_pinned,
    )
    return outcome


def set_pin(store: ClusterStore, leadership: Leadership, node: str, version: int | None) -> None:
    """Pin `node` to `version` (None: it follows the current version), only if we lead (for the rollout)."""

    def body(cur: Any) -> None:
        cur.execute(
            f"UPDATE nodes, cluster SET nodes.config_version = %s WHERE nodes.name = %s AND {_LEADS}",
            (version, node, store.cluster_name, leadership.coordinator, leadership.term),
        )
        if cur.rowcount == 0:
            store._not_leader_or_ok(cur, leadership)
            cur.execute("SELECT 1 FROM nodes WHERE name = %s", (node,))
            if cur.fetchone() is None:
                raise StoreError(f"set_config_pin: node {node!r} does not exist")

    store._call("set_config_pin", body)
