"""Standing conditions: what holds tick after tick while nothing can be done (or nothing is to be done) about it.

Each tick's decision says which one holds (an event of a STANDING_KINDS kind, `condition`), and
`record_standing` records it once when it begins and once when it ends (`<kind>-ended`), not at every tick;
what it holds is kept in the leader's Memory (`Standing`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from coordinator.model import Event

if TYPE_CHECKING:
    from coordinator.core import Memory

STANDING_KINDS = (
    "no-candidate",  # the writer is failing and no node can take over
    "no-first-writer",  # there is no writer yet and no node can be one
    "failover-paused",  # a failover (or a first writer) is due but the cluster is paused
    "failover-window",  # the writer is failing but the last automatic failover was within failover_window_s
    "writer-held",  # the writer is held: the JuiceFS metadata engine is unreachable from every node
    "writer-cut-off",  # the writer does not report but readers see its Milvus healthy
    "maintenance-blocked",  # the writer is in maintenance but no node can take over
)


@dataclass(frozen=True)
class Standing:
    """A standing condition whose beginning was recorded, and since when it holds (monotonic)."""

    kind: str
    node: str | None
    since: float


def condition(kind: str, why: str, node: str | None, epoch: int, now_unix: float) -> Event:
    """This tick's standing condition (record_standing records its beginning and its end only)."""
    return Event(kind=kind, reason=why.rstrip("."), node=node, epoch=epoch, at_unix=now_unix)


def record_standing(
    memory: Memory, events: list[Event], why: str, epoch: int, now: float, now_unix: float
) -> tuple[Memory, list[Event]]:
    """The events to record this tick. A standing condition (an event of a STANDING_KINDS kind, which the rules
    produce at every tick it holds) is recorded when it begins, and its end (`<kind>-ended`, how long it held and
    the cluster's sentence now) when a tick no longer produces it; another condition about another node, or of
    another kind, ends the one before and begins anew. Its reason is the one it began with: the blocked list may
    change meanwhile (`coordinatorctl why` says it as it is now)."""
    current = next((e for e in reversed(events) if e.kind in STANDING_KINDS), None)
    out = [e for e in events if e.kind not in STANDING_KINDS]
    held = memory.standing
    if held is not None and (current is None or (current.kind, current.node) != (held.kind, held.node)):
        ended = Event(
            kind=f"{held.kind}-ended",
            reason=f"held for {now - held.since:.0f}s; now: {why}",
            node=held.node,
            epoch=epoch,
            at_unix=now_unix,
        )
        out.insert(0, ended)
        held = None
    if current is not None and held is None:
        out.append(current)
        held = Standing(current.kind, current.node, now)
    return (memory if held is memory.standing else replace(memory, standing=held)), out
