"""A writer's lease on this node: the one rule for when it starts, how it is renewed, and when it ends.

Pure, apart from `lease_now()` which reads the clock. The lease clock is CLOCK_BOOTTIME (seconds): monotonic
like time.monotonic(), but it keeps counting while the machine is suspended, so a node that sleeps wakes up
with its lease already gone (CLOCK_MONOTONIC would resume where it stopped and hand a stale writer extra time).
It is also the clock of /proc/uptime inside the container, so the self-fencing wrapper reads the same deadline.

The rule:
- a coordinator's answer that assigns rw at epoch E with `lease_ms` grants the lease
  [sent_at, sent_at + lease_ms), where `sent_at` is the lease clock read just before the RPC was sent;
  the coordinator received the request later, so this lease always ends before the coordinator's view of it;
- a read of the MySQL cluster row sent at `sent_at` that still names this node as writer at epoch E renews it
  to sent_at + row_lease_ms (what the coordinator's last grant for E allowed, at most lease_ms; shorter, so a
  failover fences for less): a change of writer commits a new epoch to that row first and then waits until
  commit + row_lease_ms (and until every lease it granted ended), so the row read before that commit proves
  nobody else may write yet;
- anything else renews nothing; a coordinator's newer grant replaces the deadline (it may shorten it); a row
  read only ever extends it;
- a writer reports, and so asks for its renewal, at least RENEWALS_PER_LEASE times per lease granted
  (`report_period_s`), whatever the report interval: a short lease is renewed well before it ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

RENEWALS_PER_LEASE = 3


def report_period_s(interval_s: float, granted_lease_ms: int | None) -> float:
    """How long until the next report: the report interval, or less for a writer holding a lease, so that it
    asks for a renewal RENEWALS_PER_LEASE times per lease (a 1.8 s lease: every 0.6 s)."""
    if not granted_lease_ms:
        return interval_s
    return min(interval_s, granted_lease_ms / 1000 / RENEWALS_PER_LEASE)


def lease_now() -> float:
    """The lease clock: CLOCK_BOOTTIME in seconds."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class Lease:
    epoch: int
    lease_ms: int  # the length the coordinator last granted for this epoch
    deadline: float  # on the lease clock
    renewed_by: str  # "coordinator HOST:PORT" | "MySQL cluster row" | "lease file (agent restart)"
    row_lease_ms: int = 0  # the length a MySQL row read renews it for; 0: lease_ms (an older coordinator)

    @property
    def row_renewal_ms(self) -> int:
        """How long one read of the MySQL cluster row renews this lease for."""
        return min(self.lease_ms, self.row_lease_ms) if self.row_lease_ms > 0 else self.lease_ms

    def valid(self, now: float) -> bool:
        return now < self.deadline

    def left(self, now: float) -> float:
        return max(0.0, self.deadline - now)


def granted(epoch: int, lease_ms: int, sent_at: float, coordinator: str, row_lease_ms: int = 0) -> Lease:
    """The lease a coordinator's rw answer grants, measured from when this node sent the request."""
    return Lease(
        epoch=epoch,
        lease_ms=lease_ms,
        deadline=sent_at + lease_ms / 1000.0,
        renewed_by=coordinator,
        row_lease_ms=row_lease_ms,
    )


def after_rw_answer(
    current: Lease | None, epoch: int, lease_ms: int, sent_at: float, coordinator: str, row_lease_ms: int = 0
) -> Lease | None:
    """The lease after an rw answer. `lease_ms` 0 means the leader renews nothing (a new leader still listening,
    or one whose own lease is short): the lease this node holds for this epoch runs on unchanged, exactly as if
    no answer had come, and without one the node holds none."""
    if lease_ms > 0:
        return granted(epoch, lease_ms, sent_at, coordinator, row_lease_ms)
    return current if current is not None and current.epoch == epoch else None


def renewed_by_row(
    lease: Lease | None, node: str, row_writer: str | None, row_epoch: int, sent_at: float
) -> Lease | str:
    """The lease renewed by a cluster row read sent at `sent_at`, or why it is not renewed."""
    if lease is None:
        return "this node holds no writer lease to renew"
    if row_writer != node:
        return f"the MySQL cluster row names writer {row_writer or 'none'}, not this node"
    if row_epoch != lease.epoch:
        return f"the MySQL cluster row is at epoch {row_epoch}, this node's lease is for epoch {lease.epoch}"
    deadline = sent_at + lease.row_renewal_ms / 1000.0
    if deadline <= lease.deadline:
        return lease  # what a coordinator granted runs longer still: a row read never shortens it
    return replace(lease, deadline=deadline, renewed_by="MySQL cluster row")


def lease_for(role: str, epoch: int, lease: Lease | None) -> Lease | None:
    """The lease that lets a node assigned `role` at `epoch` write, live or lapsed: only a rw assignment has one,
    and only a lease for that very epoch counts."""
    if role != "rw" or lease is None or lease.epoch != epoch:
        return None
    return lease


def writer_may_run(role: str, epoch: int, lease: Lease | None, now: float) -> bool:
    """A rw container may run now (coordinated mode): assigned rw under a valid lease for that epoch, or, once
    demoted, until the last lease it held ends (it is stopped gracefully meanwhile, killed after)."""
    if role == "rw":
        held = lease_for(role, epoch, lease)
        return held is not None and held.valid(now)
    return lease is not None and lease.valid(now)


def manual_writer_may_run(role: str, deadline: float | None, last_rw: tuple[float | None] | None, now: float) -> bool:
    """A rw container may run now without coordinators (the operator holds the one-writer rule): assigned rw,
    until its assignment's deadline (None: a lease-free, manual source); once demoted, until the deadline of the
    last rw assignment (`last_rw`, None when none was seen since the agent started: then only a lease-free
    source lets it run, so it is stopped gracefully)."""
    if role == "rw":
        return deadline is None or now < deadline
    if last_rw is None:
        return deadline is None
    return last_rw[0] is None or now < last_rw[0]


def holds_writer_lease(
    coordinated: bool, role: str, epoch: int, lease: Lease | None, deadline: float | None, now: float
) -> bool:
    """A rw container may run now under a rw assignment (what a load balancer's /writer check asks)."""
    if role != "rw":
        return False
    if coordinated:
        return writer_may_run(role, epoch, lease, now)
    return deadline is None or now < deadline


def lapse_text(lease: Lease | None, renewal_note: str, now: float) -> str:
    """Why a writer's lease is gone, for the step that fences it: since when, and why it was not renewed."""
    if lease is None:
        return "holding no writer lease"
    why = renewal_note or f"last renewed by {lease.renewed_by}"
    return f"lease expired {max(0.0, now - lease.deadline):.1f}s ago ({why})"


def stop_timeout_s(configured_s: float, lease: Lease | None, writer_under_lease: bool, now: float) -> float:
    """How long a graceful stop may take: a writer's must end within its lease (the wrapper kills it at the
    deadline anyway), and lasts a second at least."""
    if writer_under_lease and lease is not None:
        return min(configured_s, max(1.0, lease.left(now)))
    return configured_s
