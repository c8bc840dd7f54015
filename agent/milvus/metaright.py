"""May this node's Milvus MySQL account CREATE TABLE in its meta database? Every Milvus 1.x start needs it.

Every Milvus start, a reader's too, runs `CREATE TABLE IF NOT EXISTS` for its four meta tables (Tables,
TableFiles, Environment, Fields; MySQLMetaImpl.cpp:291-342 on v1.0.0 and the 1.1 branch, with no look first; only
milvus#6670, after 1.1.1, looks with SHOW TABLES LIKE first), and MySQL checks the CREATE privilege before it
looks whether the table exists. So an account with SELECT only (what a
"read-only" node seems to need) makes a reader exit at start ("Failed to create meta collection 'Tables'").

The probe asks MySQL the very question Milvus asks: it logs in with the account of `general.meta_uri` and runs
Milvus's own statement for its smallest table, `CREATE TABLE IF NOT EXISTS Environment (global_lsn BIGINT NOT
NULL)`, the column layout of ENVIRONMENT_SCHEMA (MySQLMetaImpl.cpp:83-85). Where the table exists it is a
no-op that still fails with error 1142 without the right; where it does not, it creates the table exactly as
Milvus's next start would, so Milvus's schema check (ValidateMetaSchema) finds it as its own. Reading the
grants instead would mean evaluating roles, wildcards and partial revokes the way the server does; asking the
server is exact. Nothing else is written.

A failure to reach MySQL or to log in is its own state, never "no right". Messages never hold the password.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pymysql
from jfsmilvus.common.milvus1 import FAILED, GRANTED, LOGIN_REFUSED, META_PROBE_INTERVAL_S, REFUSED, UNREACHABLE
from jfsmilvus.common.secrets import Secret

from agent.milvus.metauri import MetaUri

log = logging.getLogger("jfs_milvus.agent.metaright")

# ENVIRONMENT_SCHEMA (MySQLMetaImpl.cpp:83-85, v1.0.0 and 1.1), as MetaSchema::ToString writes it.
PROBE_TABLE = "Environment"
PROBE_SQL = f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (global_lsn BIGINT NOT NULL)"
PROBE_TIMEOUT_S = 5.0
DETAIL_MAX = 300


_REFUSED_CODES = {1142, 1044}  # ER_TABLEACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR
_LOGIN_CODES = {1045, 1698}  # ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
CLIENT_ERRORS = 2000  # codes from here on are the client's (CR_*): no server answered (2003, 2006, 2013, ...)


@dataclass(frozen=True)
class MetaRight:
    """What the probe found: `state` one of META_RIGHT_STATES; `account` the account MySQL matched the login to."""

    state: str
    detail: str
    account: str = ""  # CURRENT_USER(), e.g. milvus@%: where a GRANT goes
    checked_at_unix: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _bounded(text: str, password: str) -> str:
    if password:
        text = text.replace(password, "***")
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 3] + "..."


def classify(exc: BaseException, password: str) -> tuple[str, str]:
    """(state, detail) for what the connection or the statement raised; the detail never holds the password."""
    code = exc.args[0] if isinstance(exc, pymysql.err.Error) and exc.args and isinstance(exc.args[0], int) else None
    message = exc.args[1] if code is not None and len(exc.args) > 1 else str(exc) or type(exc).__name__
    detail = _bounded(f"({code}) {message}" if code is not None else str(message), password)
    if code in _REFUSED_CODES:
        return REFUSED, detail
    if code in _LOGIN_CODES:
        return LOGIN_REFUSED, detail
    if (code is not None and code >= CLIENT_ERRORS) or (code is None and isinstance(exc, OSError)):
        return UNREACHABLE, detail
    return FAILED, detail


def probe_create_right(uri: MetaUri, password: Secret, timeout_s: float = PROBE_TIMEOUT_S) -> MetaRight:
    """Log in as Milvus does (to the meta database) and run Milvus's own CREATE TABLE IF NOT EXISTS once."""
    raw = password.reveal()
    now = time.time()
    try:
        conn = pymysql.connect(
            host=uri.host,
            port=int(uri.port),
            user=uri.user,
            password=raw,
            database=uri.database,
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            write_timeout=timeout_s,
            autocommit=True,
        )
    except Exception as exc:  # every failure to connect is a finding, classified
        state, detail = classify(exc, raw)
        return MetaRight(state, detail, checked_at_unix=now)
    account = ""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            row = cur.fetchone()
            account = _bounded(str(row[0]), raw) if row else ""
            cur.execute(PROBE_SQL)
    except Exception as exc:
        state, detail = classify(exc, raw)
        return MetaRight(state, detail, account, now)
    finally:
        conn.close()
    return MetaRight(GRANTED, f"{PROBE_SQL} went through", account, now)


Probe = Callable[[MetaUri, Secret], MetaRight]


class MetaRightWatch:
    """Runs the probe off the agent's loop: in its own thread, at the first `refresh`, then every `interval_s`
    or at once when the URI or password changed; never two at once. `latest` is what the last probe found."""

    def __init__(self, probe: Probe = probe_create_right, interval_s: float = META_PROBE_INTERVAL_S) -> None:
        self._probe = probe
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._latest: MetaRight | None = None
        self._latest_for: tuple[MetaUri, Secret] | None = None
        self._started_at: float | None = None
        self._running: threading.Thread | None = None

    def refresh(self, uri: MetaUri, password: Secret) -> None:
        """Start a probe in the background when one is due; returns at once."""
        key = (uri, password)
        now = time.monotonic()
        with self._lock:
            if self._running is not None and self._running.is_alive():
                return
            due = self._started_at is None or now - self._started_at >= self._interval_s
            if not due and key == self._latest_for:
                return
            self._started_at = now
            self._running = threading.Thread(target=self._run, args=key, name="meta-right-probe", daemon=True)
            self._running.start()

    def _run(self, uri: MetaUri, password: Secret) -> None:
        try:
            found = self._probe(uri, password)
        except Exception as exc:  # a bug in a probe must not kill the thread silently: report it as a finding
            found = MetaRight(FAILED, _bounded(f"the probe failed: {exc}", password.reveal()), "", time.time())
        with self._lock:
            before = self._latest.state if self._latest is not None and self._latest_for == (uri, password) else None
            self._latest, self._latest_for = found, (uri, password)
        if found.state != before:  # once per change: the doctor shows it too
            level = logging.INFO if found.state == GRANTED else logging.WARNING
            log.log(
                level,
                "MySQL user %s at %s:%s, database %s: CREATE TABLE %s (%s)",
                uri.user,
                uri.host,
                uri.port,
                uri.database,
                found.state,
                found.detail,
            )

    def latest(self, uri: MetaUri, password: Secret) -> MetaRight | None:
        """The last finding for this URI and password (None before the first one, or after either changed)."""
        with self._lock:
            return self._latest if self._latest_for == (uri, password) else None

    def wait(self, timeout_s: float) -> None:
        """For tests and the one-shot status command: wait for a probe in flight."""
        running = self._running
        if running is not None:
            running.join(timeout_s)
