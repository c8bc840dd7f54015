"""The nodes table: the state load (the cluster row and every node, from one snapshot) and the node writes,
each made under the leader clause."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from jfsmilvus.common.wirecheck import ipv4_problem, name_problem

from coordinator.model import ClusterRow, Durable, NodeRecord
from coordinator.mysqlsession import (
    DEFAULT_LEASE_MARGIN_FRACTION,
    LEADS,
    LOG,
    NAME_MAX,
    MysqlSession,
    MysqlSettings,
    check_length,
    clip,
)
from coordinator.storeapi import Leadership, StoreError

# One row that changes whenever any row of `nodes` does: the count and two CRC32 sums (XOR and arithmetic, over
# the columns in two orders). load() reads the nodes again only when it differs.
_NODE_COLUMNS = "name, address, priority, maintenance, maintenance_reason, hosts_mishards"
_NODE_COLUMNS_REVERSED = ", ".join(reversed(_NODE_COLUMNS.split(", ")))
_NODES_FINGERPRINT = (
    "SELECT COUNT(*),"
    f" COALESCE(BIT_XOR(CRC32(CONCAT_WS(0x1f, {_NODE_COLUMNS}))), 0),"
    f" COALESCE(SUM(CRC32(CONCAT_WS(0x1e, {_NODE_COLUMNS_REVERSED}))), 0)"
    " FROM nodes"
)


class NodeStatements(MysqlSession):
    """Read the state (the node rows again only when they changed) and write node rows."""

    def __init__(
        self,
        settings: MysqlSettings,
        cluster_name: str,
        *,
        lease_margin_fraction: float = DEFAULT_LEASE_MARGIN_FRACTION,
    ):
        super().__init__(settings, cluster_name, lease_margin_fraction=lease_margin_fraction)
        # The nodes as last read, with the fingerprint MySQL computed for them (see load()).
        self._nodes_cache: tuple[tuple[int, ...], Mapping[str, NodeRecord]] | None = None
        self._unusable_rows: set[str] = set()

    def load(self) -> Durable:
        """The cluster row and every node, from one consistent snapshot.

        The nodes are read again only when their fingerprint (row count and two checksums over every column,
        computed by MySQL in the same snapshot) differs from that of the last load: reading and converting
        1000 node rows costs ~14 ms of CPU, the fingerprint one small row. The cluster row is always read."""

        def body(cur: Any) -> Durable:
            cached = self._nodes_cache
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                cur.execute(
                    "SELECT name, writer, epoch, paused, paused_reason, leader, leader_term FROM cluster WHERE id = 1"
                )
                row = cur.fetchone()
                cur.execute(_NODES_FINGERPRINT)
                fingerprint = tuple(int(v) for v in cur.fetchone())
                node_rows = None
                if cached is None or cached[0] != fingerprint:
                    cur.execute(f"SELECT {_NODE_COLUMNS} FROM nodes ORDER BY name")
                    node_rows = cur.fetchall()
            finally:
                cur.execute("COMMIT")
            if row is None:
                raise StoreError(f"{self.settings.where()} has no cluster row")
            cluster = ClusterRow(
                name=row[0],
                writer=row[1],
                epoch=int(row[2]),
                paused=bool(row[3]),
                paused_reason=row[4],
                leader=row[5],
                leader_term=int(row[6]),
            )
            if node_rows is None:
                assert cached is not None
                return Durable(cluster=cluster, nodes=cached[1])
            nodes = {
                name: NodeRecord(
                    name=name,
                    address=address,
                    priority=int(priority),
                    maintenance=bool(maintenance),
                    maintenance_reason=maintenance_reason,
                    hosts_mishards=bool(hosts_mishards),
                )
                for name, address, priority, maintenance, maintenance_reason, hosts_mishards in node_rows
                if self._row_usable(name, address)
            }
            self._nodes_cache = (fingerprint, MappingProxyType(nodes))
            return Durable(cluster=cluster, nodes=self._nodes_cache[1])

        return self._call("load", body)

    def _row_usable(self, name: str, address: str) -> bool:
        """A node row as the Report checks allow it (an older coordinator, or a hand edit, may have stored one
        that is not): any other is left out of the state, with one warning per row."""
        problem = name_problem("node name", name) or ipv4_problem(f"node {name!r} address", address, required=False)
        if problem is None:
            return True
        if problem not in self._unusable_rows:
            self._unusable_rows.add(problem)
            LOG.warning("ignoring a row of the nodes table: %s", problem)
        return False

    def upsert_node(self, leadership: Leadership, name: str, address: str, hosts_mishards: bool) -> None:
        """Insert a node, or update its address, hosts_mishards and last_seen (priority and maintenance kept)."""
        check_length("node name", name, NAME_MAX)
        problem = name_problem("node name", name) or ipv4_problem(f"node {name!r} address", address, required=False)
        if problem is not None:
            raise StoreError(f"upsert_node: {problem}")

        def body(cur: Any) -> None:
            cur.execute(
                "INSERT INTO nodes (name, address, hosts_mishards, first_seen, last_seen)"
                f" SELECT %s, %s, %s, NOW(6), NOW(6) FROM cluster WHERE {LEADS}"
                " ON DUPLICATE KEY UPDATE address = %s, hosts_mishards = %s, last_seen = NOW(6)",
                (name, address, hosts_mishards, *self._leads_params(leadership), address, hosts_mishards),
            )
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                raise StoreError(f"upsert_node {name!r} matched nothing")

        self._call("upsert_node", body)

    def _update_node(
        self, what: str, leadership: Leadership, name: str, assignments: str, values: tuple[Any, ...]
    ) -> None:
        def body(cur: Any) -> None:
            cur.execute(
                f"UPDATE nodes, cluster SET {assignments} WHERE nodes.name = %s AND {LEADS}",
                (*values, name, *self._leads_params(leadership)),
            )
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                raise StoreError(f"{what}: node {name!r} does not exist")

        self._call(what, body)

    def set_priority(self, leadership: Leadership, name: str, priority: int) -> None:
        if priority < 0:
            raise StoreError(f"set_priority: node {name!r}: priority must be >= 0 (0: never a writer)")
        self._update_node("set_priority", leadership, name, "nodes.priority = %s", (priority,))

    def set_maintenance(self, leadership: Leadership, name: str, on: bool, reason: str) -> None:
        self._update_node(
            "set_maintenance",
            leadership,
            name,
            "nodes.maintenance = %s, nodes.maintenance_reason = %s",
            (on, clip(reason)),
        )

    def forget_node(self, leadership: Leadership, name: str) -> bool:
        """Delete a node's row, only if we lead and it is not the writer MySQL names; False: there was no such row.

        A StoreError says it is the writer (the check is in the same statement, so a writer committed meanwhile
        is never deleted)."""

        def body(cur: Any) -> bool:
            cur.execute(
                "DELETE nodes FROM nodes JOIN cluster ON cluster.id = 1"
                f" WHERE nodes.name = %s AND {LEADS} AND (cluster.writer IS NULL OR cluster.writer <> nodes.name)",
                (name, *self._leads_params(leadership)),
            )
            if cur.rowcount > 0:
                return True
            writer = self._not_leader_or_ok(cur, leadership)[4]
            if writer == name:
                raise StoreError(f"forget_node: node {name!r} is the writer")
            return False

        return self._call("forget_node", body)
