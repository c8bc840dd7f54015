"""What the write client saw, kept by its parent, and what a reader's view of the volume makes of it. Pure.

An insert is *acknowledged* when its Insert returned OK; it is *flushed* when a Flush that returned OK covered
it (one sent on the same connection, after the ack). Milvus 1.x acknowledges into a local WAL, so only
flushed writes are promised to survive the writer: a flushed write that no reader sees is a failure, an
acknowledged-unflushed one that no reader sees is the cluster's recovery point (RPO), counted, not a failure.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WriteLedger:
    """Folds the client's events (protocol.py) into what it was told, in the order it was told."""

    acknowledged: set[int] = field(default_factory=set)
    ack_times: list[float] = field(default_factory=list)  # monotonic, ascending
    ack_nodes: list[str] = field(default_factory=list)  # beside ack_times
    ack_ids: list[int] = field(default_factory=list)  # beside ack_times
    flushed: set[int] = field(default_factory=set)
    flushes: int = 0
    errors: int = 0
    last_error: str = ""
    searches: int = 0
    search_misses: list[int] = field(default_factory=list)  # flushed ids a search did not find
    connections: int = 0

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("ev")
        if kind == "ack":
            self.acknowledged.add(int(event["id"]))
            self.ack_ids.append(int(event["id"]))
            self.ack_nodes.append(str(event["node"]))
            self.ack_times.append(float(event["t"]))
        elif kind == "flushed":
            self.flushed.update(int(i) for i in event["ids"])
            self.flushes += 1
        elif kind == "error":
            self.errors += 1
            self.last_error = f"{event.get('node')}: {event.get('op')} {event.get('code')} {event.get('message')}"
        elif kind == "search":
            self.searches += 1
            if not event["hit"]:
                self.search_misses.append(int(event["id"]))
        elif kind == "connected":
            self.connections += 1

    def acknowledged_until(self, t: float) -> set[int]:
        """The ids acknowledged at or before monotonic time `t`."""
        return set(self.ack_ids[: bisect.bisect_right(self.ack_times, t)])


@dataclass(frozen=True)
class Durability:
    """The client's writes held against what a reader sees (`durable`): what was lost, by kind."""

    judged: int  # acknowledged writes judged
    flushed: int  # of those, flushed
    flushed_lost: frozenset[int]  # a failure, always
    unflushed_lost: frozenset[int]  # acknowledged, never covered by an OK Flush, and gone: the RPO


def durability(acknowledged: Iterable[int], flushed: Iterable[int], durable: set[int]) -> Durability:
    judged = set(acknowledged)
    flushed_judged = judged & set(flushed)
    return Durability(
        judged=len(judged),
        flushed=len(flushed_judged),
        flushed_lost=frozenset(flushed_judged - durable),
        unflushed_lost=frozenset(judged - flushed_judged - durable),
    )
