"""The cluster config in MySQL: its versions, the cluster's current one, and each node's pin.

Tables (coordinator/schema.py, migration 2): `cluster_config_versions` (cluster, version, body, author, reason,
restart_needed, created_at; versions only grow, a rollback is a new version with an old body),
`cluster.config_version` (the current version; NULL: none yet) and `nodes.config_version` (NULL: the node
follows the current version; a number pins it to that version, 0 to none: its agent.yaml alone).

Reads need no leadership. A commit is one transaction under the cluster row's leader condition (the store's
`LEADS`), short and on the store's own connection: the new version, the current version moved to it, the
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

from coordinator.mysqlsession import LEADS, MysqlSession, clip
from coordinator.storeapi import Leadership, StoreError

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


@dataclass(frozen=True)
class ConfigCommit:
    """A version to commit: its body (already validated), who and why, the version it was made against."""

    body: str
    author: str
    reason: str
    expected_current: int
    restart: bool
    event_reason: str  # "{version}" is replaced by the new version
    epoch: int = 0


def conflict_message(current: int, expected: int) -> str:
    return (
        f"the cluster config is at version {current} now, not {expected} as the change was made against: look at "
        "the new version and make the change again"
    )


def _version_of(row: tuple[Any, ...]) -> ConfigVersion:
    version, body, author, reason, created, restart = row
    return ConfigVersion(int(version), body, author, reason, float(created), bool(restart))


_COLUMNS = "version, body, author, reason, UNIX_TIMESTAMP(created_at), restart_needed"


class ConfigStatements(MysqlSession):
    """The cluster config's statements, a part of `coordinator.store.ClusterStore`."""

    def config_state(self) -> ConfigState:
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

        return self._call("config_state", body)

    def read_config_version(self, version: int) -> ConfigVersion | None:
        def body(cur: Any) -> ConfigVersion | None:
            cur.execute(
                f"SELECT {_COLUMNS} FROM cluster_config_versions WHERE cluster = %s AND version = %s",
                (self.cluster_name, version),
            )
            row = cur.fetchone()
            return None if row is None else _version_of(row)

        return self._call("read_config_version", body)

    def read_config_versions(self, versions: list[int]) -> dict[int, ConfigVersion]:
        if not versions:
            return {}

        def body(cur: Any) -> dict[int, ConfigVersion]:
            marks = ", ".join(["%s"] * len(versions))
            cur.execute(
                f"SELECT {_COLUMNS} FROM cluster_config_versions WHERE cluster = %s AND version IN ({marks})",
                (self.cluster_name, *versions),
            )
            return {v.version: v for v in map(_version_of, cur.fetchall())}

        return self._call("read_config_versions", body)

    def config_history(self, limit: int = 50) -> list[ConfigVersion]:
        """The newest `limit` versions, oldest first."""

        def body(cur: Any) -> list[ConfigVersion]:
            cur.execute(
                f"SELECT {_COLUMNS} FROM cluster_config_versions WHERE cluster = %s ORDER BY version DESC LIMIT %s",
                (self.cluster_name, limit),
            )
            return [_version_of(row) for row in reversed(cur.fetchall())]

        return self._call("config_history", body)

    def commit_config(self, leadership: Leadership, commit: ConfigCommit) -> CommitOutcome:
        """A new version with `commit.body` (already validated), made current, with the pins and the event;
        NotLeader when we do not lead, ConfigConflict when the current version is not `commit.expected_current`."""

        def body(cur: Any) -> CommitOutcome:
            cur.execute("START TRANSACTION")
            try:
                outcome = self._commit_config_locked(cur, leadership, commit)
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise
            return outcome

        outcome = self._call("commit_config", body)
        LOG.info(
            "cluster %s: config version %d committed (term %d), %d nodes pinned",
            self.cluster_name,
            outcome.version,
            leadership.term,
            outcome.nodes_pinned,
        )
        return outcome

    def _commit_config_locked(self, cur: Any, leadership: Leadership, commit: ConfigCommit) -> CommitOutcome:
        cur.execute(f"SELECT config_version FROM cluster WHERE {LEADS} FOR UPDATE", self._leads_params(leadership))
        row = cur.fetchone()
        if row is None:
            cur.execute("ROLLBACK")
            self._not_leader_or_ok(cur, leadership)
            raise StoreError("commit_config: the cluster row matched nothing")
        current = int(row[0] or 0)
        if current != commit.expected_current:
            raise ConfigConflict(conflict_message(current, commit.expected_current))
        cur.execute(
            "SELECT COALESCE(MAX(version), 0) FROM cluster_config_versions WHERE cluster = %s", (self.cluster_name,)
        )
        version = int(cur.fetchone()[0]) + 1
        cur.execute(
            "INSERT INTO cluster_config_versions (cluster, version, body, author, reason, restart_needed,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s, NOW(6))",
            (self.cluster_name, version, commit.body, commit.author[:AUTHOR_MAX], clip(commit.reason), commit.restart),
        )
        pinned = unpinned = 0
        if commit.restart:
            cur.execute("UPDATE nodes SET config_version = %s WHERE config_version IS NULL", (current,))
            pinned = cur.rowcount
        else:
            cur.execute("UPDATE nodes SET config_version = NULL WHERE config_version = %s", (current,))
            unpinned = cur.rowcount
        cur.execute("UPDATE cluster SET config_version = %s, updated_at = NOW(6) WHERE id = 1", (version,))
        cur.execute(
            "INSERT INTO events (at, kind, node, epoch, reason, phases, leader_term)"
            " VALUES (NOW(6), %s, NULL, %s, %s, '[]', %s)",
            (CONFIG_EVENT, commit.epoch, commit.event_reason.replace("{version}", str(version)), leadership.term),
        )
        return CommitOutcome(version=version, nodes_pinned=pinned, nodes_unpinned=unpinned)

    def set_config_pin(self, leadership: Leadership, node: str, version: int | None) -> None:
        """Pin `node` to `version` (None: it follows the current version), only if we lead (for the rollout)."""

        def body(cur: Any) -> None:
            cur.execute(
                f"UPDATE nodes, cluster SET nodes.config_version = %s WHERE nodes.name = %s AND {LEADS}",
                (version, node, *self._leads_params(leadership)),
            )
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                cur.execute("SELECT 1 FROM nodes WHERE name = %s", (node,))
                if cur.fetchone() is None:
                    raise StoreError(f"set_config_pin: node {node!r} does not exist")

        self._call("set_config_pin", body)
