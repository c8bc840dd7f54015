"""The coordinator's decisions: one pure function of (durable state, memory, latest reports, now).

`decide` returns what the leader must do this tick: at most one durable change of writer (committed to
MySQL before any node hears of it), the assignment of every node, the Mishards discovery config, the events
to record, and one sentence saying why the cluster is as it is. No I/O, no clock: every rule is here, in one
place, and can be tested with a table or a simulation.

A role change (initial pick, failover, switchover) is a `Transition` that moves through phases:

| phase    | begins when                                    | the new writer is told |
|----------|------------------------------------------------|------------------------|
| drain    | a planned change (switchover, maintenance) is  | nothing yet; the old   |
|          | chosen and the old writer runs: it stops       | writer keeps its lease |
|          | gracefully (SIGINT: Milvus flushes its WAL)    | and is told to drain   |
| decide   | the change is chosen (after a drain: the old   | nothing yet            |
|          | writer's Milvus exited 0); epoch+1 to MySQL    |                        |
| fence    | the new epoch is committed                     | ro at the new epoch    |
| promote  | old writer acked (stopped rw, saw new epoch),  | rw with a lease        |
|          | or its lease + margin ran out since the commit |                        |
| healthy  | the new writer reports rw, healthy             | rw                     |
| mishards | every Mishards host wrote the new WOSERVER     | rw (transition done)   |

A drain that fails (the old writer's Milvus exits non-zero, or not within `drain_timeout_s`) ends as the
operator chose: abandoned (the old writer stays, restarts on its own WAL and loses nothing) or forced (the
change goes on; what the old writer's WAL held unflushed is lost). A writer that stops reporting while it
drains is a writer failure: the drain is abandoned and the failure rules take over.

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

from jfsmilvus.common.milvus1 import MILVUS_PORT

from coordinator.model import Assignment, Discovery, Durable, Event, NodeRecord, Report

GPU_RANK = {"healthy": 0, "unavailable": 1, "degraded": 1}


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
class Transition:
    kind: str  # initial | failover | switchover | resume
    old: str | None
    new: str
    epoch: int  # the epoch of the change (durable once committed)
    reason: str
    started_at: float
    committed_at: float | None = None
    promoted_at: float | None = None
    phases: tuple[tuple[str, float], ...] = ()
    forced: bool = False
    automatic: bool = True
    drain_id: int = 0  # the drain asked of the old writer (phase drain); 0: none
    on_drain_timeout: str = "abandon"
    drain_note: str = ""  # how the drain ended, for the event
    heals_from: int = 0  # a resume that heals the epoch: the committed epoch it raises (see heal_epoch)

    def phase(self) -> str:
        return self.phases[-1][0] if self.phases else "decide"

    def with_phase(self, name: str, now: float) -> Transition:
        return replace(self, phases=(*self.phases, (name, now)))


@dataclass(frozen=True)
class Request:
    """An operator's request, taken by the next decision."""

    kind: str  # switchover | failover
    to: str | None
    reason: str
    force: bool = False
    on_drain_timeout: str | None = None  # abandon | force; None: timing.drain_timeout_action
    by: str = ""  # who asked, from the caller's certificate ("operator alice"); recorded with the event


def with_asker(reason: str, by: str) -> str:
    """An operator action's reason as recorded: who asked, from the caller's certificate."""
    return f"{reason} (asked by {by})" if by else reason


# Conditions that hold tick after tick while nothing can be done (or nothing is to be done) about them: each
# tick's decision says which one holds, and `record_standing` records it once when it begins and once when it
# ends ("<kind>-ended"), not at every tick.
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
class ChangeWriter:
    """The durable write the loop must commit first: epoch = expected_epoch + 1, writer = new_writer."""

    new_writer: str | None
    expected_epoch: int
    epoch: int = 0  # the epoch to commit; 0: expected_epoch + 1 (heal_epoch commits one above every report)


@dataclass(frozen=True)
class Decision:
    memory: Memory
    change_writer: ChangeWriter | None
    assignments: Mapping[str, Assignment]
    discovery: Discovery | None
    events: tuple[Event, ...]
    why: str


# -- node judgements ----------------------------------------------------------------------------------
def _fresh(report: Report | None, now: float, timing: Timing) -> bool:
    return report is not None and now - report.received_at <= timing.detect_after_s


def writer_faults(report: Report, timing: Timing) -> list[tuple[str, float]]:
    """What is wrong with a writer that reports (not counting a missing report), each with its grace: what its
    agent recovers in place (a dead or hung mount, a crashed container, a lost GPU with others left) gets
    recover_in_place_s; what it cannot (a slow volume, its only GPU lost) gets fault_grace_s."""
    faults = []
    if report.mount_state in ("failed", "hung", "unmounted"):
        why = "; ".join(report.mount_reasons)
        text = f"its JuiceFS mount is {report.mount_state}" + (f" ({why})" if why else "")
        faults.append((text, timing.recover_in_place_s))
    elif report.write_probe_ms is not None and report.write_probe_ms > timing.write_probe_limit_ms:
        text = f"its write probe took {report.write_probe_ms:.0f} ms (limit {timing.write_probe_limit_ms:.0f})"
        faults.append((text, timing.fault_grace_s))
    # A failed GPU is the writer's fault while its Milvus holds it, or runs on none (a GPU image that cannot
    # start); a CPU image, or one restarted on the GPUs left, is not held back by it.
    if report.gpu_health == "failed" and (report.milvus_gpu_failed or report.container_role == "none"):
        why = "; ".join(report.gpu_reasons)
        if report.gpus_usable > 0:
            text = f"a GPU failed, {report.gpus_usable} left to restart on" + (f" ({why})" if why else "")
            faults.append((text, timing.recover_in_place_s))
        else:
            faults.append(("its GPU failed" + (f" ({why})" if why else ""), timing.fault_grace_s))
    if report.role_running != "rw":
        faults.append(("its Milvus is not running healthy as rw", timing.recover_in_place_s))
    return faults


def shared_meta_outage(writer: str, reports: Mapping[str, Report], now: float, timing: Timing) -> list[str]:
    """The nodes (the writer first) that cannot reach the JuiceFS metadata engine, when every reporting node
    says so: a fault they all share is not the writer's, and moving the writer cannot cure it. Empty when any
    reporting node reaches it, or none but the writer reports."""
    fresh = {n: r for n, r in reports.items() if _fresh(r, now, timing)}
    if writer not in fresh or len(fresh) < 2:
        return []
    if any(r.meta_engine_reachable is not False for r in fresh.values()):
        return []
    return [writer, *sorted(n for n in fresh if n != writer)]


def standing_problems(record: NodeRecord | None) -> list[str]:
    """What the operator set that keeps a node from being the writer, whatever its health."""
    problems = []
    if record is not None and record.maintenance:
        problems.append("in maintenance")
    if record is not None and record.priority <= 0:
        problems.append("priority 0")
    return problems


def epoch_ahead(report: Report | None, committed_epoch: int) -> str | None:
    """A node that has seen an epoch above the committed one refuses every assignment at a lower epoch: it is
    never a candidate, and says so, until the leader commits an epoch above it (heal_epoch)."""
    if report is not None and report.highest_epoch > committed_epoch:
        return f"reports epoch {report.highest_epoch}, above the committed epoch {committed_epoch}"
    return None


def epochs_ahead_sentence(reported: Mapping[str, int], committed_epoch: int) -> str:
    """What `status`, `why` and the doctor say of the nodes that report an epoch above the committed one
    (`reported`: node -> its highest epoch); empty when none does."""
    ahead = sorted((n, e) for n, e in reported.items() if e > committed_epoch)
    if not ahead:
        return ""
    names = ", ".join(f"{n} reports epoch {e}" for n, e in ahead)
    return (
        f"{names}, above the committed epoch {committed_epoch}: no candidate, and refusing every assignment below "
        "it, until the leader commits an epoch above it."
    )


def reader_problems(
    name: str,
    report: Report | None,
    record: NodeRecord | None,
    memory: Memory,
    now: float,
    timing: Timing,
    committed_epoch: int | None = None,
) -> list[str]:
    """Why `name` cannot be promoted now; empty when it can."""
    problems = standing_problems(record)
    if not _fresh(report, now, timing):
        problems.append("not reporting")
        return problems
    assert report is not None
    ahead = epoch_ahead(report, committed_epoch) if committed_epoch is not None else None
    if ahead:
        problems.append(ahead)
    if report.mount_state != "healthy":
        problems.append(f"mount {report.mount_state}")
    if report.gpu_health == "failed":
        problems.append("GPU failed")
    if report.role_running != "ro":
        problems.append("not running healthy as ro")
    until = memory.failed_candidates.get(name)
    if until is not None and until > now:
        problems.append("its last promotion failed")
    return problems


def _rank(name: str, report: Report, record: NodeRecord | None) -> tuple[int, int, float, str]:
    priority = record.priority if record is not None else 1
    return (-priority, GPU_RANK.get(report.gpu_health, 2), -report.received_at, name)


def choose_candidate(
    durable: Durable,
    memory: Memory,
    reports: Mapping[str, Report],
    now: float,
    timing: Timing,
    exclude: str | None,
) -> tuple[str | None, dict[str, list[str]]]:
    """The best node to promote and, for every other node, why not."""
    names = sorted(set(reports) | set(durable.nodes))
    blocked: dict[str, list[str]] = {}
    eligible = []
    for name in names:
        if name == exclude:
            continue
        problems = reader_problems(
            name, reports.get(name), durable.nodes.get(name), memory, now, timing, durable.cluster.epoch
        )
        if problems:
            blocked[name] = problems
        else:
            eligible.append(name)
    if not eligible:
        return None, blocked
    best = min(eligible, key=lambda n: _rank(n, reports[n], durable.nodes.get(n)))
    return best, blocked


def _blocked_sentence(blocked: Mapping[str, list[str]]) -> str:
    if not blocked:
        return "no other node is known"
    return "; ".join(f"{name} {', '.join(problems)}" for name, problems in sorted(blocked.items()))


def initial_candidate(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float, timing: Timing
) -> tuple[str | None, dict[str, list[str]]]:
    """First start: the best healthy node (priority, then GPU health, then name); nobody runs Milvus yet."""
    blocked: dict[str, list[str]] = {}
    eligible = []
    for name in sorted(set(reports) | set(durable.nodes)):
        report, record = reports.get(name), durable.nodes.get(name)
        problems = standing_problems(record)
        if not _fresh(report, now, timing):
            problems.append("not reporting")
        elif report is not None:
            if ahead := epoch_ahead(report, durable.cluster.epoch):
                problems.append(ahead)
            if report.mount_state not in ("healthy", "unmounted"):
                problems.append(f"mount {report.mount_state}")
            if report.gpu_health == "failed":
                problems.append("GPU failed")
        if problems:
            blocked[name] = problems
        else:
            eligible.append(name)
    if not eligible:
        return None, blocked
    best = min(
        eligible,
        key=lambda n: (
            -(durable.nodes[n].priority if n in durable.nodes else 1),
            GPU_RANK.get(reports[n].gpu_health, 2),
            n,
        ),
    )
    return best, blocked


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
    events: list[Event] = []
    memory = _track_reader_health(durable, memory, reports, now, timing)
    change: ChangeWriter | None = None
    cluster = durable.cluster
    why = ""

    if not memory.settled:
        if now - memory.leader_since < timing.startup_wait_s:
            left = timing.startup_wait_s - (now - memory.leader_since)
            why = f"New leader: listening to reports for {left:.1f}s more before deciding anything."
            assignments = _assignments(durable, memory, reports, now, timing, leadership_left_s, None, previous)
            return Decision(memory, None, assignments, _discovery(durable, memory, reports, now, timing), (), why)
        memory = settle(durable, memory, reports, now)

    healed = heal_epoch(durable, memory, reports, now, timing)
    if healed is not None:
        memory, change, why = healed
    elif memory.transition is not None:
        memory, change, why, events = _advance(durable, memory, reports, now, timing, now_unix)
    elif cluster.writer is None:
        memory, change, why, events = _first_writer(durable, memory, reports, now, timing, now_unix)
    else:
        memory, change, why, events = _watch_writer(durable, memory, reports, now, timing, now_unix)

    memory, events = record_standing(memory, events, why, cluster.epoch, now, now_unix)
    discovery = _discovery(durable, memory, reports, now, timing)
    assignments = _with_discovery(
        _assignments(durable, memory, reports, now, timing, leadership_left_s, change, previous),
        discovery,
        durable,
        reports,
        previous,
    )
    return Decision(memory, change, assignments, discovery, tuple(events), why)


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


def heal_epoch(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float, timing: Timing
) -> tuple[Memory, ChangeWriter, str] | None:
    """Nodes that report an epoch above the committed one (a forged assignment, MySQL restored from an older
    backup) refuse everything at a lower epoch: before assigning anything, commit one above the highest any
    node reports. The writer stays, after a full lease: who else was told rw at those epochs is unknown, so
    only time proves that no other node writes (as a new leader resumes)."""
    t = memory.transition
    if t is not None and t.committed_at is None:
        return None  # a change of writer is being committed this tick
    ahead = {n: r.highest_epoch for n, r in reports.items() if r.highest_epoch > durable.cluster.epoch}
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
        phases=(("decide", now),),
        automatic=True,
        heals_from=durable.cluster.epoch,
    )
    return replace(memory, transition=heal), ChangeWriter(writer, durable.cluster.epoch, epoch), why


def _with_discovery(
    assignments: dict[str, Assignment],
    discovery: Discovery | None,
    durable: Durable,
    reports: Mapping[str, Report],
    previous: Mapping[str, Assignment] | None = None,
) -> dict[str, Assignment]:
    """Nodes that host Mishards are also told where Mishards must send requests."""
    if discovery is None:
        return assignments
    hosts = {n for n, r in reports.items() if r.hosts_mishards} | {
        n for n, r in durable.nodes.items() if r.hosts_mishards
    }
    for name in hosts:
        a = assignments.get(name)
        if a is None:
            continue
        told = replace(a, discovery=discovery)
        before = previous.get(name) if previous is not None else None
        assignments[name] = before if before == told else told
    return assignments


def committed(memory: Memory, epoch: int, now: float) -> Memory:
    """The loop committed the change of writer at `now`: the fence clock starts."""
    t = memory.transition
    if t is None or t.committed_at is not None:
        return memory
    return replace(memory, transition=replace(t, epoch=epoch, committed_at=now).with_phase("fence", now))


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
        committed_at=memory.leader_since,
        phases=(("fence", memory.leader_since),),
        automatic=False,
    )
    return replace(memory, transition=transition)


def _track_reader_health(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float, timing: Timing
) -> Memory:
    healthy: dict[str, float] = {}
    since = memory.healthy_since
    for name, report in reports.items():
        if (
            _fresh(report, now, timing)
            and report.role_running == "ro"
            and report.mount_state in ("healthy", "degraded")
            and report.gpu_health != "failed"
        ):
            healthy[name] = since.get(name, now)
    return replace(memory, healthy_since=healthy)


def _first_writer(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float, timing: Timing, now_unix: float
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    epoch = durable.cluster.epoch
    if durable.cluster.paused:
        why = f"No writer yet and the cluster is paused ({durable.cluster.paused_reason or 'no reason given'})."
        return memory, None, why, [_condition("failover-paused", why, None, epoch, now_unix)]
    waited = now - memory.leader_since
    if waited < timing.startup_wait_s:
        why = f"No writer yet: waiting {timing.startup_wait_s - waited:.1f}s more for nodes to report."
        return memory, None, why, []
    best, blocked = initial_candidate(durable, memory, reports, now, timing)
    if best is None:
        why = f"No writer yet and no node can be one: {_blocked_sentence(blocked)}."
        return memory, None, why, [_condition("no-first-writer", why, None, epoch, now_unix)]
    memory, change, _, _ = _begin(
        durable, memory, "initial", None, best, f"first writer: {best} is the best healthy node", now
    )
    return memory, change, f"Choosing {best} as the first writer.", []


def _condition(kind: str, why: str, node: str | None, epoch: int, now_unix: float) -> Event:
    """This tick's standing condition (record_standing records its beginning and its end only)."""
    return Event(kind=kind, reason=why.rstrip("."), node=node, epoch=epoch, at_unix=now_unix)


def _watch_writer(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float, timing: Timing, now_unix: float
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    cluster = durable.cluster
    writer = cluster.writer
    assert writer is not None
    report = reports.get(writer)
    record = durable.nodes.get(writer)

    # 1. Operator requests and maintenance come first; they are allowed while paused.
    if memory.request is not None:
        return _start_requested(durable, replace(memory, request=None), memory.request, reports, now, timing, now_unix)
    if record is not None and record.maintenance:
        abandoned_at = memory.drain_abandoned_at
        if abandoned_at is not None and now - abandoned_at < timing.drain_timeout_s:
            left = timing.drain_timeout_s - (now - abandoned_at)
            return (
                memory,
                None,
                f"Writer {writer} is in maintenance; its last drain failed {now - abandoned_at:.0f}s ago, so it "
                f"keeps writing; draining it again in {left:.0f}s.",
                [],
            )
        best, blocked = choose_candidate(durable, memory, reports, now, timing, exclude=writer)
        if best is None:
            why = f"Writer {writer} is in maintenance but no node can take over: {_blocked_sentence(blocked)}."
            return memory, None, why, [_condition("maintenance-blocked", why, writer, cluster.epoch, now_unix)]
        return _begin_switchover(
            durable, memory, reports, writer, best, f"{writer} went into maintenance", now, now_unix, timing, None
        )

    # 2. Is the writer failing? Each kind of fault has its grace: missing reports are already past
    #    detect_after_s; what its agent recovers in place gets recover_in_place_s; the rest fault_grace_s.
    faults: list[tuple[str, float]] = []
    if report is None or not _fresh(report, now, timing):
        if report is None and now - memory.leader_since < timing.detect_after_s:
            return memory, None, f"Writer {writer} at epoch {cluster.epoch}: waiting for its first report.", []
        age = "since this leader started" if report is None else f"for {now - report.received_at:.1f}s"
        witnesses = sorted(
            name
            for name, r in reports.items()
            if name != writer
            and _fresh(r, now, timing)
            and r.writer_seen_healthy_age_s is not None
            and r.writer_seen_healthy_age_s >= 0
            # when the witness last saw it healthy, on this clock: the report's age counts too
            and now - (r.received_at - r.writer_seen_healthy_age_s) <= timing.witness_fresh_s
        )
        if witnesses:
            memory = replace(memory, writer_fault_since=None)
            why = (
                f"Writer {writer} has not reported {age} but {', '.join(witnesses)} see its Milvus healthy: "
                "it is cut off from the coordinator only; no failover."
            )
            return memory, None, why, [_condition("writer-cut-off", why, writer, cluster.epoch, now_unix)]
        faults.append((f"it has not reported {age}", 0.0))
    else:
        faults += writer_faults(report, timing)
        shared = shared_meta_outage(writer, reports, now, timing) if faults else []
        if shared:
            memory = replace(memory, writer_fault_since=None)
            listed = "; ".join(f for f, _ in faults)
            why = (
                f"Writer {writer} is held ({listed}): the JuiceFS metadata engine is unreachable from every "
                f"node ({', '.join(shared)}), a fault no other node would escape; no failover."
            )
            return memory, None, why, [_condition("writer-held", why, writer, cluster.epoch, now_unix)]

    if not faults:
        memory = replace(memory, writer_fault_since=None)
        readers = len([n for n in memory.healthy_since if n != writer])
        return (
            memory,
            None,
            f"{writer} is the writer at epoch {cluster.epoch} and healthy; {readers} healthy readers.",
            [],
        )
    since = memory.writer_fault_since if memory.writer_fault_since is not None else now
    memory = replace(memory, writer_fault_since=since)
    grace = min(g for _, g in faults)
    if now - since < grace:
        listed = "; ".join(f for f, _ in faults)
        return (
            memory,
            None,
            (
                f"Writer {writer} looks unhealthy ({listed}); "
                + (
                    f"its node recovers it in place for {grace - (now - since):.1f}s more before a failover."
                    if grace >= timing.recover_in_place_s
                    else f"confirming for {grace - (now - since):.1f}s more before failing over."
                )
            ),
            [],
        )
    faults = [(f, g) for f, g in faults if now - since >= g]

    fault_text = "; ".join(f for f, _ in faults)
    if cluster.paused:
        why = (
            f"No failover: writer {writer} is failing ({fault_text}) "
            f"but the cluster is paused ({cluster.paused_reason or 'no reason given'})."
        )
        return memory, None, why, [_condition("failover-paused", why, writer, cluster.epoch, now_unix)]
    if memory.last_auto_failover_at is not None and now - memory.last_auto_failover_at < timing.failover_window_s:
        ago = now - memory.last_auto_failover_at
        why = (
            f"No failover: writer {writer} is failing ({fault_text}) but the last automatic failover "
            f"was {ago:.0f}s ago and at most one is allowed per {timing.failover_window_s:.0f}s."
        )
        return memory, None, why, [_condition("failover-window", why, writer, cluster.epoch, now_unix)]
    best, blocked = choose_candidate(durable, memory, reports, now, timing, exclude=writer)
    if best is None:
        event = Event(
            kind="no-candidate",
            reason=f"writer {writer} is failing ({fault_text}); no candidate: {_blocked_sentence(blocked)}",
            node=writer,
            epoch=cluster.epoch,
            at_unix=now_unix,
        )
        return (
            memory,
            None,
            f"No failover: writer {writer} is failing ({fault_text}) "
            f"but no node can take over: {_blocked_sentence(blocked)}.",
            [event],
        )
    memory = replace(memory, last_auto_failover_at=now, writer_fault_since=None)
    return _begin(durable, memory, "failover", writer, best, f"writer {writer} failed: {fault_text}", now)


def _begin(
    durable: Durable,
    memory: Memory,
    kind: str,
    old: str | None,
    new: str,
    reason: str,
    now: float,
    automatic: bool = True,
    forced: bool = False,
) -> tuple[Memory, ChangeWriter, str, list[Event]]:
    phases = (("detect", now), ("decide", now)) if kind == "failover" else (("decide", now),)
    t = Transition(
        kind=kind,
        old=old,
        new=new,
        epoch=durable.cluster.epoch + 1,
        reason=reason,
        started_at=now,
        phases=phases,
        automatic=automatic,
        forced=forced,
    )
    return (
        replace(memory, transition=t),
        ChangeWriter(new, durable.cluster.epoch),
        f"{kind.capitalize()} from {old} to {new}: {reason}.",
        [],
    )


def _begin_switchover(
    durable: Durable,
    memory: Memory,
    reports: Mapping[str, Report],
    old: str,
    new: str,
    reason: str,
    now: float,
    now_unix: float,
    timing: Timing,
    on_drain_timeout: str | None,
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    """A planned change of writer: drain the old writer first when it runs a rw container (nothing else holds
    what it acknowledged but has not flushed), else change at once."""
    report = reports.get(old)
    if report is None or report.container_role != "rw":
        return _begin(
            durable,
            memory,
            "switchover",
            old,
            new,
            reason + f" ({old} runs no rw Milvus to drain)",
            now,
            automatic=False,
        )
    t = Transition(
        kind="switchover",
        old=old,
        new=new,
        epoch=durable.cluster.epoch + 1,
        reason=reason,
        started_at=now,
        phases=(("drain", now),),
        automatic=False,
        drain_id=max(1, int(now_unix * 1000)),
        on_drain_timeout=on_drain_timeout or timing.drain_timeout_action,
    )
    return (
        replace(memory, transition=t),
        None,
        f"Switchover from {old} to {new}: {reason}; draining {old} first (a graceful stop, Milvus flushes its WAL; "
        f"at most {timing.drain_timeout_s:.0f}s, then {t.on_drain_timeout}).",
        [],
    )


def _drain(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float, timing: Timing, now_unix: float
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    """The drain phase: the old writer (still the durable writer, still holding its lease) stops its rw
    container gracefully and reports how the stop ended. Exit code 0 after SIGINT means Milvus flushed."""
    t = memory.transition
    assert t is not None and t.old is not None
    old = reports.get(t.old)
    waited = now - t.started_at
    limit = timing.drain_timeout_s
    if not _fresh(old, now, timing):
        failure = f"{t.old} stopped reporting while it drained"
        return _drain_failed(durable, memory, failure, now, now_unix)
    assert old is not None
    stop = old.last_writer_stop
    if (
        old.received_at > t.started_at
        and old.container_role == "none"
        and stop is not None
        and stop.drain_id == t.drain_id
    ):
        if stop.exit_code == 0:
            note = f"{t.old} drained in {stop.seconds:.1f}s (Milvus flushed and exited 0)"
            return _after_drain(durable, memory, reports, now, timing, now_unix, note)
        failure = f"{t.old}'s Milvus did not stop gracefully (exit code {stop.exit_code} after {stop.seconds:.1f}s" + (
            ", killed at drain_timeout_s)" if stop.seconds >= limit - 1 else ")"
        )
    elif waited > limit + timing.detect_after_s + timing.report_interval_s:
        failure = f"{t.old} did not finish draining within drain_timeout_s ({limit:.0f}s)"
    else:
        doing = (
            f"its Milvus has been stopping for {old.stopping_for_s:.1f}s"
            if old.stopping_for_s > 0
            else "asked to stop gracefully"
        )
        return (
            memory,
            None,
            f"Switchover from {t.old} to {t.new}: draining {t.old}, {doing} ({waited:.1f}s of {limit:.0f}s).",
            [],
        )
    if t.on_drain_timeout == "force":
        return _after_drain(durable, memory, reports, now, timing, now_unix, f"drain forced: {failure}")
    return _drain_failed(durable, memory, failure, now, now_unix)


def _drain_failed(
    durable: Durable, memory: Memory, failure: str, now: float, now_unix: float
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    """The switchover is abandoned: the old writer stays and restarts on its own WAL."""
    t = memory.transition
    assert t is not None
    memory = replace(memory, transition=None, drain_abandoned_at=now)
    sentence = (
        f"switchover from {t.old} to {t.new} abandoned: {failure}; {t.old} stays the writer at epoch "
        f"{durable.cluster.epoch} and restarts on its own WAL (nothing it acknowledged is lost)"
    )
    event = Event(
        kind="switchover-abandoned", reason=sentence, node=t.old, epoch=durable.cluster.epoch, at_unix=now_unix
    )
    return memory, None, sentence[0].upper() + sentence[1:] + ".", [event]


def _after_drain(
    durable: Durable,
    memory: Memory,
    reports: Mapping[str, Report],
    now: float,
    timing: Timing,
    now_unix: float,
    note: str,
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    """The old writer runs no Milvus: commit the change, to the chosen node or, if it can no longer be the
    writer, the best other one; with none, the switchover is abandoned and the old writer restarts."""
    t = memory.transition
    assert t is not None and t.old is not None
    new = t.new
    if reader_problems(new, reports.get(new), durable.nodes.get(new), memory, now, timing, durable.cluster.epoch):
        best, blocked = choose_candidate(durable, memory, reports, now, timing, exclude=t.old)
        if best is None:
            failure = f"{note}, but no node can take over now: {_blocked_sentence(blocked)}"
            return _drain_failed(durable, memory, failure, now, now_unix)
        note += f"; {new} can no longer take over, so {best} does"
        new = best
    t = replace(t, new=new, drain_note=note).with_phase("decide", now)
    return (
        replace(memory, transition=t),
        ChangeWriter(new, durable.cluster.epoch),
        f"Switchover from {t.old} to {new}: {note}; committing epoch {t.epoch}.",
        [],
    )


def validate_request(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], request: Request, now: float, timing: Timing
) -> str | None:
    """Why an operator's switchover or failover must be refused now, or None."""
    writer = durable.cluster.writer
    if memory.transition is not None:
        t = memory.transition
        return f"a {t.kind} to {t.new} is in progress (phase {t.phase()})"
    if request.to is not None and request.to not in reports and request.to not in durable.nodes:
        return f"{request.to} is not a known node"
    if request.to is not None and request.to == writer:
        return f"{request.to} is already the writer"
    if request.kind == "switchover":
        if writer is None:
            return "there is no writer to switch over from"
        if request.to is not None:
            problems = reader_problems(
                request.to,
                reports.get(request.to),
                durable.nodes.get(request.to),
                memory,
                now,
                timing,
                durable.cluster.epoch,
            )
            if problems:
                return f"{request.to} cannot be the writer: {', '.join(problems)}"
        else:
            best, blocked = choose_candidate(durable, memory, reports, now, timing, exclude=writer)
            if best is None:
                return f"no node can take over: {_blocked_sentence(blocked)}"
    else:
        if request.to is None:
            return "a failover needs --to NODE"
        record = durable.nodes.get(request.to)
        if record is not None and record.maintenance:
            return f"{request.to} is in maintenance"
        report = reports.get(request.to)
        if not _fresh(report, now, timing):
            return f"{request.to} is not reporting"
        ahead = epoch_ahead(report, durable.cluster.epoch)
        if ahead:
            return f"{request.to} {ahead}"
    return None


# A node is forgotten only once it has been silent this many report intervals (and detect_after_s at least).
FORGET_SILENT_REPORTS = 5


def forget_silence_s(timing: Timing) -> float:
    """How long a node must have sent no report before it may be forgotten."""
    return max(timing.detect_after_s, FORGET_SILENT_REPORTS * timing.report_interval_s)


def forget_refusal(
    durable: Durable,
    memory: Memory,
    reports: Mapping[str, Report],
    node: str,
    now: float,
    timing: Timing,
    pending: Request | None = None,
) -> str | None:
    """Why a known node must not be forgotten now (one line), or None: it is the writer, part of a role change
    in progress or asked for, or still reporting (or this leader is too new to know whether it does)."""
    if node == durable.cluster.writer:
        return f"{node} is the writer at epoch {durable.cluster.epoch}; switch or fail over to another node first"
    t = memory.transition
    if t is not None and node in (t.new, t.old):
        return f"{node} takes part in the {t.kind} to {t.new} in progress (phase {t.phase()}); wait for it to end"
    for request in (memory.request, pending):
        if request is not None and request.to == node:
            return f"a {request.kind} to {node} is asked for; wait for it to end"
    silence_s = forget_silence_s(timing)
    report = reports.get(node)
    if report is not None and (since := now - report.received_at) < silence_s:
        return (
            f"{node} still reports (last {since:.1f}s ago); a node is forgotten only after {silence_s:g}s "
            "without a report: stop its agent first"
        )
    if report is None and (led := now - memory.leader_since) < silence_s:
        return (
            f"this coordinator has led for only {led:.1f}s and cannot tell yet whether {node} reports; "
            f"try again in {silence_s - led:.1f}s"
        )
    return None


def without_node(memory: Memory, node: str) -> Memory:
    """The leader's memory with nothing left of a forgotten node: if it comes back, it starts as a new one."""
    return replace(
        memory,
        healthy_since={n: t for n, t in memory.healthy_since.items() if n != node},
        failed_candidates={n: t for n, t in memory.failed_candidates.items() if n != node},
    )


def _start_requested(
    durable: Durable,
    memory: Memory,
    request: Request,
    reports: Mapping[str, Report],
    now: float,
    timing: Timing,
    now_unix: float,
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    refusal = validate_request(durable, memory, reports, request, now, timing)
    writer = durable.cluster.writer
    if refusal:
        event = Event(
            kind="refused",
            reason=f"{request.kind} refused: {refusal}",
            node=request.to,
            epoch=durable.cluster.epoch,
            at_unix=now_unix,
        )
        return memory, None, f"{request.kind.capitalize()} refused: {refusal}.", [event]
    target = request.to
    if target is None:
        target, _ = choose_candidate(durable, memory, reports, now, timing, exclude=writer)
        assert target is not None
    reason = with_asker(request.reason or f"operator asked for a {request.kind}", request.by)
    if request.kind == "switchover" and writer is not None and not request.force:
        return _begin_switchover(
            durable, memory, reports, writer, target, reason, now, now_unix, timing, request.on_drain_timeout
        )
    return _begin(durable, memory, request.kind, writer, target, reason, now, automatic=False, forced=request.force)


def _advance(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float, timing: Timing, now_unix: float
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    t = memory.transition
    assert t is not None
    if t.phase() == "drain":
        return _drain(durable, memory, reports, now, timing, now_unix)
    if t.committed_at is None:
        change = ChangeWriter(t.new, t.heals_from, t.epoch) if t.heals_from else ChangeWriter(t.new, t.epoch - 1)
        return (
            memory,
            change,
            f"{t.kind.capitalize()} to {t.new}: committing epoch {t.epoch}.",
            [],
        )
    new_report = reports.get(t.new)

    if t.promoted_at is None:
        fenced, how = _fence_state(t, reports, now, timing)
        if not fenced:
            return memory, None, f"{t.kind.capitalize()} to {t.new} at epoch {t.epoch}: fencing, {how}.", []
        t = replace(t, promoted_at=now).with_phase("promote", now)
        return (
            replace(memory, transition=t),
            None,
            f"{t.kind.capitalize()} to {t.new} at epoch {t.epoch}: {how}; promoting.",
            [],
        )

    if t.phase() == "promote":
        if (
            new_report is not None
            and new_report.role_running == "rw"
            and new_report.highest_epoch >= t.epoch
            and new_report.received_at >= t.promoted_at
        ):
            t = t.with_phase("healthy", now)
            memory = replace(memory, transition=t)
        elif now - t.promoted_at > timing.promote_timeout_s:
            return _promotion_failed(durable, memory, t, reports, now, timing, now_unix)
        elif (silent_s := now - _last_heard(new_report, t)) > timing.detect_after_s:
            # A node that stops reporting while it is promoted (a resumed writer that was powered off with the
            # old leader, say) is as failed as a writer that stops reporting: no need to wait the whole timeout.
            silent = f"{t.new} has not reported for {silent_s:.1f}s while being promoted"
            return _promotion_failed(durable, memory, t, reports, now, timing, now_unix, silent)
        else:
            return (
                memory,
                None,
                f"{t.kind.capitalize()} to {t.new} at epoch {t.epoch}: waiting for it to run rw healthy.",
                [],
            )

    hosts = [r for r in reports.values() if r.hosts_mishards and _fresh(r, now, timing)]
    woserver = _woserver(durable, reports)
    pending = [r.node for r in hosts if woserver and r.mishards_writer != woserver]
    if pending and now - t.promoted_at <= timing.promote_timeout_s:
        return (
            memory,
            None,
            f"{t.kind.capitalize()} to {t.new}: waiting for Mishards on {', '.join(sorted(pending))} to follow.",
            [],
        )
    t = t.with_phase("mishards", now)
    done = Event(
        kind=t.kind,
        reason=t.reason
        + (f" ({t.drain_note})" if t.drain_note else "")
        + (" (forced: the old writer was not proven fenced)" if t.forced else ""),
        node=t.new,
        epoch=t.epoch,
        phases=tuple((name, now_unix - (now - at)) for name, at in t.phases),
        at_unix=now_unix,
    )
    return (
        replace(memory, transition=None),
        None,
        f"{t.new} is the writer at epoch {t.epoch}; the {t.kind} is done.",
        [done],
    )


def _fence_state(t: Transition, reports: Mapping[str, Report], now: float, timing: Timing) -> tuple[bool, str]:
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
    lease_end = max(_lease_ends_by(name, r, t, timing) for name, r in unacked.items()) + timing.fence_margin_s
    names = ", ".join(sorted(unacked))
    if now >= lease_end:
        return True, f"the lease of {names} ran out"
    return False, f"waiting for {names} to stop or for its lease to end in {lease_end - now:.1f}s"


def _lease_ends_by(name: str, report: Report | None, t: Transition, timing: Timing) -> float:
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


def _last_heard(report: Report | None, t: Transition) -> float:
    """When this leader last heard from the node being promoted, counting from the transition's start."""
    return max(report.received_at, t.started_at) if report is not None else t.started_at


def _promotion_failed(
    durable: Durable,
    memory: Memory,
    t: Transition,
    reports: Mapping[str, Report],
    now: float,
    timing: Timing,
    now_unix: float,
    why: str = "",
) -> tuple[Memory, ChangeWriter | None, str, list[Event]]:
    failed = dict(memory.failed_candidates)
    failed[t.new] = now + timing.failover_window_s
    memory = replace(memory, transition=None, failed_candidates=failed)
    event = Event(
        kind="promote-failed",
        reason=why or f"{t.new} did not run rw healthy within {timing.promote_timeout_s:.0f}s",
        node=t.new,
        epoch=t.epoch,
        at_unix=now_unix,
    )
    best, blocked = choose_candidate(durable, memory, reports, now, timing, exclude=t.new)
    if best is None:
        return (
            memory,
            None,
            f"Promotion of {t.new} failed and no other node can take over: {_blocked_sentence(blocked)}.",
            [event],
        )
    memory, change, why, _ = _begin(durable, memory, "failover", t.new, best, f"promotion of {t.new} failed", now)
    return memory, change, why, [event]


# -- what each node is told -----------------------------------------------------------------------------
def node_endpoint(durable: Durable, reports: Mapping[str, Report], node: str | None) -> tuple[str, int] | None:
    """Where a node's Milvus answers: the address and port of its latest report, else its MySQL row's address
    and the default port; None when neither knows it. The one lookup of a node's (and the writer's) address."""
    if not node:
        return None
    report = reports.get(node)
    record = durable.nodes.get(node)
    address = report.address if report else (record.address if record else "")
    if not address:
        return None
    return address, (report.milvus_port if report else MILVUS_PORT)


def lease_to_grant_ms(lease_s: float, leadership_left_s: float, timing: Timing) -> int:
    """The one lease rule of the coordinator: never longer than what is left of its own leadership, and none at
    all below `min_lease_s` (a lease that short would only make the writer fence itself)."""
    granted = min(lease_s, leadership_left_s)
    return int(granted * 1000) if granted >= timing.min_lease_s else 0


def writer_endpoint(durable: Durable, reports: Mapping[str, Report]) -> tuple[str, int] | None:
    return node_endpoint(durable, reports, durable.cluster.writer)


def _woserver(durable: Durable, reports: Mapping[str, Report]) -> str:
    found = writer_endpoint(durable, reports)
    return f"tcp://{found[0]}:{found[1]}" if found else ""


def _discovery(
    durable: Durable, memory: Memory, reports: Mapping[str, Report], now: float, timing: Timing
) -> Discovery | None:
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


def _writer_may_hold_lease(durable: Durable, memory: Memory, report: Report | None) -> bool:
    """The durable writer may be granted rw: once fenced and promoted, or (before this leader has settled)
    when it already runs rw at the durable epoch, which means an earlier leader fenced and promoted it."""
    t = memory.transition
    if t is not None:
        if t.phase() == "drain":  # the old writer keeps its lease while it stops gracefully
            return t.old == durable.cluster.writer
        return t.new == durable.cluster.writer and t.promoted_at is not None
    if memory.settled:
        return True
    return report is not None and report.role_running == "rw" and report.highest_epoch == durable.cluster.epoch


def _assignments(
    durable: Durable,
    memory: Memory,
    reports: Mapping[str, Report],
    now: float,
    timing: Timing,
    leadership_left_s: float,
    change: ChangeWriter | None,
    previous: Mapping[str, Assignment] | None = None,
) -> dict[str, Assignment]:
    cluster = durable.cluster
    t = memory.transition
    writer = cluster.writer
    wreport = reports.get(writer) if writer else None
    writer_address = wreport.address if wreport else ""
    writer_http = wreport.milvus_http_port if wreport else 0
    lease_ms = lease_to_grant_ms(timing.lease_s, leadership_left_s, timing)
    row_lease_ms = int(timing.row_lease_s * 1000)  # at most lease_s (config); the agent caps it at its lease
    epoch = cluster.epoch
    reader_reason = f"a reader at epoch {epoch}"
    out: dict[str, Assignment] = {}
    before = previous if previous is not None else {}
    # This runs for every node on every tick: an Assignment (a frozen dataclass, ~3 us to build) is built only
    # when a node's differs from the one it had; otherwise the node keeps that same object.
    for name in sorted(set(reports) | set(durable.nodes)):
        record = durable.nodes.get(name)
        role, lease, row_lease, reason = "ro", 0, 0, reader_reason
        drain_id, drain_ms = 0, 0
        if record is not None and record.maintenance and name != writer:
            role, reason = "none", "in maintenance"
        elif name == writer and change is None and _writer_may_hold_lease(durable, memory, reports.get(name)):
            if lease_ms:
                role, lease, row_lease, reason = "rw", lease_ms, row_lease_ms, f"the writer at epoch {epoch}"
            else:
                role, reason = "rw", "the writer; no lease while this leader's own is short"
            if t is not None and t.phase() == "drain":
                drain_id, drain_ms = t.drain_id, int(timing.drain_timeout_s * 1000)
                reason = f"the writer at epoch {epoch}, draining: stop gracefully, {t.new} takes over"
        elif name == writer and t is None:
            # Before this leader settles: still the writer, but no lease from us yet (lease_ms 0 renews nothing).
            role, reason = "rw", "the writer; this new leader renews no lease until it settles"
        elif name == writer:
            reason = f"to be the writer once the old one is fenced (epoch {epoch})"
        elif t is not None and name == t.old:
            reason = f"demoted: {t.new} takes over at epoch {t.epoch}"
        had = before.get(name)
        told = (role, epoch, lease, writer, writer_address, writer_http, reason, row_lease, drain_id, drain_ms)
        if had is not None and had.discovery is None and _told(had) == told:
            out[name] = had
        else:
            out[name] = Assignment(
                name,
                role,
                epoch,
                lease,
                writer,
                writer_address,
                writer_http,
                None,
                reason,
                row_lease,
                drain_id,
                drain_ms,
            )
    return out


def _told(a: Assignment) -> tuple[object, ...]:
    """Every field of an assignment but its node and discovery, in _assignments' order (a test checks that
    no field is missing: a field left out here would let a changed assignment pass for the old one)."""
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
