"""What the agent says about its node, typed from the loop's snapshot to the wire: `Agent.status()` builds one,
the reports and the API send it (`agent.wire.observation_pb`), the metrics endpoint renders it
(`agent.metrics.render_metrics`). Plain data."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.clock import ClockSample
from agent.milvus.metaright import MetaRight
from agent.milvus.milvusfacts import MetaTarget, WalRecovery
from agent.saywhy import Doing
from agent.snapshot import NodeSnapshot

LEASE_RENEWAL_SOURCES = ("coordinator", "mysql")


@dataclass(frozen=True)
class MilvusMeta:
    """The meta database milvus.meta_uri names, and what the probe found of its CREATE right (None: not yet)."""

    target: MetaTarget
    create_right: MetaRight | None = None


@dataclass(frozen=True)
class MilvusWal:
    """The WAL recovery of the rw config the agent would render now; `render_error` when it cannot render it."""

    render_error: str = ""
    recovery: WalRecovery | None = None


@dataclass(frozen=True)
class WriterStop:
    """How the last rw container stop ended (a drain succeeded when it exited 0)."""

    epoch: int
    drain_id: int
    exit_code: int  # -1: unknown
    seconds: float
    at_unix: float


@dataclass(frozen=True)
class WriterLease:
    """This node's writer lease as the reports and the metrics tell it."""

    left_s: float = 0.0
    row_lease_ms: int = 0  # what one MySQL cluster row read renews it for
    renewals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEASE_RENEWAL_SOURCES, 0))
    renewal_failures: int = 0


@dataclass(frozen=True)
class MishardsView:
    """The Mishards container this node runs, as its keeper last saw it (agent.mishards.keeper)."""

    name: str
    image: str
    state: str  # the keeper's: running | held | refused | not started | exited | unknown
    error: str = ""
    reason: str = ""
    listed_hosts: tuple[str, ...] = ()  # what the coordinator lists
    left_out: tuple[str, ...] = ()  # listed, but not answering Milvus gRPC
    container_state: str = ""  # Docker's, of the container found ("" when none is)
    container_hosts: tuple[str, ...] = ()  # the hosts the container found searches
    foreign_overrides: tuple[str, ...] = ()  # "NAME: KEY,KEY" of containers not ours that override its settings


@dataclass(frozen=True)
class ClusterConfigView:
    """The cluster config on this node (agent/clusterconf.py): the version its running container was built from
    (0: none, or agent.yaml alone), the version it was told to run, whether that one is pending (a writer keeps
    running until a planned switchover), and each local value of agent.yaml that differs from the cluster's."""

    running: int = 0
    wanted: int = 0
    pending: bool = False
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentObservation:
    node: str
    address: str
    seen: NodeSnapshot = field(default_factory=NodeSnapshot)  # the loop's last published cycle
    agent_version: str = ""
    restarts: int = 0
    last_errors: tuple[str, ...] = ()
    doing: Doing | None = None
    clock: ClockSample | None = None
    milvus_port: int = 0
    milvus_http_port: int = 0
    agent_port: int = 0
    docker_runtimes: tuple[str, ...] = ()
    nvidia_toolkit: dict[str, str] | None = None  # None: not looked for (an older agent)
    milvus_image: str = ""
    milvus_flavor: str = ""
    milvus_meta: MilvusMeta | None = None
    milvus_wal: MilvusWal | None = None
    writer_seen_healthy_age_s: float = -1.0
    mishards_writer: str = ""
    mishards: MishardsView | None = None  # None: this node hosts no Mishards
    lease: WriterLease = field(default_factory=WriterLease)
    last_writer_stop: WriterStop | None = None
    stopping_for_s: float = 0.0
    cluster_config: ClusterConfigView = field(default_factory=ClusterConfigView)

    @property
    def role_running(self) -> str:
        return self.seen.role_running

    @property
    def highest_epoch_seen(self) -> int:
        return self.seen.highest_epoch
