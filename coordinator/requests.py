"""Operator requests: whether a switchover or failover may start now and how it starts, and whether a node may be
forgotten (and what the leader forgets of it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from coordinator.candidates import blocked_sentence, choose_candidate
from coordinator.faults import epoch_ahead, fresh, reader_problems
from coordinator.model import Durable, Event, Report
from coordinator.phases import begin, begin_switchover

if TYPE_CHECKING:
    from coordinator.core import Memory, Request, Tick, Timing
    from coordinator.phases import Outcome


def with_asker(reason: str, by: str) -> str:
    """An operator action's reason as recorded: who asked, from the caller's certificate."""
    return f"{reason} (asked by {by})" if by else reason


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
                return f"no node can take over: {blocked_sentence(blocked)}"
    else:
        if request.to is None:
            return "a failover needs --to NODE"
        record = durable.nodes.get(request.to)
        if record is not None and record.maintenance:
            return f"{request.to} is in maintenance"
        report = reports.get(request.to)
        if not fresh(report, now, timing):
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


def start_requested(tick: Tick, memory: Memory, request: Request) -> Outcome:
    """An operator's switchover or failover, taken by this tick: refused (the event the answer reports),
    begun with a drain (a switchover), or begun at once."""
    durable = tick.durable
    refusal = validate_request(durable, memory, tick.reports, request, tick.now, tick.timing)
    writer = durable.cluster.writer
    if refusal:
        event = Event(
            kind="refused",
            reason=f"{request.kind} refused: {refusal}",
            node=request.to,
            epoch=durable.cluster.epoch,
            at_unix=tick.now_unix,
        )
        return memory, None, f"{request.kind.capitalize()} refused: {refusal}.", [event]
    target = request.to
    if target is None:
        target, _ = choose_candidate(durable, memory, tick.reports, tick.now, tick.timing, exclude=writer)
        assert target is not None
    reason = with_asker(request.reason or f"operator asked for a {request.kind}", request.by)
    if request.kind == "switchover" and writer is not None and not request.force:
        return begin_switchover(tick, memory, writer, target, reason, request.on_drain_timeout)
    return begin(tick, memory, request.kind, writer, target, reason, automatic=False, forced=request.force)
