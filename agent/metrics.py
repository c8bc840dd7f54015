"""Prometheus text for the agent: GPU metrics under dcgm-exporter's names and labels, and our own.

`render_metrics(observation)` is pure (the agent's typed observation in, exposition text out);
jfsmilvus.common.metricsserver's `MetricsServer` serves it on `/metrics`. `process=True` adds the `process_*`
metrics of this process (resident memory, CPU seconds, open files), which the dashboard holds against the
agent's footprint target.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from jfsmilvus.common.metricsserver import exposition, family
from prometheus_client.metrics_core import Metric

from agent.gpu.health import XidRecord
from agent.gpu.report import GpuStatus
from agent.mount import MountStatus
from agent.observation import LEASE_RENEWAL_SOURCES, AgentObservation, MishardsView, WriterLease
from agent.snapshot import NodeSnapshot

log = logging.getLogger("jfs_milvus.agent.metrics")

ROLE_VALUES = {"none": 0, "ro": 1, "rw": 2}
HEALTH_VALUES = {"healthy": 0, "degraded": 1, "failed": 2, "unmounted": 3, "hung": 4}

# (metric, help, type, what it reads of a GPU, scale)
_GPU_METRICS: tuple[tuple[str, str, str, Callable[[GpuStatus], float | None], float], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "gauge", lambda g: g.utilization_pct, 1.0),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "gauge", lambda g: g.memory_used_bytes, 1 / 2**20),
    (
        "DCGM_FI_DEV_FB_FREE",
        "Framebuffer memory free (in MiB).",
        "gauge",
        lambda g: None if g.memory_total_bytes is None else g.memory_total_bytes - (g.memory_used_bytes or 0),
        1 / 2**20,
    ),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "gauge", lambda g: g.temperature_c, 1.0),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "gauge", lambda g: g.power_w, 1.0),
)

_Labelled = list[tuple[GpuStatus, dict[str, object]]]


def _xid_labels(labels: dict[str, object], xid: XidRecord) -> dict[str, object]:
    return {**labels, "xid": xid.xid, "fatal": "true" if xid.fatal else "false"}


def render_metrics(obs: AgentObservation, process: bool = False) -> str:
    node, report = obs.node, obs.seen.gpus
    gpus = report.gpus if report is not None else []
    base_labels = [
        (g, {"gpu": g.index, "UUID": g.uuid or "", "modelName": g.name or "", "Hostname": node}) for g in gpus
    ]
    out = _gpu_families(base_labels)
    out += family(
        "jfs_milvus_agent_info",
        "The agent: its node, the address Milvus serves on and its version, as labels.",
        "gauge",
        [({"node": node, "address": obs.address, "version": obs.agent_version}, 1.0)],
    )
    if obs.mishards is not None:
        out += _mishards_families(node, obs.mishards)
    out += family(
        "jfs_milvus_gpu_health",
        "GPU health as the agent judges it: 0 healthy, 1 degraded, 2 failed.",
        "gauge",
        [(labels, float(HEALTH_VALUES.get(g.health, 2))) for g, labels in base_labels],
    )
    out += family(
        "jfs_milvus_nvml_available",
        "1 when NVML answered on this node.",
        "gauge",
        [({"Hostname": node}, 1.0 if report is not None and report.available else 0.0)],
    )
    out += _role_families(node, obs.seen)
    out += _mount_families(node, obs.seen.mounts)
    out += _lease_families(node, obs.lease)
    out += _container_families(node, obs)
    return exposition(out, process)


def _gpu_families(base_labels: _Labelled) -> list[Metric]:
    """dcgm-exporter's GPU families, and the XIDs seen on each GPU."""
    out: list[Metric] = []
    for name, help_, kind, read, scale in _GPU_METRICS:
        values = [(labels, read(g)) for g, labels in base_labels]
        out += family(name, help_, kind, [(labels, float(v) * scale) for labels, v in values if v is not None])
    out += family(
        "DCGM_FI_DEV_XID_ERRORS",
        "Value of the last XID error encountered.",
        "gauge",
        [(labels, float(max(g.xids, key=lambda x: x.last_seen).xid)) for g, labels in base_labels if g.xids],
    )
    xids = [(labels, x) for g, labels in base_labels for x in g.xids]
    out += family(
        "jfs_milvus_gpu_xid_last_seen_timestamp_seconds",
        "Unix time this XID code was last seen on this GPU (an alert can fire for a while after each).",
        "gauge",
        [(_xid_labels(labels, x), float(x.last_seen)) for labels, x in xids],
    )
    out += family(
        "jfs_milvus_gpu_xid_events_total",
        "XID events of this code seen on this GPU since the agent started.",
        "counter",
        [(_xid_labels(labels, x), float(x.count)) for labels, x in xids],
    )
    return out


def _mishards_families(node: str, mishards: MishardsView) -> list[Metric]:
    out: list[Metric] = []
    running_hosts = mishards.container_hosts if mishards.state == "running" else ()
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
        [({"node": node}, float(len(mishards.listed_hosts)))],
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
        [({"node": node}, 1.0 if mishards.state == "running" else 0.0)],
    )
    out += family(
        "jfs_milvus_mishards_error",
        "1 when the agent cannot start or find its Mishards container, or refuses its settings.",
        "gauge",
        [({"node": node}, 1.0 if mishards.error else 0.0)],
    )
    out += family(
        "jfs_milvus_mishards_hosts_left_out",
        "Listed hosts left out of Mishards because they did not answer Milvus gRPC.",
        "gauge",
        [({"node": node}, float(len(mishards.left_out)))],
    )
    return out


def _role_families(node: str, seen: NodeSnapshot) -> list[Metric]:
    out: list[Metric] = []
    out += family(
        "jfs_milvus_role",
        "Role running now, as labels and value (0 none, 1 ro, 2 rw).",
        "gauge",
        [({"node": node, "role": seen.role_running}, ROLE_VALUES.get(seen.role_running, 0))],
    )
    assigned = seen.assignment.role
    out += family(
        "jfs_milvus_role_assigned",
        "Role assigned (0 none, 1 ro, 2 rw).",
        "gauge",
        [({"node": node, "role": assigned}, ROLE_VALUES.get(assigned, 0))],
    )
    out += family(
        "jfs_milvus_epoch",
        "Highest epoch this agent has seen.",
        "gauge",
        [({"node": node}, seen.highest_epoch)],
    )
    return out


def _mount_families(node: str, mounts: tuple[MountStatus, ...]) -> list[Metric]:
    out: list[Metric] = []
    out += family(
        "jfs_milvus_mount_healthy",
        "1 when the JuiceFS mount is healthy or degraded (usable).",
        "gauge",
        [
            (
                {"node": node, "volume": m.volume, "mountpoint": m.mountpoint},
                1.0 if m.state in ("healthy", "degraded") else 0.0,
            )
            for m in mounts
        ],
    )
    out += family(
        "jfs_milvus_mount_health",
        "JuiceFS mount state: 0 healthy, 1 degraded, 2 failed, 3 unmounted, 4 hung.",
        "gauge",
        [
            ({"node": node, "volume": m.volume, "mountpoint": m.mountpoint}, float(HEALTH_VALUES.get(m.state, 2)))
            for m in mounts
        ],
    )
    out += family(
        "jfs_milvus_mount_write_probe_seconds",
        "Latency of the last write + fsync + read-back probe on a read-write mount.",
        "gauge",
        [
            ({"node": node, "volume": m.volume}, round(m.write_probe_ms, 3) / 1000.0)
            for m in mounts
            if m.write_probe_ms is not None
        ],
    )
    return out


def _lease_families(node: str, lease: WriterLease) -> list[Metric]:
    out: list[Metric] = []
    out += family(
        "jfs_milvus_lease_left_seconds",
        "Seconds left on this node's writer lease; 0 when it holds none.",
        "gauge",
        [({"node": node}, float(lease.left_s))],
    )
    out += family(
        "jfs_milvus_lease_renewals_total",
        "Writer lease renewals: via the leader's answer to a report, or a read of the MySQL cluster row while no "
        "coordinator answered.",
        "counter",
        [({"node": node, "via": via}, float(lease.renewals.get(via, 0))) for via in LEASE_RENEWAL_SOURCES],
    )
    out += family(
        "jfs_milvus_lease_renewal_failures_total",
        "Writer lease renewals that were due and did not happen (no coordinator answered and MySQL renewed nothing).",
        "counter",
        [({"node": node}, float(lease.renewal_failures))],
    )
    return out


def _container_families(node: str, obs: AgentObservation) -> list[Metric]:
    out: list[Metric] = []
    seen = obs.seen
    state = seen.container.status if seen.container is not None else "absent"
    out += family(
        "jfs_milvus_container_running",
        "1 when the Milvus container runs and answers its health check.",
        "gauge",
        [({"node": node, "state": state}, 1.0 if seen.container is not None and seen.container_healthy else 0.0)],
    )
    out += family(
        "jfs_milvus_container_restarts_total",
        "Milvus container restarts after a crash or a failed health check.",
        "counter",
        [({"node": node}, float(obs.restarts))],
    )
    out += family(
        "jfs_milvus_agent_loop_seconds",
        "Duration of the agent's last observe-decide-act cycle.",
        "gauge",
        [({"node": node}, float(seen.loop_seconds))],
    )
    out += family(
        "jfs_milvus_agent_loops_total",
        "Cycles the agent loop has run.",
        "counter",
        [({"node": node}, float(seen.loops))],
    )
    return out
