"""Prometheus text for the agent: GPU metrics under dcgm-exporter's names and labels, and our own.

`render_metrics(status)` is pure (status dict in, exposition text out); jfsmilvus.common.metricsserver's
`MetricsServer` serves it on `/metrics`. `process=True` adds the `process_*` metrics of this process
(resident memory, CPU seconds, open files), which the dashboard holds against the agent's footprint target.
"""

from __future__ import annotations

import logging
from typing import Any

from jfsmilvus.common.metricsserver import exposition, family
from prometheus_client.metrics_core import Metric

log = logging.getLogger("jfs_milvus.agent.metrics")

ROLE_VALUES = {"none": 0, "ro": 1, "rw": 2}
HEALTH_VALUES = {"healthy": 0, "degraded": 1, "failed": 2, "unmounted": 3, "hung": 4}

# (metric, help, type, field in the GPU dict, scale)
_GPU_METRICS: tuple[tuple[str, str, str, str, float], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "gauge", "utilization_pct", 1.0),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "gauge", "memory_used_bytes", 1 / 2**20),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", "gauge", "memory_free_bytes", 1 / 2**20),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "gauge", "temperature_c", 1.0),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "gauge", "power_w", 1.0),
)


def _xid_labels(labels: dict[str, object], xid: dict[str, Any]) -> dict[str, object]:
    return {**labels, "xid": xid["xid"], "fatal": "true" if xid.get("fatal") else "false"}


def render_metrics(status: dict[str, Any], process: bool = False) -> str:
    node = status.get("node", "")
    gpu = status.get("gpu") or {}
    base_labels = [
        (g, {"gpu": g.get("index"), "UUID": g.get("uuid") or "", "modelName": g.get("name") or "", "Hostname": node})
        for g in gpu.get("gpus") or []
    ]
    out = _gpu_families(base_labels)
    out += family(
        "jfs_milvus_agent_info",
        "The agent: its node, the address Milvus serves on and its version, as labels.",
        "gauge",
        [({"node": node, "address": status.get("address") or "", "version": status.get("agent_version") or ""}, 1.0)],
    )
    mishards = status.get("mishards")
    if mishards is not None:
        out += _mishards_families(node, mishards)
    out += family(
        "jfs_milvus_gpu_health",
        "GPU health as the agent judges it: 0 healthy, 1 degraded, 2 failed.",
        "gauge",
        [(labels, float(HEALTH_VALUES.get(g.get("health", "failed"), 2))) for g, labels in base_labels],
    )
    out += family(
        "jfs_milvus_nvml_available",
        "1 when NVML answered on this node.",
        "gauge",
        [({"Hostname": node}, 1.0 if gpu.get("available") else 0.0)],
    )
    out += _role_families(node, status)
    out += _mount_families(node, status.get("mounts") or [])
    out += _lease_families(node, status)
    out += _container_families(node, status)
    return exposition(out, process)


def _gpu_families(base_labels: list[tuple[dict[str, Any], dict[str, object]]]) -> list[Metric]:
    """dcgm-exporter's GPU families, and the XIDs seen on each GPU."""
    out: list[Metric] = []
    for name, help_, kind, key, scale in _GPU_METRICS:
        samples = []
        for g, labels in base_labels:
            value = g.get(key)
            if key == "memory_free_bytes" and g.get("memory_total_bytes") is not None:
                value = g["memory_total_bytes"] - (g.get("memory_used_bytes") or 0)
            if value is not None:
                samples.append((labels, float(value) * scale))
        out += family(name, help_, kind, samples)
    out += family(
        "DCGM_FI_DEV_XID_ERRORS",
        "Value of the last XID error encountered.",
        "gauge",
        [
            (labels, float(max(g["xids"], key=lambda x: x["last_seen"])["xid"]))
            for g, labels in base_labels
            if g.get("xids")
        ],
    )
    xids = [(labels, x) for g, labels in base_labels for x in g.get("xids") or []]
    out += family(
        "jfs_milvus_gpu_xid_last_seen_timestamp_seconds",
        "Unix time this XID code was last seen on this GPU (an alert can fire for a while after each).",
        "gauge",
        [(_xid_labels(labels, x), float(x["last_seen"])) for labels, x in xids],
    )
    out += family(
        "jfs_milvus_gpu_xid_events_total",
        "XID events of this code seen on this GPU since the agent started.",
        "counter",
        [(_xid_labels(labels, x), float(x["count"])) for labels, x in xids],
    )
    return out


def _mishards_families(node: str, mishards: dict[str, Any]) -> list[Metric]:
    out: list[Metric] = []
    container = mishards.get("container") or {}
    running_hosts = list(container.get("hosts") or []) if mishards.get("state") == "running" else []
    out += family(
        "jfs_milvus_mishards_hosts",
        "Hosts (DISCOVERY_STATIC_HOSTS) the running Mishards container searches; 0 when none runs.",
        "gauge",
        [({"node": node}, float(len(running_hosts)))],
    )
    out += family(
        "jfs_milvus_mishards_hosts_listed",
        "Hosts the coordinator lists for Mishards (the readers healthy for settle_s, or the writer).",
        "gauge",
        [({"node": node}, float(len(mishards.get("listed_hosts") or [])))],
    )
    out += family(
        "jfs_milvus_mishards_host",
        "1 for each host the running Mishards container searches.",
        "gauge",
        [({"node": node, "host": host}, 1.0) for host in running_hosts],
    )
    out += family(
        "jfs_milvus_mishards_up",
        "1 when the Mishards container the agent runs is running.",
        "gauge",
        [({"node": node}, 1.0 if mishards.get("state") == "running" else 0.0)],
    )
    out += family(
        "jfs_milvus_mishards_error",
        "1 when the agent cannot start or find its Mishards container, or refuses its settings.",
        "gauge",
        [({"node": node}, 1.0 if mishards.get("error") else 0.0)],
    )
    out += family(
        "jfs_milvus_mishards_hosts_left_out",
        "Listed hosts left out of Mishards because they did not answer Milvus gRPC.",
        "gauge",
        [({"node": node}, float(len(mishards.get("left_out") or [])))],
    )
    return out


def _role_families(node: str, status: dict[str, Any]) -> list[Metric]:
    out: list[Metric] = []
    assignment = status.get("assignment") or {}
    out += family(
        "jfs_milvus_role",
        "Role running now, as labels and value (0 none, 1 ro, 2 rw).",
        "gauge",
        [({"node": node, "role": status.get("role_running", "none")}, ROLE_VALUES.get(status.get("role_running"), 0))],
    )
    out += family(
        "jfs_milvus_role_assigned",
        "Role assigned (0 none, 1 ro, 2 rw).",
        "gauge",
        [({"node": node, "role": assignment.get("role", "none")}, ROLE_VALUES.get(assignment.get("role"), 0))],
    )
    out += family(
        "jfs_milvus_epoch",
        "Highest epoch this agent has seen.",
        "gauge",
        [({"node": node}, status.get("highest_epoch_seen", 0))],
    )
    return out


def _mount_families(node: str, mounts: list[dict[str, Any]]) -> list[Metric]:
    out: list[Metric] = []
    out += family(
        "jfs_milvus_mount_healthy",
        "1 when the JuiceFS mount is healthy or degraded (usable).",
        "gauge",
        [
            (
                {"node": node, "volume": m["volume"], "mountpoint": m["mountpoint"]},
                1.0 if m["state"] in ("healthy", "degraded") else 0.0,
            )
            for m in mounts
        ],
    )
    out += family(
        "jfs_milvus_mount_health",
        "JuiceFS mount state: 0 healthy, 1 degraded, 2 failed, 3 unmounted, 4 hung.",
        "gauge",
        [
            (
                {"node": node, "volume": m["volume"], "mountpoint": m["mountpoint"]},
                float(HEALTH_VALUES.get(m["state"], 2)),
            )
            for m in mounts
        ],
    )
    out += family(
        "jfs_milvus_mount_write_probe_seconds",
        "Latency of the last write + fsync + read-back probe on a read-write mount.",
        "gauge",
        [
            ({"node": node, "volume": m["volume"]}, m["write_probe_ms"] / 1000.0)
            for m in mounts
            if m.get("write_probe_ms") is not None
        ],
    )
    return out


def _lease_families(node: str, status: dict[str, Any]) -> list[Metric]:
    out: list[Metric] = []
    out += family(
        "jfs_milvus_lease_left_seconds",
        "Seconds left on this node's writer lease; 0 when it holds none.",
        "gauge",
        [({"node": node}, float(status.get("lease_left_s") or 0.0))],
    )
    renewals = status.get("lease_renewals") or {}
    out += family(
        "jfs_milvus_lease_renewals_total",
        "Writer lease renewals: via the leader's answer to a report, or a read of the MySQL cluster row while no "
        "coordinator answered.",
        "counter",
        [({"node": node, "via": via}, float(renewals.get(via, 0))) for via in ("coordinator", "mysql")],
    )
    out += family(
        "jfs_milvus_lease_renewal_failures_total",
        "Writer lease renewals that were due and did not happen (no coordinator answered and MySQL renewed nothing).",
        "counter",
        [({"node": node}, float(status.get("lease_renewal_failures") or 0))],
    )
    return out


def _container_families(node: str, status: dict[str, Any]) -> list[Metric]:
    out: list[Metric] = []
    container = status.get("container") or {}
    out += family(
        "jfs_milvus_container_running",
        "1 when the Milvus container runs and answers its health check.",
        "gauge",
        [({"node": node, "state": container.get("state", "absent")}, 1.0 if container.get("healthy") else 0.0)],
    )
    out += family(
        "jfs_milvus_container_restarts_total",
        "Milvus container restarts after a crash or a failed health check.",
        "counter",
        [({"node": node}, float(status.get("restarts", 0)))],
    )
    out += family(
        "jfs_milvus_agent_loop_seconds",
        "Duration of the agent's last observe-decide-act cycle.",
        "gauge",
        [({"node": node}, float(status.get("loop_seconds", 0.0)))],
    )
    out += family(
        "jfs_milvus_agent_loops_total",
        "Cycles the agent loop has run.",
        "counter",
        [({"node": node}, float(status.get("loops", 0)))],
    )
    return out
