"""What is wrong with a node: the writer's faults (each with its grace), why a node cannot be promoted or be the
first writer, what the operator set that keeps it from writing, and an epoch above the committed one.

Each judgement is a pure function of a node's latest report, its MySQL row and the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from coordinator.model import NodeRecord, Report

if TYPE_CHECKING:
    from coordinator.core import Memory, Timing


def fresh(report: Report | None, now: float, timing: Timing) -> bool:
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
    reporting = {n: r for n, r in reports.items() if fresh(r, now, timing)}
    if writer not in reporting or len(reporting) < 2:
        return []
    if any(r.meta_engine_reachable is not False for r in reporting.values()):
        return []
    return [writer, *sorted(n for n in reporting if n != writer)]


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
    if not fresh(report, now, timing):
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


def first_writer_problems(
    report: Report | None, record: NodeRecord | None, now: float, timing: Timing, committed_epoch: int
) -> list[str]:
    """Why a node cannot be the first writer; empty when it can. Nobody runs Milvus yet: an unmounted volume
    and a node running no container are fine."""
    problems = standing_problems(record)
    if not fresh(report, now, timing):
        problems.append("not reporting")
    elif report is not None:
        if ahead := epoch_ahead(report, committed_epoch):
            problems.append(ahead)
        if report.mount_state not in ("healthy", "unmounted"):
            problems.append(f"mount {report.mount_state}")
        if report.gpu_health == "failed":
            problems.append("GPU failed")
    return problems


def cut_off_witnesses(writer: str, reports: Mapping[str, Report], now: float, timing: Timing) -> list[str]:
    """The readers that saw the writer's Milvus healthy within witness_fresh_s (the report's age counts too): a
    writer that does not report but is seen healthy is cut off from the coordinator only."""
    return sorted(
        name
        for name, r in reports.items()
        if name != writer
        and fresh(r, now, timing)
        and r.writer_seen_healthy_age_s is not None
        and r.writer_seen_healthy_age_s >= 0
        # when the witness last saw it healthy, on this clock: the report's age counts too
        and now - (r.received_at - r.writer_seen_healthy_age_s) <= timing.witness_fresh_s
    )
