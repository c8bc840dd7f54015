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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import pymysql
import pymysql.cursors
from jfsmilvus.common.secrets import Secret
from jfsmilvus.common.wirecheck import ipv4_problem, name_problem
from pymysql.constants import CLIENT

from coordinator.model import ClusterRow, Durable, Event, NodeRecord
from coordinator.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_TABLE

LOG = logging.getLogger(__name__)

T = TypeVar("T")

# The local view of a lease ends this fraction of the lease earlier than MySQL's (clock-rate drift).
DEFAULT_LEASE_MARGIN_FRACTION = 0.02
# Migrations run DDL, which may take longer than an ordinary statement.
MIGRATE_STATEMENT_TIMEOUT_S = 30.0
MIGRATE_LOCK_WAIT_S = 10
NAME_MAX = 63
CLUSTER_NAME_MAX = 64
COORDINATOR_ID_MAX = 255
REASON_MAX = 255
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")
# Errors the server answers without the connection being in doubt; any other error drops the connection.
_STATEMENT_ERRORS = (
    pymysql.err.IntegrityError,
    pymysql.err.ProgrammingError,
    pymysql.err.DataError,
    pymysql.err.NotSupportedError,
)
_UNKNOWN_DATABASE = 1049
_NO_SUCH_TABLE = 1146

# The cluster row names this coordinator, its term, and a lease still valid by MySQL's clock.
_LEADS = (
    "cluster.id = 1 AND cluster.name = %s AND cluster.leader = %s AND cluster.leader_term = %s"
    " AND cluster.leader_until > NOW(6)"
)


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


class StoreError(Exception):
    """MySQL was unreachable, failed, or holds something this coordinator must not run against."""


class NotLeader(StoreError):
    """A conditional write matched no row: this coordinator no longer leads, or the epoch moved."""


@dataclass(frozen=True)
class MysqlSettings:
    host: str
    port: int
    user: str
    database: str
    password: Secret | None
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 2.0
    write_timeout_s: float = 2.0

    def where(self) -> str:
        """Where this connects, for messages (never the password)."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Leadership:
    """This coordinator leads with `term` until `valid_until` on its own time.monotonic() clock."""

    coordinator: str
    address: str
    term: int
    valid_until: float

    def valid(self, now: float) -> bool:
        return now < self.valid_until

    def left_s(self, now: float) -> float:
        return self.valid_until - now


def _quoted_database(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise StoreError(f"database name {name!r} must be 1-64 of letters, digits, '_', '$' or '-'")
    return f"`{name}`"


def _describe(exc: BaseException, password: Secret | None) -> str:
    """The error's code and text, with the password masked should a server or driver ever echo it."""
    if isinstance(exc, pymysql.err.Error) and len(exc.args) >= 2:
        text = f"({exc.args[0]}) {exc.args[1]}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    if password is not None and password.reveal():
        text = text.replace(password.reveal(), "***")
    return text


def _connect(settings: MysqlSettings, *, database: str | None, read_timeout_s: float | None = None) -> Any:
    """A new autocommit connection in UTC whose every socket operation is bounded by the settings' timeouts."""
    read_timeout = read_timeout_s if read_timeout_s is not None else settings.read_timeout_s
    # A statement waiting for a row lock gives up server-side about when the client stops waiting.
    lock_wait_s = max(1, math.ceil(read_timeout))
    return pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password.reveal() if settings.password is not None else "",
        database=database,
        connect_timeout=settings.connect_timeout_s,
        read_timeout=read_timeout,
        write_timeout=settings.write_timeout_s,
        autocommit=True,
        charset="utf8mb4",
        client_flag=CLIENT.FOUND_ROWS,  # rowcount = rows matched, so a write of unchanged values is not "no row"
        init_command=f"SET time_zone = '+00:00', innodb_lock_wait_timeout = {lock_wait_s}",
    )


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def _check_length(what: str, value: str, limit: int) -> None:
    if not value or len(value) > limit:
        raise StoreError(f"{what} {value!r} must be 1-{limit} characters")


def _clip(reason: str) -> str:
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 3] + "..."


def _phases_json(phases: Sequence[tuple[str, float]]) -> str:
    return json.dumps([[str(name), float(at)] for name, at in phases])


def _phases_from_json(text: str | None) -> tuple[tuple[str, float], ...]:
    try:
        items = json.loads(text or "[]")
        return tuple((str(name), float(at)) for name, at in items)
    except (ValueError, TypeError):
        LOG.warning("events: unreadable phases %r ignored", (text or "")[:80])
        return ()


def read_writer_row(settings: MysqlSettings, cluster_name: str | None = None) -> tuple[str | None, int]:
    """(writer, epoch) from the cluster row over a fresh connection; meant for an agent's read-only account.

    An agent renews its lease this way when no coordinator answers. With `cluster_name`, a row of another
    cluster is refused. StoreError on any failure.
    """
    conn = None
    try:
        conn = _connect(settings, database=settings.database)
        with conn.cursor() as cur:
            cur.execute("SELECT writer, epoch, name FROM cluster WHERE id = 1")
            row = cur.fetchone()
    except (pymysql.err.Error, OSError) as exc:
        raise StoreError(
            f"reading the cluster row from {settings.where()}: {_describe(exc, settings.password)}"
        ) from None
    finally:
        if conn is not None:
            _close_quietly(conn)
    if row is None:
        raise StoreError(f"{settings.where()} has no cluster row (the coordinator has not migrated it)")
    writer, epoch, name = row
    if cluster_name is not None and name != cluster_name:
        raise StoreError(f"{settings.where()} belongs to cluster {name!r}, not {cluster_name!r}")
    return writer, int(epoch)


class ClusterStore:
    """The cluster's durable state over one MySQL connection, reconnected on the next call after any failure.

    Thread-safe (calls are serialized). Every statement is bounded by the settings' timeouts; while MySQL is
    down or hung every call raises StoreError, and once it is back calls work again on the same object.
    """

    def __init__(
        self,
        settings: MysqlSettings,
        cluster_name: str,
        *,
        lease_margin_fraction: float = DEFAULT_LEASE_MARGIN_FRACTION,
    ):
        _check_length("cluster name", cluster_name, CLUSTER_NAME_MAX)
        _quoted_database(settings.database)
        if not 0 <= lease_margin_fraction < 1:
            raise ValueError("lease_margin_fraction must be in [0, 1)")
        self.settings = settings
        self.cluster_name = cluster_name
        self.lease_margin_fraction = lease_margin_fraction
        self._conn: Any = None
        self._lock = threading.Lock()
        # The nodes as last read, with the fingerprint MySQL computed for them (see load()).
        self._nodes_cache: tuple[tuple[int, ...], Mapping[str, NodeRecord]] | None = None
        self._unusable_rows: set[str] = set()

    # -- connection -------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> ClusterStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drop(self) -> None:
        if self._conn is not None:
            _close_quietly(self._conn)
            self._conn = None

    def _connection(self) -> Any:
        if self._conn is None:
            conn = _connect(self.settings, database=self.settings.database)
            try:
                with conn.cursor() as cur:
                    self._check_schema(cur)
            except BaseException:
                _close_quietly(conn)
                raise
            self._conn = conn
        return self._conn

    def _check_schema(self, cur: Any) -> None:
        """Refuse a database that is not migrated, migrated by a newer coordinator, or another cluster's."""
        cur.execute("SELECT MAX(version) FROM schema_version")
        version = cur.fetchone()[0] or 0
        if version < LATEST_VERSION:
            raise StoreError(f"{self.settings.where()} has schema version {version}, needs {LATEST_VERSION}: migrate")
        if version > LATEST_VERSION:
            raise StoreError(
                f"{self.settings.where()} has schema version {version}, newer than this coordinator's "
                f"{LATEST_VERSION}: upgrade the coordinator"
            )
        cur.execute("SELECT name FROM cluster WHERE id = 1")
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"{self.settings.where()} has no cluster row: migrate")
        if row[0] != self.cluster_name:
            raise StoreError(
                f"{self.settings.where()} belongs to cluster {row[0]!r}, not {self.cluster_name!r}: refusing to use it"
            )

    def _call(self, what: str, body: Callable[[Any], T]) -> T:
        """Run `body(cursor)`; turn every driver or socket error into StoreError saying what and where."""
        with self._lock:
            try:
                conn = self._connection()
                with conn.cursor() as cur:
                    return body(cur)
            except StoreError:
                raise
            except (pymysql.err.Error, OSError) as exc:
                detail = _describe(exc, self.settings.password)
                code = exc.args[0] if isinstance(exc, pymysql.err.Error) and exc.args else None
                if code in (_UNKNOWN_DATABASE, _NO_SUCH_TABLE):
                    self._drop()
                    raise StoreError(f"{what}: {self.settings.where()} is not migrated: {detail}") from None
                if isinstance(exc, _STATEMENT_ERRORS):
                    if self._conn is not None:  # the connection is sound; end any transaction the call began
                        with contextlib.suppress(Exception):
                            self._conn.rollback()
                    raise StoreError(f"{what} failed on {self.settings.where()}: {detail}") from None
                if self._conn is not None:
                    LOG.warning(
                        "mysql connection to %s dropped after an error; reconnecting on the next call",
                        self.settings.where(),
                    )
                self._drop()
                raise StoreError(f"{what}: {self.settings.where()} unreachable or failed: {detail}") from None

    def _leads_params(self, leadership: Leadership) -> tuple[str, str, int]:
        return (self.cluster_name, leadership.coordinator, leadership.term)

    def _not_leader_or_ok(self, cur: Any, leadership: Leadership) -> tuple[Any, ...]:
        """After a conditional write matched nothing: raise NotLeader if we do not lead, else return the row."""
        cur.execute("SELECT leader, leader_term, leader_until > NOW(6), epoch, writer FROM cluster WHERE id = 1")
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"{self.settings.where()} has no cluster row")
        leader, term, lease_valid, _epoch, _writer = row
        if leader != leadership.coordinator or int(term) != leadership.term or not lease_valid:
            state = "valid" if lease_valid else "expired"
            raise NotLeader(
                f"coordinator {leadership.coordinator!r} term {leadership.term} no longer leads "
                f"(leader is {leader!r} term {term}, its lease {state})"
            )
        return tuple(row)

    # -- schema -----------------------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create the database and tables if missing, apply pending migrations in order, insert the cluster row.

        Idempotent; concurrent callers serialize on a named lock. Returns the schema version.
        """
        database = self.settings.database
        quoted = _quoted_database(database)
        lock_name = f"jfs_milvus.migrate.{database}"
        if len(lock_name) > 64:
            lock_name = "jfs_milvus.migrate." + hashlib.sha256(database.encode()).hexdigest()[:40]
        with self._lock:
            self._drop()  # the next call re-checks the schema on a fresh connection
            conn = None
            try:
                conn = _connect(
                    self.settings,
                    database=None,
                    read_timeout_s=max(self.settings.read_timeout_s, MIGRATE_STATEMENT_TIMEOUT_S),
                )
                with conn.cursor() as cur:
                    cur.execute("SELECT GET_LOCK(%s, %s)", (lock_name, MIGRATE_LOCK_WAIT_S))
                    if cur.fetchone()[0] != 1:
                        raise StoreError(
                            f"migrate: another coordinator held the migration lock on {self.settings.where()} "
                            f"for {MIGRATE_LOCK_WAIT_S} s"
                        )
                    try:
                        return self._migrate_locked(cur, conn, quoted)
                    finally:
                        with contextlib.suppress(Exception):
                            cur.execute("SELECT RELEASE_LOCK(%s)", (lock_name,))
            except StoreError:
                raise
            except (pymysql.err.Error, OSError) as exc:
                raise StoreError(f"migrate {self.settings.where()}: {_describe(exc, self.settings.password)}") from None
            finally:
                if conn is not None:
                    _close_quietly(conn)

    def _migrate_locked(self, cur: Any, conn: Any, quoted_database: str) -> int:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quoted_database} CHARACTER SET utf8mb4")
        conn.select_db(self.settings.database)
        cur.execute(SCHEMA_VERSION_TABLE)
        cur.execute(
            "INSERT INTO schema_version (version) SELECT 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM schema_version)"
        )
        cur.execute("SELECT MAX(version) FROM schema_version")
        version = int(cur.fetchone()[0] or 0)
        if version > LATEST_VERSION:
            raise StoreError(
                f"{self.settings.where()} has schema version {version}, newer than this coordinator's "
                f"{LATEST_VERSION}: upgrade the coordinator"
            )
        for target, statements in MIGRATIONS:
            if target <= version:
                continue
            LOG.info("migrating %s from schema version %d to %d", self.settings.where(), version, target)
            for statement in statements:
                cur.execute(statement)
            cur.execute("UPDATE schema_version SET version = %s", (target,))
            version = target
        cur.execute(
            "INSERT INTO cluster (id, name, epoch, updated_at) VALUES (1, %s, 0, NOW(6))"
            " ON DUPLICATE KEY UPDATE id = id",
            (self.cluster_name,),
        )
        cur.execute("SELECT name FROM cluster WHERE id = 1")
        name = cur.fetchone()[0]
        if name != self.cluster_name:
            raise StoreError(
                f"{self.settings.where()} belongs to cluster {name!r}, not {self.cluster_name!r}: refusing to use it"
            )
        return version

    # -- leadership -------------------------------------------------------------------------------------

    def acquire_or_renew(
        self, coordinator: str, address: str, lease_s: float, current: Leadership | None
    ) -> Leadership | None:
        """Take the lead if no lease is valid by MySQL's clock, or renew ours; None while another leads.

        A renewal (same coordinator and term still on the row) keeps the term; a new lead gets term + 1, and a
        caller that gets a term other than `current.term` must treat it as a new leadership (reload state).
        A coordinator that starts with `current=None` waits out any lease still on the row, even its own name.
        """
        _check_length("coordinator id", coordinator, COORDINATOR_ID_MAX)
        if len(address) > 255:
            raise StoreError("coordinator address must be at most 255 characters")
        if not lease_s > 0:
            raise ValueError("lease_s must be > 0")
        renewing = current is not None and current.coordinator == coordinator
        params = {
            "me": coordinator,
            "address": address,
            "renewing": renewing,
            "term": current.term if current is not None and renewing else 0,
            "lease_us": round(lease_s * 1_000_000),
            "cluster": self.cluster_name,
        }
        # MySQL assigns left to right: leader_term is computed from the row's old leader and term.
        # LAST_INSERT_ID(expr) hands the resulting term back with the statement's answer.
        sql = (
            "UPDATE cluster SET"
            " leader_term = LAST_INSERT_ID(IF(%(renewing)s AND leader <=> %(me)s AND leader_term = %(term)s,"
            " leader_term, leader_term + 1)),"
            " leader = %(me)s, leader_address = %(address)s,"
            " leader_until = NOW(6) + INTERVAL %(lease_us)s MICROSECOND"
            " WHERE id = 1 AND name = %(cluster)s AND (leader_until IS NULL OR leader_until <= NOW(6)"
            " OR (%(renewing)s AND leader <=> %(me)s AND leader_term = %(term)s))"
        )

        def body(cur: Any) -> Leadership | None:
            sent_at = time.monotonic()
            cur.execute(sql, params)
            if cur.rowcount != 1:
                return None
            term = int(cur.lastrowid or 0)
            if term <= 0:
                raise StoreError(f"acquire_or_renew: {self.settings.where()} did not return the leader term")
            return Leadership(
                coordinator=coordinator,
                address=address,
                term=term,
                valid_until=sent_at + lease_s * (1.0 - self.lease_margin_fraction),
            )

        leadership = self._call("acquire_or_renew", body)
        if leadership is not None and (current is None or leadership.term != current.term):
            LOG.info("coordinator %s leads cluster %s with term %d", coordinator, self.cluster_name, leadership.term)
        return leadership

    def release(self, leadership: Leadership) -> bool:
        """End our lease now (clean shutdown) so another coordinator need not wait it out; False if not ours."""

        def body(cur: Any) -> bool:
            cur.execute(f"UPDATE cluster SET leader_until = NOW(6) WHERE {_LEADS}", self._leads_params(leadership))
            return bool(cur.rowcount == 1)

        return self._call("release", body)

    def leader_info(self) -> tuple[str | None, str, int, float]:
        """(leader id, its address, term, seconds of lease left by MySQL's clock, <= 0 when expired)."""

        def body(cur: Any) -> tuple[str | None, str, int, float]:
            cur.execute(
                "SELECT leader, leader_address, leader_term, TIMESTAMPDIFF(MICROSECOND, NOW(6), leader_until)"
                " FROM cluster WHERE id = 1"
            )
            row = cur.fetchone()
            if row is None:
                raise StoreError(f"{self.settings.where()} has no cluster row")
            leader, address, term, left_us = row
            return leader, address, int(term), (int(left_us) / 1_000_000 if left_us is not None else 0.0)

        return self._call("leader_info", body)

    # -- reads ------------------------------------------------------------------------------------------

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

    def events(
        self, limit: int = 50, kinds: tuple[str, ...] | None = None, after_id: int = 0, node: str | None = None
    ) -> list[Event]:
        """The newest `limit` events with id > after_id (of `kinds`, about `node`, if given), newest last. No
        leadership needed."""
        if limit <= 0 or kinds == ():
            return []
        where = "id > %s"
        params: list[Any] = [after_id]
        if kinds:
            where += " AND kind IN (" + ", ".join(["%s"] * len(kinds)) + ")"
            params.extend(kinds)
        if node is not None:
            where += " AND node = %s"
            params.append(node)
        params.append(limit)
        sql = (
            "SELECT id, UNIX_TIMESTAMP(at), kind, node, epoch, reason, phases FROM events"
            f" WHERE {where} ORDER BY id DESC LIMIT %s"
        )

        def body(cur: Any) -> list[Event]:
            cur.execute(sql, params)
            rows = cur.fetchall()
            return [
                Event(
                    kind=kind,
                    reason=reason,
                    node=node,
                    epoch=int(epoch),
                    phases=_phases_from_json(phases),
                    at_unix=float(at),
                    id=int(event_id),
                )
                for event_id, at, kind, node, epoch, reason, phases in reversed(rows)
            ]

        return self._call("events", body)

    # -- conditional writes -----------------------------------------------------------------------------

    def change_writer(
        self, leadership: Leadership, expected_epoch: int, new_writer: str | None, new_epoch: int | None = None
    ) -> int:
        """epoch + 1 (or new_epoch, above it: healing an epoch that nodes have seen beyond) and the new writer (a
        known node, or None), only if we lead and the epoch is expected_epoch.

        Returns the new epoch; NotLeader otherwise. This is the durable write that must precede any node
        hearing of the new epoch. A StoreError means the outcome is unknown: load() before going on.
        """
        if new_writer is not None:
            _check_length("node name", new_writer, NAME_MAX)
        target = expected_epoch + 1 if new_epoch is None else new_epoch
        if target <= expected_epoch:
            raise StoreError(f"change_writer: epoch {target} is not above {expected_epoch}")
        sql = (
            "UPDATE cluster SET epoch = %s, writer = %s, updated_at = NOW(6)"
            f" WHERE {_LEADS} AND cluster.epoch = %s"
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
                f"UPDATE cluster SET paused = %s, paused_reason = %s, updated_at = NOW(6) WHERE {_LEADS}",
                (paused, _clip(reason), *self._leads_params(leadership)),
            )
            if cur.rowcount != 1:
                self._not_leader_or_ok(cur, leadership)
                raise StoreError("set_paused matched no cluster row")

        self._call("set_paused", body)

    def upsert_node(self, leadership: Leadership, name: str, address: str, hosts_mishards: bool) -> None:
        """Insert a node, or update its address, hosts_mishards and last_seen (priority and maintenance kept)."""
        _check_length("node name", name, NAME_MAX)
        problem = name_problem("node name", name) or ipv4_problem(f"node {name!r} address", address, required=False)
        if problem is not None:
            raise StoreError(f"upsert_node: {problem}")

        def body(cur: Any) -> None:
            cur.execute(
                "INSERT INTO nodes (name, address, hosts_mishards, first_seen, last_seen)"
                f" SELECT %s, %s, %s, NOW(6), NOW(6) FROM cluster WHERE {_LEADS}"
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
                f"UPDATE nodes, cluster SET {assignments} WHERE nodes.name = %s AND {_LEADS}",
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
            (on, _clip(reason)),
        )

    def forget_node(self, leadership: Leadership, name: str) -> bool:
        """Delete a node's row, only if we lead and it is not the writer MySQL names; False: there was no such row.

        A StoreError says it is the writer (the check is in the same statement, so a writer committed meanwhile
        is never deleted)."""

        def body(cur: Any) -> bool:
            cur.execute(
                "DELETE nodes FROM nodes JOIN cluster ON cluster.id = 1"
                f" WHERE nodes.name = %s AND {_LEADS} AND (cluster.writer IS NULL OR cluster.writer <> nodes.name)",
                (name, *self._leads_params(leadership)),
            )
            if cur.rowcount > 0:
                return True
            writer = self._not_leader_or_ok(cur, leadership)[4]
            if writer == name:
                raise StoreError(f"forget_node: node {name!r} is the writer")
            return False

        return self._call("forget_node", body)

    def add_event(self, leadership: Leadership, event: Event) -> int:
        """Record an event under our leadership (`at` is now when event.at_unix is 0); returns its id."""

        def body(cur: Any) -> int:
            cur.execute(
                "INSERT INTO events (at, kind, node, epoch, reason, phases, leader_term)"
                f" SELECT COALESCE(FROM_UNIXTIME(%s), NOW(6)), %s, %s, %s, %s, %s, %s FROM cluster WHERE {_LEADS}",
                (
                    event.at_unix or None,
                    event.kind,
                    event.node,
                    event.epoch,
                    event.reason,
                    _phases_json(event.phases),
                    leadership.term,
                    *self._leads_params(leadership),
                ),
            )
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                raise StoreError(f"add_event {event.kind!r} matched nothing")
            return int(cur.lastrowid)

        return self._call("add_event", body)

    def update_event(
        self,
        leadership: Leadership,
        event_id: int,
        phases: Sequence[tuple[str, float]],
        reason: str | None = None,
    ) -> None:
        """Replace an event's phases (and its reason unless None), e.g. as a failover progresses."""

        def body(cur: Any) -> None:
            cur.execute(
                "UPDATE events, cluster SET events.phases = %s, events.reason = COALESCE(%s, events.reason)"
                f" WHERE events.id = %s AND {_LEADS}",
                (_phases_json(phases), reason, event_id, *self._leads_params(leadership)),
            )
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                raise StoreError(f"update_event: event {event_id} does not exist")

        self._call("update_event", body)
