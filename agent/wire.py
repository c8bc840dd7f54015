"""The agent's observation and assignments as the wire has them: NodeObservation out, Assignment in. Pure."""

from __future__ import annotations

from jfsmilvus.common.milvus1 import MILVUS_PORT
from jfsmilvus.common.protomaps import HEALTH_TO_PB, PB_TO_ROLE, ROLE_TO_PB
from jfsmilvus.v1 import agent_pb2, node_pb2

from agent import __version__
from agent.assignment import Assignment
from agent.gpu import GpuReport
from agent.mishards.envfile import MishardsDiscovery
from agent.mount import MountStatus
from agent.observation import AgentObservation, MilvusMeta, MilvusWal, MishardsView
from agent.snapshot import NodeSnapshot

MAX_REASON_SENT = 2000  # characters of a wait's reason in a report (the coordinator refuses a text over 4096)


def observation_pb(obs: AgentObservation) -> node_pb2.NodeObservation:
    """The agent's observation as the wire's NodeObservation."""
    seen = obs.seen
    out = node_pb2.NodeObservation(
        node=obs.node,
        address=obs.address,
        agent_version=__version__,
        role_running=ROLE_TO_PB.get(seen.role_running, node_pb2.ROLE_STOPPED),
        highest_epoch_seen=seen.highest_epoch,
        observed_at_unix=seen.observed_at,
        last_errors=obs.last_errors,
        milvus_port=obs.milvus_port,
        milvus_http_port=obs.milvus_http_port,
        agent_port=obs.agent_port,
        docker_runtimes=obs.docker_runtimes,
        writer_seen_healthy_age_s=obs.writer_seen_healthy_age_s,
        mishards_writer=obs.mishards_writer,
        lease_left_s=obs.lease.left_s,
        row_lease_ms=obs.lease.row_lease_ms,
        milvus_image=obs.milvus_image,
        milvus_flavor=obs.milvus_flavor,
        stopping_for_s=obs.stopping_for_s,
        config_version=obs.cluster_config.running,
        config_conflicts=list(obs.cluster_config.conflicts),
    )
    if obs.doing is not None and obs.doing.waiting:
        out.waiting_for, out.waiting_since_unix = obs.doing.reason[:MAX_REASON_SENT], obs.doing.since_unix
    if obs.clock is not None:
        out.clock_offset_s, out.clock_rtt_s = obs.clock.offset_s, obs.clock.rtt_s
    _mishards_pb(out, obs.mishards)
    if obs.last_writer_stop is not None:
        stop = obs.last_writer_stop
        out.last_writer_stop.CopyFrom(
            node_pb2.WriterStop(
                epoch=stop.epoch,
                drain_id=stop.drain_id,
                exit_code=stop.exit_code,
                seconds=stop.seconds,
                at_unix=stop.at_unix,
            )
        )
    if obs.nvidia_toolkit is not None:
        out.nvidia_toolkit.checked = True
        out.nvidia_toolkit.found.update(obs.nvidia_toolkit)
    _milvus_meta_pb(out.milvus_meta, obs.milvus_meta)
    _milvus_wal_pb(out.milvus_wal, obs.milvus_wal)
    _gpus_pb(out, seen.gpus)
    for m in seen.mounts:
        out.mounts.append(_mount_pb(m))
    out.container.CopyFrom(_container_pb(seen, obs.restarts))
    return out


def _mishards_pb(out: node_pb2.NodeObservation, mishards: MishardsView | None) -> None:
    if mishards is None:
        return
    out.mishards.CopyFrom(
        node_pb2.MishardsStatus(
            state=mishards.state,
            error=mishards.error,
            container=mishards.name,
            hosts=mishards.container_hosts if mishards.container_state == "running" else (),
            left_out=mishards.left_out,
            foreign_overrides=mishards.foreign_overrides,
            reason=mishards.reason,
        )
    )


def _gpus_pb(out: node_pb2.NodeObservation, report: GpuReport | None) -> None:
    """The GPU report: each GPU with its health and XIDs."""
    if report is None:
        return
    out.gpus.available = report.available
    out.gpus.reason = report.reason or ""
    out.gpus.driver_version = report.driver_version or ""
    for g in report.gpus:
        gpu_pb = out.gpus.gpus.add(
            index=g.index,
            uuid=g.uuid or "",
            name=g.name or "",
            memory_total_bytes=g.memory_total_bytes or 0,
            memory_used_bytes=g.memory_used_bytes or 0,
            utilization_pct=g.utilization_pct or 0,
            temperature_c=g.temperature_c or 0,
            power_w=g.power_w or 0,
            health=HEALTH_TO_PB.get(g.health, node_pb2.HEALTH_FAILED),
            reasons=g.reasons,
            xids=[
                node_pb2.XidRecord(
                    xid=x.xid, count=x.count, first_seen_unix=x.first_seen, last_seen_unix=x.last_seen, fatal=x.fatal
                )
                for x in g.xids
            ],
        )
        if g.compute_capability:
            gpu_pb.compute_capability.major, gpu_pb.compute_capability.minor = g.compute_capability


def _mount_pb(m: MountStatus) -> node_pb2.MountStatus:
    """A JuiceFS mount with its metadata engine."""
    meta = m.meta_engine
    return node_pb2.MountStatus(
        volume=m.volume,
        mountpoint=m.mountpoint,
        configured_in_fstab=m.configured_in_fstab,
        mounted=m.mounted,
        read_only=m.mode == "ro",
        health=HEALTH_TO_PB.get(m.state, node_pb2.HEALTH_FAILED),
        state=m.state,
        reasons=m.reasons,
        write_probe_ms=round(m.write_probe_ms, 3) if m.write_probe_ms is not None else 0,
        session_id=str(m.session_id or ""),
        cache_dir_writable=bool(m.cache_dir_writable),
        meta_engine=node_pb2.MetaEngineStatus(
            checked=meta.reachable is not None,
            reachable=bool(meta.reachable),
            latency_ms=meta.latency_ms or 0,
            error=meta.error or "",
            maxmemory_policy=meta.maxmemory_policy or "",
            warnings=meta.warnings,
        ),
    )


def _container_pb(seen: NodeSnapshot, restarts: int) -> node_pb2.ContainerStatus:
    """The Milvus container (or its absence), with why the agent waits."""
    c = seen.container
    if c is None:
        return node_pb2.ContainerStatus(state="absent", restarts=restarts, error=_waiting_for(seen))
    return node_pb2.ContainerStatus(
        name=c.name,
        id=c.id,
        image=c.image,
        state=c.status,
        role=ROLE_TO_PB.get(c.role or "none", node_pb2.ROLE_STOPPED),
        epoch=c.epoch,
        healthy=seen.container_healthy,
        restarts=restarts,
        error=_waiting_for(seen),
        gpus=c.gpus or (),
        gpus_labelled=c.gpus is not None,
    )


def _milvus_meta_pb(out: node_pb2.MilvusMetaStatus, meta: MilvusMeta | None) -> None:
    if meta is None:
        return
    out.configured = True
    target = meta.target
    out.host, out.port, out.database, out.user = target.host, target.port, target.database, target.user
    right = meta.create_right
    if right is not None:
        out.create_right, out.create_detail = right.state, right.detail
        out.account, out.create_checked_unix = right.account, right.checked_at_unix


def _milvus_wal_pb(out: node_pb2.MilvusWalStatus, wal: MilvusWal | None) -> None:
    if wal is None:
        return
    out.render_error = wal.render_error
    out.checked = not out.render_error
    if wal.recovery is None:
        return
    for key in ("rw_enable", "rw_recovery_error_ignore", "base_recovery_error_ignore"):
        value = getattr(wal.recovery, key)
        if value is not None:
            setattr(out, f"{key}_set", True)
            setattr(out, key, value)


def _waiting_for(seen: NodeSnapshot) -> str:
    """Why the agent is waiting rather than running Milvus (starting for Ns, no GPUs, ...); "" when it is not."""
    step = seen.last_step
    return step.reason[:MAX_REASON_SENT] if step is not None and step.action.value == "wait" else ""


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
