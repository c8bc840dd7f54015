"""The coordinator's nouns: what is durable in MySQL, what a node reported, what a node is told.

Shared by the pure decision core (`coordinator.core`), the MySQL store (`coordinator.store`) and the gRPC
server. Times named `*_at` are on the coordinator's monotonic clock unless they end in `_unix`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from jfsmilvus.common.milvus1 import MILVUS_HTTP_PORT, MILVUS_PORT

ROLE_CHANGES = ("initial", "failover", "switchover", "resume")  # the event kinds that give the writer role


@dataclass(frozen=True)
class NodeRecord:
    """A node as the cluster remembers it (MySQL table `nodes`)."""

    name: str
    address: str
    priority: int = 1  # 0: never a writer; higher is preferred
    maintenance: bool = False
    maintenance_reason: str = ""
    hosts_mishards: bool = False


@dataclass(frozen=True)
class ClusterRow:
    """The durable cluster state (MySQL table `cluster`, one row). Changed only by conditional updates."""

    name: str
    writer: str | None
    epoch: int
    paused: bool = False
    paused_reason: str = ""
    leader: str | None = None
    leader_term: int = 0


@dataclass(frozen=True)
class Durable:
    cluster: ClusterRow
    nodes: Mapping[str, NodeRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class WriterStop:
    """How the node's last rw container stop ended (a drain succeeded when exit_code is 0)."""

    epoch: int
    drain_id: int  # the drain it was stopped for; 0: not a drain
    exit_code: int  # -1: unknown
    seconds: float


@dataclass(frozen=True)
class Report:
    """The latest observation a node sent, as the decision core needs it."""

    node: str
    address: str
    received_at: float  # coordinator monotonic time the report arrived
    role_running: str  # rw | ro | none (only when its container is healthy in that role)
    container_role: str  # role label of the container that exists, running or not ("none" when absent)
    highest_epoch: int
    gpu_health: str  # healthy | degraded | failed | unavailable (no NVML: not a GPU fault by itself)
    gpu_reasons: tuple[str, ...] = ()
    mount_state: str = "unmounted"  # healthy | degraded | failed | unmounted | hung
    mount_reasons: tuple[str, ...] = ()
    write_probe_ms: float | None = None
    milvus_port: int = MILVUS_PORT
    milvus_http_port: int = MILVUS_HTTP_PORT
    hosts_mishards: bool = False
    mishards_writer: str = ""  # WOSERVER now written in its Mishards env file
    writer_seen_healthy_age_s: float | None = None  # witness of the writer's Milvus health, None: never
    agent_port: int = 0  # the agent's API, for assignments pushed at once
    row_lease_s: float | None = None  # what a MySQL row read renews its writer lease for; None: not said
    gpus_usable: int = 0  # GPUs not failed (a writer with one left can restart on it in place)
    # Its running Milvus holds a failed GPU (or, for a container whose GPUs are not labelled, any GPU failed);
    # False for a CPU image, and for one restarted on the GPUs left.
    milvus_gpu_failed: bool = False
    meta_engine_reachable: bool | None = None  # the JuiceFS metadata engine, as the node's own check sees it
    last_writer_stop: WriterStop | None = None
    stopping_for_s: float = 0.0  # a graceful stop of its container in progress for this long


@dataclass(frozen=True)
class Discovery:
    """What Mishards must be told: WOSERVER and DISCOVERY_STATIC_HOSTS."""

    writer_address: str
    writer_port: int
    hosts: tuple[str, ...]
    discovery_port: int = MILVUS_PORT


@dataclass(frozen=True)
class Assignment:
    """What one node is told in the answer to its report."""

    node: str
    role: str  # rw | ro | none
    epoch: int
    lease_ms: int  # > 0 only for the writer
    writer: str | None
    writer_address: str = ""
    writer_http_port: int = 0
    discovery: Discovery | None = None
    reason: str = ""
    row_lease_ms: int = 0  # the writer's: what one MySQL cluster row read renews its lease for
    drain_id: int = 0  # the writer's, in a planned change: stop gracefully (Milvus flushes), then report it
    drain_timeout_ms: int = 0


@dataclass(frozen=True)
class Event:
    """One decision, for the `events` table and `coordinatorctl events`."""

    kind: str  # failover | switchover | initial | promote-failed | paused | resumed | maintenance | ...
    reason: str
    node: str | None = None
    epoch: int = 0
    phases: tuple[tuple[str, float], ...] = ()  # (phase name, unix time)
    at_unix: float = 0.0
    id: int = 0
