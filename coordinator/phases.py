"""A role change (initial pick, failover, switchover, resume) is a `Transition` that moves through phases, one
function per phase (`STEPS`): each tick, `advance` calls the current phase's function, which says what to do and
whether the change moves on. The phases list is the one record of where a change is and since when.

| phase    | begins when                                    | the new writer is told |
|----------|------------------------------------------------|------------------------|
| detect   | (a failover) the writer's fault is confirmed   | nothing yet            |
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

The phase names are what MySQL's events and `coordinatorctl history` show: they never change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from coordinator.candidates import blocked_sentence, choose_candidate
from coordinator.endpoints import woserver
from coordinator.faults import fresh, reader_problems
from coordinator.fence import fence_state
from coordinator.model import Event, Report

if TYPE_CHECKING:
    from coordinator.core import Memory, Tick


class Phase(StrEnum):
    DETECT = "detect"
    DRAIN = "drain"
    DECIDE = "decide"
    FENCE = "fence"
    PROMOTE = "promote"
    HEALTHY = "healthy"
    MISHARDS = "mishards"


@dataclass(frozen=True)
class Transition:
    kind: str  # initial | failover | switchover | resume
    old: str | None
    new: str
    epoch: int  # the epoch of the change (durable once committed)
    reason: str
    started_at: float
    phases: tuple[tuple[Phase, float], ...] = ()  # each phase and when it began (monotonic), in order
    forced: bool = False
    automatic: bool = True
    drain_id: int = 0  # the drain asked of the old writer (phase drain); 0: none
    on_drain_timeout: str = "abandon"
    drain_note: str = ""  # how the drain ended, for the event
    heals_from: int = 0  # a resume that heals the epoch: the committed epoch it raises (core.heal_epoch)

    def phase(self) -> Phase:
        return self.phases[-1][0] if self.phases else Phase.DECIDE

    def began(self, phase: Phase) -> float | None:
        """When `phase` began; None when the change has not reached it."""
        return next((at for name, at in self.phases if name == phase), None)

    @property
    def committed_at(self) -> float | None:
        """When the new epoch was committed (the fence began): the fence clock starts there."""
        return self.began(Phase.FENCE)

    @property
    def promoted_at(self) -> float | None:
        return self.began(Phase.PROMOTE)

    def with_phase(self, phase: Phase, now: float) -> Transition:
        return replace(self, phases=(*self.phases, (phase, now)))


@dataclass(frozen=True)
class ChangeWriter:
    """The durable write the loop must commit first: epoch = expected_epoch + 1, writer = new_writer."""

    new_writer: str | None
    expected_epoch: int
    epoch: int = 0  # the epoch to commit; 0: expected_epoch + 1 (heal_epoch commits one above every report)


if TYPE_CHECKING:
    # What a rule decides this tick: the leader's memory, the durable change to commit first, the sentence and
    # the events to record.
    Outcome = tuple[Memory, ChangeWriter | None, str, list[Event]]


# -- beginning a change ---------------------------------------------------------------------------------
def begin(
    tick: Tick,
    memory: Memory,
    kind: str,
    old: str | None,
    new: str,
    reason: str,
    automatic: bool = True,
    forced: bool = False,
) -> Outcome:
    """A change of writer, decided now: epoch+1 is committed first."""
    durable, now = tick.durable, tick.now
    phases = ((Phase.DETECT, now), (Phase.DECIDE, now)) if kind == "failover" else ((Phase.DECIDE, now),)
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


def begin_switchover(
    tick: Tick, memory: Memory, old: str, new: str, reason: str, on_drain_timeout: str | None
) -> Outcome:
    """A planned change of writer: drain the old writer first when it runs a rw container (nothing else holds
    what it acknowledged but has not flushed), else change at once."""
    durable, now, timing = tick.durable, tick.now, tick.timing
    report = tick.reports.get(old)
    if report is None or report.container_role != "rw":
        reason += f" ({old} runs no rw Milvus to drain)"
        return begin(tick, memory, "switchover", old, new, reason, automatic=False)
    t = Transition(
        kind="switchover",
        old=old,
        new=new,
        epoch=durable.cluster.epoch + 1,
        reason=reason,
        started_at=now,
        phases=((Phase.DRAIN, now),),
        automatic=False,
        drain_id=max(1, int(tick.now_unix * 1000)),
        on_drain_timeout=on_drain_timeout or timing.drain_timeout_action,
    )
    return (
        replace(memory, transition=t),
        None,
        f"Switchover from {old} to {new}: {reason}; draining {old} first (a graceful stop, Milvus flushes its WAL; "
        f"at most {timing.drain_timeout_s:.0f}s, then {t.on_drain_timeout}).",
        [],
    )


# -- one function per phase -----------------------------------------------------------------------------
def advance(tick: Tick, memory: Memory) -> Outcome:
    """The change in progress, one tick on: its current phase's function decides."""
    t = memory.transition
    assert t is not None
    return STEPS[t.phase()](tick, memory, t)


def _drain(tick: Tick, memory: Memory, t: Transition) -> Outcome:
    """The old writer (still the durable writer, still holding its lease) stops its rw container gracefully and
    reports how the stop ended. Exit code 0 after SIGINT means Milvus flushed."""
    assert t.old is not None
    old = tick.reports.get(t.old)
    waited = tick.now - t.started_at
    limit = tick.timing.drain_timeout_s
    if not fresh(old, tick.now, tick.timing):
        return _drain_failed(tick, memory, f"{t.old} stopped reporting while it drained")
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
            return _after_drain(tick, memory, note)
        failure = f"{t.old}'s Milvus did not stop gracefully (exit code {stop.exit_code} after {stop.seconds:.1f}s" + (
            ", killed at drain_timeout_s)" if stop.seconds >= limit - 1 else ")"
        )
    elif waited > limit + tick.timing.detect_after_s + tick.timing.report_interval_s:
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
        return _after_drain(tick, memory, f"drain forced: {failure}")
    return _drain_failed(tick, memory, failure)


def _drain_failed(tick: Tick, memory: Memory, failure: str) -> Outcome:
    """The switchover is abandoned: the old writer stays and restarts on its own WAL."""
    t = memory.transition
    assert t is not None
    epoch = tick.durable.cluster.epoch
    memory = replace(memory, transition=None, drain_abandoned_at=tick.now)
    sentence = (
        f"switchover from {t.old} to {t.new} abandoned: {failure}; {t.old} stays the writer at epoch "
        f"{epoch} and restarts on its own WAL (nothing it acknowledged is lost)"
    )
    event = Event(kind="switchover-abandoned", reason=sentence, node=t.old, epoch=epoch, at_unix=tick.now_unix)
    return memory, None, sentence[0].upper() + sentence[1:] + ".", [event]


def _after_drain(tick: Tick, memory: Memory, note: str) -> Outcome:
    """The old writer runs no Milvus: commit the change, to the chosen node or, if it can no longer be the
    writer, the best other one; with none, the switchover is abandoned and the old writer restarts."""
    t = memory.transition
    assert t is not None and t.old is not None
    durable, reports, now, timing = tick.durable, tick.reports, tick.now, tick.timing
    new = t.new
    if reader_problems(new, reports.get(new), durable.nodes.get(new), memory, now, timing, durable.cluster.epoch):
        best, blocked = choose_candidate(durable, memory, reports, now, timing, exclude=t.old)
        if best is None:
            return _drain_failed(tick, memory, f"{note}, but no node can take over now: {blocked_sentence(blocked)}")
        note += f"; {new} can no longer take over, so {best} does"
        new = best
    t = replace(t, new=new, drain_note=note).with_phase(Phase.DECIDE, now)
    return (
        replace(memory, transition=t),
        ChangeWriter(new, durable.cluster.epoch),
        f"Switchover from {t.old} to {new}: {note}; committing epoch {t.epoch}.",
        [],
    )


def _decide(tick: Tick, memory: Memory, t: Transition) -> Outcome:
    """Decided, not yet committed: the loop commits the new epoch (core.committed then begins the fence)."""
    change = ChangeWriter(t.new, t.heals_from, t.epoch) if t.heals_from else ChangeWriter(t.new, t.epoch - 1)
    return memory, change, f"{t.kind.capitalize()} to {t.new}: committing epoch {t.epoch}.", []


def _fence(tick: Tick, memory: Memory, t: Transition) -> Outcome:
    """Committed: the new writer is told rw once every other writer is fenced (coordinator.fence)."""
    fenced, how = fence_state(t, tick.reports, tick.now, tick.timing)
    if not fenced:
        return memory, None, f"{t.kind.capitalize()} to {t.new} at epoch {t.epoch}: fencing, {how}.", []
    t = t.with_phase(Phase.PROMOTE, tick.now)
    why = f"{t.kind.capitalize()} to {t.new} at epoch {t.epoch}: {how}; promoting."
    return replace(memory, transition=t), None, why, []


def _promote(tick: Tick, memory: Memory, t: Transition) -> Outcome:
    """Told rw: the new writer must report rw at the new epoch within promote_timeout_s."""
    promoted_at = t.promoted_at
    assert promoted_at is not None
    now, timing = tick.now, tick.timing
    report = tick.reports.get(t.new)
    if (
        report is not None
        and report.role_running == "rw"
        and report.highest_epoch >= t.epoch
        and report.received_at >= promoted_at
    ):
        t = t.with_phase(Phase.HEALTHY, now)
        return _healthy(tick, replace(memory, transition=t), t)
    if now - promoted_at > timing.promote_timeout_s:
        return _promotion_failed(tick, memory, t)
    if (silent_s := now - _last_heard(report, t)) > timing.detect_after_s:
        # A node that stops reporting while it is promoted (a resumed writer that was powered off with the
        # old leader, say) is as failed as a writer that stops reporting: no need to wait the whole timeout.
        return _promotion_failed(tick, memory, t, f"{t.new} has not reported for {silent_s:.1f}s while being promoted")
    return memory, None, f"{t.kind.capitalize()} to {t.new} at epoch {t.epoch}: waiting for it to run rw healthy.", []


def _healthy(tick: Tick, memory: Memory, t: Transition) -> Outcome:
    """The new writer runs rw: the change is done once every Mishards host follows it (or promote_timeout_s)."""
    promoted_at = t.promoted_at
    assert promoted_at is not None
    now = tick.now
    hosts = [r for r in tick.reports.values() if r.hosts_mishards and fresh(r, now, tick.timing)]
    address = woserver(tick.durable, tick.reports)
    pending = [r.node for r in hosts if address and r.mishards_writer != address]
    if pending and now - promoted_at <= tick.timing.promote_timeout_s:
        why = f"{t.kind.capitalize()} to {t.new}: waiting for Mishards on {', '.join(sorted(pending))} to follow."
        return memory, None, why, []
    done = finished_event(t.with_phase(Phase.MISHARDS, now), now, tick.now_unix)
    why = f"{t.new} is the writer at epoch {t.epoch}; the {t.kind} is done."
    return replace(memory, transition=None), None, why, [done]


STEPS: dict[Phase, Callable[[Tick, Memory, Transition], Outcome]] = {
    Phase.DRAIN: _drain,
    Phase.DECIDE: _decide,
    Phase.FENCE: _fence,
    Phase.PROMOTE: _promote,
    Phase.HEALTHY: _healthy,
}


def _last_heard(report: Report | None, t: Transition) -> float:
    """When this leader last heard from the node being promoted, counting from the transition's start."""
    return max(report.received_at, t.started_at) if report is not None else t.started_at


def _promotion_failed(tick: Tick, memory: Memory, t: Transition, why: str = "") -> Outcome:
    """The new writer did not run rw: it is no candidate for failover_window_s, and the best other node takes over."""
    timing = tick.timing
    failed = dict(memory.failed_candidates)
    failed[t.new] = tick.now + timing.failover_window_s
    memory = replace(memory, transition=None, failed_candidates=failed)
    event = Event(
        kind="promote-failed",
        reason=why or f"{t.new} did not run rw healthy within {timing.promote_timeout_s:.0f}s",
        node=t.new,
        epoch=t.epoch,
        at_unix=tick.now_unix,
    )
    best, blocked = choose_candidate(tick.durable, memory, tick.reports, tick.now, timing, exclude=t.new)
    if best is None:
        why = f"Promotion of {t.new} failed and no other node can take over: {blocked_sentence(blocked)}."
        return memory, None, why, [event]
    memory, change, why, _ = begin(tick, memory, "failover", t.new, best, f"promotion of {t.new} failed")
    return memory, change, why, [event]


# -- the event that records a change --------------------------------------------------------------------
def _wall_phases(t: Transition, now: float, now_unix: float) -> tuple[tuple[str, float], ...]:
    return tuple((str(name), now_unix - (now - at)) for name, at in t.phases)


def progress_event(t: Transition | None, now: float, now_unix: float) -> Event | None:
    """The event that records a committed change in progress, its phases so far (the loop adds it once and
    updates it as phases go by); None before the commit, or with no change in progress."""
    if t is None or t.committed_at is None:
        return None
    return Event(
        kind=t.kind, reason=t.reason, node=t.new, epoch=t.epoch, phases=_wall_phases(t, now, now_unix), at_unix=now_unix
    )


def finished_event(t: Transition, now: float, now_unix: float) -> Event:
    """The event that records a finished change: every phase, how a drain ended, whether the fence was forced."""
    reason = (
        t.reason
        + (f" ({t.drain_note})" if t.drain_note else "")
        + (" (forced: the old writer was not proven fenced)" if t.forced else "")
    )
    return Event(
        kind=t.kind, reason=reason, node=t.new, epoch=t.epoch, phases=_wall_phases(t, now, now_unix), at_unix=now_unix
    )
