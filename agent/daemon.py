"""The agent daemon's loop: observe the node, compare with the assignment, take one step, say why.

Each cycle: read the assignment (refusing a stale epoch), observe GPUs, the JuiceFS mount and the Milvus
container, ask the convergence table (`agent.milvus.converge`) for the one next step, carry it out, and log
one line naming the step and its reason. Mishards' env file is kept in step on nodes that host Mishards.

Where the assignment comes from:
- with `coordinators` configured (coordinated mode), from the leading coordinator's answers to the reports
  (`agent.coordination`, its own thread) and from `Assign` pushes; the local assignment file is ignored. A rw
  assignment is only as good as this node's lease (`agent.lease`): the loop reads the lease at every cycle,
  kills a rw container whose lease is gone, and starts rw only under the lease wrapper
  (`agent.milvus.leasewatch`), which kills Milvus by itself should the agent die. Until the first answer after
  a start, the node keeps the role its running container has (a writer only under the lease it left on disk);
- without coordinators, from the local file (`jfs-milvus-agent assign`) and `Assign` pushes, with no lease:
  the operator holds the one-writer rule, as in the manual procedure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from jfsmilvus.common.atomicfile import file_sha256, line_not_utf8, read_text, write_atomic
from jfsmilvus.common.logsetup import LogContext
from jfsmilvus.common.milvus1 import MILVUS_HTTP_PORT, MILVUS_PORT
from jfsmilvus.common.secrets import Secret, SecretError, SecretRef
from jfsmilvus.common.wirecheck import assignment_problem, cluster_config_problem
from jfsmilvus.v1 import coordinator_pb2

from agent import __version__
from agent.assignment import UNASSIGNED, Assignment, AssignmentError, LocalAssignmentFile, judge_assignment
from agent.clock import ClockSample, best_estimate, clock_sample, with_sample
from agent.clusterconf import ClusterConfigKeeper
from agent.config import AgentConfig, VolumeSettings
from agent.coordination import LeaderAnswer
from agent.gpu import GpuMonitor, GpuReport
from agent.lease import Lease, after_rw_answer, lease_for, lease_now, renewed_by_row, writer_may_run
from agent.milvus.container import (
    ContainerSpec,
    ContainerStartError,
    ContainerState,
    DockerUnavailable,
    MilvusDocker,
    check_milvus_health,
)
from agent.milvus.converge import LEASE_LAPSED, Action, Seen, Step, Want, config_current, next_step, wanted_role
from agent.milvus.gpuchoice import GpuChoice, choose_gpus
from agent.milvus.leasewatch import (
    LEASE_FILE_NAME,
    LeaseFile,
    install_wrapper,
    read_lease_file,
    write_lease_file,
)
from agent.milvus.metareach import probe_meta_reach
from agent.milvus.metaright import MetaRightWatch
from agent.milvus.metauri import MetaUri, MetaUriError, parse_meta_uri
from agent.milvus.milvusfacts import WalRecovery, meta_target, wal_recovery
from agent.milvus.nvidiatoolkit import probe_nvidia_toolkit
from agent.milvus.server_config import (
    CONTAINER_CONF_DIR,
    CONTAINER_DB_DIR,
    BaseConfigError,
    RoleSettings,
    base_config_warnings,
    parse_base_config,
    render_server_config,
)
from agent.milvus.waldir import WriterWal
from agent.mishards.container import MishardsDocker
from agent.mishards.envfile import (
    MishardsDiscovery,
    MishardsEnvError,
    owned_values,
    render_env_file,
)
from agent.mishards.keeper import MishardsKeeper, MishardsWant
from agent.mishards.plan import refuse_dollar
from agent.mishards.probe import milvus_answers
from agent.mount import MountError, MountManager, MountStatus
from agent.saywhy import NOW_FILE, Doing, mount_news, next_doing, now_file_text
from agent.state import LocalState, load_state, save_state
from agent.wire import assignment_from_wire, observation_pb

log = logging.getLogger("jfs_milvus.agent")

_SECONDS = re.compile(r"\d+(\.\d+)?s\b")
BACKOFF_MAX_S = 60.0
HEALTHY_RESETS_BACKOFF_S = 60.0
WITNESS_TIMEOUT_S = 0.5


@dataclass
class CrashBackoff:
    """Restart delay after crashes: 1, 2, 4 ... 60 s; forgotten after a minute of health."""

    crashes: int = 0
    restarts: int = 0
    not_before: float = 0.0

    def crashed(self, now: float) -> float:
        self.crashes += 1
        delay = min(BACKOFF_MAX_S, 2.0 ** (self.crashes - 1))
        self.not_before = now + delay
        return delay

    def healthy_for(self, seconds: float) -> None:
        if seconds >= HEALTHY_RESETS_BACKOFF_S:
            self.crashes = 0

    def left(self, now: float) -> float:
        return max(0.0, self.not_before - now)


@dataclass(frozen=True)
class NodeSnapshot:
    """One cycle's observation, served by the API, the reports and the metrics endpoint.

    Frozen and replaced whole (one assignment of `Agent.snapshot`), so a reader in another thread (the
    reporter) gets one cycle's observation, never parts of two. `highest_epoch` is the one read before the
    cycle observed anything: a report that says "no container at epoch E", which the coordinator's fence takes
    as an old writer's acknowledgement of E, is then true of a moment when this agent already knew E, so no
    step of an older epoch (a rw container being started) can follow it."""

    gpus: GpuReport | None = None
    mounts: tuple[MountStatus, ...] = ()
    container: ContainerState | None = None
    container_healthy: bool = False
    role_running: str = "none"
    assignment: Assignment = UNASSIGNED
    highest_epoch: int = 0
    last_step: Step | None = None
    observed_at: float = 0.0
    loop_seconds: float = 0.0  # duration of the cycle that observed this
    loops: int = 0
    write_probe_ms: float | None = None


def _started_seconds_ago(started_at: str | None) -> float:
    if not started_at or started_at.startswith("0001-"):
        return 0.0
    text = started_at.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        started = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    except ValueError:
        return 0.0
    return max(0.0, (dt.datetime.now(dt.UTC) - started).total_seconds())


class Agent:
    def __init__(self, config: AgentConfig, log_context: LogContext | None = None, docker_url: str | None = None):
        self.cluster_conf = ClusterConfigKeeper(config)  # the cluster config taken last, merged over agent.yaml
        self.config = config = self.cluster_conf.merged()
        self.log_context = log_context or LogContext(node=config.node_name)
        self.gpu = GpuMonitor(config.gpu) if config.gpu.enabled else None
        self.docker = MilvusDocker(config.node_name, base_url=docker_url)
        self.local_assignment = LocalAssignmentFile(config.state_dir)
        self.pushed: Assignment | None = None
        self.state: LocalState = load_state(config.state_dir)
        self.backoff = CrashBackoff()
        # Replaced whole by each cycle. Until the first, nothing was observed, so it claims no epoch: an agent
        # restarted beside a running writer must not say "no container" at the epoch on its disk (reports go on
        # while a first cycle hangs in Docker).
        self.snapshot = NodeSnapshot()
        self._errors: list[str] = []  # the last 10 errors, from any thread, oldest first
        self._lock = threading.Lock()
        self._mishards_written: str | None = None
        self._env_file_said = False  # the Mishards env file's bytes that are not UTF-8 were said
        self._doing: Doing | None = None  # the current step, since when (saywhy.next_doing)
        self._mount_said: dict[str, tuple[str, str, str]] = {}  # each mount's state as last logged
        self._now_file_error: str | None = None
        self._mounts = self._build_mounts(config)
        self._last_refusal: str | None = None
        self._assignment_error: str | None = None  # the local assignment file's, as last logged
        self._last_rw: Assignment | None = None
        self.last_writer_stop: dict[str, Any] | None = None  # how the last rw container stop ended (reported)
        self._stopping_since: float | None = None  # a graceful container stop in progress (monotonic)
        self._started: dict[str, float] = {}
        self._container_devices: dict[str, str | None] = {}  # container id -> the mount device it sees
        self._last_healthy: tuple[str, float] = ("", 0.0)  # (container id, when it last passed its health check)
        self._render_cache: tuple[tuple[str, RoleSettings], str] | None = None
        self._base_warned: set[str] = set()
        self._runtimes: tuple[float, list[str]] | None = None
        self._nvidia_toolkit: tuple[float, dict[str, str]] | None = None
        self._gpu_read: tuple[float, GpuReport, int] | None = None
        self._meta_right = MetaRightWatch()
        self._meta_login: tuple[MetaUri, Secret] | None = None
        # (the inputs it was rendered from, None when the base file could not be read; the facts; the error)
        self._wal_recovery: tuple[tuple[str, tuple[MetaUri, Secret]] | None, WalRecovery | None, str] | None = None
        # Coordinated mode: the latest coordinator answer or push lives in self.pushed; it, the lease and the
        # epoch state are guarded by _assign_lock, which the reporter takes and a slow cycle never holds long.
        self._assign_lock = threading.Lock()
        self.lease: Lease | None = self._restore_lease()
        if self.lease is not None:
            # Kept (and renewable from MySQL) until a coordinator answers: an agent restart during a
            # coordinator outage does not demote a healthy writer.
            self.pushed = Assignment(
                role="rw",
                epoch=self.lease.epoch,
                source=f"lease file {self.lease_file}",
                reason="the writer lease a previous agent process left, until a coordinator answers",
                writer=config.node_name,
                lease_ms=self.lease.lease_ms,
            )
        self._renewal_note = ""
        # For /metrics: writer lease renewals by where they came from, and renewals due that did not happen.
        self.lease_renewals = {"coordinator": 0, "mysql": 0}
        self.lease_renewal_failures = 0
        # Set when a new assignment arrives, so the loop acts on it at once rather than at its next tick.
        # `report_soon` (the reporter's) sends a report now rather than at the next interval, when the
        # coordinator waits on what changed: the role running, the writer's health as this reader sees it,
        # or a pushed rw assignment whose lease only a report's answer brings.
        self.wake = threading.Event()
        self.report_soon: Callable[[], None] = lambda: None
        self.mishards = MishardsKeeper(MishardsDocker(self.docker, config.node_name), milvus_answers)
        self._last_no_renewal: str | None = None
        self._last_answer: tuple[str, int, str, int] | None = None
        self._last_answer_refusal: str | None = None
        self.leader_term_seen = 0  # the highest leader term heard, in a push or a report's answer
        self._local_file_ignored = False
        self._witness: tuple[tuple[str, int], float | None] | None = None
        self._clock: tuple[ClockSample, ...] = ()  # this node's clock against the leader's, from report answers

    @property
    def coordinated(self) -> bool:
        return bool(self.config.coordinators)

    # -- wiring ----------------------------------------------------------------------------------------
    @staticmethod
    def _build_mounts(config: AgentConfig) -> dict[str, MountManager]:
        return {v.name: MountManager(v, config.juicefs, config.node_name) for v in config.juicefs.volumes}

    @property
    def lease_file(self) -> str:
        return os.path.join(self.conf_dir, LEASE_FILE_NAME)

    @property
    def leasewatch_path(self) -> str:
        return os.path.join(self.config.milvus.data_dir, "leasewatch")

    def _restore_lease(self) -> Lease | None:
        """The writer lease a previous agent process left on disk (same boot, same clock), if any."""
        if not self.config.coordinators:
            return None
        found = read_lease_file(self.lease_file)
        if found is None or found.epoch < self.state.highest_epoch:
            return None
        lease = Lease(
            found.epoch, found.lease_ms, found.deadline, "lease file (agent restart)", row_lease_ms=found.row_lease_ms
        )
        left = lease.left(lease_now())
        log.info("found a writer lease for epoch %d on disk with %.1fs left (%s)", lease.epoch, left, self.lease_file)
        return lease

    def _save_lease(self) -> None:
        """Write the lease for the wrapper; called with _assign_lock held, at every grant and renewal."""
        if self.lease is None:
            return
        try:
            lease = self.lease
            write_lease_file(
                self.lease_file, LeaseFile(lease.deadline, lease.epoch, lease.lease_ms, lease.row_lease_ms)
            )
        except OSError as exc:
            # The wrapper then kills the writer at the old deadline: safe, and said here.
            self._note_error(f"lease file {self.lease_file} not written: {exc}")
            log.error(
                "lease file %s not written (the rw container stops at the old deadline): %s", self.lease_file, exc
            )

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
        """Take a new, already validated config (SIGHUP); the Milvus container is left to the loop."""
        self.cluster_conf.set_local(config)
        config = self.cluster_conf.merged()
        with self._lock:
            old = self.config
            self.config = config
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
            self.local_assignment = LocalAssignmentFile(config.state_dir)
        log.info("reloaded config %s", config.path)

    # -- assignment ------------------------------------------------------------------------------------
    def push_assignment(self, assignment: Assignment, leader_term: int = 0) -> str | None:
        """An assignment from the API; returns why it was refused, or None when taken.

        A push from an older leader term than the last this agent heard (in a push or a report's answer) is
        refused: a deposed leader's late push must not undo what the current one said.
        In coordinated mode a pushed rw assignment carries no lease of its own: the writer starts once a
        report's answer grants one, so it reports at once, while a push that demotes acts at once."""
        with self._assign_lock:
            refusal = None
            if leader_term < self.leader_term_seen:
                seen = self.leader_term_seen
                refusal = f"it comes from leader term {leader_term}, older than term {seen} already heard"
            else:
                self.leader_term_seen = leader_term
                refusal = judge_assignment(assignment, self.state.highest_epoch)
            if refusal is None:
                self._take(assignment, self.lease)
            lease = self._rw_lease()
        if refusal:
            log.warning("refused assignment %s at epoch %d: %s", assignment.role, assignment.epoch, refusal)
        elif self.coordinated and assignment.role == "rw" and (lease is None or not lease.valid(lease_now())):
            self.report_soon()
        return refusal

    def _take(self, assignment: Assignment, lease: Lease | None) -> None:
        """Make `assignment` and `lease` the current ones (the caller holds _assign_lock, and has judged the
        assignment). What the loop acts on changing wakes it now rather than at its next tick: the role, epoch or
        writer, or whether a writer's lease is valid (rule 17 holds a writer ready to start until it is)."""
        before = self._loop_cares_about()
        self.pushed, self.lease = assignment, lease
        self._remember_epoch(assignment.epoch)
        if self._loop_cares_about() != before:
            self.wake.set()

    def _loop_cares_about(self) -> tuple[str, int, str, bool, int] | None:
        a, lease = self.pushed, self._rw_lease()
        if a is None:
            return None
        return (a.role, a.epoch, a.writer, lease is not None and lease.valid(lease_now()), a.drain_id)

    def _rw_lease(self) -> Lease | None:
        """The lease for the epoch this node is assigned rw at, live or lapsed; None when it is not assigned rw
        or holds no lease for that epoch (the caller holds _assign_lock). Only this lease lets a writer run."""
        a = self.pushed
        return None if a is None else lease_for(a.role, a.epoch, self.lease)

    def _remember_epoch(self, epoch: int) -> None:
        if epoch > self.state.highest_epoch:
            self.state = LocalState(highest_epoch=epoch)
            save_state(self.config.state_dir, self.state)

    # -- coordinator (called from the reporter thread) -----------------------------------------------------
    def report_request(self) -> coordinator_pb2.ReportRequest:
        return coordinator_pb2.ReportRequest(
            observation=observation_pb(self.status()), hosts_mishards=self.config.mishards.enabled
        )

    def take_coordinator_answer(self, answer: LeaderAnswer) -> str | None:
        """The leader's answer: the assignment, and for the writer its lease from the request's send time."""
        assignment = assignment_from_wire(
            answer.assignment, source=f"coordinator {answer.coordinator}", default_reason="assigned by the coordinator"
        )
        self._clock = with_sample(
            self._clock, clock_sample(answer.coordinator, answer.sent_unix, answer.rtt_s, answer.leader_unix)
        )
        with self._assign_lock:
            self.leader_term_seen = max(self.leader_term_seen, answer.leader_term)
            refusal = assignment_problem(answer.assignment) or judge_assignment(assignment, self.state.highest_epoch)
            if refusal is None and assignment.role == "rw" and assignment.writer not in ("", self.config.node_name):
                refusal = f"it assigns rw to this node but names {assignment.writer} as the writer"
            if refusal is None:
                lease = self.lease
                if assignment.role == "rw":
                    lease = after_rw_answer(
                        lease,
                        assignment.epoch,
                        assignment.lease_ms,
                        answer.sent_at,
                        f"coordinator {answer.coordinator}",
                        assignment.row_lease_ms,
                    )
                self._take(assignment, lease)
                if assignment.role == "rw":
                    if assignment.lease_ms > 0:
                        self.lease_renewals["coordinator"] += 1
                    self._save_lease()
                    self._renewal_note = ""
                    self._last_no_renewal = None
        if refusal is not None:
            if refusal != self._last_answer_refusal:
                log.warning(
                    "refused the assignment %s at epoch %d from coordinator %s: %s",
                    assignment.role,
                    assignment.epoch,
                    answer.coordinator,
                    refusal,
                )
                self._last_answer_refusal = refusal
            return refusal
        self._last_answer_refusal = None
        if answer.cluster_config is not None and self.cluster_conf.take(
            answer.cluster_config.version, answer.cluster_config.body, cluster_config_problem(answer.cluster_config)
        ):
            self.wake.set()  # the loop applies it at its next cycle (loop_once)
        key = (assignment.role, assignment.epoch, assignment.writer, assignment.lease_ms)
        if key != self._last_answer:
            self._last_answer = key
            lease = f" with a {assignment.lease_ms / 1000:.1f}s lease" if assignment.role == "rw" else ""
            log.info(
                "coordinator %s assigns %s at epoch %d%s: %s",
                answer.coordinator,
                assignment.role,
                assignment.epoch,
                lease,
                assignment.reason,
            )
        return None

    def granted_lease_ms(self) -> int | None:
        """The length of the lease the coordinator last granted for the epoch this node is assigned rw at; None
        when it holds none (the reporter reports more often while it does: agent.lease.report_period_s)."""
        with self._assign_lock:
            lease = self._rw_lease()
        return lease.lease_ms if lease is not None else None

    def renewable_lease_s(self) -> float | None:
        """What one MySQL row read would renew this node's writer lease for; None when it holds none to renew
        (it must be assigned rw and hold a lease, live or lapsed, for that epoch)."""
        with self._assign_lock:
            lease = self._rw_lease()
        return lease.row_renewal_ms / 1000 if lease is not None else None

    def renew_lease_from_row(self, writer: str | None, epoch: int, sent_at: float, silence_s: float) -> None:
        with self._assign_lock:
            previous = self.lease
            renewed = renewed_by_row(self.lease, self.config.node_name, writer, epoch, sent_at)
            if isinstance(renewed, Lease):
                if renewed is not previous:  # a grant that runs longer still is left as it is
                    self.lease_renewals["mysql"] += 1
                self.lease = renewed
                self._save_lease()
                self._renewal_note = ""
                self._last_no_renewal = None
        if not isinstance(renewed, Lease):
            self.note_no_renewal(f"no coordinator answered for {silence_s:.1f}s and {renewed}")
            return
        if previous is None or previous.renewed_by != renewed.renewed_by:
            log.info(
                "renewed the writer lease for %.1fs from the MySQL cluster row (writer %s, epoch %d): "
                "no coordinator answered for %.1fs",
                renewed.row_renewal_ms / 1000,
                writer,
                epoch,
                silence_s,
            )

    def note_no_renewal(self, why: str) -> None:
        """The lease was due for renewal and was not renewed: say why, once per kind of reason."""
        self._renewal_note = why
        self.lease_renewal_failures += 1
        kind = _SECONDS.sub("Ns", why)
        if kind != self._last_no_renewal:
            self._last_no_renewal = kind
            lease = self.lease
            left = lease.left(lease_now()) if lease else 0.0
            log.warning("writer lease not renewed (%.1fs left): %s", left, why)

    def _lapse(self) -> str:
        lease = self.lease
        if lease is None:
            return "holding no writer lease"
        ago = lease_now() - lease.deadline
        why = self._renewal_note or f"last renewed by {lease.renewed_by}"
        return f"lease expired {max(0.0, ago):.1f}s ago ({why})"

    # -- assignment ------------------------------------------------------------------------------------
    def current_assignment(self, containers: tuple[ContainerState, ...] = ()) -> Assignment:
        if self.coordinated:
            return self._coordinated_assignment(containers)
        candidates: list[Assignment] = []
        try:
            local = self.local_assignment.read()
            self._assignment_error = None
        except AssignmentError as exc:
            self._note_error(str(exc))
            if str(exc) != self._assignment_error:
                self._assignment_error = str(exc)
                log.error("local assignment ignored: %s", exc)
            local = None
        if local is not None:
            candidates.append(local)
        if self.pushed is not None:
            candidates.append(self.pushed)
        if not candidates:
            return UNASSIGNED
        newest = max(candidates, key=lambda a: a.epoch)
        refusal = judge_assignment(newest, self.state.highest_epoch)
        if refusal:
            if refusal != self._last_refusal:
                log.warning("refused assignment %s at epoch %d: %s", newest.role, newest.epoch, refusal)
                self._last_refusal = refusal
            return replace(UNASSIGNED, epoch=self.state.highest_epoch, reason=refusal)
        with self._assign_lock:
            self._remember_epoch(newest.epoch)
        return newest

    def _coordinated_assignment(self, containers: tuple[ContainerState, ...]) -> Assignment:
        """The coordinator's assignment, its rw lease read now; before any answer, the running container's role."""
        if not self._local_file_ignored and os.path.exists(self.local_assignment.path):
            log.warning(
                "ignoring %s: coordinators are configured and their assignment outranks the local file",
                self.local_assignment.path,
            )
            self._local_file_ignored = True
        with self._assign_lock:
            assignment = self.pushed
            lease = self._rw_lease()
            highest = self.state.highest_epoch
        if assignment is None:
            running = next((c for c in containers if c.running and c.role in ("rw", "ro")), None)
            role = running.role if running is not None and running.role else "none"
            assignment = Assignment(
                role=role,
                epoch=highest,
                source="the running container, until a coordinator answers",
                reason=f"keeping {role} until a coordinator answers",
            )
        if assignment.role == "rw":
            # Only a lease for this very epoch counts (_rw_lease); without one the deadline is already past.
            assignment = replace(assignment, lease_deadline=lease.deadline if lease is not None else 0.0)
        return assignment

    def _writer_may_run(self, assignment: Assignment) -> bool:
        """A rw container may run: under a valid rw lease, or, once demoted, until the last rw lease ends."""
        now = lease_now()
        if self.coordinated:
            return writer_may_run(assignment.role, assignment.epoch, self.lease, now)  # the simulation's rule too
        if assignment.role == "rw":
            self._last_rw = assignment
            return assignment.lease_valid(now)
        if self._last_rw is None:
            # No rw lease known (e.g. the agent restarted): graceful only for a lease-free, manual source.
            return assignment.lease_deadline is None
        return self._last_rw.lease_valid(now)

    def holds_writer_lease(self) -> bool:
        """A rw container may run now under the current assignment (read only: for the load balancer's check)."""
        snap = self.snapshot
        assignment = snap.assignment
        if assignment.role != "rw":
            return False
        if self.coordinated:
            return writer_may_run(assignment.role, assignment.epoch, self.lease, lease_now())
        return assignment.lease_valid(lease_now())

    # -- observation -----------------------------------------------------------------------------------
    def _note_error(self, message: str) -> None:
        errors = self._errors
        if not errors or errors[-1] != message:
            errors.append(message)
            del errors[:-10]

    def _rendered_config(self, role: str, gpus: GpuChoice) -> tuple[str | None, str | None]:
        """(server_config.yaml text, error); rendered again only when one of its inputs changed."""
        milvus = self.config.milvus
        if not milvus.meta_uri or milvus.meta_password is None:
            return None, "milvus.meta_uri and milvus.meta_password_file (or _env) must be set in the agent config"
        try:
            base_text = read_text(milvus.base_config) or ""
        except OSError as exc:
            return None, f"milvus.base_config {milvus.base_config}: cannot be read: {exc.strerror or exc}"
        try:
            password = milvus.meta_password.load()
        except SecretError as exc:
            return None, f"milvus.meta_password: {exc}"
        try:
            settings = RoleSettings(
                role=role,
                meta_uri=parse_meta_uri(milvus.meta_uri),
                meta_password=password,
                # Inside the container Milvus listens on its standard ports; the host ports are mapped onto them.
                port=MILVUS_PORT,
                http_port=MILVUS_HTTP_PORT,
                gpu_count=gpus.render_count,
            )
        except MetaUriError as exc:
            return None, f"milvus.meta_uri: {exc}"
        key = (base_text, settings)
        if self._render_cache is not None and self._render_cache[0] == key:
            return self._render_cache[1], None
        try:
            base = parse_base_config(base_text, milvus.base_config)
            text = render_server_config(base, settings)
        except (BaseConfigError, MetaUriError) as exc:
            return None, str(exc)
        self._warn_about_base(base)
        self._render_cache = (key, text)
        return text, None

    def _warn_about_base(self, base: dict[str, Any]) -> None:
        """Each warning about the base file once per agent process (Milvus itself would say nothing)."""
        for warning in base_config_warnings(base, self.config.milvus.base_config):
            if warning not in self._base_warned:
                self._base_warned.add(warning)
                log.warning("base server_config: %s", warning)

    def _gpu_choice(self, report: GpuReport | None) -> GpuChoice:
        milvus = self.config.milvus
        return choose_gpus(milvus.flavor, milvus.gpus, milvus.gpu_indexes, milvus.set_gpu_devices, report)

    @property
    def writer_wal(self) -> WriterWal:
        return WriterWal(self.config.milvus.data_dir)

    @property
    def conf_dir(self) -> str:
        return os.path.join(self.config.milvus.data_dir, "conf")

    @property
    def config_file(self) -> str:
        return os.path.join(self.conf_dir, "server_config.yaml")

    def _running_for(self, container: ContainerState) -> float:
        """Seconds since the container started; asked of Docker once per container, then remembered."""
        if self._started.get(container.id) is None:
            try:
                started = self.docker.started_at(container.id)
            except DockerUnavailable:
                return 0.0
            self._started = {container.id: time.monotonic() - _started_seconds_ago(started)}
        return time.monotonic() - self._started[container.id]

    def _container_mount_device(self, container: ContainerState) -> str | None:
        """The device of the mount the container's db bind mount shows; read once per container (it never changes
        while the container runs, and a restart is a new container), then remembered."""
        if container.id not in self._container_devices:
            try:
                device = self.docker.device_inside(container.id, CONTAINER_DB_DIR)
            except DockerUnavailable:
                return None
            self._container_devices = {container.id: device}
        return self._container_devices[container.id]

    def _unhealthy_for(self, container_id: str, healthy: bool) -> float | None:
        """Seconds since the running container last passed its health check; None when it has not answered yet
        (since it started, as far as this agent process has seen)."""
        now = time.monotonic()
        if healthy:
            self._last_healthy = (container_id, now)
            return 0.0
        return now - self._last_healthy[1] if self._last_healthy[0] == container_id else None

    def _db_dir_exists(self, volume: VolumeSettings) -> bool:
        # Only asked when the mount answered its bounded probes this cycle, so a hung mount is not touched.
        return os.path.isdir(os.path.join(volume.mountpoint, self.config.milvus.db_subdir))

    def _spec(self, want: Want, gpus: tuple[str, ...] | None, volume: VolumeSettings) -> ContainerSpec:
        milvus = self.config.milvus
        return ContainerSpec(
            name=milvus.container_name,
            image=milvus.image,
            node=self.config.node_name,
            role=want.role,
            epoch=want.epoch,
            config_sha256=want.config_sha256,
            bind_address=self.config.address,
            port=milvus.port,
            http_port=milvus.http_port,
            db_dir=os.path.join(volume.mountpoint, milvus.db_subdir),
            conf_dir=self.conf_dir,
            logs_dir=os.path.join(milvus.data_dir, "logs"),
            wal_dir=self.writer_wal.wal_dir if want.role == "rw" else None,
            gpu_uuids=gpus,
            environment={
                "JFS_MILVUS_NODE": self.config.node_name,
                "JFS_MILVUS_EPOCH": str(want.epoch),
                "JFS_MILVUS_ROLE": want.role,
                "JFS_MILVUS_LEASE_FILE": f"{CONTAINER_CONF_DIR}/{LEASE_FILE_NAME}",
            },
            # Under a coordinator a writer runs under the lease wrapper; readers need none.
            leasewatch=self.leasewatch_path if want.role == "rw" and self.coordinated else None,
            config_version=want.config_version,
        )

    # -- the loop --------------------------------------------------------------------------------------
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
        # Read before observing: what is observed then is true of a moment this epoch was already known.
        epoch_before = self.state.highest_epoch
        observing = time.monotonic()
        containers: tuple[ContainerState, ...] = ()
        docker_error = None
        try:
            containers = tuple(self.docker.list_ours(self.config.milvus.container_name))
        except DockerUnavailable as exc:
            docker_error = str(exc)
        else:
            self._refresh_docker_runtimes()
        self._refresh_nvidia_toolkit()
        self._refresh_milvus_facts()
        assignment = self.current_assignment(containers)
        self._witness_writer(assignment)
        self.log_context.epoch = max(assignment.epoch, self.state.highest_epoch)
        gpu_report = self._gpu_report()
        mounts = {name: m.observe() for name, m in self._mounts.items()}
        self._say_mounts(mounts)
        volume = self.milvus_volume
        mount = mounts.get(volume.name) if volume else None

        # A writer-designate prepares as rw during the fence and starts nothing without a lease (converge.py).
        role, designate = wanted_role(assignment.role, assignment.writer, self.config.node_name, self.coordinated)
        gpus = self._gpu_choice(gpu_report)
        text, render_error = (None, None)
        if role != "none":
            text, render_error = self._rendered_config(role, gpus)
        sha = hashlib.sha256(text.encode()).hexdigest() if text else ""
        may_run = not designate and self._writer_may_run(assignment)
        draining = assignment.role == "rw" and not designate and assignment.drain_id > 0
        want = Want(
            role=role,
            epoch=assignment.epoch,
            lease_valid=may_run,
            config_sha256=sha,
            drain_id=assignment.drain_id if draining else 0,
            drain_timeout_s=assignment.drain_timeout_ms / 1000 if draining else 0.0,
            config_version=self.cluster_conf.version,
            image=self.config.milvus.image,
        )

        running = [c for c in containers if c.running and c.role is not None]
        health_error = None
        running_for = 0.0
        unhealthy_for: float | None = 0.0
        if running:
            health_error = check_milvus_health(self.config.address, self.config.milvus.http_port)
            running_for = self._running_for(running[0])
            unhealthy_for = self._unhealthy_for(running[0].id, health_error is None)
            if health_error is None:
                self.backoff.healthy_for(running_for)
        on_disk = file_sha256(self.config_file)  # its bytes: a file that is not even text differs too
        seen = Seen(
            docker_error=docker_error,
            containers=containers,
            container_name=self.config.milvus.container_name,
            health_error=health_error,
            running_for_s=running_for,
            unhealthy_for_s=unhealthy_for,
            mount_mode=mount.mode if mount else None,
            mount_state=mount.state if mount else "unmounted",
            mount_reasons=tuple(mount.reasons) if mount else ("no JuiceFS volume is configured for Milvus",),
            config_on_disk_sha256=on_disk,
            backoff_left_s=self.backoff.left(time.monotonic()),
            health_timeout_s=self.config.milvus.health_timeout_s,
            start_timeout_s=self.config.milvus.start_timeout_s,
            gpu_start_blocker=gpus.start_blocker,
            gpu_report_unavailable=gpus.report_unavailable,
            mount_not_connected=bool(mount and mount.not_connected),
            mount_hung_for_s=mount.hung_for_s if mount else None,
            meta_engine_reachable=mount.meta_engine.reachable if mount else None,
            hung_kill_after_s=self.config.juicefs.hung_kill_after_s,
            meta_db_error=self._meta_db_error(role),
            mount_device=mount.device if mount else None,
            container_mount_device=self._container_mount_device(running[0]) if running else None,
            db_dir_exists=volume is not None
            and mount is not None
            and mount.state in ("healthy", "degraded")
            and self._db_dir_exists(volume),
        )
        if role != "none" and (render_error or volume is None):
            step = Step(Action.WAIT, f"cannot run Milvus: {render_error or 'milvus.volume names no JuiceFS volume'}")
            # A writer must still be fenced even when its config cannot be rendered.
            fence = next_step(replace(want, config_sha256="-"), seen)
            if fence.action in (Action.KILL, Action.STOP) and fence.container_id:
                step = fence
        else:
            step = next_step(want, seen)
        if self.coordinated and step.action is Action.KILL:
            name = next((c.name for c in containers if c.id == step.container_id), "")
            step = replace(step, reason=f"{self._lapse()}; killed the rw container {name}")
        elif self.coordinated and step.cause == LEASE_LAPSED:
            step = replace(step, reason=f"{self._lapse()}; {step.reason}")
        rw_running = any(c.running and c.role == "rw" for c in containers)
        target = next((c for c in containers if c.id == step.container_id), None) if step.container_id else None
        acting = time.monotonic()
        outcome = self._act(step, want, text, gpus, volume, rw_running, target)
        timing = (time.monotonic() - acting, acting - observing)

        current = next((c for c in containers if c.running and c.role is not None), None)
        self.cluster_conf.observe(current, want.config_version, current is not None and config_current(current, want))
        healthy = bool(current) and health_error is None and step.action is Action.NOTHING
        seen_now = NodeSnapshot(
            gpus=gpu_report,
            mounts=tuple(mounts.values()),
            container=current,
            container_healthy=healthy,
            role_running=current.role if healthy and current and current.role else "none",
            assignment=assignment,
            highest_epoch=epoch_before,
            last_step=outcome,
            observed_at=time.time(),
            write_probe_ms=mount.write_probe_ms if mount else None,
        )
        self._sync_mishards(assignment)
        self._log_step(outcome, timing)
        return outcome, seen_now

    def _log_step(self, step: Step, timing: tuple[float, float]) -> None:
        """One line per step that acted (with how long it took, after how long observing), and per new wait: a
        wait whose reason differs only in its durations ("starting for 3s", "for 4s") is the same wait
        (agent.saywhy). What it is doing now goes to the status and the now file."""
        doing, news = next_doing(self._doing, step.action.value, step.reason, step.acted, time.time())
        self._doing = doing
        if not news:
            return
        self._write_now_file(doing)
        if not step.acted:
            log.info("%s: %s", step.action.value, step.reason)
            return
        level = logging.WARNING if step.action is Action.KILL else logging.INFO
        log.log(level, "%s: %s (%.2fs, after observing for %.2fs)", step.action.value, step.reason, *timing)

    def _say_mounts(self, mounts: dict[str, MountStatus]) -> None:
        """One line per change of a mount's state, mode or reasons, with why (a juicefs that died and came back
        by itself between two steps is said too)."""
        for name, m in mounts.items():
            key, line = mount_news(self._mount_said.get(name), m.volume, m.mountpoint, m.state, m.mode, m.reasons)
            self._mount_said[name] = key
            if line is not None:
                log.log(logging.INFO if m.state == "healthy" else logging.WARNING, "%s", line)

    @property
    def now_file(self) -> str:
        return os.path.join(self.config.state_dir, NOW_FILE)

    def _write_now_file(self, doing: Doing) -> None:
        """What the agent is doing now, for `jfs-milvus-agent status` (written when it changes)."""
        try:
            write_atomic(self.now_file, now_file_text(doing, os.getpid(), self.config.node_name), mode=0o644)
            self._now_file_error = None
        except OSError as exc:
            if str(exc) != self._now_file_error:
                self._now_file_error = str(exc)
                log.warning(
                    "%s not written (jfs-milvus-agent status cannot say what the agent does): %s", self.now_file, exc
                )

    def _act(
        self,
        step: Step,
        want: Want,
        text: str | None,
        gpus: GpuChoice,
        volume: VolumeSettings | None,
        rw_running: bool = False,
        target: ContainerState | None = None,
    ) -> Step:
        now = time.monotonic()
        writer = target is not None and target.role == "rw"
        try:
            if step.action is Action.KILL and step.container_id:
                self.docker.kill(step.container_id)
                if writer:
                    self._writer_stopped(target, want, -9, 0.0)
            elif step.action is Action.KILL_JUICEFS and volume is not None:
                self._mounts[volume.name].kill_hung()
            elif step.action is Action.STOP and step.container_id:
                # A drain's stop is bounded by the drain timeout, not by the lease: the lease is renewed
                # while it runs (and if it lapses, the lease wrapper kills Milvus anyway).
                timeout = want.drain_timeout_s if step.drain else self._stop_timeout(rw_running)
                self._stopping_since = now
                try:
                    exit_code = self.docker.stop(step.container_id, timeout)
                finally:
                    self._stopping_since = None
                if writer:
                    self._writer_stopped(target, want, exit_code, time.monotonic() - now)
                    if step.drain:
                        done = f"exit code {exit_code}" if exit_code is not None else "exit code unknown"
                        step = replace(step, reason=f"{step.reason}; stopped in {time.monotonic() - now:.1f}s, {done}")
                if step.counts_as_crash:
                    delay = self.backoff.crashed(now)
                    self.backoff.restarts += 1
                    return replace(step, reason=f"{step.reason}; next start in {delay:.0f}s")
            elif step.action is Action.REMOVE and step.container_id:
                self.docker.kill(step.container_id)
                if writer and target is not None:
                    self._writer_stopped(target, want, target.exit_code, 0.0)
                if step.counts_as_crash:
                    delay = self.backoff.crashed(now)
                    self.backoff.restarts += 1
                    return replace(step, reason=f"{step.reason}; next start in {delay:.0f}s")
            elif step.action is Action.MOUNT and volume is not None and step.mount_mode in ("ro", "rw"):
                self._mounts[volume.name].ensure(step.mount_mode)  # type: ignore[arg-type]
            elif step.action is Action.WRITE_CONFIG and text is not None:
                write_atomic(self.config_file, text, mode=0o600)
            elif step.action is Action.START and volume is not None:
                spec = self._spec(want, gpus.uuids, volume)
                if want.role == "rw":
                    os.makedirs(spec.db_dir, exist_ok=True)
                    # Its own WAL at this epoch is replayed; another stint's is set aside first (waldir.py).
                    self.writer_wal.prepare(want.epoch)
                if spec.leasewatch:
                    install_wrapper(spec.leasewatch)
                    with self._assign_lock:
                        self._save_lease()
                self.docker.start(spec)
        except (DockerUnavailable, ContainerStartError, MountError, OSError) as exc:
            message = f"{step.action.value} failed: {exc}"
            self._note_error(message)
            if step.action is Action.START:
                delay = self.backoff.crashed(now)
                message += f"; retrying in {delay:.0f}s"
            return Step(Action.WAIT, message)
        return step

    def _meta_db_error(self, role: str) -> str | None:
        """Why a writer's MySQL does not answer, or None (it does, or cannot be checked from here)."""
        if role != "rw" or not self.config.milvus.meta_uri:
            return None
        reach = probe_meta_reach(self.config.milvus.meta_uri)
        return f"{reach.target}: {reach.error}" if reach.reachable is False else None

    def _writer_stopped(self, container: ContainerState, want: Want, exit_code: int | None, seconds: float) -> None:
        """Remember how a rw container's stop ended, for the coordinator: a drain succeeded when it exited 0."""
        self.last_writer_stop = {
            "epoch": container.epoch or 0,
            "drain_id": want.drain_id,
            "exit_code": -1 if exit_code is None else int(exit_code),
            "seconds": round(seconds, 3),
            "at_unix": time.time(),
        }
        self.report_soon()

    def _stop_timeout(self, rw_running: bool) -> float:
        """A graceful stop of a writer must end within its lease (the wrapper kills it at the deadline anyway)."""
        timeout = self.config.milvus.stop_timeout_s
        lease = self.lease
        if self.coordinated and rw_running and lease is not None:
            timeout = min(timeout, max(1.0, lease.left(lease_now())))
        return timeout

    # -- witness ---------------------------------------------------------------------------------------
    def _witness_writer(self, assignment: Assignment) -> None:
        """A reader named the writer's address probes its GET /state, at most once per cycle."""
        if assignment.role == "rw" or not assignment.writer_address or not assignment.writer_http_port:
            return
        if assignment.writer == self.config.node_name:
            return
        target = (assignment.writer_address, assignment.writer_http_port)
        seen_before = self._witness is not None and self._witness[0] == target and self._witness[1] is not None
        # Only the latest check vouches: a failed one withdraws the sighting at once (and says so at once), so a
        # writer that is down is not kept alive by what this reader saw before it went.
        seen = check_milvus_health(*target, timeout_s=WITNESS_TIMEOUT_S) is None
        self._witness = (target, time.monotonic() if seen else None)
        if seen_before and not seen:
            self.report_soon()

    def writer_seen_healthy_age_s(self) -> float:
        if self._witness is None or self._witness[1] is None:
            return -1.0
        return time.monotonic() - self._witness[1]

    # -- Mishards --------------------------------------------------------------------------------------
    def _sync_mishards(self, assignment: Assignment) -> None:
        settings = self.config.mishards
        if not settings.enabled or assignment.discovery is None:
            return
        try:
            self.write_mishards_env(assignment.discovery)
            if self.mishards.status.get("error"):
                self._note_error(str(self.mishards.status["error"]))
        except (MishardsEnvError, SecretError, OSError) as exc:
            self._note_error(f"Mishards settings refused: {exc}")
            if self._mishards_written != f"error:{exc}":
                log.error("Mishards settings refused, Mishards left as it is: %s", exc)
                self._mishards_written = f"error:{exc}"

    def write_mishards_env(self, discovery: MishardsDiscovery) -> bool:
        """Validate the settings, record them in the env file (the agent's record, never mounted into Mishards),
        and hand them to the keeper, which runs the Mishards container with them as its environment."""
        settings = self.config.mishards
        password = settings.database_password.load() if settings.database_password else None
        values = owned_values(discovery, settings.server_port, settings.database_uri or "", password)
        refuse_dollar(values)
        # The operator's lines are kept byte for byte, UTF-8 or not (said once).
        existing = read_text(settings.env_file, errors="surrogateescape")
        line = line_not_utf8(existing) if existing is not None and not self._env_file_said else None
        if line is not None:
            self._env_file_said = True
            log.warning("%s: line %d holds bytes that are not UTF-8; kept byte for byte", settings.env_file, line)
        text = render_env_file(existing, values)
        changed = write_atomic(settings.env_file, text, mode=0o600, errors="surrogateescape")
        self._mishards_written = text
        if changed:
            log.info(
                "Mishards settings: writer %s:%d, hosts %s (recorded in %s)",
                discovery.writer_host,
                discovery.writer_port,
                ",".join(discovery.hosts),
                settings.env_file,
            )
        self.mishards.want(
            MishardsWant(
                image=settings.image or "",
                name=settings.container_name,
                values=values,
                writer_host=discovery.writer_host,
                writer_port=discovery.writer_port,
                hosts=discovery.hosts,
                host_port=discovery.discovery_port,
                hold_s=settings.writer_hold_s,
                probe_timeout_s=settings.probe_timeout_s,
            )
        )
        return changed

    @property
    def mishards_writer(self) -> str:
        """WOSERVER of the Mishards container this agent runs now ("" when none runs)."""
        if not self.config.mishards.enabled:
            return ""
        container = self.mishards.status.get("container") or {}
        return str(container.get("writer", "")) if container.get("state") == "running" else ""

    def mishards_status(self) -> dict[str, Any] | None:
        if not self.config.mishards.enabled:
            return None
        return {
            **self.mishards.status,
            "name": self.config.mishards.container_name,
            "image": self.config.mishards.image,
        }

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

    def _refresh_docker_runtimes(self) -> None:
        """Ask the engine for its runtimes every 5 minutes, from the loop (never from the report thread:
        a hung Docker engine must not delay a report, which renews the writer's lease)."""
        now = time.monotonic()
        if self._runtimes is not None and now - self._runtimes[0] < 300:
            return
        try:
            self._runtimes = (now, self.docker.runtimes())
        except DockerUnavailable:
            return

    def _refresh_nvidia_toolkit(self) -> None:
        """Look for the NVIDIA container toolkit's binaries every 5 minutes (a few stat calls on local disk)."""
        now = time.monotonic()
        if self._nvidia_toolkit is None or now - self._nvidia_toolkit[0] >= 300:
            self._nvidia_toolkit = (now, probe_nvidia_toolkit())

    def _refresh_milvus_facts(self) -> None:
        """For the doctor: the meta database and its CREATE right (probed in the background, MetaRightWatch),
        and the WAL recovery of the rw config this agent would render now (rendered again only when the base
        file or the meta login changed)."""
        login = _meta_login(self.config.milvus.meta_uri, self.config.milvus.meta_password)
        self._meta_login = login
        if login is None:
            self._wal_recovery = None
            return
        self._meta_right.refresh(*login)
        try:
            base_text = read_text(self.config.milvus.base_config) or ""
        except OSError as exc:
            path = self.config.milvus.base_config
            self._wal_recovery = (None, None, f"milvus.base_config {path}: cannot be read: {exc.strerror or exc}")
            return
        key = (base_text, login)
        if self._wal_recovery is not None and self._wal_recovery[0] == key:
            return
        settings = RoleSettings(
            role="rw",
            meta_uri=login[0],
            meta_password=login[1],
            port=MILVUS_PORT,
            http_port=MILVUS_HTTP_PORT,
            gpu_count=None,  # the GPU lists do not touch the WAL
        )
        try:
            base = parse_base_config(base_text, self.config.milvus.base_config)
            self._wal_recovery = (key, wal_recovery(base, render_server_config(base, settings)), "")
        except (BaseConfigError, MetaUriError) as exc:
            self._wal_recovery = (key, None, str(exc))

    def _milvus_meta_status(self) -> dict[str, Any] | None:
        login = self._meta_login
        if login is None:
            return None
        right = self._meta_right.latest(*login)
        return {**meta_target(login[0]).to_dict(), "create_right": right.to_dict() if right else None}

    def _milvus_wal_status(self) -> dict[str, Any] | None:
        found = self._wal_recovery
        if found is None:
            return None
        _, facts, error = found
        return {"render_error": error, **(facts.to_dict() if facts else {})}

    # -- for the API -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        snap = self.snapshot
        lease = self.lease  # read once: the reporter thread may replace it meanwhile
        stopping = self._stopping_since
        return {
            "node": self.config.node_name,
            "address": self.config.address,
            "agent_version": __version__,
            "assignment": {
                "role": snap.assignment.role,
                "epoch": snap.assignment.epoch,
                "source": snap.assignment.source,
                "reason": snap.assignment.reason,
            },
            "role_running": snap.role_running,
            "highest_epoch_seen": snap.highest_epoch,
            "gpu": snap.gpus.to_dict() if snap.gpus else None,
            "mounts": [m.to_dict() for m in snap.mounts],
            "container": None
            if snap.container is None
            else {
                "name": snap.container.name,
                "id": snap.container.id,
                "image": snap.container.image,
                "state": snap.container.status,
                "role": snap.container.role,
                "epoch": snap.container.epoch,
                "healthy": snap.container_healthy,
                "gpus": None if snap.container.gpus is None else list(snap.container.gpus),
            },
            "restarts": self.backoff.restarts,
            "last_step": None
            if snap.last_step is None
            else {"action": snap.last_step.action.value, "reason": snap.last_step.reason},
            "last_errors": list(self._errors),
            "doing": None if self._doing is None else self._doing.to_dict(time.time()),
            "clock": None if (clock := best_estimate(self._clock)) is None else clock.to_dict(),
            "observed_at": snap.observed_at,
            "loop_seconds": snap.loop_seconds,
            "loops": snap.loops,
            "milvus_port": self.config.milvus.port,
            "milvus_http_port": self.config.milvus.http_port,
            "agent_port": self.config.agent_port,
            "docker_runtimes": self._runtimes[1] if self._runtimes else [],
            "nvidia_toolkit": dict(self._nvidia_toolkit[1]) if self._nvidia_toolkit else None,
            "milvus_image": self.config.milvus.image,
            "milvus_flavor": self.config.milvus.flavor,
            "milvus_meta": self._milvus_meta_status(),
            "milvus_wal": self._milvus_wal_status(),
            "writer_seen_healthy_age_s": self.writer_seen_healthy_age_s(),
            "mishards_writer": self.mishards_writer,
            "mishards": self.mishards_status(),
            "lease_left_s": lease.left(lease_now()) if lease is not None else 0.0,
            "lease_renewals": dict(self.lease_renewals),
            "lease_renewal_failures": self.lease_renewal_failures,
            "row_lease_ms": lease.row_renewal_ms if lease is not None else 0,
            "last_writer_stop": self.last_writer_stop,
            "stopping_for_s": 0.0 if stopping is None else time.monotonic() - stopping,
            **self.cluster_conf.status(),
        }


def _meta_login(uri: str | None, password: SecretRef | None) -> tuple[MetaUri, Secret] | None:
    """milvus.meta_uri and its password, what general.meta_uri is rendered from; None when either is unusable
    (the render says why)."""
    if not uri or password is None:
        return None
    try:
        return parse_meta_uri(uri), password.load()
    except (MetaUriError, SecretError):
        return None
