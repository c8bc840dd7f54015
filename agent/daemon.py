"""The agent daemon's loop: observe the node, decide the one next step, act, publish what was seen.

Each cycle: read the assignment (`agent.authority`, which also holds the writer lease and the highest epoch seen,
refusing a stale one), observe GPUs, the JuiceFS mount and the Milvus container, ask the convergence table
(`agent.milvus.converge`) for the one next step, carry it out, publish the cycle's observation in one assignment
(`agent.snapshot`), and log one line naming the step and its reason. The container is described by
`agent.milvus.spec`; Mishards' settings are kept in step on nodes that host it (`agent.mishards.sync`).

In coordinated mode a rw assignment is only as good as this node's lease (`agent.lease`): the loop reads it at
every cycle, kills a rw container whose lease is gone, and starts rw only under the lease wrapper
(`agent.milvus.leasewatch`), which kills Milvus by itself should the agent die.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from jfsmilvus.common.atomicfile import file_sha256, write_atomic
from jfsmilvus.common.logsetup import LogContext
from jfsmilvus.common.wirecheck import cluster_config_problem
from jfsmilvus.v1 import coordinator_pb2

from agent import __version__
from agent.assignment import Assignment
from agent.authority import Authority
from agent.clusterconf import ClusterConfigKeeper
from agent.config import AgentConfig, VolumeSettings
from agent.coordination import LeaderAnswer
from agent.facts import NodeFacts
from agent.gpu import GpuMonitor, GpuReport
from agent.milvus.container import (
    ContainerStartError,
    ContainerState,
    DockerUnavailable,
    MilvusDocker,
    check_milvus_health,
)
from agent.milvus.converge import Action, Seen, Step, Want, config_current, next_step, wanted_role
from agent.milvus.gpuchoice import GpuChoice
from agent.milvus.leasewatch import install_wrapper
from agent.milvus.metareach import probe_meta_reach
from agent.milvus.spec import MilvusSpec
from agent.milvus.watch import ContainerWatch, CrashBackoff
from agent.mishards.container import MishardsDocker
from agent.mishards.keeper import MishardsKeeper
from agent.mishards.probe import milvus_answers
from agent.mishards.sync import MishardsSync
from agent.mount import MountError, MountManager, MountStatus
from agent.narrator import Narrator
from agent.observation import AgentObservation, WriterStop
from agent.snapshot import NodeSnapshot
from agent.wire import observation_pb
from agent.witness import WriterWitness

log = logging.getLogger("jfs_milvus.agent")


@dataclass(frozen=True)
class Observed:
    """What a cycle saw before it decided (the node's side; the assignment is the authority's)."""

    epoch_before: int
    containers: tuple[ContainerState, ...]
    docker_error: str | None
    assignment: Assignment
    gpu_report: GpuReport | None
    mounts: dict[str, MountStatus]
    volume: VolumeSettings | None

    @property
    def mount(self) -> MountStatus | None:
        return self.mounts.get(self.volume.name) if self.volume else None

    @property
    def running(self) -> ContainerState | None:
        return next((c for c in self.containers if c.running and c.role is not None), None)


@dataclass(frozen=True)
class Decision:
    """What a cycle decided: the state wanted, the step, and what the step needs to be carried out."""

    want: Want
    seen: Seen
    step: Step
    config_text: str | None
    gpus: GpuChoice


class Agent:
    def __init__(self, config: AgentConfig, log_context: LogContext | None = None, docker_url: str | None = None):
        self.cluster_conf = ClusterConfigKeeper(config)  # the cluster config taken last, merged over agent.yaml
        self.config = config = self.cluster_conf.merged()
        self.log_context = log_context or LogContext(node=config.node_name)
        self.gpu = GpuMonitor(config.gpu) if config.gpu.enabled else None
        self.docker = MilvusDocker(config.node_name, base_url=docker_url)
        self.backoff = CrashBackoff()
        # Replaced whole by each cycle. Until the first, nothing was observed, so it claims no epoch: an agent
        # restarted beside a running writer must not say "no container" at the epoch on its disk (reports go on
        # while a first cycle hangs in Docker).
        self.snapshot = NodeSnapshot()
        self._errors: list[str] = []  # the last 10 errors, from any thread, oldest first
        self._lock = threading.Lock()
        self.narrator = Narrator(config.node_name, config.state_dir)
        self._mounts = self._build_mounts(config)
        self.last_writer_stop: WriterStop | None = None  # how the last rw container stop ended (reported)
        self._stopping_since: float | None = None  # a graceful container stop in progress (monotonic)
        self._gpu_read: tuple[float, GpuReport, int] | None = None
        # Set when a new assignment arrives, so the loop acts on it at once rather than at its next tick.
        # `report_soon` (the reporter's) sends a report now rather than at the next interval, when the
        # coordinator waits on what changed: the role running, the writer's health as this reader sees it,
        # or a pushed rw assignment whose lease only a report's answer brings.
        self.wake = threading.Event()
        self.report_soon: Callable[[], None] = lambda: None
        self.authority = Authority(config, self.wake, lambda: self.report_soon(), self._note_error)
        self.authority.on_answer = self._take_cluster_config
        self.milvus = MilvusSpec(config)
        self.facts = NodeFacts(self.docker)
        self.watch = ContainerWatch(self.docker)
        self.witness = WriterWitness(config.node_name, lambda: self.report_soon())
        keeper = MishardsKeeper(MishardsDocker(self.docker, config.node_name), milvus_answers)
        self.mishards = MishardsSync(config.mishards, keeper, self._note_error)

    @property
    def coordinated(self) -> bool:
        return bool(self.config.coordinators)

    # -- wiring ----------------------------------------------------------------------------------------
    @staticmethod
    def _build_mounts(config: AgentConfig) -> dict[str, MountManager]:
        return {v.name: MountManager(v, config.juicefs, config.node_name) for v in config.juicefs.volumes}

    @property
    def milvus_volume(self) -> VolumeSettings | None:
        name = self.config.milvus.volume
        return next((v for v in self.config.juicefs.volumes if v.name == name), None)

    def start(self) -> None:
        os.makedirs(self.config.state_dir, mode=0o700, exist_ok=True)
        if self.gpu is not None:
            self.gpu.start()
        self._configure_mounts()

    def _configure_mounts(self) -> None:
        """fstab, the password plumbing and the mount helper; a failure is said here, and the loop tries again
        before each mount (`ensure` configures first) and says why it waits."""
        for manager in self._mounts.values():
            try:
                manager.configure()
            except MountError as exc:
                self._note_error(str(exc))
                log.error("%s; trying again before mounting", exc)

    def stop(self) -> None:
        if self.gpu is not None:
            self.gpu.stop()

    def reload(self, config: AgentConfig) -> None:
        """Take a new, already validated config (SIGHUP, or a cluster config version taken); the Milvus container
        is left to the loop."""
        self.cluster_conf.set_local(config)
        config = self.cluster_conf.merged()
        with self._lock:
            old = self.config
            self.config = config
            self.milvus.config = config
            self.mishards.settings = config.mishards
            self.authority.reload(config)
            self.narrator.node, self.narrator.state_dir = config.node_name, config.state_dir
            if config.juicefs != old.juicefs or config.node_name != old.node_name:
                self._mounts = self._build_mounts(config)
                self._configure_mounts()
            if config.gpu != old.gpu:
                self._gpu_read = None
                if self.gpu is not None:
                    self.gpu.stop()
                self.gpu = GpuMonitor(config.gpu) if config.gpu.enabled else None
                if self.gpu is not None:
                    self.gpu.start()
        log.info("reloaded config %s", config.path)

    # -- for the API and the reporter thread --------------------------------------------------------------
    def push_assignment(self, assignment: Assignment, leader_term: int = 0) -> str | None:
        """An `Assign` call's assignment (agent.authority.Authority.push_assignment); why it was refused, or None."""
        return self.authority.push_assignment(assignment, leader_term)

    def _take_cluster_config(self, answer: LeaderAnswer) -> None:
        """The cluster config version an accepted answer brings; the loop applies a new one at its next cycle."""
        given = answer.cluster_config
        if given is not None and self.cluster_conf.take(given.version, given.body, cluster_config_problem(given)):
            self.wake.set()

    def report_request(self) -> coordinator_pb2.ReportRequest:
        return coordinator_pb2.ReportRequest(
            observation=observation_pb(self.status()), hosts_mishards=self.config.mishards.enabled
        )

    def _note_error(self, message: str) -> None:
        errors = self._errors
        if not errors or errors[-1] != message:
            errors.append(message)
            del errors[:-10]

    # -- the loop: observe -> decide -> act -> publish -----------------------------------------------------
    def loop_once(self) -> Step:
        """One cycle, then its observation published in one assignment (and a report asked for at once after
        the first cycle, and when the role running changed: the coordinator waits on it)."""
        started = time.monotonic()
        if self.cluster_conf.merged() != self.config:
            self.reload(self.cluster_conf.local)  # a cluster config version taken since the last cycle
        with self._lock:
            step, seen = self._cycle()
            previous = self.snapshot
            self.snapshot = replace(seen, loop_seconds=time.monotonic() - started, loops=previous.loops + 1)
        self.log_context.role = seen.role_running
        if seen.role_running != previous.role_running or previous.loops == 0:
            self.report_soon()
        return step

    def _cycle(self) -> tuple[Step, NodeSnapshot]:
        """Observe, decide, take the step; returns the step and what was observed before it (not published)."""
        observing = time.monotonic()
        observed = self._observe()
        decision = self._decide(observed)
        acting = time.monotonic()
        outcome = self._act(decision, observed)
        timing = (time.monotonic() - acting, acting - observing)
        self.mishards.sync(observed.assignment)
        running, want = observed.running, decision.want
        self.cluster_conf.observe(running, want.config_version, running is not None and config_current(running, want))
        self.narrator.say_step(outcome, timing)
        return outcome, self._snapshot_of(observed, decision, outcome)

    def _observe(self) -> Observed:
        # Read before observing: what is observed then is true of a moment this epoch was already known.
        epoch_before = self.authority.state.highest_epoch
        containers: tuple[ContainerState, ...] = ()
        docker_error = None
        try:
            containers = tuple(self.docker.list_ours(self.config.milvus.container_name))
        except DockerUnavailable as exc:
            docker_error = str(exc)
        else:
            self.facts.refresh_docker_runtimes()
        self.facts.refresh_nvidia_toolkit()
        self.facts.refresh_milvus(self.config.milvus)
        assignment = self.authority.current_assignment(containers)
        self.witness.look(assignment)
        self.log_context.epoch = max(assignment.epoch, self.authority.state.highest_epoch)
        gpu_report = self._gpu_report()
        mounts = {name: m.observe() for name, m in self._mounts.items()}
        self.narrator.say_mounts(mounts)
        return Observed(epoch_before, containers, docker_error, assignment, gpu_report, mounts, self.milvus_volume)

    def _want(self, observed: Observed) -> tuple[Want, str | None, GpuChoice]:
        """What the node must be: the role (a writer-designate prepares as rw during the fence and starts
        nothing without a lease, converge.py), its rendered config, its GPUs."""
        assignment = observed.assignment
        role, designate = wanted_role(assignment.role, assignment.writer, self.config.node_name, self.coordinated)
        gpus = self.milvus.gpu_choice(observed.gpu_report)
        text, render_error = (None, None)
        if role != "none":
            text, render_error = self.milvus.rendered_config(role, gpus)
        if role != "none" and not render_error and observed.volume is None:
            render_error = "milvus.volume names no JuiceFS volume"
        draining = assignment.role == "rw" and not designate and assignment.drain_id > 0
        want = Want(
            role=role,
            epoch=assignment.epoch,
            lease_valid=not designate and self.authority.writer_may_run(assignment),
            config_sha256=hashlib.sha256(text.encode()).hexdigest() if text else "",
            drain_id=assignment.drain_id if draining else 0,
            drain_timeout_s=assignment.drain_timeout_ms / 1000 if draining else 0.0,
            cannot_run=render_error or "",
            config_version=self.cluster_conf.version,
            image=self.config.milvus.image,
        )
        return want, text, gpus

    def _decide(self, observed: Observed) -> Decision:
        want, text, gpus = self._want(observed)
        seen = self._seen(observed, want, gpus)
        step = self.authority.explain(next_step(want, seen), observed.containers)
        return Decision(want, seen, step, text, gpus)

    def _health(self, running: ContainerState | None) -> tuple[str | None, float, float | None]:
        """The running container's health error (None: healthy), seconds running, and seconds unhealthy."""
        if running is None:
            return None, 0.0, 0.0
        health_error = check_milvus_health(self.config.address, self.config.milvus.http_port)
        running_for = self.watch.running_for(running)
        unhealthy_for = self.watch.unhealthy_for(running.id, health_error is None)
        if health_error is None:
            self.backoff.healthy_for(running_for)
        return health_error, running_for, unhealthy_for

    def _seen(self, observed: Observed, want: Want, gpus: GpuChoice) -> Seen:
        running, mount, volume = observed.running, observed.mount, observed.volume
        health_error, running_for, unhealthy_for = self._health(running)
        usable = volume is not None and mount is not None and mount.state in ("healthy", "degraded")
        return Seen(
            docker_error=observed.docker_error,
            containers=observed.containers,
            container_name=self.config.milvus.container_name,
            health_error=health_error,
            running_for_s=running_for,
            unhealthy_for_s=unhealthy_for,
            mount_mode=mount.mode if mount else None,
            mount_state=mount.state if mount else "unmounted",
            mount_reasons=tuple(mount.reasons) if mount else ("no JuiceFS volume is configured for Milvus",),
            config_on_disk_sha256=file_sha256(self.milvus.config_file),  # a file that is not even text differs too
            backoff_left_s=self.backoff.left(time.monotonic()),
            health_timeout_s=self.config.milvus.health_timeout_s,
            start_timeout_s=self.config.milvus.start_timeout_s,
            gpu_start_blocker=gpus.start_blocker,
            gpu_report_unavailable=gpus.report_unavailable,
            mount_not_connected=bool(mount and mount.not_connected),
            mount_hung_for_s=mount.hung_for_s if mount else None,
            meta_engine_reachable=mount.meta_engine.reachable if mount else None,
            hung_kill_after_s=self.config.juicefs.hung_kill_after_s,
            meta_db_error=self._meta_db_error(want.role),
            mount_device=mount.device if mount else None,
            container_mount_device=self.watch.mount_device(running) if running else None,
            # Only asked when the mount answered its bounded probes this cycle, so a hung mount is not touched.
            db_dir_exists=usable and volume is not None and os.path.isdir(self.milvus.db_dir(volume)),
        )

    def _snapshot_of(self, observed: Observed, decision: Decision, outcome: Step) -> NodeSnapshot:
        current, mount = observed.running, observed.mount
        healthy = current is not None and decision.seen.health_error is None and decision.step.action is Action.NOTHING
        return NodeSnapshot(
            gpus=observed.gpu_report,
            mounts=tuple(observed.mounts.values()),
            container=current,
            container_healthy=healthy,
            role_running=current.role if healthy and current and current.role else "none",
            assignment=observed.assignment,
            highest_epoch=observed.epoch_before,
            last_step=outcome,
            observed_at=time.time(),
            write_probe_ms=mount.write_probe_ms if mount else None,
        )

    def _act(self, decision: Decision, observed: Observed) -> Step:
        step = decision.step
        try:
            return self._carry_out(decision, observed)
        except (DockerUnavailable, ContainerStartError, MountError, OSError) as exc:
            message = f"{step.action.value} failed: {exc}"
            self._note_error(message)
            if step.action is Action.START:
                delay = self.backoff.crashed(time.monotonic())
                message += f"; retrying in {delay:.0f}s"
            return Step(Action.WAIT, message)

    def _carry_out(self, decision: Decision, observed: Observed) -> Step:
        step, want, volume = decision.step, decision.want, observed.volume
        target = next((c for c in observed.containers if step.container_id and c.id == step.container_id), None)
        if step.action is Action.KILL and step.container_id:
            self.docker.kill(step.container_id)
            if target is not None and target.role == "rw":
                self._writer_stopped(target, want, -9, 0.0)
        elif step.action in (Action.STOP, Action.REMOVE) and step.container_id:
            return self._stop(step, want, target, any(c.running and c.role == "rw" for c in observed.containers))
        elif step.action is Action.KILL_JUICEFS and volume is not None:
            self._mounts[volume.name].kill_hung()
        elif step.action is Action.MOUNT and volume is not None and step.mount_mode in ("ro", "rw"):
            self._mounts[volume.name].ensure(step.mount_mode)  # type: ignore[arg-type]
        elif step.action is Action.WRITE_CONFIG and decision.config_text is not None:
            write_atomic(self.milvus.config_file, decision.config_text, mode=0o600)
        elif step.action is Action.START and volume is not None:
            self._start(want, decision.gpus, volume)
        return step

    def _stop(self, step: Step, want: Want, target: ContainerState | None, rw_running: bool) -> Step:
        """Stop (gracefully) or remove (an exited one) the container; a crash pushes the next start back."""
        assert step.container_id is not None
        now = time.monotonic()
        writer = target is not None and target.role == "rw"
        if step.action is Action.REMOVE:
            self.docker.kill(step.container_id)
            if writer and target is not None:
                self._writer_stopped(target, want, target.exit_code, 0.0)
        else:
            # A drain's stop is bounded by the drain timeout, not by the lease: the lease is renewed while it
            # runs (and if it lapses, the lease wrapper kills Milvus anyway).
            timeout = want.drain_timeout_s if step.drain else self.authority.stop_timeout_s(rw_running)
            self._stopping_since = now
            try:
                exit_code = self.docker.stop(step.container_id, timeout)
            finally:
                self._stopping_since = None
            if writer and target is not None:
                self._writer_stopped(target, want, exit_code, time.monotonic() - now)
                if step.drain:
                    done = f"exit code {exit_code}" if exit_code is not None else "exit code unknown"
                    step = replace(step, reason=f"{step.reason}; stopped in {time.monotonic() - now:.1f}s, {done}")
        if step.counts_as_crash:
            delay = self.backoff.crashed(now)
            self.backoff.restarts += 1
            return replace(step, reason=f"{step.reason}; next start in {delay:.0f}s")
        return step

    def _start(self, want: Want, gpus: GpuChoice, volume: VolumeSettings) -> None:
        spec = self.milvus.container_spec(want, gpus.uuids, volume, self.coordinated)
        if want.role == "rw":
            os.makedirs(spec.db_dir, exist_ok=True)
            # Its own WAL at this epoch is replayed; another stint's is set aside first (waldir.py).
            self.milvus.writer_wal.prepare(want.epoch)
        if spec.leasewatch:
            install_wrapper(spec.leasewatch)
            with self.authority.lock:
                self.authority.save_lease()
        self.docker.start(spec)

    def _meta_db_error(self, role: str) -> str | None:
        """Why a writer's MySQL does not answer, or None (it does, or cannot be checked from here)."""
        if role != "rw" or not self.config.milvus.meta_uri:
            return None
        reach = probe_meta_reach(self.config.milvus.meta_uri)
        return f"{reach.target}: {reach.error}" if reach.reachable is False else None

    def _writer_stopped(self, container: ContainerState, want: Want, exit_code: int | None, seconds: float) -> None:
        """Remember how a rw container's stop ended, for the coordinator: a drain succeeded when it exited 0."""
        self.last_writer_stop = WriterStop(
            epoch=container.epoch or 0,
            drain_id=want.drain_id,
            exit_code=-1 if exit_code is None else int(exit_code),
            seconds=round(seconds, 3),
            at_unix=time.time(),
        )
        self.report_soon()

    def _gpu_report(self) -> GpuReport | None:
        """Read the GPUs every gpu.poll_interval_s, and at once after an XID event (the waiter sees those
        as they happen, so a fatal XID fails the GPU in the next cycle, not the next poll)."""
        if self.gpu is None:
            return None
        now = time.monotonic()
        due = self._gpu_read is None or now - self._gpu_read[0] >= self.config.gpu.poll_interval_s
        if due or self._gpu_read[2] != self.gpu.xids_seen:
            self._gpu_read = (now, self.gpu.snapshot(), self.gpu.xids_seen)
        return self._gpu_read[1]

    # -- for the API -----------------------------------------------------------------------------------
    def status(self) -> AgentObservation:
        """What this agent says about its node now: the last published cycle, and what the other threads hold."""
        stopping = self._stopping_since
        authority, facts, config = self.authority, self.facts, self.config
        return AgentObservation(
            node=config.node_name,
            address=config.address,
            seen=self.snapshot,
            agent_version=__version__,
            restarts=self.backoff.restarts,
            last_errors=tuple(self._errors),
            doing=self.narrator.doing,
            clock=authority.clock_estimate(),
            milvus_port=config.milvus.port,
            milvus_http_port=config.milvus.http_port,
            agent_port=config.agent_port,
            docker_runtimes=facts.docker_runtimes(),
            nvidia_toolkit=facts.nvidia_toolkit_found(),
            milvus_image=config.milvus.image,
            milvus_flavor=config.milvus.flavor,
            milvus_meta=facts.milvus_meta(),
            milvus_wal=facts.milvus_wal(),
            writer_seen_healthy_age_s=self.witness.healthy_age_s(),
            mishards_writer=self.mishards.writer,
            mishards=self.mishards.status(),
            lease=authority.writer_lease(),
            last_writer_stop=self.last_writer_stop,
            stopping_for_s=0.0 if stopping is None else time.monotonic() - stopping,
            cluster_config=self.cluster_conf.view(),
        )
