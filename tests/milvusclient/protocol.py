"""The JSON-lines protocol between the write client (writer.py, in .venv-milvus1) and its parent, and the
vectors it writes. Standard library only: the child imports it as `protocol` (beside writer.py on its path),
the parent as `tests.milvusclient.protocol`.

Parent -> child (stdin), one object a line:
    {"op": "writer", "node": "node-a", "address": "127.0.0.20:19530"}   write there from now on
    {"op": "writer", "node": null, "address": null}                      no writer known: pause
    {"op": "flush", "req": 7}                                            flush the current writer now
    {"op": "stop"}                                                       finish the RPC in flight and exit
Closing stdin stops it too.

Child -> parent (stdout), one object a line; every one has `ev` and `t`, the child's time.monotonic()
(CLOCK_MONOTONIC is one clock for every process on the machine, so the parent compares it with its own):
    {"ev": "ready", "client": "pymilvus 1.0.1", "pid": 123}
    {"ev": "connected", "node", "address", "conn", "version"}   a new connection (conn: 1, 2, ...)
    {"ev": "collection", "node", "conn", "created": bool}        the collection exists there (made now or before)
    {"ev": "ack", "id", "node", "conn"}                          an Insert that returned OK
    {"ev": "flushed", "node", "conn", "ids", "sent_t", "req"}    a Flush that returned OK; `ids`: every insert
                                                                 acknowledged on that connection before it was
                                                                 sent and not covered by an earlier one
    {"ev": "search", "node", "conn", "id", "hit": bool}          a search for a flushed id's vector; hit: top-1 is it
    {"ev": "error", "op", "node", "conn", "code", "message", "req"}
    {"ev": "stopped"}
"""

from __future__ import annotations

import json
import random
from typing import Any

DIMENSION = 8
CLIENT_OPS = ("writer", "flush", "stop")
CLIENT_EVENTS = ("ready", "connected", "collection", "ack", "flushed", "search", "error", "stopped")


def vector_for(row_id: int, dimension: int = DIMENSION) -> list[float]:
    """The vector written with `row_id`: the same on every run, distinct for distinct ids (almost surely)."""
    rng = random.Random(row_id)
    return [rng.random() for _ in range(dimension)]


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


def decode(line: str) -> dict[str, Any] | None:
    """One message, or None for a line that is not one (a stray print, a torn line)."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or not ({"op", "ev"} & message.keys()):
        return None
    return message
