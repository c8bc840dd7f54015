"""What starts a change of writer while none is in progress: the first writer, an operator's request, the
writer's maintenance, a failing writer (each kind of fault after its grace, unless a standing condition holds
the failover back)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from coordinator.candidates import blocked_sentence, choose_candidate
from coordinator.faults import cut_off_witnesses, fresh, shared_meta_outage, writer_faults
from coordinator.model import Event
from coordinator.phases import begin, begin_switchover
from coordinator.requests import start_requested
from coordinator.standing import condition

if TYPE_CHECKING:
    from coordinator.core import Memory, Tick
    from coordinator.phases import Outcome


def first_writer(tick: Tick, memory: Memory) -> Outcome:
    """No writer yet: once the leader has listened for startup_wait_s, the best healthy node (unless paused)."""
    durable, now, timing = tick.durable, tick.now, tick.timing
    epoch = durable.cluster.epoch
    if durable.cluster.paused:
        why = f"No writer yet and the cluster is paused ({durable.cluster.paused_reason or 'no reason given'})."
        return memory, None, why, [condition("failover-paused", why, None, epoch, tick.now_unix)]
    waited = now - memory.leader_since
    if waited < timing.startup_wait_s:
        why = f"No writer yet: waiting {timing.startup_wait_s - waited:.1f}s more for nodes to report."
        return memory, None, why, []
    best, blocked = choose_candidate(durable, memory, tick.reports, now, timing, first=True)
    if best is None:
        why = f"No writer yet and no node can be one: {blocked_sentence(blocked)}."
        return memory, None, why, [condition("no-first-writer", why, None, epoch, tick.now_unix)]
    memory, change, _, _ = begin(tick, memory, "initial", None, best, f"first writer: {best} is the best healthy node")
    return memory, change, f"Choosing {best} as the first writer.", []


def watch_writer(tick: Tick, memory: Memory) -> Outcome:
    """Operator requests and maintenance come first (they are allowed while paused); then the writer's health."""
    writer = tick.durable.cluster.writer
    assert writer is not None
    record = tick.durable.nodes.get(writer)
    if memory.request is not None:
        return start_requested(tick, replace(memory, request=None), memory.request)
    if record is not None and record.maintenance:
        return _maintenance(tick, memory, writer)
    held, faults = _writer_faults(tick, memory, writer)
    if held is not None:
        return held
    if not faults:
        memory = replace(memory, writer_fault_since=None)
        readers = len([n for n in memory.healthy_since if n != writer])
        why = f"{writer} is the writer at epoch {tick.durable.cluster.epoch} and healthy; {readers} healthy readers."
        return memory, None, why, []
    return _failing(tick, memory, writer, faults)


def _maintenance(tick: Tick, memory: Memory, writer: str) -> Outcome:
    """The writer is in maintenance: switch over to the best other node (unless its last drain just failed)."""
    now, timing = tick.now, tick.timing
    abandoned_at = memory.drain_abandoned_at
    if abandoned_at is not None and now - abandoned_at < timing.drain_timeout_s:
        left = timing.drain_timeout_s - (now - abandoned_at)
        why = (
            f"Writer {writer} is in maintenance; its last drain failed {now - abandoned_at:.0f}s ago, so it "
            f"keeps writing; draining it again in {left:.0f}s."
        )
        return memory, None, why, []
    best, blocked = choose_candidate(tick.durable, memory, tick.reports, now, timing, exclude=writer)
    if best is None:
        why = f"Writer {writer} is in maintenance but no node can take over: {blocked_sentence(blocked)}."
        blocked_event = condition("maintenance-blocked", why, writer, tick.durable.cluster.epoch, tick.now_unix)
        return memory, None, why, [blocked_event]
    return begin_switchover(tick, memory, writer, best, f"{writer} went into maintenance", None)


def _writer_faults(tick: Tick, memory: Memory, writer: str) -> tuple[Outcome | None, list[tuple[str, float]]]:
    """The writer's faults, each with its grace: missing reports are already past detect_after_s; what its agent
    recovers in place gets recover_in_place_s; the rest fault_grace_s. Or, instead, what holds them back (a
    writer not heard from yet, cut off from the coordinator only, or held by a fault every node shares)."""
    reports, now, timing = tick.reports, tick.now, tick.timing
    epoch = tick.durable.cluster.epoch
    report = reports.get(writer)
    if report is None or not fresh(report, now, timing):
        if report is None and now - memory.leader_since < timing.detect_after_s:
            return (memory, None, f"Writer {writer} at epoch {epoch}: waiting for its first report.", []), []
        age = "since this leader started" if report is None else f"for {now - report.received_at:.1f}s"
        witnesses = cut_off_witnesses(writer, reports, now, timing)
        if witnesses:
            why = (
                f"Writer {writer} has not reported {age} but {', '.join(witnesses)} see its Milvus healthy: "
                "it is cut off from the coordinator only; no failover."
            )
            cut_off = condition("writer-cut-off", why, writer, epoch, tick.now_unix)
            return (replace(memory, writer_fault_since=None), None, why, [cut_off]), []
        return None, [(f"it has not reported {age}", 0.0)]
    faults = writer_faults(report, timing)
    shared = shared_meta_outage(writer, reports, now, timing) if faults else []
    if shared:
        listed = "; ".join(f for f, _ in faults)
        why = (
            f"Writer {writer} is held ({listed}): the JuiceFS metadata engine is unreachable from every "
            f"node ({', '.join(shared)}), a fault no other node would escape; no failover."
        )
        held = condition("writer-held", why, writer, epoch, tick.now_unix)
        return (replace(memory, writer_fault_since=None), None, why, [held]), []
    return None, faults


def _failing(tick: Tick, memory: Memory, writer: str, faults: list[tuple[str, float]]) -> Outcome:
    """The writer is failing: once a fault has lasted its grace, fail over, unless paused, within the failover
    window, or with no node to take over."""
    cluster, now, timing = tick.durable.cluster, tick.now, tick.timing
    since = memory.writer_fault_since if memory.writer_fault_since is not None else now
    memory = replace(memory, writer_fault_since=since)
    grace = min(g for _, g in faults)
    if now - since < grace:
        listed = "; ".join(f for f, _ in faults)
        left = grace - (now - since)
        wait = (
            f"its node recovers it in place for {left:.1f}s more before a failover."
            if grace >= timing.recover_in_place_s
            else f"confirming for {left:.1f}s more before failing over."
        )
        return memory, None, f"Writer {writer} looks unhealthy ({listed}); " + wait, []
    fault_text = "; ".join(f for f, g in faults if now - since >= g)
    if cluster.paused:
        why = (
            f"No failover: writer {writer} is failing ({fault_text}) "
            f"but the cluster is paused ({cluster.paused_reason or 'no reason given'})."
        )
        return memory, None, why, [condition("failover-paused", why, writer, cluster.epoch, tick.now_unix)]
    if memory.last_auto_failover_at is not None and now - memory.last_auto_failover_at < timing.failover_window_s:
        ago = now - memory.last_auto_failover_at
        why = (
            f"No failover: writer {writer} is failing ({fault_text}) but the last automatic failover "
            f"was {ago:.0f}s ago and at most one is allowed per {timing.failover_window_s:.0f}s."
        )
        return memory, None, why, [condition("failover-window", why, writer, cluster.epoch, tick.now_unix)]
    best, blocked = choose_candidate(tick.durable, memory, tick.reports, now, timing, exclude=writer)
    if best is None:
        event = Event(
            kind="no-candidate",
            reason=f"writer {writer} is failing ({fault_text}); no candidate: {blocked_sentence(blocked)}",
            node=writer,
            epoch=cluster.epoch,
            at_unix=tick.now_unix,
        )
        why = f"No failover: writer {writer} is failing ({fault_text}) but no node can take over: "
        return memory, None, why + f"{blocked_sentence(blocked)}.", [event]
    memory = replace(memory, last_auto_failover_at=now, writer_fault_since=None)
    return begin(tick, memory, "failover", writer, best, f"writer {writer} failed: {fault_text}")
