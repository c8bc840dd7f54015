"""Prometheus text for the coordinator: writer, epoch, leadership, nodes by health, role changes and the
duration of each failover phase as a histogram; the leader's view of each node (report age, the writer serving,
readers in the Mishards hosts); `process=True` adds prometheus_client's process_* metrics."""

from __future__ import annotations

import time

from jfsmilvus.common.metricsserver import exposition, family
from prometheus_client.metrics_core import Metric

from coordinator.core import Memory
from coordinator.daemon import PHASE_BUCKETS, Coordinator
from coordinator.faults import cut_off_witnesses, fresh
from coordinator.model import Discovery, Durable, Report


def render_coordinator_metrics(c: Coordinator, process: bool = False) -> str:
    cluster = c.config.cluster
    published = c.published  # one snapshot: the leader replaces it whole; a follower's has no state
    durable = published.durable
    memory, decided_at = c.memory, c.decided_at
    now = time.monotonic()
    reports = c.snapshot_reports()
    me = {"cluster": cluster, "coordinator": c.config.coordinator_id}
    out: list[Metric] = []
    out += family(
        "jfs_milvus_coordinator_leader", "1 when this coordinator leads.", "gauge", [(me, 1.0 if c.leadership else 0.0)]
    )
    if c.leadership is not None and decided_at is not None:
        out += family(
            "jfs_milvus_coordinator_decision_age_seconds",
            "Seconds since this leader last completed a decision (a leader only; it decides every tick_s).",
            "gauge",
            [(me, max(0.0, now - decided_at))],
        )
    if durable is not None:
        out += _cluster_row(cluster, durable)
        out += _leader_view(c, durable, published.discovery, memory, reports, now)
    out += _node_health(c, reports, now)
    out += _role_changes(c)
    out += _decision_durations(c)
    return exposition(out, process)


def _cluster_row(cluster: str, durable: Durable) -> list[Metric]:
    """The cluster row: epoch, writer, paused."""
    out = family(
        "jfs_milvus_cluster_epoch",
        "The cluster's epoch (grows with every change of writer).",
        "gauge",
        [({"cluster": cluster}, float(durable.cluster.epoch))],
    )
    out += family(
        "jfs_milvus_cluster_writer",
        "1 for the node that is the writer.",
        "gauge",
        [({"cluster": cluster, "node": durable.cluster.writer or ""}, 1.0)],
    )
    out += family(
        "jfs_milvus_cluster_paused",
        "1 when automatic failover is paused.",
        "gauge",
        [({"cluster": cluster}, 1.0 if durable.cluster.paused else 0.0)],
    )
    return out


def _node_health(c: Coordinator, reports: dict[str, Report], now: float) -> list[Metric]:
    """How many nodes are healthy, degraded, failed or silent, by their reports."""
    counts: dict[str, int] = {"healthy": 0, "degraded": 0, "failed": 0, "silent": 0}
    for r in reports.values():
        if now - r.received_at > c.config.timing.detect_after_s:
            counts["silent"] += 1
        elif r.gpu_health == "failed" or r.mount_state not in ("healthy", "degraded") or r.role_running == "none":
            counts["failed"] += 1
        elif r.gpu_health == "degraded" or r.mount_state == "degraded":
            counts["degraded"] += 1
        else:
            counts["healthy"] += 1
    return family(
        "jfs_milvus_nodes",
        "Nodes by health as the leader sees them.",
        "gauge",
        [({"cluster": c.config.cluster, "health": h}, float(n)) for h, n in counts.items()],
    )


def _role_changes(c: Coordinator) -> list[Metric]:
    """Failovers and switchovers started, and each phase's duration as a histogram."""
    cluster = c.config.cluster
    out = family(
        "jfs_milvus_failovers_total",
        "Automatic failovers started by this coordinator.",
        "counter",
        [({"cluster": cluster}, float(c.counters.failovers))],
    )
    out += family(
        "jfs_milvus_switchovers_total",
        "Switchovers started by this coordinator.",
        "counter",
        [({"cluster": cluster}, float(c.counters.switchovers))],
    )
    histogram = Metric("jfs_milvus_role_change_phase_seconds", "Duration of each phase of a role change.", "histogram")
    for phase, samples in sorted(c.counters.phase_seconds.items()):
        labels = {"cluster": cluster, "phase": phase}
        for bound in PHASE_BUCKETS:
            below = sum(1 for s in samples if s <= bound)
            histogram.add_sample(f"{histogram.name}_bucket", {**labels, "le": f"{bound:g}"}, float(below))
        histogram.add_sample(f"{histogram.name}_bucket", {**labels, "le": "+Inf"}, float(len(samples)))
        histogram.add_sample(f"{histogram.name}_sum", labels, float(sum(samples)))
        histogram.add_sample(f"{histogram.name}_count", labels, float(len(samples)))
    out.append(histogram)
    return out


def _decision_durations(c: Coordinator) -> list[Metric]:
    """The last decision's duration and quantiles over the last 1000 (none before the first decision)."""
    cluster = c.config.cluster
    decide = c.counters.decide_seconds
    if not decide:
        return []
    out = family(
        "jfs_milvus_decide_seconds", "Duration of the last decision.", "gauge", [({"cluster": cluster}, decide[-1])]
    )
    summary = Metric(
        "jfs_milvus_decide_duration_seconds", "Duration of a decision (quantiles over the last 1000).", "summary"
    )
    recent = sorted(decide)
    for q in (0.5, 0.99):
        value = recent[min(len(recent) - 1, int(q * len(recent)))]
        summary.add_sample(summary.name, {"cluster": cluster, "quantile": f"{q:g}"}, value)
    summary.add_sample(f"{summary.name}_sum", {"cluster": cluster}, c.counters.decide_total_s)
    summary.add_sample(f"{summary.name}_count", {"cluster": cluster}, float(c.counters.decide_count))
    out.append(summary)
    return out


def _leader_view(
    c: Coordinator,
    durable: Durable,
    discovery: Discovery | None,
    memory: Memory | None,
    reports: dict[str, Report],
    now: float,
) -> list[Metric]:
    """What the leader knows of each node: whether the writer serves, how old each node's report is, and whether
    each reader is in the hosts Mishards is told."""
    cluster = c.config.cluster
    fresh_s = c.config.timing.detect_after_s
    writer = durable.cluster.writer
    out = family(
        "jfs_milvus_cluster_writer_serving",
        "1 when the writer's agent reports Milvus healthy in the rw role, or, while its reports are missing, a "
        "reader saw that Milvus healthy within witness_fresh_s (a writer cut off from the coordinators only).",
        "gauge",
        [({"cluster": cluster}, 1.0 if writer and _writer_serving(c, writer, reports, now) else 0.0)],
    )
    since = memory.leader_since if memory is not None else now
    ages = [
        ({"cluster": cluster, "node": name}, now - reports[name].received_at if name in reports else now - since)
        for name in sorted(set(durable.nodes) | set(reports))
    ]
    out += family(
        "jfs_milvus_node_report_age_seconds",
        "Seconds since the node's agent last reported to this leader (since it leads, for one that has not).",
        "gauge",
        [(labels, max(0.0, age)) for labels, age in ages],
    )
    hosts = set(discovery.hosts) if discovery is not None else set()
    readers = [
        (name, r)
        for name, r in sorted(reports.items())
        if name != writer
        and r.role_running == "ro"
        and now - r.received_at <= fresh_s
        and not (durable.nodes.get(name) and durable.nodes[name].maintenance)
    ]
    out += family(
        "jfs_milvus_reader_in_discovery",
        "For each healthy reader: 1 when it is in DISCOVERY_STATIC_HOSTS, the hosts Mishards is told to search.",
        "gauge",
        [
            ({"cluster": cluster, "node": name, "address": r.address}, 1.0 if r.address in hosts else 0.0)
            for name, r in readers
        ],
    )
    out += family(
        "jfs_milvus_discovery_hosts",
        "Hosts in DISCOVERY_STATIC_HOSTS, the hosts Mishards is told to search.",
        "gauge",
        [({"cluster": cluster}, float(len(hosts)))],
    )
    return out


def _writer_serving(c: Coordinator, writer: str, reports: dict[str, Report], now: float) -> bool:
    """As the decision core judges the writer alive (core.decide, rule 2): its own fresh report, else a witness."""
    timing = c.config.timing
    report = reports.get(writer)
    if report is not None and fresh(report, now, timing):
        return report.role_running == "rw"
    return bool(cut_off_witnesses(writer, reports, now, timing))
