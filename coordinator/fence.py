"""The fence: no node is told rw until every other node that may write has stopped, proven by its report after the
commit, or by time (its lease, with the margin for clock-rate drift, ran out since). The safety argument is in
coordinator/core.py's docstring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from coordinator.model import Report

if TYPE_CHECKING:
    from coordinator.core import Timing
    from coordinator.phases import Transition


def fence_state(t: Transition, reports: Mapping[str, Report], now: float, timing: Timing) -> tuple[bool, str]:
    """Is every other writer fenced? Acked by its report after the commit, or its lease ran out since."""
    assert t.committed_at is not None
    if t.forced:
        return True, "forced by the operator without waiting for the old writer"
    if t.kind == "resume":
        lease_end = t.committed_at + timing.lease_s + timing.fence_margin_s
        # Who the previous leader told rw is unknown (a silent node may be one): only time proves it.
        if now >= lease_end:
            return True, "a full lease has passed since this leader took over"
        return False, f"a new leader waits {lease_end - now:.1f}s more, a full lease, before any node writes"
    suspects: dict[str, Report | None] = {
        name: r
        for name, r in reports.items()
        if name != t.new and r.container_role == "rw" and r.received_at > t.committed_at - timing.detect_after_s
    }
    if t.old is not None and t.old not in suspects:
        old = reports.get(t.old)
        if old is None or old.received_at <= t.committed_at or old.highest_epoch < t.epoch:
            suspects[t.old] = old
    unacked = {
        name: r
        for name, r in suspects.items()
        if r is None or not (r.received_at > t.committed_at and r.highest_epoch >= t.epoch and r.container_role != "rw")
    }
    if not unacked:
        return True, "the old writer acknowledged its demotion" if t.old else "no other writer to fence"
    lease_end = max(lease_ends_by(name, r, t, timing) for name, r in unacked.items()) + timing.fence_margin_s
    names = ", ".join(sorted(unacked))
    if now >= lease_end:
        return True, f"the lease of {names} ran out"
    return False, f"waiting for {names} to stop or for its lease to end in {lease_end - now:.1f}s"


def lease_ends_by(name: str, report: Report | None, t: Transition, timing: Timing) -> float:
    """The latest a lease held by `name` can end, on this leader's clock (before the margin).

    - This leader's grants: each runs from when the node sent the report it answers, and none is granted from
      the commit on (leases_withheld, then the committed roles), so the last ends by
      min(its latest report, the commit) + lease_s. The Report handler keeps each node's latest report.
      Grants of earlier leaders ended before this leader started (they are bounded by their leadership).
    - Renewals from the MySQL cluster row: only the old writer can have any (the row named it until the
      commit), and each ends by the read's send time, before the commit, + what one read renews: the
      row_lease_s its report says it applies, never less than this leader's, and a whole lease when unsaid.
    Without any report from the node, a whole lease from the commit covers both."""
    assert t.committed_at is not None
    if report is None:
        return t.committed_at + timing.lease_s
    granted = min(report.received_at, t.committed_at) + timing.lease_s
    if name != t.old:
        return granted
    # Unclamped: a longer row lease the node reports (an earlier leader's lease_s) is what it renews for.
    row_s = timing.lease_s if report.row_lease_s is None else max(report.row_lease_s, timing.row_lease_s)
    return max(granted, t.committed_at + row_s)
