"""Stand-in for a Milvus 1.x server: reads server_config.yaml, answers /state, logs writes to the shared db/.

Runs as the image's command (Python stdlib + yaml, and writelog.py beside it). See README.md for the API.
Environment: JFS_MILVUS_NODE (node name, default the host name), JFS_MILVUS_EPOCH (integer, default 0),
JFS_MILVUS_CONFIG (default /var/lib/milvus/conf/server_config.yaml), JFS_MILVUS_TICK_MS (default 200).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

import yaml

if __package__:  # imported as tests.standin.server (unit tests)
    from .writelog import WRITELOG_DIR, encode, entry, file_name, read_logs, records
else:  # run as the image's command, writelog.py beside it
    from writelog import WRITELOG_DIR, encode, entry, file_name, read_logs, records  # type: ignore[no-redef]

DEFAULT_CONFIG = "/var/lib/milvus/conf/server_config.yaml"
SUCCESS = {"message": "Success", "code": 0}
# Milvus 1.x error codes (milvus.grpc.ErrorCode)
UNEXPECTED_ERROR, PERMISSION_DENIED, ILLEGAL_ARGUMENT = 1, 3, 5


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    role: str  # rw | ro as configured
    writable: bool  # rw, or cluster mode off (a standalone Milvus writes)
    bind_address: str
    bind_port: int
    http_enable: bool
    http_port: int
    storage_path: Path
    node: str
    epoch: int
    tick_s: float


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "on", "yes", "1")
    return bool(value)


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def load_settings(config_text: str, env: dict[str, str]) -> Settings:
    """Read keys the way Milvus 1.x does: `network` holds flat dotted keys (`bind.port`, `http.port`)."""
    config = yaml.safe_load(config_text) or {}
    if not isinstance(config, dict):
        raise ConfigError("server_config.yaml must be a mapping")
    cluster, network, storage = (_section(config, n) for n in ("cluster", "network", "storage"))
    for nested in ("bind", "http"):
        if isinstance(network.get(nested), dict):
            print(
                f"standin: warning: network.{nested} is a mapping; Milvus 1.x ignores it and reads "
                f"'{nested}.port' etc. as flat keys",
                file=sys.stderr,
            )
    role = str(cluster.get("role", "rw"))
    if role not in ("rw", "ro"):
        raise ConfigError(f"cluster.role must be rw or ro, not {role!r}")
    return Settings(
        role=role,
        writable=role == "rw" or not _flag(cluster.get("enable", False)),
        bind_address=str(network.get("bind.address", "0.0.0.0")),
        bind_port=int(network.get("bind.port", 19530)),
        http_enable=_flag(network.get("http.enable", True)),
        http_port=int(network.get("http.port", 19121)),
        storage_path=Path(str(storage.get("path", "/var/lib/milvus"))),
        node=env.get("JFS_MILVUS_NODE") or socket.gethostname(),
        epoch=int(env.get("JFS_MILVUS_EPOCH", "0")),
        tick_s=int(env.get("JFS_MILVUS_TICK_MS", "200")) / 1000,
    )


class WriteLog:
    """This incarnation's log file; every append is fsynced before it returns. Thread-safe."""

    def __init__(self, db_dir: Path, node: str, epoch: int) -> None:
        self.node, self.epoch = node, epoch
        log_dir = db_dir / WRITELOG_DIR
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = file_name(node, epoch, time.time_ns())
        fd = os.open(log_dir / self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._file: BinaryIO | None = os.fdopen(fd, "ab")
        dir_fd = os.open(log_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._lock = threading.Lock()
        self._seq = 0
        self.append("start", pid=os.getpid())

    def append(self, kind: str, **fields: Any) -> dict[str, Any] | None:
        """The line written, or None once closed."""
        with self._lock:
            if self._file is None:
                return None
            line = entry(kind, self.node, self.epoch, self._seq, time.time_ns(), **fields)
            self._file.write(encode(line))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._seq += 1
            return line

    def close(self, reason: str) -> None:
        """Wait for the write in flight, write the `stop` line, and refuse every later append."""
        self.append("stop", reason=reason)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db_dir = settings.storage_path / "db"
        self.stopping = threading.Event()
        self.writelog: WriteLog | None = None
        self._lock_file: BinaryIO | None = None

    def start_writer(self) -> None:
        # Milvus takes an fcntl lock on <storage.path>/lock in rw; a second writer sharing that path fails here.
        self.settings.storage_path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.settings.storage_path / "lock", "ab")  # noqa: SIM115 (held until exit)
        try:
            fcntl.lockf(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise SystemExit(f"standin: {self.settings.storage_path}/lock is held by another writer: {exc}") from exc
        self.writelog = WriteLog(self.db_dir, self.settings.node, self.settings.epoch)
        threading.Thread(target=self._tick, name="tick", daemon=True).start()

    def _tick(self) -> None:
        while not self.stopping.wait(self.settings.tick_s):
            try:
                if self.writelog is not None:
                    self.writelog.append("tick")
            except OSError as exc:
                print(f"standin: tick failed: {exc}", file=sys.stderr)

    def info(self) -> dict[str, Any]:
        s = self.settings
        return {
            **SUCCESS,
            "node": s.node,
            "epoch": s.epoch,
            "role": s.role,
            "writable": s.writable,
            "writelog": self.writelog.name if self.writelog else None,
            "pid": os.getpid(),
        }

    def write(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not self.settings.writable or self.writelog is None:
            return 403, {"code": PERMISSION_DENIED, "message": "Milvus server is read-only (cluster.role: ro)"}
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
            return 400, {"code": ILLEGAL_ARGUMENT, "message": 'body must be {"id": "<non-empty>", "payload": ...}'}
        try:
            line = self.writelog.append("write", id=body["id"], payload=body.get("payload"))
        except OSError as exc:
            return 500, {"code": UNEXPECTED_ERROR, "message": f"write log: {exc}"}
        if line is None:
            return 503, {"code": UNEXPECTED_ERROR, "message": "server is stopping"}
        return 200, {**SUCCESS, **{k: line[k] for k in ("id", "node", "epoch", "seq", "wall_ns")}}

    def stop(self, reason: str) -> None:
        self.stopping.set()
        if self.writelog is not None:
            self.writelog.close(reason)


class Handler(BaseHTTPRequestHandler):
    server_version = "milvus-standin/1"
    timeout = 5
    app: Server  # set on the subclass made per server

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()  # Milvus: {"message":"Success","code":0}
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/state":
            self._send(200, SUCCESS)
        elif path == "/standin":
            self._send(200, self.app.info())
        elif path == "/records" or path.startswith("/records/"):
            self._records(unquote(path[len("/records/") :]) if path.startswith("/records/") else None)
        else:
            self._send(404, {"code": UNEXPECTED_ERROR, "message": f"no such endpoint: {path}"})

    def _records(self, wanted: str | None) -> None:
        try:
            found = records(read_logs(self.app.db_dir))
        except (OSError, ValueError) as exc:
            self._send(500, {"code": UNEXPECTED_ERROR, "message": f"reading write logs: {exc}"})
            return
        if wanted is None:
            self._send(200, {**SUCCESS, "records": found})
            return
        matches = [r for r in found if r.get("id") == wanted]
        if matches:
            self._send(200, {**SUCCESS, "record": matches[-1]})
        else:
            self._send(404, {"code": UNEXPECTED_ERROR, "message": f"no record with id {wanted!r}"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0].rstrip("/") != "/write":
            self._send(404, {"code": UNEXPECTED_ERROR, "message": f"no such endpoint: {self.path}"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        except ValueError:
            body = None
        self._send(*self.app.write(body))

    def log_message(self, format: str, *args: Any) -> None:
        print(f"standin: {self.address_string()} {format % args}", file=sys.stderr)


def serve(app: Server, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    httpd = ThreadingHTTPServer((app.settings.bind_address, port), handler)
    httpd.daemon_threads = False  # server_close() waits for requests in flight
    threading.Thread(target=httpd.serve_forever, name=f"http-{port}", daemon=True).start()
    return httpd


def main() -> int:
    config_path = os.environ.get("JFS_MILVUS_CONFIG", DEFAULT_CONFIG)
    try:
        settings = load_settings(Path(config_path).read_text(), dict(os.environ))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"standin: cannot use {config_path}: {exc}", file=sys.stderr)
        return 1
    app = Server(settings)
    stop = threading.Event()
    signals: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        signals.append(signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    if settings.writable:
        app.start_writer()
    ports = [settings.bind_port] + ([settings.http_port] if settings.http_enable else [])
    servers = [serve(app, port) for port in ports]
    print(
        f"standin: node={settings.node} epoch={settings.epoch} role={settings.role} "
        f"writable={settings.writable} ports={ports} writelog={app.writelog.name if app.writelog else None}",
        file=sys.stderr,
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    app.stop(signals[0] if signals else "SIGTERM")
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
    print("standin: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
