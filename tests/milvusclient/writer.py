"""A Milvus 1.x write client (pymilvus 1.0.1), run by the local cluster's tests as a child process.

    .venv-milvus1/bin/python tests/milvusclient/writer.py --collection chaos [--period-s 0.05] [--flush-every 20]

It creates a collection (dimension 8, L2), inserts one row at a time with explicit integer ids, flushes every
N acknowledged inserts, searches every M for a flushed row's vector, and follows the writer its parent names:
the parent tells it on stdin where the writer is, it tells the parent on stdout what each RPC did (the
protocol is in protocol.py). Standard library and pymilvus only: it runs in .venv-milvus1 (protobuf 3), apart
from the project.

Every RPC carries a deadline: a Flush on a ro Milvus with unapplied inserts blocks forever, and pymilvus 1.0.1
sends a Search without its timeout unless asked for a future (`_async=True`), so searches go that way. The
connection is pymilvus's own GrpcHandler, made with `pre_ping=False` and checked as `Milvus()` checks it
(server version 1.0.x), but with this client's deadline: `Milvus()` waits 30 s for a dead server's version.
After a transport error (the server gone, a deadline passed) the channel is dropped and the next RPC opens a
new connection, so gRPC's reconnect backoff never holds writes back once the server is there again; inserts
acknowledged on the old connection and never flushed there stay unflushed (a Flush covers its connection's).
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import protocol
from milvus import MetricType
from milvus.client.grpc_handler import GrpcHandler
from milvus.client.pool import _is_version_match

Op = dict[str, Any]


def emit(ev: str, **fields: Any) -> None:
    sys.stdout.write(protocol.encode({"ev": ev, "t": time.monotonic(), **fields}))
    sys.stdout.flush()


def read_ops(into: queue.Queue[Op]) -> None:
    """Parent -> child: every op line onto the queue; a stop when stdin closes."""
    for line in sys.stdin:
        message = protocol.decode(line)
        if message is not None and message.get("op") in protocol.CLIENT_OPS:
            into.put(message)
    into.put({"op": "stop"})


def is_transport_error(status: Any) -> bool:
    """pymilvus turns a gRPC failure into a Status whose code is a grpc.StatusCode (Milvus's own are ints)."""
    return isinstance(status.code, grpc.StatusCode)


def describe(status: Any) -> tuple[str, str]:
    code = status.code.name if isinstance(status.code, grpc.StatusCode) else str(status.code)
    return code, str(status.message)[:300]


@dataclass(frozen=True)
class RpcFailure:
    """A gRPC error raised to us (not turned into a Status by pymilvus), shaped like a Status."""

    code: grpc.StatusCode
    message: str

    def OK(self) -> bool:  # pymilvus's Status spells it so
        return False


@dataclass
class Connection:
    node: str
    address: str
    number: int
    handler: GrpcHandler
    pending: list[int] = field(default_factory=list)  # acknowledged here, not yet covered by an OK Flush

    def close(self) -> None:
        channel = getattr(self.handler, "_channel", None)
        if channel is not None:
            channel.close()


@dataclass
class Settings:
    collection: str
    dimension: int
    period_s: float
    flush_every: int
    search_every: int
    timeout_s: float
    flush_timeout_s: float
    first_id: int


class WriteLoop:
    def __init__(self, settings: Settings, ops: queue.Queue[Op]) -> None:
        self.s = settings
        self.ops = ops
        self.target: tuple[str, str] | None = None  # (node, host:port)
        self.conn: Connection | None = None
        self.connections = 0
        self.next_id = settings.first_id
        self.inserts = 0
        self.flushed: list[int] = []  # ids some OK Flush covered, for the searches (the latest 1000)
        self.running = True

    # -- the parent's ops ------------------------------------------------------------------------------
    def handle(self, op: Op) -> None:
        if op["op"] == "stop":
            self.running = False
        elif op["op"] == "writer":
            node, address = op.get("node"), op.get("address")
            self.target = (str(node), str(address)) if node and address else None
            if self.conn is not None and (self.target is None or self.target[1] != self.conn.address):
                self.drop()
        elif op["op"] == "flush":
            if self.conn is None:
                emit("error", op="flush", node=None, conn=None, code="NO_WRITER", message="none", req=op.get("req"))
            else:
                self.flush(self.conn, op.get("req"))

    def drain(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while self.running:
            try:
                op = self.ops.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            self.handle(op)

    # -- RPCs ------------------------------------------------------------------------------------------
    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def failed(self, op: str, conn: Connection, status: Any, req: Any = None) -> None:
        code, message = describe(status)
        emit("error", op=op, node=conn.node, conn=conn.number, code=code, message=message, req=req)
        if is_transport_error(status) and self.conn is conn:
            self.drop()

    def connect(self, node: str, address: str) -> Connection | None:
        host, _, port = address.rpartition(":")
        self.connections += 1
        conn = Connection(node, address, self.connections, GrpcHandler(host=host, port=int(port), pre_ping=False))
        status, version = conn.handler.server_version(timeout=self.s.timeout_s)
        if not status.OK():
            self.failed("connect", conn, status)
            conn.close()
            return None
        if not _is_version_match(version):
            emit("error", op="connect", node=node, conn=conn.number, code="VERSION", message=f"server {version}")
            conn.close()
            return None
        emit("connected", node=node, address=address, conn=conn.number, version=version)
        if not self.ensure_collection(conn):
            conn.close()
            return None
        return conn

    def ensure_collection(self, conn: Connection) -> bool:
        name, h = self.s.collection, conn.handler
        status, exists = h.has_collection(name, timeout=self.s.timeout_s)
        if not status.OK():
            self.failed("has_collection", conn, status)
            return False
        created = False
        if not exists:
            made = h.create_collection(name, self.s.dimension, 1024, MetricType.L2, None, timeout=self.s.timeout_s)
            if not made.OK():
                status, exists = h.has_collection(name, timeout=self.s.timeout_s)  # made meanwhile by another?
                if not (status.OK() and exists):
                    self.failed("create_collection", conn, made)
                    return False
            created = made.OK()
        emit("collection", node=conn.node, conn=conn.number, created=created)
        return True

    def insert(self, conn: Connection) -> None:
        row_id = self.next_id
        self.next_id += 1
        vector = protocol.vector_for(row_id, self.s.dimension)
        status, _ = conn.handler.insert(self.s.collection, [vector], ids=[row_id], timeout=self.s.timeout_s)
        if not status.OK():
            self.failed("insert", conn, status)
            return
        conn.pending.append(row_id)
        self.inserts += 1
        emit("ack", id=row_id, node=conn.node, conn=conn.number)

    def flush(self, conn: Connection, req: Any = None) -> None:
        covered = list(conn.pending)
        sent_t = time.monotonic()
        status = conn.handler.flush([self.s.collection], timeout=self.s.flush_timeout_s)
        if not status.OK():
            self.failed("flush", conn, status, req)
            return
        del conn.pending[: len(covered)]
        self.flushed = (self.flushed + covered)[-1000:]
        emit("flushed", node=conn.node, conn=conn.number, ids=covered, sent_t=sent_t, req=req)

    def search(self, conn: Connection) -> None:
        row_id = random.choice(self.flushed)
        query = [protocol.vector_for(row_id, self.s.dimension)]
        try:
            future = conn.handler.search(self.s.collection, 1, query, None, {}, timeout=self.s.timeout_s, _async=True)
            status, result = future.result()
        except grpc.RpcError as exc:
            self.failed("search", conn, RpcFailure(exc.code(), exc.details()))
            return
        if not status.OK():
            self.failed("search", conn, status)
            return
        top = result.id_array[0][:1] if result is not None and result.id_array else []
        emit("search", node=conn.node, conn=conn.number, id=row_id, hit=top == [row_id])

    # -- the loop --------------------------------------------------------------------------------------
    def step(self) -> None:
        if self.target is None:
            return
        if self.conn is None:
            self.conn = self.connect(*self.target)
            if self.conn is None:
                return
        conn = self.conn
        self.insert(conn)
        if self.conn is conn and len(conn.pending) >= self.s.flush_every:
            self.flush(conn)
        if self.conn is conn and self.flushed and self.s.search_every and self.inserts % self.s.search_every == 0:
            self.search(conn)

    def run(self) -> None:
        emit("ready", client="pymilvus 1.0.1", pid=os.getpid())
        while self.running:
            began = time.monotonic()
            self.drain(0)
            if not self.running:
                break
            self.step()
            self.drain(max(0.0, self.s.period_s - (time.monotonic() - began)))
        self.drop()
        emit("stopped")


def parse(argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--collection", required=True)
    p.add_argument("--dimension", type=int, default=protocol.DIMENSION)
    p.add_argument("--period-s", type=float, default=0.05, help="one insert this often")
    p.add_argument("--flush-every", type=int, default=20, help="a Flush after this many acknowledged inserts")
    p.add_argument("--search-every", type=int, default=25, help="a search after this many inserts (0: never)")
    p.add_argument("--timeout-s", type=float, default=2.0, help="deadline of every RPC but Flush")
    p.add_argument("--flush-timeout-s", type=float, default=5.0, help="deadline of a Flush")
    p.add_argument("--first-id", type=int, default=1)
    a = p.parse_args(argv)
    return Settings(
        a.collection, a.dimension, a.period_s, a.flush_every, a.search_every, a.timeout_s, a.flush_timeout_s, a.first_id
    )


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("milvus").setLevel(logging.CRITICAL)  # every failure is reported on stdout instead
    settings = parse(sys.argv[1:] if argv is None else argv)
    ops: queue.Queue[Op] = queue.Queue()
    threading.Thread(target=read_ops, args=(ops,), daemon=True).start()
    try:
        WriteLoop(settings, ops).run()
    except BrokenPipeError:  # the parent went away
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
