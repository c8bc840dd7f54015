"""The coordinator's decisions: one pure function of (durable state, memory, latest reports, now).

`decide` returns what the leader must do this tick: at most one durable change of writer (committed to
MySQL before any node hears of it), the assignment of every node, the Mishards discovery config, the events
to record, and one sentence saying why the cluster is as it is. No I/O, no clock: every rule is in this
package's pure modules, each in one place, and can be tested with a table or a simulation.

A role change (initial pick, failover, switchover, resume) is a `Transition` that moves through phases
(drain, decide, fence, promote, healthy, mishards), one function per phase: `coordinator/phases.py`.
What starts one is in `watch.py` (first writer, maintenance, a failing writer) and `requests.py` (the
operator's); who takes over in `candidates.py`, judged by `faults.py`; what each node is told in
`assignments.py`; the fence in `fence.py`.

A writer whose node is alive is recovered in place (`recover_in_place_s`): its agent remounts a dead or hung
JuiceFS, restarts a crashed container, or restarts on the GPUs left, at the same epoch, on its own WAL, which
no other node can replay. While the JuiceFS metadata engine is unreachable from every node, the fault is not
the writer's and it is held.

A condition that holds tick after tick while nothing can be done about it (no candidate, a pause that holds
a failover back, ...: STANDING_KINDS) is recorded as an event when it begins and once when it ends, not at
every tick (`record_standing`, what it holds kept in Memory).

Safety: a node is told rw only in the promote phase or later, and only after the fence. Any lease a former
writer holds was granted before the commit (by this or an earlier leader, bounded by its leadership) or
renewed from MySQL before the commit (the row then named it), so it ends by commit + lease; the margin
covers clock-rate drift. A leader that takes over does not know what its predecessor was doing, so unless the
durable writer is seen running rw already, it fences for a full lease from its own start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from coordinator.assignments import assignments, discovery, with_discovery
from coordinator.faults import fresh
from coordinator.model import Assignment, Discovery, Durable, Event, Report
from coordinator.phases import ChangeWriter, Phase, Transition, advance
from coordinator.standing import Standing, record_standing
from coordinator.watch import first_writer, watch_writer


@dataclass(frozen=True)
class Timing:
    report_interval_s: float = 1.0
    detect_after_s: float = 2.0  # writer reports missing this long: it is down (unless witnessed healthy)
    # Lease granted to the writer with each answer; the writer reports at least three times per lease (agent.lease).
    lease_s: float = 3.0
    row_lease_s: float = 1.0  # what one read of the MySQL row renews it for, while no coordinator answers
    fence_margin_s: float = 0.3  # added to the lease when fencing, for clock-rate drift
    fault_grace_s: float = 2.0  # a writer fault (mount, GPU, probe) must last this long
    # A writer whose node is alive (it reports) recovers in place this long before a failover: its agent
    # remounts a dead or hung JuiceFS, restarts a crashed container, or restarts on the GPUs left.
    recover_in_place_s: float = 30.0
    drain_timeout_s: float = 120.0  # a planned change's drain: the old writer's graceful stop, at most this
    drain_timeout_action: str = "abandon"  # abandon: the old writer keeps writing | force: go on, lose its WAL
    failover_window_s: float = 60.0  # at most one automatic failover per window
    settle_s: float = 5.0  # a recovered reader rejoins Mishards after this long healthy
    promote_timeout_s: float = 60.0  # the new writer must run rw healthy within this
    startup_wait_s: float = 3.0  # a new leader waits this long for reports before a first pick
    witness_fresh_s: float = 2.5  # a reader's view of the writer counts when this recent (report age included)
    write_probe_limit_ms: float = 2000.0
    min_lease_s: float = 0.5  # below this much leadership left, grant no lease at all
    include_writer_in_hosts: bool = False


@dataclass(frozen=True)
class Request:
    """An operator's request, taken by the next decision."""

    kind: str  # switchover | failover
    to: str | None
    reason: str
    force: bool = False
    on_drain_timeout: str | None = None  # abandon | force; None: timing.drain_timeout_action
    by: str = ""  # who asked, from the caller's certificate ("operator alice"); recorded with the event


@dataclass(frozen=True)
class Memory:
    """What the leader keeps between ticks and loses when it stops (all on its monotonic clock)."""

    leader_since: float
    settled: bool = False  # False until the new leader has waited startup_wait_s for reports
    transition: Transition | None = None
    last_auto_failover_at: float | None = None
    healthy_since: Mapping[str, float] = field(default_factory=dict)
    writer_fault_since: float | None = None
    failed_candidates: Mapping[str, float] = field(default_factory=dict)
    request: Request | None = None
    drain_abandoned_at: float | None = None  # a maintenance switchover is not retried for drain_timeout_s
    standing: Standing | None = None  # the standing condition recorded as begun, until its end is recorded


@dataclass(frozen=True)
class Decision:
    memory: Memory
    change_writer: ChangeWriter | None
    assignments: Mapping[str, Assignment]
    discovery: Discovery | None
    events: tuple[Event, ...]
    why: str


@dataclass(frozen=True)
class Tick:
    """What one decision reads besides the leader's memory: the durable state, the latest reports, the clocks
    (`now` monotonic, `now_unix` for the events) and the timing."""

    durable: Durable
    reports: Mapping[str, Report]
    now: float
    timing: Timing
    now_unix: float = 0.0


# -- the decision ---------------------------------------------------------------------------------------
def decide(
    durable: Durable,
    memory: Memory,
    reports: Mapping[str, Report],
    now: float,
    timing: Timing,
    leadership_left_s: float,
    now_unix: float = 0.0,
    previous: Mapping[str, Assignment] | None = None,
) -> Decision:
    """`previous`, the assignments of the last decision, only saves work: an assignment equal to the one a
    node had is that same object (in a steady cluster every one is), and the decision does not depend on it."""
    tick = Tick(durable, reports, now, timing, now_unix)
    events: list[Event] = []
    memory = _track_reader_health(tick, memory)
    change: ChangeWriter | None = None
    why = ""

    if not memory.settled:
        if now - memory.leader_since < timing.startup_wait_s:
            left = timing.startup_wait_s - (now - memory.leader_since)
            why = f"New leader: listening to reports for {left:.1f}s more before deciding anything."
            told = assignments(tick, memory, leadership_left_s, None, previous)
            return Decision(memory, None, told, discovery(tick, memory), (), why)
        memory = settle(durable, memory, reports, now)

    healed = heal_epoch(tick, memory)
    if healed is not None:
        memory, change, why = healed
    elif memory.transition is not None:
        memory, change, why, events = advance(tick, memory)
    elif durable.cluster.writer is None:
        memory, change, why, events = first_writer(tick, memory)
    else:
        memory, change, why, events = watch_writer(tick, memory)

    memory, events = record_standing(memory, events, why, durable.cluster.epoch, now, now_unix)
    found = discovery(tick, memory)
    told = with_discovery(assignments(tick, memory, leadership_left_s, change, previous), found, tick, previous)
    return Decision(memory, change, told, found, tuple(events), why)


def heal_epoch(tick: Tick, memory: Memory) -> tuple[Memory, ChangeWriter, str] | None:
    """Nodes that report an epoch above the committed one (a forged assignment, MySQL restored from an older
    backup) refuse everything at a lower epoch: before assigning anything, commit one above the highest any
    node reports. The writer stays, after a full lease: who else was told rw at those epochs is unknown, so
    only time proves that no other node writes (as a new leader resumes)."""
    t = memory.transition
    if t is not None and t.committed_at is None:
        return None  # a change of writer is being committed this tick
    durable, now = tick.durable, tick.now
    ahead = {n: r.highest_epoch for n, r in tick.reports.items() if r.highest_epoch > durable.cluster.epoch}
    if not ahead:
        return None
    highest = max(ahead.values())
    epoch = highest + 1
    nodes = ", ".join(f"{n} ({e})" for n, e in sorted(ahead.items()))
    reason = f"healing the epoch: {nodes} reported epochs above the committed epoch {durable.cluster.epoch}"
    why = f"{reason}; committing epoch {epoch} before assigning anything."
    writer = durable.cluster.writer
    if writer is None:
        # No writer to resume: the first writer is chosen as by a new leader, after listening again.
        healed = replace(memory, transition=None, leader_since=now)
        return healed, ChangeWriter(None, durable.cluster.epoch, epoch), why
    heal = Transition(
        kind="resume",
        old=None,
        new=writer,
        epoch=epoch,
        reason=f"{reason}; {writer} resumes at epoch {epoch} after a full lease",
        started_at=now,
        phases=((Phase.DECIDE, now),),
        automatic=True,
        heals_from=durable.cluster.epoch,
    )
    return replace(memory, transition=heal), ChangeWriter(writer, durable.cluster.epoch, epoch), why


def committed(memory: Memory, epoch: int, now: float) -> Memory:
    """The loop committed the change of writer at `now`: the fence clock starts."""
    t = memory.transition
    if t is None or t.committed_at is not None:
        return memory
    return replace(memory, transition=replace(t, epoch=epoch).with_phase(Phase.FENCE, now))


def abandoned(memory: Memory) -> Memory:
    """The durable change could not be committed (no longer leader, epoch moved): forget the transition."""
    t = memory.transition
    if t is not None and t.committed_at is None:
        return replace(memory, transition=None)
    return memory


def settle(durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float) -> Memory:
    """A new leader, having listened to reports, takes over. It does not know what its predecessor was doing,
    so unless the durable writer already runs rw at the durable epoch, it fences for a full lease from the
    start of its own leadership (every lease its predecessor granted ended before that)."""
    memory = replace(memory, settled=True)
    writer = durable.cluster.writer
    if writer is None or memory.transition is not None:
        return memory
    report = reports.get(writer)
    if report is not None and report.role_running == "rw" and report.highest_epoch == durable.cluster.epoch:
        return memory
    transition = Transition(
        kind="resume",
        old=None,
        new=writer,
        epoch=durable.cluster.epoch,
        reason=f"a new leader resumes {writer}, the writer it found in MySQL, after a full lease",
        started_at=memory.leader_since,
        phases=((Phase.FENCE, memory.leader_since),),
        automatic=False,
    )
    return replace(memory, transition=transition)


def _track_reader_health(tick: Tick, memory: Memory) -> Memory:
    """Since when each reader runs ro healthy (a recovered reader rejoins Mishards after settle_s)."""
    healthy: dict[str, float] = {}
    since = memory.healthy_since
    for name, report in tick.reports.items():
        if (
            fresh(report, tick.now, tick.timing)
            and report.role_running == "ro"
            and report.mount_state in ("healthy", "degraded")
            and report.gpu_health != "failed"
        ):
            healthy[name] = since.get(name, tick.now)
    return replace(memory, healthy_since=healthy)
