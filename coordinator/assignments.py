"""What each node is told: its role, epoch and lease (the one lease rule), the writer it follows, a drain, and
for Mishards hosts where Mishards must send requests (the discovery config)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from coordinator.endpoints import writer_endpoint
from coordinator.model import Assignment, Discovery, Durable, Report
from coordinator.phases import ChangeWriter, Phase

if TYPE_CHECKING:
    from coordinator.core import Memory, Tick, Timing


def lease_to_grant_ms(lease_s: float, leadership_left_s: float, timing: Timing) -> int:
    """The one lease rule of the coordinator: never longer than what is left of its own leadership, and none at
    all below `min_lease_s` (a lease that short would only make the writer fence itself)."""
    granted = min(lease_s, leadership_left_s)
    return int(granted * 1000) if granted >= timing.min_lease_s else 0


def discovery(tick: Tick, memory: Memory) -> Discovery | None:
    """The Mishards discovery config: the writer, and the readers healthy for settle_s (not in maintenance)."""
    durable, reports, now, timing = tick.durable, tick.reports, tick.now, tick.timing
    writer = durable.cluster.writer
    found = writer_endpoint(durable, reports)
    if writer is None or found is None:
        return None
    address, port = found
    hosts = [
        reports[name].address
        for name, since in sorted(memory.healthy_since.items())
        if name != writer
        and now - since >= timing.settle_s
        and not (durable.nodes.get(name) and durable.nodes[name].maintenance)
    ]
    if timing.include_writer_in_hosts or not hosts:
        hosts.insert(0, address)  # an empty list would stop Mishards; the writer can serve reads too
    return Discovery(writer_address=address, writer_port=port, hosts=tuple(hosts), discovery_port=port)


def with_discovery(
    assignments: dict[str, Assignment],
    found: Discovery | None,
    tick: Tick,
    previous: Mapping[str, Assignment] | None = None,
) -> dict[str, Assignment]:
    """Nodes that host Mishards are also told where Mishards must send requests."""
    if found is None:
        return assignments
    hosts = {n for n, r in tick.reports.items() if r.hosts_mishards} | {
        n for n, r in tick.durable.nodes.items() if r.hosts_mishards
    }
    for name in hosts:
        a = assignments.get(name)
        if a is None:
            continue
        told = replace(a, discovery=found)
        before = previous.get(name) if previous is not None else None
        assignments[name] = before if before == told else told
    return assignments


def _writer_may_hold_lease(durable: Durable, memory: Memory, report: Report | None) -> bool:
    """The durable writer may be granted rw: once fenced and promoted, or (before this leader has settled)
    when it already runs rw at the durable epoch, which means an earlier leader fenced and promoted it."""
    t = memory.transition
    if t is not None:
        if t.phase() == Phase.DRAIN:  # the old writer keeps its lease while it stops gracefully
            return t.old == durable.cluster.writer
        return t.new == durable.cluster.writer and t.promoted_at is not None
    if memory.settled:
        return True
    return report is not None and report.role_running == "rw" and report.highest_epoch == durable.cluster.epoch


# What a node is told but its name and discovery, in Assignment's order from role on: (role, epoch, lease_ms,
# writer, writer_address, writer_http_port, reason, row_lease_ms, drain_id, drain_timeout_ms).
Told = tuple[str, int, int, str | None, str, int, str, int, int, int]


def assignments(
    tick: Tick,
    memory: Memory,
    leadership_left_s: float,
    change: ChangeWriter | None,
    previous: Mapping[str, Assignment] | None = None,
) -> dict[str, Assignment]:
    """Every node's assignment. This runs for every node on every tick: an Assignment (a frozen dataclass, ~3 us
    to build) is built only when a node's differs from the one it had; otherwise the node keeps that object."""
    durable, reports, timing = tick.durable, tick.reports, tick.timing
    writer = durable.cluster.writer
    wreport = reports.get(writer) if writer else None
    follow = (writer, wreport.address if wreport else "", wreport.milvus_http_port if wreport else 0)
    lease_ms = lease_to_grant_ms(timing.lease_s, leadership_left_s, timing)
    out: dict[str, Assignment] = {}
    before = previous if previous is not None else {}
    for name in sorted(set(reports) | set(durable.nodes)):
        told = _told_to(name, durable, memory, reports, timing, lease_ms, change, follow)
        had = before.get(name)
        if had is not None and had.discovery is None and told_of(had) == told:
            out[name] = had
        else:
            role, epoch, lease, w, address, http, reason, row_lease, drain_id, drain_ms = told
            out[name] = Assignment(
                name, role, epoch, lease, w, address, http, None, reason, row_lease, drain_id, drain_ms
            )
    return out


def _told_to(
    name: str,
    durable: Durable,
    memory: Memory,
    reports: Mapping[str, Report],
    timing: Timing,
    lease_ms: int,
    change: ChangeWriter | None,
    follow: tuple[str | None, str, int],
) -> Told:
    """What `name` is told this tick (`follow`: the writer, its address and HTTP port)."""
    t = memory.transition
    writer, epoch = durable.cluster.writer, durable.cluster.epoch
    record = durable.nodes.get(name)
    role, lease, row_lease, reason = "ro", 0, 0, f"a reader at epoch {epoch}"
    drain_id, drain_ms = 0, 0
    if record is not None and record.maintenance and name != writer:
        role, reason = "none", "in maintenance"
    elif name == writer and change is None and _writer_may_hold_lease(durable, memory, reports.get(name)):
        if lease_ms:
            # row_lease_s is at most lease_s (config); the agent caps it at its lease
            role, lease, row_lease = "rw", lease_ms, int(timing.row_lease_s * 1000)
            reason = f"the writer at epoch {epoch}"
        else:
            role, reason = "rw", "the writer; no lease while this leader's own is short"
        if t is not None and t.phase() == Phase.DRAIN:
            drain_id, drain_ms = t.drain_id, int(timing.drain_timeout_s * 1000)
            reason = f"the writer at epoch {epoch}, draining: stop gracefully, {t.new} takes over"
    elif name == writer and t is None:
        # Before this leader settles: still the writer, but no lease from us yet (lease_ms 0 renews nothing).
        role, reason = "rw", "the writer; this new leader renews no lease until it settles"
    elif name == writer:
        reason = f"to be the writer once the old one is fenced (epoch {epoch})"
    elif t is not None and name == t.old:
        reason = f"demoted: {t.new} takes over at epoch {t.epoch}"
    return (role, epoch, lease, follow[0], follow[1], follow[2], reason, row_lease, drain_id, drain_ms)


def told_of(a: Assignment) -> Told:
    """Every field of an assignment but its node and discovery, in _told_to's order (a test checks that no field
    is missing: a field left out here would let a changed assignment pass for the old one)."""
    return (
        a.role,
        a.epoch,
        a.lease_ms,
        a.writer,
        a.writer_address,
        a.writer_http_port,
        a.reason,
        a.row_lease_ms,
        a.drain_id,
        a.drain_timeout_ms,
    )
