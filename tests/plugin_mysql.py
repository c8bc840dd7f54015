"""Fixtures for a real MariaDB server (owned by the coordinator store work).

`mariadb` is one private mariadbd for the session, in a temp dir on 127.0.0.1 and a free port, with its own
socket and pid file (no system service, no config files read). A test may stop(), start(), restart(),
freeze() or thaw() it; it is stopped at session end. `mysql_db` is a fresh, not yet created database name on
it, with a coordinator account (all privileges on it) and a read-only account (SELECT only), each with its
own password, as `MysqlSettings`. Tests skip (with the reason) only when mariadbd is not installed.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pymysql
import pytest
from jfsmilvus.common.secrets import Secret

from coordinator.mysqlsession import MysqlSettings

# Quotes, spaces, backslash, %, @ and $: every quoting layer gets exercised.
COORDINATOR_USER = "jfs_coordinator"
COORDINATOR_PASSWORD = "c0 'ord\"\\%@$pw"
READONLY_USER = "jfs_reader"
READONLY_PASSWORD = "r3ad 'only\"\\%@$pw"
SERVER_SEARCH_PATH = ("/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/bin")


def mariadbd_binary() -> str | None:
    found = shutil.which("mariadbd")
    if found:
        return found
    for directory in SERVER_SEARCH_PATH:
        candidate = os.path.join(directory, "mariadbd")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MysqlDatabase:
    """A database name on the test server and the two accounts granted on it (it is not created yet)."""

    name: str
    coordinator: MysqlSettings
    readonly: MysqlSettings
    server: MariaDB


class MariaDB:
    """A private mariadbd: installed into `directory`, listening on 127.0.0.1:`port` and its own socket."""

    def __init__(self, directory: Path, server_binary: str):
        self.directory = directory
        self.server_binary = server_binary
        self.datadir = directory / "data"
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.log = directory / "mariadbd.err"
        self.pid_file = directory / "mariadbd.pid"
        self.socket = str(directory / "mariadbd.sock")
        if len(self.socket) > 100:  # sun_path is 108 bytes
            self.socket = os.path.join(tempfile.mkdtemp(prefix="mdb-"), "mariadbd.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self._database_numbers = itertools.count(1)
        self._frozen = False
        self.startup_s = 0.0  # install + first start, measured by the session fixture

    # -- lifecycle --------------------------------------------------------------------------------------

    def _server_options(self) -> list[str]:
        options = [
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=8M",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-doublewrite=0",
        ]
        if os.geteuid() == 0:
            options.append("--user=root")
        return options

    def install(self) -> None:
        """Create the system tables (root@localhost with no password, reachable over the socket only)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if installer is None:
            raise RuntimeError("mariadb-install-db is not installed (it comes with mariadb-server)")
        argv = [installer, *self._server_options(), "--auth-root-authentication-method=normal", "--skip-test-db"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self, timeout_s: float = 30.0) -> None:
        if self.running:
            return
        self.proc = None
        argv = [
            self.server_binary,
            *self._server_options(),
            "--skip-networking=0",
            f"--bind-address={self.host}",
            f"--port={self.port}",
            f"--socket={self.socket}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log}",
            "--max-connections=300",
        ]
        with open(self.log, "ab") as log:  # warnings printed before --log-error is opened land there too
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.admin().close()
                return
            except pymysql.err.Error:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mariadbd on port {self.port} did not start; see {self.log}") from None
                time.sleep(0.02)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Clean shutdown (SIGTERM); SIGKILL if it does not end in time."""
        if self.proc is None:
            return
        self.thaw()
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Crash it (SIGKILL): InnoDB recovers on the next start()."""
        if self.proc is None:
            return
        self.thaw()
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts TCP connections, but nothing answers (a hung server)."""
        if self.proc is not None and not self._frozen:
            os.kill(self.proc.pid, signal.SIGSTOP)
            self._frozen = True
            # The stop takes effect asynchronously (a thread on another CPU may run on for a moment): wait for
            # every thread to be stopped, so that nothing is answered once freeze() returns.
            deadline = time.monotonic() + 10
            while not self._all_threads_stopped():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd {self.proc.pid} did not stop on SIGSTOP")
                time.sleep(0.005)

    def _all_threads_stopped(self) -> bool:
        assert self.proc is not None
        task_dir = f"/proc/{self.proc.pid}/task"
        for task in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{task}/stat", encoding="utf-8") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue  # the thread ended
            if state not in ("T", "t"):
                return False
        return True

    def thaw(self) -> None:
        if self.proc is not None and self._frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
            self._frozen = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- accounts ---------------------------------------------------------------------------------------

    def admin(self, database: str | None = None) -> Any:
        """A root connection over the unix socket (autocommit)."""
        return pymysql.connect(
            unix_socket=self.socket, user="root", password="", database=database, autocommit=True, connect_timeout=2
        )

    def settings(self, database: str, user: str, password: str, timeout_s: float = 2.0) -> MysqlSettings:
        return MysqlSettings(
            host=self.host,
            port=self.port,
            user=user,
            database=database,
            password=Secret(password),
            connect_timeout_s=timeout_s,
            read_timeout_s=timeout_s,
            write_timeout_s=timeout_s,
        )

    def ensure_accounts(self) -> None:
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                for user, password in ((COORDINATOR_USER, COORDINATOR_PASSWORD), (READONLY_USER, READONLY_PASSWORD)):
                    cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
        finally:
            conn.close()

    def grant_database(self, database: str | None = None) -> MysqlDatabase:
        """Grant the coordinator account everything and the read-only one SELECT on `database` (or a new name)."""
        name = database or f"jfs_milvus_test_{next(self._database_numbers)}"
        self.ensure_accounts()
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (COORDINATOR_USER,))
                cur.execute(f"GRANT SELECT ON `{name}`.* TO %s@'%%'", (READONLY_USER,))
        finally:
            conn.close()
        return MysqlDatabase(
            name=name,
            coordinator=self.settings(name, COORDINATOR_USER, COORDINATOR_PASSWORD),
            readonly=self.settings(name, READONLY_USER, READONLY_PASSWORD),
            server=self,
        )


def with_timeouts(settings: MysqlSettings, timeout_s: float) -> MysqlSettings:
    return replace(settings, connect_timeout_s=timeout_s, read_timeout_s=timeout_s, write_timeout_s=timeout_s)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    binary = mariadbd_binary()
    if binary is None:
        pytest.skip("mariadbd is not installed (apt-get install mariadb-server)")
    server = MariaDB(tmp_path_factory.mktemp("mariadb"), binary)
    began = time.monotonic()
    atexit.register(server.stop)  # even if the session is torn down abnormally
    try:
        server.install()
        server.start()
        server.ensure_accounts()
        server.startup_s = time.monotonic() - began
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


@pytest.fixture
def mysql_db(mariadb: MariaDB) -> Iterator[MysqlDatabase]:
    """A fresh, empty database name on the session server with both accounts granted; the server is running."""
    mariadb.thaw()
    mariadb.start()  # a no-op unless a test left it stopped
    database = mariadb.grant_database()
    yield database
    mariadb.thaw()
    mariadb.start()  # a no-op unless a test left it stopped
    conn = mariadb.admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database.name}`")
    finally:
        conn.close()
