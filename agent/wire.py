"""The agent's status dict and assignments as the wire has them: NodeObservation out, Assignment in. Pure."""

from __future__ import annotations

from typing import Any

from jfsmilvus.common.milvus1 import MILVUS_PORT
from jfsmilvus.common.protomaps import HEALTH_TO_PB, PB_TO_ROLE, ROLE_TO_PB
from jfsmilvus.v1 import agent_pb2, node_pb2

from agent import __version__
from agent.assignment import Assignment
from agent.mishards.envfile import MishardsDiscovery

MAX_REASON_SENT = 2000  # characters of a wait's reason in a report (the coordinator refuses a text over 4096)


def observation_pb(status: dict[str, Any]) -> node_pb2.NodeObservation:
    """The agent's status dict as the wire's NodeObservation."""
    obs = node_pb2.NodeObservation(
        node=status["node"],
        address=status["address"],
        agent_version=__version__,
        role_running=ROLE_TO_PB.get(status["role_running"], node_pb2.ROLE_STOPPED),
        highest_epoch_seen=status["highest_epoch_seen"],
        observed_at_unix=status["observed_at"],
        last_errors=status["last_errors"],
        milvus_port=status.get("milvus_port", 0),
        milvus_http_port=status.get("milvus_http_port", 0),
        agent_port=status.get("agent_port", 0),
        docker_runtimes=status.get("docker_runtimes", []),
        writer_seen_healthy_age_s=status.get("writer_seen_healthy_age_s", -1.0),
        mishards_writer=status.get("mishards_writer", ""),
        lease_left_s=status.get("lease_left_s", 0.0),
        row_lease_ms=status.get("row_lease_ms", 0),
        milvus_image=status.get("milvus_image") or "",
        milvus_flavor=status.get("milvus_flavor") or "",
        stopping_for_s=status.get("stopping_for_s") or 0.0,
        config_version=status.get("config_version") or 0,
        config_conflicts=status.get("config_conflicts") or [],
    )
    doing = status.get("doing") or {}
    if doing.get("action") == "wait":
        obs.waiting_for, obs.waiting_since_unix = doing["reason"][:MAX_REASON_SENT], doing["since_unix"]
    clock = status.get("clock")
    if clock:
        obs.clock_offset_s, obs.clock_rtt_s = clock["offset_s"], clock["rtt_s"]
    mishards = status.get("mishards")
    if mishards:
        container = mishards.get("container") or {}
        obs.mishards.CopyFrom(
            node_pb2.MishardsStatus(
                state=mishards.get("state", ""),
                error=mishards.get("error", ""),
                container=mishards.get("name", ""),
                hosts=container.get("hosts", []) if container.get("state") == "running" else [],
                left_out=mishards.get("left_out", []),
                foreign_overrides=[
                    f"{f['name']}: {','.join(f['overriding_keys'])}" for f in mishards.get("foreign", [])
                ],
                reason=mishards.get("reason", ""),
            )
        )
    stop = status.get("last_writer_stop")
    if stop:
        obs.last_writer_stop.CopyFrom(
            node_pb2.WriterStop(
                epoch=stop["epoch"],
                drain_id=stop["drain_id"],
                exit_code=stop["exit_code"],
                seconds=stop["seconds"],
                at_unix=stop["at_unix"],
            )
        )
    toolkit = status.get("nvidia_toolkit")
    if toolkit is not None:
        obs.nvidia_toolkit.checked = True
        obs.nvidia_toolkit.found.update(toolkit)
    _milvus_meta_pb(obs.milvus_meta, status.get("milvus_meta"))
    _milvus_wal_pb(obs.milvus_wal, status.get("milvus_wal"))
    gpu = status.get("gpu")
    if gpu:
        obs.gpus.available = bool(gpu["available"])
        obs.gpus.reason = gpu.get("reason") or ""
        obs.gpus.driver_version = gpu.get("driver_version") or ""
        for g in gpu["gpus"]:
            gpu_pb = obs.gpus.gpus.add(
                index=g["index"],
                uuid=g.get("uuid") or "",
                name=g.get("name") or "",
                memory_total_bytes=g.get("memory_total_bytes") or 0,
                memory_used_bytes=g.get("memory_used_bytes") or 0,
                utilization_pct=g.get("utilization_pct") or 0,
                temperature_c=g.get("temperature_c") or 0,
                power_w=g.get("power_w") or 0,
                health=HEALTH_TO_PB.get(g["health"], node_pb2.HEALTH_FAILED),
                reasons=g["reasons"],
                xids=[
                    node_pb2.XidRecord(
                        xid=x["xid"],
                        count=x["count"],
                        first_seen_unix=x["first_seen"],
                        last_seen_unix=x["last_seen"],
                        fatal=x["fatal"],
                    )
                    for x in g.get("xids", [])
                ],
            )
            if g.get("compute_capability"):
                major, minor = g["compute_capability"]
                gpu_pb.compute_capability.major, gpu_pb.compute_capability.minor = major, minor
    for m in status["mounts"]:
        meta = m.get("meta_engine") or {}
        obs.mounts.add(
            volume=m["volume"],
            mountpoint=m["mountpoint"],
            configured_in_fstab=m["configured_in_fstab"],
            mounted=m["mounted"],
            read_only=m["mode"] == "ro",
            health=HEALTH_TO_PB.get(m["state"], node_pb2.HEALTH_FAILED),
            state=m["state"],
            reasons=m["reasons"],
            write_probe_ms=m.get("write_probe_ms") or 0,
            session_id=str(m.get("session_id") or ""),
            cache_dir_writable=bool(m.get("cache_dir_writable")),
            meta_engine=node_pb2.MetaEngineStatus(
                checked=meta.get("reachable") is not None,
                reachable=bool(meta.get("reachable")),
                latency_ms=meta.get("latency_ms") or 0,
                error=meta.get("error") or "",
                maxmemory_policy=meta.get("maxmemory_policy") or "",
                warnings=meta.get("warnings") or [],
            ),
        )
    container = status.get("container")
    if container:
        obs.container.CopyFrom(
            node_pb2.ContainerStatus(
                name=container["name"],
                id=container["id"],
                image=container["image"],
                state=container["state"],
                role=ROLE_TO_PB.get(container.get("role") or "none", node_pb2.ROLE_STOPPED),
                epoch=container["epoch"],
                healthy=container["healthy"],
                restarts=status.get("restarts", 0),
                error=_waiting_for(status),
                gpus=container.get("gpus") or [],
                gpus_labelled=container.get("gpus") is not None,
            )
        )
    else:
        obs.container.CopyFrom(
            node_pb2.ContainerStatus(state="absent", restarts=status.get("restarts", 0), error=_waiting_for(status))
        )
    return obs


def _milvus_meta_pb(out: node_pb2.MilvusMetaStatus, meta: dict[str, Any] | None) -> None:
    if not meta:
        return
    out.configured = True
    out.host, out.port, out.database, out.user = meta["host"], meta["port"], meta["database"], meta["user"]
    right = meta.get("create_right")
    if right:
        out.create_right, out.create_detail = right["state"], right["detail"]
        out.account, out.create_checked_unix = right["account"], right["checked_at_unix"]


def _milvus_wal_pb(out: node_pb2.MilvusWalStatus, wal: dict[str, Any] | None) -> None:
    if wal is None:
        return
    out.render_error = wal.get("render_error") or ""
    out.checked = not out.render_error
    for key in ("rw_enable", "rw_recovery_error_ignore", "base_recovery_error_ignore"):
        value = wal.get(key)
        if value is not None:
            setattr(out, f"{key}_set", True)
            setattr(out, key, value)


def _waiting_for(status: dict[str, Any]) -> str:
    """Why the agent is waiting rather than running Milvus (starting for Ns, no GPUs, ...); "" when it is not."""
    step = status.get("last_step") or {}
    return str(step.get("reason", ""))[:MAX_REASON_SENT] if step.get("action") == "wait" else ""


MAX_DRAIN_MS = 86_400_000


def assignment_from_wire(a: node_pb2.Assignment, source: str, default_reason: str) -> Assignment:
    """The wire's Assignment as the agent's; the lease deadline is set by the agent, never taken from the wire."""
    discovery = None
    if a.HasField("discovery") and a.discovery.writer_address:
        discovery = MishardsDiscovery(
            writer_host=a.discovery.writer_address,
            writer_port=a.discovery.writer_port,
            hosts=tuple(a.discovery.hosts),
            discovery_port=a.discovery.discovery_port or MILVUS_PORT,
        )
    return Assignment(
        role=PB_TO_ROLE.get(a.role, "none"),
        epoch=a.epoch,
        source=source,
        reason=a.reason or default_reason,
        discovery=discovery,
        writer=a.writer,
        writer_address=a.writer_address,
        writer_http_port=a.writer_http_port,
        lease_ms=a.lease_ms,
        row_lease_ms=a.row_lease_ms,
        drain_id=a.drain_id,
        # Bounded where it enters: a drain's stop runs 1 s at least and a day at most.
        drain_timeout_ms=min(max(a.drain_timeout_ms, 1000), MAX_DRAIN_MS) if a.drain_id else 0,
    )


def assignment_from_pb(request: agent_pb2.AssignRequest) -> Assignment:
    return assignment_from_wire(
        request.assignment,
        source=f"Assign call from {request.coordinator or 'an API client'}",
        default_reason="assigned over the agent API",
    )
