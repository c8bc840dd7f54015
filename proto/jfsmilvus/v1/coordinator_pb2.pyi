from jfsmilvus.v1 import node_pb2 as _node_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterConfig(_message.Message):
    __slots__ = ("version", "body")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    version: int
    body: str
    def __init__(self, version: _Optional[int] = ..., body: _Optional[str] = ...) -> None: ...

class GetClusterConfigRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class ClusterConfigVersion(_message.Message):
    __slots__ = ("version", "body", "author", "reason", "created_unix", "restart_needed", "current")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    RESTART_NEEDED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    version: int
    body: str
    author: str
    reason: str
    created_unix: float
    restart_needed: bool
    current: int
    def __init__(self, version: _Optional[int] = ..., body: _Optional[str] = ..., author: _Optional[str] = ..., reason: _Optional[str] = ..., created_unix: _Optional[float] = ..., restart_needed: _Optional[bool] = ..., current: _Optional[int] = ...) -> None: ...

class ListClusterConfigsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ClusterConfigHistory(_message.Message):
    __slots__ = ("versions", "current")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ClusterConfigVersion]
    current: int
    def __init__(self, versions: _Optional[_Iterable[_Union[ClusterConfigVersion, _Mapping]]] = ..., current: _Optional[int] = ...) -> None: ...

class CommitClusterConfigRequest(_message.Message):
    __slots__ = ("body", "reason", "expected_current", "rollback_of")
    BODY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_CURRENT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_OF_FIELD_NUMBER: _ClassVar[int]
    body: str
    reason: str
    expected_current: int
    rollback_of: int
    def __init__(self, body: _Optional[str] = ..., reason: _Optional[str] = ..., expected_current: _Optional[int] = ..., rollback_of: _Optional[int] = ...) -> None: ...

class CommitClusterConfigResponse(_message.Message):
    __slots__ = ("committed", "version", "restart_needed", "message", "nodes_pinned")
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESTART_NEEDED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NODES_PINNED_FIELD_NUMBER: _ClassVar[int]
    committed: bool
    version: int
    restart_needed: bool
    message: str
    nodes_pinned: int
    def __init__(self, committed: _Optional[bool] = ..., version: _Optional[int] = ..., restart_needed: _Optional[bool] = ..., message: _Optional[str] = ..., nodes_pinned: _Optional[int] = ...) -> None: ...

class NodeObservationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeObservations(_message.Message):
    __slots__ = ("observations", "received_unix")
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_UNIX_FIELD_NUMBER: _ClassVar[int]
    observations: _containers.RepeatedCompositeFieldContainer[_node_pb2.NodeObservation]
    received_unix: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, observations: _Optional[_Iterable[_Union[_node_pb2.NodeObservation, _Mapping]]] = ..., received_unix: _Optional[_Iterable[float]] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("observation", "hosts_mishards")
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    HOSTS_MISHARDS_FIELD_NUMBER: _ClassVar[int]
    observation: _node_pb2.NodeObservation
    hosts_mishards: bool
    def __init__(self, observation: _Optional[_Union[_node_pb2.NodeObservation, _Mapping]] = ..., hosts_mishards: _Optional[bool] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("leader", "leader_address", "assignment", "leader_term", "now_unix", "cluster_config")
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    LEADER_TERM_FIELD_NUMBER: _ClassVar[int]
    NOW_UNIX_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    leader: bool
    leader_address: str
    assignment: _node_pb2.Assignment
    leader_term: int
    now_unix: float
    cluster_config: ClusterConfig
    def __init__(self, leader: _Optional[bool] = ..., leader_address: _Optional[str] = ..., assignment: _Optional[_Union[_node_pb2.Assignment, _Mapping]] = ..., leader_term: _Optional[int] = ..., now_unix: _Optional[float] = ..., cluster_config: _Optional[_Union[ClusterConfig, _Mapping]] = ...) -> None: ...

class ClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeRow(_message.Message):
    __slots__ = ("name", "address", "role_assigned", "role_running", "epoch", "gpu_health", "mount_health", "container_state", "seconds_since_report", "priority", "maintenance", "maintenance_reason", "waiting_for", "waiting_since_unix", "config_version", "config_wanted", "config_conflicts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_ASSIGNED_FIELD_NUMBER: _ClassVar[int]
    ROLE_RUNNING_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    GPU_HEALTH_FIELD_NUMBER: _ClassVar[int]
    MOUNT_HEALTH_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_STATE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_SINCE_REPORT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_REASON_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    WAITING_SINCE_UNIX_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_WANTED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    role_assigned: _node_pb2.Role
    role_running: _node_pb2.Role
    epoch: int
    gpu_health: _node_pb2.Health
    mount_health: _node_pb2.Health
    container_state: str
    seconds_since_report: float
    priority: int
    maintenance: bool
    maintenance_reason: str
    waiting_for: str
    waiting_since_unix: float
    config_version: int
    config_wanted: int
    config_conflicts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., role_assigned: _Optional[_Union[_node_pb2.Role, str]] = ..., role_running: _Optional[_Union[_node_pb2.Role, str]] = ..., epoch: _Optional[int] = ..., gpu_health: _Optional[_Union[_node_pb2.Health, str]] = ..., mount_health: _Optional[_Union[_node_pb2.Health, str]] = ..., container_state: _Optional[str] = ..., seconds_since_report: _Optional[float] = ..., priority: _Optional[int] = ..., maintenance: _Optional[bool] = ..., maintenance_reason: _Optional[str] = ..., waiting_for: _Optional[str] = ..., waiting_since_unix: _Optional[float] = ..., config_version: _Optional[int] = ..., config_wanted: _Optional[int] = ..., config_conflicts: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("cluster", "writer", "epoch", "leader", "leader_term", "paused", "paused_reason", "discovery", "nodes", "why", "leader_address", "config_version")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    WRITER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_TERM_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_REASON_FIELD_NUMBER: _ClassVar[int]
    DISCOVERY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    writer: str
    epoch: int
    leader: str
    leader_term: int
    paused: bool
    paused_reason: str
    discovery: _node_pb2.DiscoveryConfig
    nodes: _containers.RepeatedCompositeFieldContainer[NodeRow]
    why: str
    leader_address: str
    config_version: int
    def __init__(self, cluster: _Optional[str] = ..., writer: _Optional[str] = ..., epoch: _Optional[int] = ..., leader: _Optional[str] = ..., leader_term: _Optional[int] = ..., paused: _Optional[bool] = ..., paused_reason: _Optional[str] = ..., discovery: _Optional[_Union[_node_pb2.DiscoveryConfig, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[NodeRow, _Mapping]]] = ..., why: _Optional[str] = ..., leader_address: _Optional[str] = ..., config_version: _Optional[int] = ...) -> None: ...

class SwitchoverRequest(_message.Message):
    __slots__ = ("to", "reason", "on_drain_timeout")
    TO_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ON_DRAIN_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    to: str
    reason: str
    on_drain_timeout: str
    def __init__(self, to: _Optional[str] = ..., reason: _Optional[str] = ..., on_drain_timeout: _Optional[str] = ...) -> None: ...

class FailoverRequest(_message.Message):
    __slots__ = ("to", "force", "reason")
    TO_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    to: str
    force: bool
    reason: str
    def __init__(self, to: _Optional[str] = ..., force: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("phase", "message", "at_unix", "done", "ok")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    phase: str
    message: str
    at_unix: float
    done: bool
    ok: bool
    def __init__(self, phase: _Optional[str] = ..., message: _Optional[str] = ..., at_unix: _Optional[float] = ..., done: _Optional[bool] = ..., ok: _Optional[bool] = ...) -> None: ...

class SetPausedRequest(_message.Message):
    __slots__ = ("paused", "reason")
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    paused: bool
    reason: str
    def __init__(self, paused: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class SetMaintenanceRequest(_message.Message):
    __slots__ = ("node", "on", "reason")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node: str
    on: bool
    reason: str
    def __init__(self, node: _Optional[str] = ..., on: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class SetPriorityRequest(_message.Message):
    __slots__ = ("node", "priority")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    node: str
    priority: int
    def __init__(self, node: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class ForgetNodeRequest(_message.Message):
    __slots__ = ("node", "reason")
    NODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node: str
    reason: str
    def __init__(self, node: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ForgetNodeResponse(_message.Message):
    __slots__ = ("forgotten", "message", "status")
    FORGOTTEN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    forgotten: bool
    message: str
    status: ClusterStatus
    def __init__(self, forgotten: _Optional[bool] = ..., message: _Optional[str] = ..., status: _Optional[_Union[ClusterStatus, _Mapping]] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("limit", "follow", "role_changes_only")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    ROLE_CHANGES_ONLY_FIELD_NUMBER: _ClassVar[int]
    limit: int
    follow: bool
    role_changes_only: bool
    def __init__(self, limit: _Optional[int] = ..., follow: _Optional[bool] = ..., role_changes_only: _Optional[bool] = ...) -> None: ...

class Phase(_message.Message):
    __slots__ = ("name", "at_unix")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    name: str
    at_unix: float
    def __init__(self, name: _Optional[str] = ..., at_unix: _Optional[float] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "at_unix", "kind", "node", "epoch", "reason", "phases")
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    id: int
    at_unix: float
    kind: str
    node: str
    epoch: int
    reason: str
    phases: _containers.RepeatedCompositeFieldContainer[Phase]
    def __init__(self, id: _Optional[int] = ..., at_unix: _Optional[float] = ..., kind: _Optional[str] = ..., node: _Optional[str] = ..., epoch: _Optional[int] = ..., reason: _Optional[str] = ..., phases: _Optional[_Iterable[_Union[Phase, _Mapping]]] = ...) -> None: ...

class WhyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhyResponse(_message.Message):
    __slots__ = ("sentence", "leading", "leader_address")
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    LEADING_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    sentence: str
    leading: bool
    leader_address: str
    def __init__(self, sentence: _Optional[str] = ..., leading: _Optional[bool] = ..., leader_address: _Optional[str] = ...) -> None: ...

class RolloutRequest(_message.Message):
    __slots__ = ("action", "image", "dry_run", "reason", "settle_s", "node_timeout_s", "after_event_id")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SETTLE_S_FIELD_NUMBER: _ClassVar[int]
    NODE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    action: str
    image: str
    dry_run: bool
    reason: str
    settle_s: float
    node_timeout_s: float
    after_event_id: int
    def __init__(self, action: _Optional[str] = ..., image: _Optional[str] = ..., dry_run: _Optional[bool] = ..., reason: _Optional[str] = ..., settle_s: _Optional[float] = ..., node_timeout_s: _Optional[float] = ..., after_event_id: _Optional[int] = ...) -> None: ...

class RolloutState(_message.Message):
    __slots__ = ("id", "kind", "status", "from_version", "to_version", "image", "done", "current", "current_since_unix", "switchover_to", "halted_reason", "started_unix", "finished_unix", "phases")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_SINCE_UNIX_FIELD_NUMBER: _ClassVar[int]
    SWITCHOVER_TO_FIELD_NUMBER: _ClassVar[int]
    HALTED_REASON_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: str
    status: str
    from_version: int
    to_version: int
    image: str
    done: _containers.RepeatedScalarFieldContainer[str]
    current: str
    current_since_unix: float
    switchover_to: str
    halted_reason: str
    started_unix: float
    finished_unix: float
    phases: _containers.RepeatedCompositeFieldContainer[Phase]
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[str] = ..., status: _Optional[str] = ..., from_version: _Optional[int] = ..., to_version: _Optional[int] = ..., image: _Optional[str] = ..., done: _Optional[_Iterable[str]] = ..., current: _Optional[str] = ..., current_since_unix: _Optional[float] = ..., switchover_to: _Optional[str] = ..., halted_reason: _Optional[str] = ..., started_unix: _Optional[float] = ..., finished_unix: _Optional[float] = ..., phases: _Optional[_Iterable[_Union[Phase, _Mapping]]] = ...) -> None: ...

class RolloutProgress(_message.Message):
    __slots__ = ("message", "at_unix", "done", "ok", "rollout", "event_id")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    message: str
    at_unix: float
    done: bool
    ok: bool
    rollout: RolloutState
    event_id: int
    def __init__(self, message: _Optional[str] = ..., at_unix: _Optional[float] = ..., done: _Optional[bool] = ..., ok: _Optional[bool] = ..., rollout: _Optional[_Union[RolloutState, _Mapping]] = ..., event_id: _Optional[int] = ...) -> None: ...
