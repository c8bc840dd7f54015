"""A minimal Redis client (RESP2) for the agent's metadata-engine check: connect, AUTH, SELECT, commands.

The agent only PINGs its metadata engine and reads two settings, once per cycle. redis-py would cost the
agent about 7 MiB of resident memory for that (it imports asyncio and its async client), a tenth of the
agent's budget, so the check speaks the protocol itself. Every socket operation is bounded by a timeout.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import unquote, urlsplit


class RespError(Exception):
    """The server answered with an error reply (-ERR ...)."""


class RespConnection:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._file = sock.makefile("rb")

    @classmethod
    def open(cls, meta_url: str, password: str | None, timeout_s: float) -> RespConnection:
        """Connect to the engine of a redis://, rediss:// or unix:// META-URL and log in."""
        parts = urlsplit(meta_url)
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout_s)
            sock.connect(parts.path)
            db = 0
        else:
            host, port = parts.hostname or "127.0.0.1", parts.port or 6379
            sock = socket.create_connection((host, port), timeout=timeout_s)
            sock.settimeout(timeout_s)
            if parts.scheme == "rediss":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            path = parts.path.strip("/")
            db = int(path) if path else 0
        conn = cls(sock)
        try:
            secret = password if password is not None else (unquote(parts.password) if parts.password else None)
            if secret is not None:
                user = unquote(parts.username) if parts.username else None
                conn.command(*(("AUTH", user, secret) if user else ("AUTH", secret)))
            if db:
                conn.command("SELECT", str(db))
        except BaseException:
            conn.close()
            raise
        return conn

    def command(self, *args: str) -> object:
        payload = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            payload.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(payload))
        return self._reply()

    def _reply(self) -> object:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by the Redis server")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RespError(body.decode(errors="replace"))
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            data = self._file.read(size + 2)
            return data[:-2].decode(errors="replace")
        if kind == b"*":
            count = int(body)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise ConnectionError(f"unexpected reply from the Redis server: {line[:40]!r}")

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._sock.close()
