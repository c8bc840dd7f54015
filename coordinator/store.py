"""The coordinator's durable state in MySQL: the cluster row, the nodes, the events, and the leader lease.

Safety rests on two rules (DESIGN.md, "The safety model"):

- Leadership is a lease on the cluster row judged by MySQL's own clock (`NOW(6)`). `acquire_or_renew` is one
  conditional UPDATE; the caller's local view of the lease (`Leadership.valid_until`) starts from the
  monotonic time just *before* that statement was sent and is shortened by a drift margin, so it always ends
  before MySQL's.
- Every state change is one conditional statement that names the leader, its term and a lease still valid by
  MySQL's clock (and, for a writer change, the expected epoch). A statement that matches nothing raises
  `NotLeader`: a deposed coordinator cannot write. No write holds a lock across round trips, so a coordinator
  that vanishes mid-call never blocks the one taking over.

A `StoreError` from a write means the outcome is unknown (the statement may have committed before the
connection broke): reload with `load()` before acting on it. Nothing here ever shows the password.

`ClusterStore` is made of one part per job: the connection (`coordinator.mysqlsession`), the schema
(`coordinator.storemigrate`), the lease (`coordinator.storelease`), the nodes and the state load
(`coordinator.storenodes`), the events (`coordinator.storeevents`), the cluster config
(`coordinator.configstore`) and the rollouts (`coordinator.rolloutstore`); the cluster row's writes are here.
It implements `coordinator.storeapi.ClusterStoreApi`.
"""

from __future__ import annotations

from typing import Any

from coordinator.configstore import ConfigStatements
from coordinator.mysqlsession import LEADS, LOG, NAME_MAX, check_length, clip
from coordinator.rolloutstore import RolloutStatements
from coordinator.storeapi import Leadership, NotLeader, StoreError
from coordinator.storeevents import EventStatements
from coordinator.storelease import LeaseStatements
from coordinator.storemigrate import SchemaMigration
from coordinator.storenodes import NodeStatements


class ClusterStore(
    SchemaMigration, LeaseStatements, NodeStatements, EventStatements, ConfigStatements, RolloutStatements
):
    """The cluster's durable state over one MySQL connection (see `coordinator.mysqlsession.MysqlSession`)."""

    def change_writer(
        self, leadership: Leadership, expected_epoch: int, new_writer: str | None, new_epoch: int | None = None
    ) -> int:
        """epoch + 1 (or new_epoch, above it: healing an epoch that nodes have seen beyond) and the new writer (a
        known node, or None), only if we lead and the epoch is expected_epoch.

        Returns the new epoch; NotLeader otherwise. This is the durable write that must precede any node
        hearing of the new epoch. A StoreError means the outcome is unknown: load() before going on.
        """
        if new_writer is not None:
            check_length("node name", new_writer, NAME_MAX)
        target = expected_epoch + 1 if new_epoch is None else new_epoch
        if target <= expected_epoch:
            raise StoreError(f"change_writer: epoch {target} is not above {expected_epoch}")
        sql = (
            "UPDATE cluster SET epoch = %s, writer = %s, updated_at = NOW(6)"
            f" WHERE {LEADS} AND cluster.epoch = %s"
            " AND (%s IS NULL OR EXISTS (SELECT 1 FROM nodes WHERE nodes.name = %s))"
        )
        params = (target, new_writer, *self._leads_params(leadership), expected_epoch, new_writer, new_writer)

        def body(cur: Any) -> int:
            cur.execute(sql, params)
            if cur.rowcount == 1:
                return target
            row = self._not_leader_or_ok(cur, leadership)
            epoch = int(row[3])
            if epoch != expected_epoch:
                raise NotLeader(f"epoch moved: expected {expected_epoch}, the cluster is at {epoch}")
            raise StoreError(f"change_writer: node {new_writer!r} is not in the nodes table")

        new_epoch = self._call("change_writer", body)
        LOG.info("cluster %s: epoch %d, writer %s (term %d)", self.cluster_name, new_epoch, new_writer, leadership.term)
        return new_epoch

    def set_paused(self, leadership: Leadership, paused: bool, reason: str) -> None:
        def body(cur: Any) -> None:
            cur.execute(
                f"UPDATE cluster SET paused = %s, paused_reason = %s, updated_at = NOW(6) WHERE {LEADS}",
                (paused, clip(reason), *self._leads_params(leadership)),
            )
            if cur.rowcount != 1:
                self._not_leader_or_ok(cur, leadership)
                raise StoreError("set_paused matched no cluster row")

        self._call("set_paused", body)
