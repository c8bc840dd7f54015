"""Prometheus text for the coordinator: writer, epoch, leadership, nodes by health, role changes and the
duration of each failover phase as a histogram."""

from __future__ import annotations

import time

from agent.metrics import family
from coordinator.daemon import PHASE_BUCKETS, Coordinator


def render_coordinator_metrics(c: Coordinator) -> str:
    cluster = c.config.cluster
    durable = c.published.durable
    out: list[str] = []
    out += family(
        "jfs_milvus_coordinator_leader",
        "1 when this coordinator leads.",
        "gauge",
        [({"cluster": cluster, "coordinator": c.config.coordinator_id}, 1.0 if c.leadership else 0.0)],
    )
    if durable is not None:
        out += family(
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
    now = time.monotonic()
    reports = c.snapshot_reports()
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
    out += family(
        "jfs_milvus_nodes",
        "Nodes by health as the leader sees them.",
        "gauge",
        [({"cluster": cluster, "health": h}, float(n)) for h, n in counts.items()],
    )
    out += family(
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
    name = "jfs_milvus_role_change_phase_seconds"
    lines = [f"# HELP {name} Duration of each phase of a role change.", f"# TYPE {name} histogram"]
    for phase, samples in sorted(c.counters.phase_seconds.items()):
        for bound in PHASE_BUCKETS:
            below = sum(1 for s in samples if s <= bound)
            lines.append(f'{name}_bucket{{cluster="{cluster}",phase="{phase}",le="{bound:g}"}} {below}')
        lines.append(f'{name}_bucket{{cluster="{cluster}",phase="{phase}",le="+Inf"}} {len(samples)}')
        lines.append(f'{name}_sum{{cluster="{cluster}",phase="{phase}"}} {sum(samples):g}')
        lines.append(f'{name}_count{{cluster="{cluster}",phase="{phase}"}} {len(samples)}')
    out += lines
    decide = c.counters.decide_seconds
    if decide:
        out += family(
            "jfs_milvus_decide_seconds", "Duration of the last decision.", "gauge", [({"cluster": cluster}, decide[-1])]
        )
        name = "jfs_milvus_decide_duration_seconds"
        recent = sorted(decide)
        out += [f"# HELP {name} Duration of a decision (quantiles over the last 1000).", f"# TYPE {name} summary"]
        for q in (0.5, 0.99):
            value = recent[min(len(recent) - 1, int(q * len(recent)))]
            out.append(f'{name}{{cluster="{cluster}",quantile="{q:g}"}} {value:g}')
        out.append(f'{name}_sum{{cluster="{cluster}"}} {c.counters.decide_total_s:g}')
        out.append(f'{name}_count{{cluster="{cluster}"}} {c.counters.decide_count}')
    return "\n".join(out) + "\n"
