"""What `coordinatorctl` shows: the cluster's status and its role changes, as data (for JSON and YAML) and as
the tables people read. Pure: protobuf messages in, dicts and text out."""

from __future__ import annotations

from typing import Any

from jfsmilvus.v1 import coordinator_pb2, node_pb2

from coordinator.configviews import config_lines, config_node_data
from coordinator.core import epochs_ahead_sentence
from coordinator.output import table, when

ROLE = {node_pb2.ROLE_RW: "rw", node_pb2.ROLE_RO: "ro", node_pb2.ROLE_STOPPED: "none", node_pb2.ROLE_UNSPECIFIED: "-"}
HEALTH = {
    node_pb2.HEALTH_HEALTHY: "healthy",
    node_pb2.HEALTH_DEGRADED: "degraded",
    node_pb2.HEALTH_FAILED: "failed",
    node_pb2.HEALTH_UNSPECIFIED: "-",
}
PHASES = ("detect", "decide", "fence", "promote", "healthy", "mishards")


# -- status ----------------------------------------------------------------------------------------------------
def status_data(status: coordinator_pb2.ClusterStatus) -> dict[str, Any]:
    d = status.discovery
    return {
        "cluster": status.cluster,
        "writer": status.writer or None,
        "epoch": status.epoch,
        "leader": status.leader or None,
        "leader_term": status.leader_term,
        "paused": status.paused,
        "paused_reason": status.paused_reason,
        "mishards": {
            "woserver": f"tcp://{d.writer_address}:{d.writer_port}" if d.writer_address else None,
            "hosts": list(d.hosts),
        },
        "why": status.why,
        "epochs_ahead": epochs_ahead_sentence({n.name: n.epoch for n in status.nodes}, status.epoch),
        "config_version": status.config_version,
        "nodes": [
            {
                "name": n.name,
                "address": n.address,
                "role_assigned": ROLE[n.role_assigned],
                "role_running": ROLE[n.role_running],
                "epoch": n.epoch,
                "epoch_ahead": n.epoch > status.epoch,
                "gpu": HEALTH[n.gpu_health],
                "mount": HEALTH[n.mount_health],
                "container": n.container_state,
                "lag_s": round(n.seconds_since_report, 1) if n.seconds_since_report >= 0 else None,
                "priority": n.priority,
                "maintenance": n.maintenance,
                "maintenance_reason": n.maintenance_reason,
                "waiting_for": n.waiting_for or None,
                "waiting_since": n.waiting_since_unix or None,
                **config_node_data(n),
            }
            for n in status.nodes
        ],
    }


def render_status(data: dict[str, Any]) -> str:
    paused = f"yes ({data['paused_reason'] or 'no reason given'})" if data["paused"] else "no"
    head = [
        f"Cluster: {data['cluster']}   Writer: {data['writer'] or '(none)'}   Epoch: {data['epoch']}   "
        f"Leader: {data['leader'] or '(none)'} term {data['leader_term']}   Paused: {paused}",
        f"Mishards: WOSERVER {data['mishards']['woserver'] or '-'}   "
        f"hosts {','.join(data['mishards']['hosts']) or '-'}",
    ]
    rows = [
        [
            n["name"] + (" *" if n["name"] == data["writer"] else ""),
            n["address"],
            n["role_assigned"],
            n["role_running"],
            f"{n['epoch']} (ahead)" if n["epoch_ahead"] else n["epoch"],
            n["gpu"],
            n["mount"],
            n["container"],
            "-" if n["lag_s"] is None else f"{n['lag_s']:.1f}s",
            n["priority"],
            ("yes: " + n["maintenance_reason"]) if n["maintenance"] else "no",
        ]
        for n in data["nodes"]
    ]
    body = table(
        [
            "NODE",
            "ADDRESS",
            "ASSIGNED",
            "RUNNING",
            "EPOCH",
            "GPU",
            "MOUNT",
            "CONTAINER",
            "LAG",
            "PRIORITY",
            "MAINTENANCE",
        ],
        rows,
    )
    ahead = [f"Epochs: {data['epochs_ahead']}"] if data["epochs_ahead"] else []
    waits = [
        f"Waiting: {n['name']} since {when(n['waiting_since'])}: {n['waiting_for']}"
        for n in data["nodes"]
        if n["waiting_for"]
    ]
    return "\n".join([*head, "", body, "", *ahead, *waits, *config_lines(data), f"Why: {data['why']}"])


def event_data(e: coordinator_pb2.Event) -> dict[str, Any]:
    phases = [(p.name, p.at_unix) for p in e.phases]
    durations = {name: round(at - phases[i - 1][1], 3) for i, (name, at) in enumerate(phases) if i > 0}
    return {
        "id": e.id,
        "at": e.at_unix,
        "time": when(e.at_unix),
        "kind": e.kind,
        "node": e.node or None,
        "epoch": e.epoch,
        "reason": e.reason,
        "phases": [{"name": n, "at": at} for n, at in phases],
        "phase_seconds": durations,
        "total_seconds": round(phases[-1][1] - phases[0][1], 3) if len(phases) > 1 else None,
    }


def render_history(data: list[dict[str, Any]]) -> str:
    def sec(e: dict[str, Any], phase: str) -> str:
        value = e["phase_seconds"].get(phase)
        return "-" if value is None else f"{value:.2f}s"

    rows = [
        [
            e["id"],
            e["time"],
            e["kind"],
            e["node"] or "-",
            e["epoch"],
            *(sec(e, p) for p in PHASES[1:]),
            "-" if e["total_seconds"] is None else f"{e['total_seconds']:.2f}s",
            e["reason"],
        ]
        for e in data
    ]
    return table(
        ["ID", "TIME", "KIND", "TO", "EPOCH", "DECIDE", "FENCE", "PROMOTE", "HEALTHY", "MISHARDS", "TOTAL", "REASON"],
        rows,
    )
