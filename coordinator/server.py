"""CoordinatorService over gRPC: agents report here; coordinatorctl asks and acts here.

A follower answers reports with who leads (leader_address) so agents go there; status and events are
served by any coordinator from MySQL; actions need the leader and say so when asked of a follower.

Threads: a small pool (API_WORKERS). Report never waits for the tick (`Coordinator.receive`), so a handler
holds its thread for tens of microseconds; more threads only contend for the GIL. A small pool also keeps
reports first-come first-served when the machine is short of CPU, where many threads (or grpc.aio's one loop
interleaving every call in flight) slow every report at once: on the 2-core bench under other load, 16 threads
and grpc.aio both gave a p99 near a second where 4 threads stayed in the low hundreds of ms. Calls that stream
for long (a switchover's progress, `events --follow`) each hold a thread for their whole length, so at most
LONG_CALLS of them run at once and the other threads stay free for reports.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import replace

import grpc
from jfsmilvus.common.authz import enforce
from jfsmilvus.common.milvus1 import MILVUS_HTTP_PORT, MILVUS_PORT
from jfsmilvus.common.protomaps import HEALTH_TO_PB, PB_TO_HEALTH, PB_TO_ROLE, ROLE_TO_PB
from jfsmilvus.common.tls import server_credentials
from jfsmilvus.common.wirecheck import operator_problem, report_problem
from jfsmilvus.v1 import coordinator_pb2, coordinator_pb2_grpc, node_pb2

from coordinator.config import CoordinatorConfig
from coordinator.configrpc import ConfigRpcs, answer_cluster_config
from coordinator.configviews import config_row_fields
from coordinator.core import Request
from coordinator.daemon import Coordinator
from coordinator.endpoints import node_endpoint
from coordinator.faults import epochs_ahead_sentence
from coordinator.forget import ForgetRefused, UnknownNode
from coordinator.milvuschecks import bound_milvus_facts
from coordinator.model import ROLE_CHANGES, Assignment, Event, Report, WriterStop
from coordinator.rolloutapi import request_problem as rollout_request_problem
from coordinator.rolloutapi import rollout_progress
from coordinator.rolloutrun import HISTORY_EVENT
from coordinator.storeapi import StoreError

log = logging.getLogger("jfs_milvus.coordinator.api")

MOUNT_RANK = {"healthy": 0, "degraded": 1, "unmounted": 2, "failed": 3, "hung": 4}
API_WORKERS = 6
LONG_CALLS = 3  # streaming calls that may run at once (each holds one of the API_WORKERS threads)


def report_from_pb(request: coordinator_pb2.ReportRequest, received_at: float) -> Report:
    obs = request.observation
    gpu_health = "unavailable"
    gpu_reasons: list[str] = []
    gpus_usable = 0
    if obs.gpus.available:
        gpus = obs.gpus.gpus
        worst = max([g.health for g in gpus]) if gpus else node_pb2.HEALTH_HEALTHY
        gpu_health = PB_TO_HEALTH.get(worst, "failed")
        gpus_usable = sum(1 for g in gpus if g.health in (node_pb2.HEALTH_HEALTHY, node_pb2.HEALTH_DEGRADED))
        if worst == node_pb2.HEALTH_FAILED:  # reasons of failed GPUs only: none to collect otherwise
            gpu_reasons = [f"GPU {g.index}: {r}" for g in gpus if g.health == node_pb2.HEALTH_FAILED for r in g.reasons]
    mount = max(obs.mounts, key=lambda m: MOUNT_RANK.get(m.state, 3), default=None)
    meta = [m.meta_engine for m in obs.mounts if m.HasField("meta_engine") and m.meta_engine.checked]
    stop = None
    if obs.HasField("last_writer_stop"):
        s = obs.last_writer_stop
        stop = WriterStop(epoch=s.epoch, drain_id=s.drain_id, exit_code=s.exit_code, seconds=max(0.0, s.seconds))
    container_role = "none"
    milvus_gpu_failed = False
    if obs.HasField("container") and obs.container.state == "running":
        container_role = PB_TO_ROLE.get(obs.container.role, "none")
        failed = {g.uuid for g in obs.gpus.gpus if g.health == node_pb2.HEALTH_FAILED} if obs.gpus.available else set()
        labelled = obs.container.gpus_labelled
        milvus_gpu_failed = bool(failed) and (not labelled or bool(failed & set(obs.container.gpus)))
    return Report(
        node=obs.node,
        address=obs.address,
        received_at=received_at,
        role_running=PB_TO_ROLE.get(obs.role_running, "none"),
        container_role=container_role,
        highest_epoch=obs.highest_epoch_seen,
        gpu_health=gpu_health,
        gpu_reasons=tuple(gpu_reasons),
        mount_state=mount.state if mount is not None else "unmounted",
        mount_reasons=tuple(mount.reasons) if mount is not None else (),
        write_probe_ms=(mount.write_probe_ms or None) if mount is not None else None,
        milvus_port=obs.milvus_port or MILVUS_PORT,
        milvus_http_port=obs.milvus_http_port or MILVUS_HTTP_PORT,
        hosts_mishards=request.hosts_mishards,
        mishards_writer=obs.mishards_writer,
        writer_seen_healthy_age_s=obs.writer_seen_healthy_age_s if obs.writer_seen_healthy_age_s >= 0 else None,
        agent_port=obs.agent_port,
        row_lease_s=obs.row_lease_ms / 1000 if obs.row_lease_ms else None,
        gpus_usable=gpus_usable,
        milvus_gpu_failed=milvus_gpu_failed,
        meta_engine_reachable=all(m.reachable for m in meta) if meta else None,
        last_writer_stop=stop,
        stopping_for_s=obs.stopping_for_s if obs.stopping_for_s > 0 else 0.0,
    )


def assignment_pb(a: Assignment) -> node_pb2.Assignment:
    out = node_pb2.Assignment(
        role=ROLE_TO_PB[a.role],
        epoch=a.epoch,
        lease_ms=a.lease_ms,
        writer=a.writer or "",
        reason=a.reason,
        writer_address=a.writer_address,
        writer_http_port=a.writer_http_port,
        row_lease_ms=a.row_lease_ms,
        drain_id=a.drain_id,
        drain_timeout_ms=a.drain_timeout_ms,
    )
    if a.discovery is not None:
        out.discovery.CopyFrom(
            node_pb2.DiscoveryConfig(
                writer_address=a.discovery.writer_address,
                writer_port=a.discovery.writer_port,
                hosts=list(a.discovery.hosts),
                discovery_port=a.discovery.discovery_port,
            )
        )
    return out


def event_pb(e: Event) -> coordinator_pb2.Event:
    return coordinator_pb2.Event(
        id=e.id,
        at_unix=e.at_unix,
        kind=e.kind,
        node=e.node or "",
        epoch=e.epoch,
        reason=e.reason,
        phases=[coordinator_pb2.Phase(name=n, at_unix=t) for n, t in e.phases],
    )


class CoordinatorServicer(ConfigRpcs, coordinator_pb2_grpc.CoordinatorServiceServicer):
    def __init__(self, coordinator: Coordinator, long_calls: int = LONG_CALLS):
        self.c = coordinator
        self._long_calls = threading.BoundedSemaphore(long_calls)
        self._long_calls_limit = long_calls

    @contextlib.contextmanager
    def _long_call(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Hold one of the LONG_CALLS slots for a streaming call, or refuse it: reports need the threads."""
        if not self._long_calls.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self._long_calls_limit} streaming calls (switchover/failover progress, events --follow) are "
                "running already; try again when one ends",
            )
        try:
            yield
        finally:
            self._long_calls.release()

    def _not_leader(self) -> coordinator_pb2.ReportResponse:
        leader, address = self.c.leader_seen
        return coordinator_pb2.ReportResponse(leader=False, leader_address=address if leader else "")

    def Report(
        self, request: coordinator_pb2.ReportRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ReportResponse:
        enforce(context, "CoordinatorService.Report", log)
        problem = report_problem(request)
        if problem is not None:
            _refuse_invalid(context, "Report", problem)
        enforce(context, "CoordinatorService.Report", log, node=request.observation.node)
        report = report_from_pb(request, time.monotonic())
        leading, assignment = self.c.receive(report)
        if leading:
            bound_milvus_facts(request.observation)
            self.c.observations[report.node] = (request.observation, time.time())
        if not leading:
            return self._not_leader()
        leadership = self.c.leadership
        answer = coordinator_pb2.ReportResponse(
            leader=True, leader_term=leadership.term if leadership else 0, now_unix=time.time()
        )
        if assignment is not None:
            if assignment.discovery is not None and not report.hosts_mishards:
                assignment = replace(assignment, discovery=None)
            answer.assignment.CopyFrom(assignment_pb(assignment))
        answer_cluster_config(answer, self.c.cluster_config, report.node)
        return answer

    def GetClusterStatus(
        self, request: coordinator_pb2.ClusterStatusRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ClusterStatus:
        enforce(context, "CoordinatorService.GetClusterStatus", log)
        return cluster_status(self.c)

    def _progress(self, request: Request, context: grpc.ServicerContext) -> Iterator[coordinator_pb2.Progress]:
        with self._long_call(context):
            yield from self._follow_progress(request, context)

    def _follow_progress(self, request: Request, context: grpc.ServicerContext) -> Iterator[coordinator_pb2.Progress]:
        asked_at = time.monotonic()
        refusal = self.c.request(request)
        if refusal:
            yield coordinator_pb2.Progress(phase="refused", message=refusal, at_unix=time.time(), done=True, ok=False)
            return
        timing = self.c.config.timing
        deadline = time.monotonic() + timing.drain_timeout_s + timing.lease_s + timing.promote_timeout_s + 10
        sent = 0
        seen_transition = False
        said, said_at = "", 0.0
        while context.is_active() and time.monotonic() < deadline:
            published = self.c.published
            t = published.transition
            if t is not None:
                seen_transition = True
                for name, at in t.phases[sent:]:
                    wall = time.time() - (time.monotonic() - at)
                    yield coordinator_pb2.Progress(phase=name, message=f"{t.kind} to {t.new}: {name}", at_unix=wall)
                sent = len(t.phases)
                # A drain can take minutes: say how it goes, at most once a second.
                if t.phase() == "drain" and published.why != said and time.monotonic() - said_at >= 1.0:
                    said, said_at = published.why, time.monotonic()
                    yield coordinator_pb2.Progress(phase="drain", message=published.why, at_unix=time.time())
            elif seen_transition or (published.durable and published.durable.cluster.writer == request.to):
                finished = self.c.last_completed
                if finished is not None and request.to in (None, finished.node):
                    for name, wall in finished.phases[sent:]:
                        yield coordinator_pb2.Progress(
                            phase=name, message=f"{finished.kind} to {finished.node}: {name}", at_unix=wall
                        )
                writer = published.durable.cluster.writer if published.durable else None
                ok = request.to is None or writer == request.to
                message = (
                    f"{writer} is the writer at epoch {published.durable.cluster.epoch}" if published.durable else ""
                )
                if not ok:
                    message = f"the {request.kind} did not complete: {published.why}"
                yield coordinator_pb2.Progress(phase="done", message=message, at_unix=time.time(), done=True, ok=ok)
                return
            elif (refused := self.c.last_refused) is not None and refused[1] >= asked_at:
                # The request was taken but refused by the decision (the cluster changed meanwhile): its event.
                message = refused[0].reason
                yield coordinator_pb2.Progress(phase="refused", message=message, at_unix=time.time(), done=True)
                return
            time.sleep(0.05)
        yield coordinator_pb2.Progress(
            phase="timeout", message=self.c.published.why, at_unix=time.time(), done=True, ok=False
        )

    def Switchover(
        self, request: coordinator_pb2.SwitchoverRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.Progress]:
        caller = enforce(context, "CoordinatorService.Switchover", log)
        _check_operator(context, "Switchover", request)
        action = request.on_drain_timeout
        if action not in ("", "abandon", "force"):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"on_drain_timeout {action[:40]!r} is not one of abandon, force (or empty for the configured default)",
            )
        switchover = Request(
            "switchover", request.to or None, request.reason, on_drain_timeout=action or None, by=str(caller)
        )
        yield from self._progress(switchover, context)

    def Failover(
        self, request: coordinator_pb2.FailoverRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.Progress]:
        caller = enforce(context, "CoordinatorService.Failover", log)
        _check_operator(context, "Failover", request)
        failover = Request("failover", request.to or None, request.reason, request.force, by=str(caller))
        yield from self._progress(failover, context)

    def Rollout(
        self, request: coordinator_pb2.RolloutRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.RolloutProgress]:
        caller = enforce(context, "CoordinatorService.Rollout", log)
        problem = rollout_request_problem(request)
        if problem is not None:
            _refuse_invalid(context, "Rollout", problem)
        with self._long_call(context):
            yield from rollout_progress(self.c, request, context, str(caller))

    def _act(self, context: grpc.ServicerContext, action) -> coordinator_pb2.ClusterStatus:
        try:
            action()
        except StoreError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return cluster_status(self.c, fresh=True)

    def SetPaused(
        self, request: coordinator_pb2.SetPausedRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ClusterStatus:
        by = str(enforce(context, "CoordinatorService.SetPaused", log))
        _check_operator(context, "SetPaused", request)
        return self._act(context, lambda: self.c.set_paused(request.paused, request.reason, by))

    def SetMaintenance(
        self, request: coordinator_pb2.SetMaintenanceRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ClusterStatus:
        by = str(enforce(context, "CoordinatorService.SetMaintenance", log))
        _check_operator(context, "SetMaintenance", request)
        return self._act(context, lambda: self.c.set_maintenance(request.node, request.on, request.reason, by))

    def SetPriority(
        self, request: coordinator_pb2.SetPriorityRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ClusterStatus:
        by = str(enforce(context, "CoordinatorService.SetPriority", log))
        _check_operator(context, "SetPriority", request)
        return self._act(context, lambda: self.c.set_priority(request.node, request.priority, by))

    def ForgetNode(
        self, request: coordinator_pb2.ForgetNodeRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ForgetNodeResponse:
        by = str(enforce(context, "CoordinatorService.ForgetNode", log))
        _check_operator(context, "ForgetNode", request)
        try:
            outcome = self.c.forget_node(request.node, request.reason, by)
        except UnknownNode as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except (ForgetRefused, StoreError) as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return coordinator_pb2.ForgetNodeResponse(
            forgotten=outcome.forgotten, message=outcome.message, status=cluster_status(self.c, fresh=True)
        )

    def ListEvents(
        self, request: coordinator_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.Event]:
        enforce(context, "CoordinatorService.ListEvents", log)
        _check_operator(context, "ListEvents", request)
        if request.follow:
            with self._long_call(context):
                yield from self._events(request, context)
        else:
            yield from self._events(request, context)

    def _events(
        self, request: coordinator_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.Event]:
        kinds = (*ROLE_CHANGES, HISTORY_EVENT) if request.role_changes_only else None
        try:
            events = self.c.store.events(limit=request.limit or 50, kinds=kinds)
        except StoreError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        last = 0
        for e in events:
            last = max(last, e.id)
            yield event_pb(e)
        while request.follow and context.is_active():
            time.sleep(0.5)
            try:
                for e in self.c.store.events(limit=1000, kinds=kinds, after_id=last):
                    last = max(last, e.id)
                    yield event_pb(e)
            except StoreError:
                continue

    def GetNodeObservations(
        self, request: coordinator_pb2.NodeObservationsRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.NodeObservations:
        enforce(context, "CoordinatorService.GetNodeObservations", log)
        if self.c.leadership is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"not the leader: {why(self.c)}")
        out = coordinator_pb2.NodeObservations()
        for _, (observation, at) in sorted(self.c.observations.items()):
            out.observations.append(observation)
            out.received_unix.append(at)
        return out

    def Why(self, request: coordinator_pb2.WhyRequest, context: grpc.ServicerContext) -> coordinator_pb2.WhyResponse:
        enforce(context, "CoordinatorService.Why", log)
        leading = self.c.leadership is not None
        address = self.c.config.advertise if leading else self.c.leader_seen[1]
        return coordinator_pb2.WhyResponse(sentence=why(self.c), leading=leading, leader_address=address or "")


def _refuse_invalid(context: grpc.ServicerContext, rpc: str, problem: str) -> None:
    """INVALID_ARGUMENT with the one-line problem; nothing of the request is kept."""
    log.warning("refused %s from %s: %s", rpc, context.peer(), problem)
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)


def _check_operator(context: grpc.ServicerContext, rpc: str, request: object) -> None:
    problem = operator_problem(request)  # type: ignore[arg-type]
    if problem is not None:
        _refuse_invalid(context, rpc, problem)


def why(c: Coordinator) -> str:
    if c.leadership is None:
        leader, address = c.leader_seen
        follows = (
            f"This coordinator follows; {leader} at {address} leads." if leader else "No coordinator leads right now."
        )
        return f"{c.last_stale} {follows}" if c.last_stale else follows
    published = c.published
    if published.durable is None:
        return published.why
    reported = {name: r.highest_epoch for name, r in c.snapshot_reports().items()}
    ahead = epochs_ahead_sentence(reported, published.durable.cluster.epoch)
    return f"{published.why} {ahead}" if ahead else published.why


def cluster_status(c: Coordinator, fresh: bool = False) -> coordinator_pb2.ClusterStatus:
    """The cluster as this coordinator sees it; `fresh` reads MySQL again (after an operator's change)."""
    published = c.published
    durable = None if fresh else published.durable
    if durable is None:
        try:
            durable = c.store.load()
        except StoreError as exc:
            return coordinator_pb2.ClusterStatus(cluster=c.config.cluster, why=f"MySQL unreachable: {exc}")
    leader, address = (c.config.coordinator_id, c.config.advertise) if c.leadership else c.leader_seen
    out = coordinator_pb2.ClusterStatus(
        cluster=durable.cluster.name,
        writer=durable.cluster.writer or "",
        epoch=durable.cluster.epoch,
        leader=f"{leader} ({address})" if leader else "",
        leader_term=c.leadership.term if c.leadership else durable.cluster.leader_term,
        paused=durable.cluster.paused,
        paused_reason=durable.cluster.paused_reason,
        why=why(c),
        leader_address=address or "",
        config_version=c.cluster_config.current,
    )
    if published.discovery is not None:
        d = published.discovery
        out.discovery.CopyFrom(
            node_pb2.DiscoveryConfig(
                writer_address=d.writer_address,
                writer_port=d.writer_port,
                hosts=list(d.hosts),
                discovery_port=d.discovery_port,
            )
        )
    reports = c.snapshot_reports()
    observations = dict(c.observations)
    now = time.monotonic()
    for name in sorted(set(durable.nodes) | set(reports)):
        record = durable.nodes.get(name)
        report = reports.get(name)
        assignment = published.assignments.get(name)
        observation = observations.get(name, (None, 0.0))[0] if report is not None else None
        out.nodes.add(
            waiting_for=observation.waiting_for if observation is not None else "",
            waiting_since_unix=observation.waiting_since_unix if observation is not None else 0.0,
            name=name,
            address=(node_endpoint(durable, reports, name) or ("", 0))[0],
            role_assigned=ROLE_TO_PB[assignment.role] if assignment else node_pb2.ROLE_UNSPECIFIED,
            role_running=ROLE_TO_PB[report.role_running] if report else node_pb2.ROLE_UNSPECIFIED,
            epoch=report.highest_epoch if report else 0,
            gpu_health=HEALTH_TO_PB.get(report.gpu_health, node_pb2.HEALTH_UNSPECIFIED) if report else 0,
            mount_health=HEALTH_TO_PB.get(report.mount_state, node_pb2.HEALTH_FAILED) if report else 0,
            container_state=_container_state(report),
            seconds_since_report=(now - report.received_at) if report else -1,
            priority=record.priority if record else 1,
            maintenance=record.maintenance if record else False,
            maintenance_reason=record.maintenance_reason if record else "",
            **config_row_fields(observation, c.cluster_config.version_for(name)),
        )
    return out


def _container_state(report: Report | None) -> str:
    if report is None:
        return "unknown"
    if report.role_running != "none":
        return f"{report.role_running} healthy"
    if report.container_role != "none":
        return f"{report.container_role} not healthy"
    return "none"


def serve(coordinator: Coordinator, config: CoordinatorConfig) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=API_WORKERS, thread_name_prefix="coord-api"))
    coordinator_pb2_grpc.add_CoordinatorServiceServicer_to_server(CoordinatorServicer(coordinator), server)
    address = config.listen_address
    if config.tls.enabled:
        bound = server.add_secure_port(address, server_credentials(config.tls))
        mode = "mutual TLS"
    else:
        bound = server.add_insecure_port(address)
        mode = "plaintext" + ("" if config.tls.allow_insecure_remote else ", loopback only")
    if bound == 0:
        raise OSError(f"cannot listen on {address} for the coordinator API (address in use?)")
    server.start()
    log.info("coordinator API listening on %s (%s)", address, mode)
    return server
