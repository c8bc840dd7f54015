"""One MySQL connection for the coordinator's store: settings, timeouts, errors, and the leader clause.

`MysqlSession` is the base of `coordinator.store.ClusterStore`: it serializes calls on one autocommit connection,
reconnects on the next call after any failure, refuses a database that is not this cluster's or not migrated,
and turns every driver or socket error into a `StoreError` saying what and where (never the password).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import pymysql
import pymysql.cursors
from jfsmilvus.common.secrets import Secret
from pymysql.constants import CLIENT

from coordinator.schema import LATEST_VERSION
from coordinator.storeapi import Leadership, NotLeader, StoreError

LOG = logging.getLogger("coordinator.store")

T = TypeVar("T")

# The local view of a lease ends this fraction of the lease earlier than MySQL's (clock-rate drift).
DEFAULT_LEASE_MARGIN_FRACTION = 0.02
NAME_MAX = 63
CLUSTER_NAME_MAX = 64
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
LEADS = (
    "cluster.id = 1 AND cluster.name = %s AND cluster.leader = %s AND cluster.leader_term = %s"
    " AND cluster.leader_until > NOW(6)"
)


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


def quoted_database(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise StoreError(f"database name {name!r} must be 1-64 of letters, digits, '_', '$' or '-'")
    return f"`{name}`"


def describe(exc: BaseException, password: Secret | None) -> str:
    """The error's code and text, with the password masked should a server or driver ever echo it."""
    if isinstance(exc, pymysql.err.Error) and len(exc.args) >= 2:
        text = f"({exc.args[0]}) {exc.args[1]}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    if password is not None and password.reveal():
        text = text.replace(password.reveal(), "***")
    return text


def connect(settings: MysqlSettings, *, database: str | None, read_timeout_s: float | None = None) -> Any:
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


def close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def check_length(what: str, value: str, limit: int) -> None:
    if not value or len(value) > limit:
        raise StoreError(f"{what} {value!r} must be 1-{limit} characters")


def clip(reason: str) -> str:
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 3] + "..."


class MysqlSession:
    """The cluster's store over one MySQL connection, reconnected on the next call after any failure.

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
        check_length("cluster name", cluster_name, CLUSTER_NAME_MAX)
        quoted_database(settings.database)
        if not 0 <= lease_margin_fraction < 1:
            raise ValueError("lease_margin_fraction must be in [0, 1)")
        self.settings = settings
        self.cluster_name = cluster_name
        self.lease_margin_fraction = lease_margin_fraction
        self._conn: Any = None
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drop(self) -> None:
        if self._conn is not None:
            close_quietly(self._conn)
            self._conn = None

    def _connection(self) -> Any:
        if self._conn is None:
            conn = connect(self.settings, database=self.settings.database)
            try:
                with conn.cursor() as cur:
                    self._check_schema(cur)
            except BaseException:
                close_quietly(conn)
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
                detail = describe(exc, self.settings.password)
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
