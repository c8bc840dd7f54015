"""Which node takes over: the one candidate chooser (a failover, a switchover, the first writer), and the
sentence saying why every other node cannot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from coordinator.faults import first_writer_problems, reader_problems
from coordinator.model import Durable, NodeRecord, Report

if TYPE_CHECKING:
    from coordinator.core import Memory, Timing

GPU_RANK = {"healthy": 0, "unavailable": 1, "degraded": 1}


def _rank(name: str, report: Report, record: NodeRecord | None, first: bool) -> tuple[int, int, float, str]:
    """Priority, then GPU health, then (a reader) the freshest report, then the name."""
    priority = record.priority if record is not None else 1
    return (-priority, GPU_RANK.get(report.gpu_health, 2), 0.0 if first else -report.received_at, name)


def choose_candidate(
    durable: Durable,
    memory: Memory,
    reports: Mapping[str, Report],
    now: float,
    timing: Timing,
    exclude: str | None = None,
    first: bool = False,
) -> tuple[str | None, dict[str, list[str]]]:
    """The best node to promote and, for every other node, why not. `first`: the first writer, chosen while
    nobody runs Milvus yet (first_writer_problems); otherwise a reader running healthy (reader_problems)."""
    epoch = durable.cluster.epoch
    blocked: dict[str, list[str]] = {}
    eligible = []
    for name in sorted(set(reports) | set(durable.nodes)):
        if name == exclude:
            continue
        report, record = reports.get(name), durable.nodes.get(name)
        if first:
            problems = first_writer_problems(report, record, now, timing, epoch)
        else:
            problems = reader_problems(name, report, record, memory, now, timing, epoch)
        if problems:
            blocked[name] = problems
        else:
            eligible.append(name)
    if not eligible:
        return None, blocked
    best = min(eligible, key=lambda n: _rank(n, reports[n], durable.nodes.get(n), first))
    return best, blocked


def blocked_sentence(blocked: Mapping[str, list[str]]) -> str:
    """Why each node cannot take over, in one line."""
    if not blocked:
        return "no other node is known"
    return "; ".join(f"{name} {', '.join(problems)}" for name, problems in sorted(blocked.items()))
