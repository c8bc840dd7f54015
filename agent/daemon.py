"""The agent daemon's loop: observe the node, compare with the assignment, take one step, say why.

Each cycle: read the assignment (refusing a stale epoch), observe GPUs, the JuiceFS mount and the Milvus
container, ask the convergence table (`agent.milvus.converge`) for the one next step, carry it out, and log
one line naming the step and its reason. Mishards' env file is kept in step on nodes that host Mishards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from agent import __version__
from agent.assignment import UNASSIGNED, Assignment, AssignmentError, LocalAssignmentFile, judge_assignment
from agent.atomicfile import read_text, write_atomic
from agent.config import AgentConfig, VolumeSettings
from agent.gpu import GpuMonitor, GpuReport
from agent.logsetup import LogContext
from agent.milvus.container import (
    MILVUS_HTTP_PORT,
    MILVUS_PORT,
    ContainerSpec,
    ContainerStartError,
    ContainerState,
    DockerUnavailable,
    MilvusDocker,
    check_milvus_health,
)
from agent.milvus.converge import Action, Seen, Step, Want, next_step
from agent.milvus.server_config import BaseConfigError, RoleSettings, parse_base_config, render_server_config
from agent.mishards.envfile import MishardsDiscovery, MishardsEnvError, owned_values, render_env_file
from agent.mount import MountError, MountManager, MountStatus
from agent.secrets import SecretError
from agent.state import LocalState, load_state, save_state

log = logging.getLogger("jfs_milvus.agent")

BACKOFF_MAX_S = 60.0
HEALTHY_RESETS_BACKOFF_S = 60.0


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


@dataclass
class NodeSnapshot:
    """The latest observation, served by the API and the metrics endpoint."""

    gpus: GpuReport | None = None
    mounts: list[MountStatus] = field(default_factory=list)
    container: ContainerState | None = None
    container_healthy: bool = False
    role_running: str = "none"
    assignment: Assignment = UNASSIGNED
    highest_epoch: int = 0
    last_step: Step | None = None
    last_errors: list[str] = field(default_factory=list)
    observed_at: float = 0.0
    loop_seconds: float = 0.0  # duration of the last cycle
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
        self.config = config
        self.log_context = log_context or LogContext(node=config.node_name)
        self.gpu = GpuMonitor(config.gpu) if config.gpu.enabled else None
        self.docker = MilvusDocker(config.node_name, base_url=docker_url)
        self.local_assignment = LocalAssignmentFile(config.state_dir)
        self.pushed: Assignment | None = None
        self.state: LocalState = load_state(config.state_dir)
        self.backoff = CrashBackoff()
        self.snapshot = NodeSnapshot(highest_epoch=self.state.highest_epoch)
        self._lock = threading.Lock()
        self._mishards_written: str | None = None
        self._last_logged: tuple[str, str] | None = None
        self._mounts = self._build_mounts(config)
        self._last_refusal: str | None = None
        self._last_rw: Assignment | None = None
        self._started: dict[str, float] = {}
        self._render_cache: tuple[tuple[str, RoleSettings], str] | None = None

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
        for manager in self._mounts.values():
            manager.configure()

    def stop(self) -> None:
        if self.gpu is not None:
            self.gpu.stop()

    def reload(self, config: AgentConfig) -> None:
        """Take a new, already validated config (SIGHUP); the Milvus container is left to the loop."""
        with self._lock:
            old = self.config
            self.config = config
            if config.juicefs != old.juicefs or config.node_name != old.node_name:
                self._mounts = self._build_mounts(config)
                for manager in self._mounts.values():
                    manager.configure()
            if config.gpu != old.gpu:
                if self.gpu is not None:
                    self.gpu.stop()
                self.gpu = GpuMonitor(config.gpu) if config.gpu.enabled else None
                if self.gpu is not None:
                    self.gpu.start()
            self.local_assignment = LocalAssignmentFile(config.state_dir)
        log.info("reloaded config %s", config.path)

    # -- assignment ------------------------------------------------------------------------------------
    def push_assignment(self, assignment: Assignment) -> str | None:
        """An assignment from the API; returns why it was refused, or None when taken."""
        with self._lock:
            refusal = judge_assignment(assignment, self.state.highest_epoch)
            if refusal is None:
                self.pushed = assignment
                self._remember_epoch(assignment.epoch)
        if refusal:
            log.warning("refused assignment %s at epoch %d: %s", assignment.role, assignment.epoch, refusal)
        return refusal

    def _remember_epoch(self, epoch: int) -> None:
        if epoch > self.state.highest_epoch:
            self.state = LocalState(highest_epoch=epoch)
            save_state(self.config.state_dir, self.state)

    def current_assignment(self) -> Assignment:
        candidates: list[Assignment] = []
        try:
            local = self.local_assignment.read()
        except AssignmentError as exc:
            self._note_error(str(exc))
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
        self._remember_epoch(newest.epoch)
        return newest

    def _writer_may_run(self, assignment: Assignment) -> bool:
        """A rw container may run: under a valid rw lease, or, once demoted, until the last rw lease ends."""
        now = time.monotonic()
        if assignment.role == "rw":
            self._last_rw = assignment
            return assignment.lease_valid(now)
        if self._last_rw is None:
            # No rw lease known (e.g. the agent restarted): graceful only for a lease-free, manual source.
            return assignment.lease_deadline is None
        return self._last_rw.lease_valid(now)

    # -- observation -----------------------------------------------------------------------------------
    def _note_error(self, message: str) -> None:
        errors = self.snapshot.last_errors
        if not errors or errors[-1] != message:
            errors.append(message)
            del errors[:-10]

    def _rendered_config(self, role: str, gpu_report: GpuReport | None) -> tuple[str | None, str | None]:
        """(server_config.yaml text, error); rendered again only when one of its inputs changed."""
        milvus = self.config.milvus
        base_text = read_text(milvus.base_config) or ""
        try:
            password = milvus.meta_password.load() if milvus.meta_password else None
        except SecretError as exc:
            return None, str(exc)
        gpu_uuids = self._container_gpus(gpu_report)
        settings = RoleSettings(
            role=role,
            meta_uri=milvus.meta_uri,
            meta_password=password,
            # Inside the container Milvus listens on its standard ports; the host ports are mapped onto them.
            port=MILVUS_PORT,
            http_port=MILVUS_HTTP_PORT,
            gpu_count=None if gpu_uuids is None or not milvus.set_gpu_devices else len(gpu_uuids),
        )
        key = (base_text, settings)
        if self._render_cache is not None and self._render_cache[0] == key:
            return self._render_cache[1], None
        try:
            text = render_server_config(parse_base_config(base_text, milvus.base_config), settings)
        except BaseConfigError as exc:
            return None, str(exc)
        self._render_cache = (key, text)
        return text, None

    def _container_gpus(self, report: GpuReport | None) -> tuple[str, ...] | None:
        """UUIDs of the GPUs to give the container: the configured ones that are not failed."""
        milvus = self.config.milvus
        if milvus.gpus == "none" or report is None or not report.available:
            return None
        chosen = [g for g in report.gpus if milvus.gpus == "all" or g.index in milvus.gpu_indexes]
        if milvus.set_gpu_devices:
            chosen = [g for g in chosen if g.health != "failed"]
        return tuple(g.uuid for g in chosen if g.uuid)

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
            wal_dir=os.path.join(milvus.data_dir, "wal"),
            gpu_uuids=gpus,
            environment={
                "JFS_MILVUS_NODE": self.config.node_name,
                "JFS_MILVUS_EPOCH": str(want.epoch),
                "JFS_MILVUS_ROLE": want.role,
            },
        )

    # -- the loop --------------------------------------------------------------------------------------
    def loop_once(self) -> Step:
        started = time.monotonic()
        with self._lock:
            step = self._cycle()
        self.snapshot.loop_seconds = time.monotonic() - started
        self.snapshot.loops += 1
        return step

    def _cycle(self) -> Step:
        assignment = self.current_assignment()
        self.log_context.epoch = max(assignment.epoch, self.state.highest_epoch)
        gpu_report = self.gpu.snapshot() if self.gpu is not None else None
        mounts = {name: m.observe() for name, m in self._mounts.items()}
        volume = self.milvus_volume
        mount = mounts.get(volume.name) if volume else None

        role = assignment.role if assignment.role in ("rw", "ro") else "none"
        text, render_error = (None, None)
        if role != "none":
            text, render_error = self._rendered_config(role, gpu_report)
        sha = hashlib.sha256(text.encode()).hexdigest() if text else ""
        want = Want(role=role, epoch=assignment.epoch, lease_valid=self._writer_may_run(assignment), config_sha256=sha)

        containers: tuple[ContainerState, ...] = ()
        docker_error = None
        try:
            containers = tuple(self.docker.list_ours(self.config.milvus.container_name))
        except DockerUnavailable as exc:
            docker_error = str(exc)
        running = [c for c in containers if c.running and c.role is not None]
        health_error = None
        running_for = 0.0
        if running:
            health_error = check_milvus_health(self.config.address, self.config.milvus.http_port)
            running_for = self._running_for(running[0])
            if health_error is None:
                self.backoff.healthy_for(running_for)
        on_disk = read_text(self.config_file)
        seen = Seen(
            docker_error=docker_error,
            containers=containers,
            container_name=self.config.milvus.container_name,
            health_error=health_error,
            running_for_s=running_for,
            mount_mode=mount.mode if mount else None,
            mount_state=mount.state if mount else "unmounted",
            mount_reasons=tuple(mount.reasons) if mount else ("no JuiceFS volume is configured for Milvus",),
            config_on_disk_sha256=hashlib.sha256(on_disk.encode()).hexdigest() if on_disk is not None else None,
            backoff_left_s=self.backoff.left(time.monotonic()),
            health_timeout_s=self.config.milvus.health_timeout_s,
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
        outcome = self._act(step, want, text, gpu_report, volume)

        current = next((c for c in containers if c.running and c.role is not None), None)
        healthy = bool(current) and health_error is None and step.action is Action.NOTHING
        self.snapshot.gpus = gpu_report
        self.snapshot.mounts = list(mounts.values())
        self.snapshot.container = current
        self.snapshot.container_healthy = healthy
        self.snapshot.role_running = current.role if healthy and current and current.role else "none"
        self.snapshot.assignment = assignment
        self.snapshot.highest_epoch = self.state.highest_epoch
        self.snapshot.last_step = outcome
        self.snapshot.observed_at = time.time()
        self.snapshot.write_probe_ms = mount.write_probe_ms if mount else None
        self.log_context.role = self.snapshot.role_running
        self._sync_mishards(assignment)
        self._log_step(outcome)
        return outcome

    def _log_step(self, step: Step) -> None:
        key = (step.action.value, step.reason)
        if step.action in (Action.NOTHING, Action.WAIT) and key == self._last_logged:
            return
        self._last_logged = key
        level = logging.WARNING if step.action in (Action.KILL,) else logging.INFO
        log.log(level, "%s: %s", step.action.value, step.reason)

    def _act(
        self,
        step: Step,
        want: Want,
        text: str | None,
        gpu_report: GpuReport | None,
        volume: VolumeSettings | None,
    ) -> Step:
        now = time.monotonic()
        try:
            if step.action is Action.KILL and step.container_id:
                self.docker.kill(step.container_id)
            elif step.action is Action.STOP and step.container_id:
                self.docker.stop(step.container_id, self.config.milvus.stop_timeout_s)
                if step.counts_as_crash:
                    delay = self.backoff.crashed(now)
                    self.backoff.restarts += 1
                    return replace(step, reason=f"{step.reason}; next start in {delay:.0f}s")
            elif step.action is Action.REMOVE and step.container_id:
                self.docker.kill(step.container_id)
                if step.counts_as_crash:
                    delay = self.backoff.crashed(now)
                    self.backoff.restarts += 1
                    return replace(step, reason=f"{step.reason}; next start in {delay:.0f}s")
            elif step.action is Action.MOUNT and volume is not None and step.mount_mode in ("ro", "rw"):
                self._mounts[volume.name].ensure(step.mount_mode)  # type: ignore[arg-type]
            elif step.action is Action.WRITE_CONFIG and text is not None:
                write_atomic(self.config_file, text, mode=0o600)
            elif step.action is Action.START and volume is not None:
                spec = self._spec(want, self._container_gpus(gpu_report), volume)
                if want.role == "rw":
                    os.makedirs(spec.db_dir, exist_ok=True)
                self.docker.start(spec)
        except (DockerUnavailable, ContainerStartError, MountError, OSError) as exc:
            message = f"{step.action.value} failed: {exc}"
            self._note_error(message)
            if step.action is Action.START:
                delay = self.backoff.crashed(now)
                message += f"; retrying in {delay:.0f}s"
            return Step(Action.WAIT, message)
        return step

    # -- Mishards --------------------------------------------------------------------------------------
    def _sync_mishards(self, assignment: Assignment) -> None:
        settings = self.config.mishards
        if not settings.enabled or assignment.discovery is None:
            return
        try:
            self.write_mishards_env(assignment.discovery)
        except (MishardsEnvError, SecretError, OSError) as exc:
            self._note_error(f"Mishards env file not written: {exc}")
            if self._mishards_written != f"error:{exc}":
                log.error("Mishards env file %s left as it was: %s", settings.env_file, exc)
                self._mishards_written = f"error:{exc}"

    def write_mishards_env(self, discovery: MishardsDiscovery) -> bool:
        """Write the env file; restart the Mishards container when the content changed. True when changed."""
        settings = self.config.mishards
        password = settings.database_password.load() if settings.database_password else None
        values = owned_values(discovery, settings.server_port, settings.database_uri or "", password)
        text = render_env_file(read_text(settings.env_file), values)
        changed = write_atomic(settings.env_file, text, mode=0o600)
        self._mishards_written = text
        if changed:
            hosts = ",".join(discovery.hosts)
            log.info(
                "wrote Mishards env file %s: writer %s:%d, hosts %s",
                settings.env_file,
                discovery.writer_host,
                discovery.writer_port,
                hosts,
            )
            self._restart_mishards()
        return changed

    def _restart_mishards(self) -> None:
        name = self.config.mishards.container_name
        try:
            restarted = self.docker.restart_named(name)
        except DockerUnavailable as exc:
            self._note_error(f"Mishards not restarted: {exc}")
            log.error("Mishards container %s not restarted: %s", name, exc)
            return
        if restarted:
            log.info("restarted Mishards container %s so it reads the new writer and hosts", name)
        else:
            log.warning("no Mishards container named %s to restart; it will read the env file when it starts", name)

    # -- for the API -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        snap = self.snapshot
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
            },
            "restarts": self.backoff.restarts,
            "last_step": None
            if snap.last_step is None
            else {"action": snap.last_step.action.value, "reason": snap.last_step.reason},
            "last_errors": list(snap.last_errors),
            "observed_at": snap.observed_at,
            "loop_seconds": snap.loop_seconds,
            "loops": snap.loops,
        }
