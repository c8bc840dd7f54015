"""The convergence table: from what the node must be and what it is, the one next step and why.

Pure: no Docker, no mount, no clock reads. The agent loop observes, calls `next_step`, carries out the one
step it returns, and logs the step's sentence. Rules are checked in order; the first that applies wins.

| # | when                                                        | step                      |
|---|-------------------------------------------------------------|---------------------------|
| 1 | Docker cannot be reached                                    | wait (report the reason)  |
| 2 | a container not ours holds the Milvus container name        | wait (never touch it)     |
| 3 | a writer runs but no valid lease covers it any more         | kill it now (self-fence)  |
|3a | the mount has hung for juicefs.hung_kill_after_s while its  | kill its juicefs process  |
|   | metadata engine answers (the hang is the client's own)      | (the mount turns ENOTCONN)|
| 4 | more than one of our containers exists                      | stop the extra ones       |
| 5 | our container has exited                                    | remove it (a crash counts;|
|   |                                                             | a lease self-fence doesn't)|
|5a | a container runs on a mount whose juicefs is gone (ENOTCONN)| stop it: its bind mount   |
|   |                                                             | never sees a new mount    |
|5d | a container runs on a mount since replaced (the device its  | stop it: it restarts on   |
|   | bind mount shows is not the one at the mountpoint now)      | the mount there now       |
|5c | a writer runs while its MySQL (meta_uri) does not answer    | stop it: a flush now drops|
|   |                                                             | rows from memory; its WAL |
|   |                                                             | replays them at the start |
|5b | the writer is told to drain (a planned change of writer)    | stop it gracefully within |
|   |                                                             | the drain timeout (SIGINT:|
|   |                                                             | Milvus flushes), lease on |
| 6 | a container runs in the wrong role, or none is wanted       | stop it (graceful)        |
|7a | it was built from another cluster config version whose     | a reader: stop it         |
|   | change needs a restart (its server_config or image differ)  | (restart); the writer:    |
|   |                                                             | keep it, say the version  |
|   |                                                             | is pending (a planned     |
|   |                                                             | switchover moves it)      |
| 7 | it runs with an outdated config, and the GPU report can say | stop it (restart)         |
|   | which GPUs a restart gets (while it cannot, a healthy Milvus|                           |
|   | keeps running: it would restart into a container without   |                           |
|   | its GPUs)                                                   |                           |
| 8 | it runs, never answered GET /state, for start_timeout_s     | stop it (restart, backoff)|
| 9 | it runs, answered once, then failed its health check for    | stop it (restart, backoff)|
|   | health_timeout_s                                            |                           |
|10 | it runs, not answering (yet)                                | wait: "starting for Ns    |
|   |                                                             | (limit Ms)" or "unhealthy |
|   |                                                             | for Ns"; look again in    |
|   |                                                             | 0.2 s while it is starting|
|11 | it runs and is healthy                                      | nothing (converged)       |
|11a| none runs; the writer is told to drain                      | nothing: drained, wait for|
|   |                                                             | the coordinator's change  |
|12 | none runs; the mount is not in the role's mode              | mount in the role's mode  |
|13 | none runs; the mount is not healthy                         | wait (never start on it)  |
|14 | none runs; a GPU image has no GPU to run on                 | wait (say why: gpus none, |
|   | (`agent.milvus.gpuchoice`)                                  | NVML off, none healthy)   |
|15 | none runs; a reader finds no db directory on the volume     | wait for the writer       |
|16 | none runs; server_config.yaml differs from the rendered one | write it                  |
|17 | none runs; rw is wanted but no lease is valid               | wait (ready, not started) |
|17a| none runs; rw is wanted and its MySQL does not answer       | wait for MySQL            |
|18 | none runs; a restart backoff is pending                     | wait                      |
|19 | none runs                                                   | start the container       |

Starting and failing are judged apart (rules 8 and 9): a Milvus 1.x container answers `/state` only once its
MySQL schema check, WAL replay and `preload_collection` are done (server/Server.cpp: the web server starts
after DBWrapper::StartService), which can take minutes; once it has answered, `health_timeout_s` of failed
checks is a failure. A start that times out counts as a crash.

A writer-designate (told ro at the new epoch while the old writer is fenced, with itself named as the writer)
is wanted as rw without a lease: rules 6, 12 and 16 stop its ro container, remount rw and write the rw config
during the fence, and rule 17 holds it there, so the promotion itself is only rule 19. No Milvus runs rw
without a lease at any point; a rw mount with no rw Milvus writes nothing to the volume.

Recovery in place (rules 3a, 5a, 5d, then 12 and 19): a hung juicefs is killed, which turns its mount
ENOTCONN; a container on a dead mount, or on one since replaced (`umount -l` and a new mount under it), is
stopped, so no container runs on a mount other than the one at the mountpoint; the dead mount is lazily
unmounted and mounted again; the container starts again in its role at the same epoch, a writer on its own
local WAL, which replays what it acknowledged but had not flushed. A reader does this by itself; the
coordinator keeps the writer where it is meanwhile (its `recover_in_place_s`), and fails it over only past it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.milvus.container import ContainerState
from agent.milvus.leasewatch import LEASE_EXPIRED_EXIT

LEASE_LAPSED = "lease-lapsed"  # Step.cause of removing a writer its lease wrapper killed
STARTING_RECHECK_S = 0.2  # how often a container that just started is checked until it first answers
STARTING_WINDOW_S = 30.0  # for this long after its start; then at the loop interval again


class Action(enum.Enum):
    NOTHING = "nothing"
    WAIT = "wait"
    KILL = "kill"
    KILL_JUICEFS = "kill-juicefs"
    STOP = "stop"
    REMOVE = "remove"
    MOUNT = "mount"
    WRITE_CONFIG = "write-config"
    START = "start"


@dataclass(frozen=True)
class Step:
    action: Action
    reason: str
    container_id: str | None = None
    mount_mode: str | None = None
    counts_as_crash: bool = False
    drain: bool = False  # a graceful stop for a planned change of writer, bounded by the drain timeout
    recheck_s: float | None = None  # look again this soon rather than a whole loop interval later
    cause: str = ""  # what the step answers, for the loop to tell the operator why: "lease-lapsed"; "" otherwise

    @property
    def acted(self) -> bool:
        """It changed something on the node (a wait or nothing changes nothing)."""
        return self.action not in (Action.NOTHING, Action.WAIT)


@dataclass(frozen=True)
class Want:
    """What the node must run: role rw | ro | none (run no Milvus), the epoch, and whether a writer may run.

    `lease_valid`: a rw container may run now. For a rw assignment, its lease is valid; after a demotion,
    the last rw lease has not yet run out (a demoted writer is stopped gracefully within its lease and
    killed once the lease is gone).
    """

    role: str
    epoch: int
    lease_valid: bool
    config_sha256: str  # of the server_config.yaml rendered for this role
    # The cluster config version the settings come from (agent/clusterconf.py; 0: agent.yaml alone), and the
    # image they name: a container built from another version is restarted only when its build differs (7a).
    config_version: int = 0
    image: str = ""
    drain_id: int = 0  # nonzero: a writer told to drain stops its rw container gracefully and starts none
    drain_timeout_s: float = 0.0


@dataclass(frozen=True)
class Seen:
    """What the agent observed this loop."""

    docker_error: str | None
    containers: tuple[ContainerState, ...]  # ours, plus any container holding our name
    container_name: str
    health_error: str | None  # of the running container's GET /state; None when healthy
    running_for_s: float  # since the running container started (agent's clock)
    mount_mode: str | None  # ro | rw | None (not mounted)
    mount_state: str  # healthy | degraded | failed | unmounted | hung
    mount_reasons: tuple[str, ...]
    config_on_disk_sha256: str | None
    backoff_left_s: float
    health_timeout_s: float  # after the container first answered
    start_timeout_s: float  # to its first answer
    db_dir_exists: bool = True
    # Failing its health check this long since it last passed; None: it has not answered since it started.
    unhealthy_for_s: float | None = None
    gpu_start_blocker: str | None = None  # why a GPU image cannot be started now (agent.milvus.gpuchoice)
    gpu_report_unavailable: bool = False  # the GPU report cannot say which GPUs a restart would get
    mount_not_connected: bool = False  # its juicefs process is gone: ENOTCONN
    mount_hung_for_s: float | None = None  # a probe of the mount has been stuck this long; None: not hung
    meta_engine_reachable: bool | None = None  # None: not checked
    hung_kill_after_s: float = 10.0
    meta_db_error: str | None = None  # the writer's MySQL (meta_uri) does not answer: why; None: it does, or unknown
    # The device (major:minor) of the mount at the mountpoint now, and of the one the running container's db
    # bind mount shows (read from its own mountinfo); None: not known. They differ once the mount was replaced.
    mount_device: str | None = None
    container_mount_device: str | None = None


def wanted_role(assigned: str, writer: str, node: str, coordinated: bool) -> tuple[str, bool]:
    """The role to converge to, and whether this node is the writer-designate: told ro at the new epoch by a
    coordinator that names it as the writer while the old one is fenced. A designate is wanted as rw but must
    be given `lease_valid=False` until a rw assignment brings a lease (rule 17)."""
    role = assigned if assigned in ("rw", "ro") else "none"
    if coordinated and role == "ro" and writer == node:
        return "rw", True
    return role, False


def _ours(seen: Seen) -> list[ContainerState]:
    return [c for c in seen.containers if c.role is not None]


def _unanswered(current: ContainerState, seen: Seen) -> Step:
    """Rules 8-10: a running container that does not answer its health check."""
    role = current.role
    if seen.unhealthy_for_s is None:
        if seen.running_for_s >= seen.start_timeout_s:
            return Step(
                Action.STOP,
                f"restarting {role} container: it did not answer GET /state within milvus.start_timeout_s "
                f"({seen.start_timeout_s:.0f}s) of its start ({seen.health_error})",
                current.id,
                counts_as_crash=True,
            )
        waiting = (
            f"{role} container starting for {seen.running_for_s:.0f}s (limit {seen.start_timeout_s:.0f}s), "
            f"waiting for its first answer: {seen.health_error}"
        )
    elif seen.unhealthy_for_s >= seen.health_timeout_s:
        return Step(
            Action.STOP,
            f"restarting {role} container: unhealthy for {seen.unhealthy_for_s:.0f}s ({seen.health_error})",
            current.id,
            counts_as_crash=True,
        )
    else:
        waiting = (
            f"{role} container unhealthy for {seen.unhealthy_for_s:.0f}s (limit {seen.health_timeout_s:.0f}s), "
            f"waiting for its health check: {seen.health_error}"
        )
    # A container that just started is checked again soon: a promotion ends when it first answers.
    soon = STARTING_RECHECK_S if seen.running_for_s < STARTING_WINDOW_S else None
    return Step(Action.WAIT, waiting, current.id, recheck_s=soon)


def config_current(current: ContainerState, want: Want) -> bool:
    """Whether a container runs the wanted cluster config version: built from it, or from another one whose
    difference needs no restart (its rendered server_config and its image are the wanted ones)."""
    if (current.config_version or 0) == want.config_version:
        return True
    return current.config_sha256 == want.config_sha256 and (not want.image or current.image == want.image)


def _cluster_config_change(current: ContainerState, want: Want, seen: Seen) -> Step:
    """Rule 7a: a container built from another cluster config version, which needs a restart to run this one."""
    built = f"version {current.config_version}" if current.config_version else "agent.yaml alone"
    built = f"it was built from {built}"
    if current.role == "rw":
        if seen.health_error:
            return _unanswered(current, seen)
        return Step(
            Action.NOTHING,
            f"running rw at epoch {want.epoch}, healthy; cluster config version {want.config_version} is pending "
            f"({built}): a writer is never restarted for a config change, a planned switchover moves it",
        )
    if seen.gpu_report_unavailable:
        if seen.health_error:
            return _unanswered(current, seen)
        return Step(
            Action.NOTHING,
            f"running {current.role} at epoch {want.epoch}, healthy; cluster config version {want.config_version} "
            f"needs a restart, but it keeps running while the GPU report cannot say which GPUs a restart gets "
            f"({seen.gpu_start_blocker})",
        )
    return Step(
        Action.STOP,
        f"restarting {current.role} container for cluster config version {want.config_version} ({built})",
        current.id,
    )


def next_step(want: Want, seen: Seen) -> Step:
    if seen.docker_error:
        return Step(Action.WAIT, f"Docker is unreachable, retrying: {seen.docker_error}")
    stranger = [c for c in seen.containers if c.role is None and c.name == seen.container_name]
    if stranger:
        return Step(
            Action.WAIT,
            f"container {seen.container_name} ({stranger[0].id}) was not started by jfs-milvus-agent; "
            "remove or rename it so the agent can run Milvus",
        )
    ours = _ours(seen)
    running = [c for c in ours if c.running]

    for c in running:
        if c.role == "rw" and not want.lease_valid:
            why = (
                "its lease is not valid" if want.role == "rw" else f"it is demoted to {want.role} and its lease ran out"
            )
            return Step(Action.KILL, f"killing writer container {c.name} at once because {why}", c.id)

    hung = seen.mount_hung_for_s
    kill_after = seen.hung_kill_after_s
    if hung is not None and 0 < kill_after <= hung and seen.meta_engine_reachable is not False:
        return Step(
            Action.KILL_JUICEFS,
            f"killing the hung juicefs process: its mount has hung for {hung:.0f}s "
            f"(juicefs.hung_kill_after_s {seen.hung_kill_after_s:g}) while its metadata engine "
            f"{'answers' if seen.meta_engine_reachable else 'is not checked'}; the mount is recovered and Milvus "
            "restarted on it",
        )

    if len(ours) > 1:
        keep = next((c for c in running if c.role == want.role), None)
        extra = next(c for c in ours if c is not keep)
        return Step(Action.STOP, f"stopping extra container {extra.name} ({extra.id}): one Milvus per node", extra.id)

    current = ours[0] if ours else None
    if current is not None and not current.running:
        if current.role == "rw" and current.exit_code == LEASE_EXPIRED_EXIT:
            return Step(
                Action.REMOVE,
                f"removing container {current.name}: its lease wrapper killed it when the lease lapsed "
                f"(exit code {LEASE_EXPIRED_EXIT})",
                current.id,
                cause=LEASE_LAPSED,
            )
        crashed = current.status in ("exited", "dead") and current.exit_code not in (0, None)
        detail = f"exit code {current.exit_code}" if current.exit_code is not None else current.status
        return Step(
            Action.REMOVE,
            f"removing container {current.name} ({detail}){' after a crash' if crashed else ''}",
            current.id,
            counts_as_crash=crashed or current.status == "dead",
        )

    if current is not None and seen.mount_not_connected:
        return Step(
            Action.STOP,
            f"stopping {current.role} container: its JuiceFS mount died under it (ENOTCONN) and a container never "
            f"sees a new mount; it restarts on a new mount at epoch {want.epoch}"
            + (", on its own WAL" if current.role == "rw" else ""),
            current.id,
        )
    replaced = current is not None and None not in (seen.mount_device, seen.container_mount_device)
    if current is not None and replaced and seen.mount_device != seen.container_mount_device:
        return Step(
            Action.STOP,
            f"stopping {current.role} container: the JuiceFS mount it started on (device "
            f"{seen.container_mount_device}) was replaced by another (device {seen.mount_device}), and a container "
            f"never sees a new mount; it restarts on the mount there now at epoch {want.epoch}"
            + (", on its own WAL" if current.role == "rw" else ""),
            current.id,
        )
    if current is not None and current.role == "rw" and seen.meta_db_error:
        return Step(
            Action.STOP,
            f"stopping the rw container: its MySQL does not answer ({seen.meta_db_error}), so a flush now drops "
            "what it serializes from memory (MemManagerImpl.cpp:143-190); its WAL keeps it, and it replays it when "
            f"it starts again at epoch {want.epoch} once MySQL answers",
            current.id,
        )
    if current is not None and want.drain_id and current.role == "rw":
        return Step(
            Action.STOP,
            f"draining: stopping the rw container gracefully (SIGINT, Milvus flushes its WAL) for a planned change "
            f"of writer at epoch {want.epoch}",
            current.id,
            drain=True,
        )

    if current is not None:
        if want.role not in ("rw", "ro"):
            return Step(
                Action.STOP, f"stopping {current.role} container: this node is assigned {want.role}", current.id
            )
        if current.role != want.role:
            return Step(
                Action.STOP,
                f"stopping {current.role} container to switch to {want.role} (epoch {want.epoch})",
                current.id,
            )
        if not config_current(current, want):
            return _cluster_config_change(current, want, seen)
        outdated = current.config_sha256 != want.config_sha256
        if outdated and not seen.gpu_report_unavailable:
            return Step(Action.STOP, f"restarting {current.role} container: its server_config.yaml changed", current.id)
        if seen.health_error:
            return _unanswered(current, seen)
        if outdated:
            return Step(
                Action.NOTHING,
                f"running {current.role} at epoch {want.epoch}, healthy; its server_config.yaml changed, but it keeps "
                f"running while the GPU report cannot say which GPUs a restart gets ({seen.gpu_start_blocker})",
            )
        return Step(Action.NOTHING, f"running {current.role} at epoch {want.epoch}, healthy")

    if want.role not in ("rw", "ro"):
        return Step(Action.NOTHING, f"no Milvus container: this node is assigned {want.role}")
    if want.drain_id and want.role == "rw":
        return Step(Action.NOTHING, "drained: no Milvus runs; the coordinator moves the writer next")
    if seen.mount_state in ("failed", "unmounted") or seen.mount_mode != want.role:
        current_mode = seen.mount_mode or "unmounted"
        if seen.mount_state == "hung":
            return Step(
                Action.WAIT, f"JuiceFS mount is hung; not starting {want.role}: {'; '.join(seen.mount_reasons)}"
            )
        return Step(
            Action.MOUNT,
            f"mounting JuiceFS {want.role} for the {want.role} role (now {current_mode}, {seen.mount_state})",
            mount_mode=want.role,
        )
    if seen.mount_state not in ("healthy", "degraded"):
        return Step(
            Action.WAIT,
            f"JuiceFS mount is {seen.mount_state}; not starting {want.role}: {'; '.join(seen.mount_reasons)}",
        )
    if seen.gpu_start_blocker:
        return Step(Action.WAIT, seen.gpu_start_blocker)
    if want.role == "ro" and not seen.db_dir_exists:
        return Step(Action.WAIT, "no Milvus db directory on the volume yet: a reader waits for the writer to create it")
    if seen.config_on_disk_sha256 != want.config_sha256:
        return Step(Action.WRITE_CONFIG, f"writing server_config.yaml for role {want.role}")
    if want.role == "rw" and seen.meta_db_error:
        return Step(Action.WAIT, f"not starting rw: its MySQL does not answer ({seen.meta_db_error})")
    if want.role == "rw" and not want.lease_valid:
        # The mount and the config are ready (a writer-designate prepares while the old writer is fenced),
        # but no Milvus writes without a lease.
        return Step(Action.WAIT, "ready to write (mount rw, config written) but holding no valid lease: not starting")
    if seen.backoff_left_s > 0:
        return Step(Action.WAIT, f"waiting {seen.backoff_left_s:.0f}s before restarting Milvus (crash backoff)")
    return Step(Action.START, f"starting Milvus as {want.role} at epoch {want.epoch}")
