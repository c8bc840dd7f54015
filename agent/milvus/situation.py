"""What the convergence table (`agent.milvus.converge`) reads and answers: the node as it must be (`Want`), as
the loop saw it (`Seen`), and the one step to take (`Step`, `Action`). Plain data, no behaviour."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.milvus.container import ContainerState

LEASE_LAPSED = "lease-lapsed"  # Step.cause of removing a writer its lease wrapper killed


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
    drain_id: int = 0  # nonzero: a writer told to drain stops its rw container gracefully and starts none
    drain_timeout_s: float = 0.0
    cannot_run: str = ""  # why Milvus cannot be run in this role (its config cannot be rendered): rule 0
    # The cluster config version the settings come from (agent/clusterconf.py; 0: agent.yaml alone), and the
    # image they name: a container built from another version is restarted only when its build differs (7a).
    config_version: int = 0
    image: str = ""


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
