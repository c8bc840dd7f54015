from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_RO: _ClassVar[Role]
    ROLE_RW: _ClassVar[Role]
    ROLE_STOPPED: _ClassVar[Role]

class Health(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_UNSPECIFIED: _ClassVar[Health]
    HEALTH_HEALTHY: _ClassVar[Health]
    HEALTH_DEGRADED: _ClassVar[Health]
    HEALTH_FAILED: _ClassVar[Health]
ROLE_UNSPECIFIED: Role
ROLE_RO: Role
ROLE_RW: Role
ROLE_STOPPED: Role
HEALTH_UNSPECIFIED: Health
HEALTH_HEALTHY: Health
HEALTH_DEGRADED: Health
HEALTH_FAILED: Health

class XidRecord(_message.Message):
    __slots__ = ("xid", "count", "first_seen_unix", "last_seen_unix", "fatal")
    XID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_UNIX_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_UNIX_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    xid: int
    count: int
    first_seen_unix: float
    last_seen_unix: float
    fatal: bool
    def __init__(self, xid: _Optional[int] = ..., count: _Optional[int] = ..., first_seen_unix: _Optional[float] = ..., last_seen_unix: _Optional[float] = ..., fatal: _Optional[bool] = ...) -> None: ...

class ComputeCapability(_message.Message):
    __slots__ = ("major", "minor")
    MAJOR_FIELD_NUMBER: _ClassVar[int]
    MINOR_FIELD_NUMBER: _ClassVar[int]
    major: int
    minor: int
    def __init__(self, major: _Optional[int] = ..., minor: _Optional[int] = ...) -> None: ...

class GpuStatus(_message.Message):
    __slots__ = ("index", "uuid", "name", "memory_total_bytes", "memory_used_bytes", "utilization_pct", "temperature_c", "power_w", "health", "reasons", "xids", "compute_capability")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_PCT_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    XIDS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    memory_used_bytes: int
    utilization_pct: float
    temperature_c: float
    power_w: float
    health: Health
    reasons: _containers.RepeatedScalarFieldContainer[str]
    xids: _containers.RepeatedCompositeFieldContainer[XidRecord]
    compute_capability: ComputeCapability
    def __init__(self, index: _Optional[int] = ..., uuid: _Optional[str] = ..., name: _Optional[str] = ..., memory_total_bytes: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., utilization_pct: _Optional[float] = ..., temperature_c: _Optional[float] = ..., power_w: _Optional[float] = ..., health: _Optional[_Union[Health, str]] = ..., reasons: _Optional[_Iterable[str]] = ..., xids: _Optional[_Iterable[_Union[XidRecord, _Mapping]]] = ..., compute_capability: _Optional[_Union[ComputeCapability, _Mapping]] = ...) -> None: ...

class GpuReport(_message.Message):
    __slots__ = ("available", "reason", "driver_version", "gpus")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    available: bool
    reason: str
    driver_version: str
    gpus: _containers.RepeatedCompositeFieldContainer[GpuStatus]
    def __init__(self, available: _Optional[bool] = ..., reason: _Optional[str] = ..., driver_version: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[GpuStatus, _Mapping]]] = ...) -> None: ...

class MetaEngineStatus(_message.Message):
    __slots__ = ("scheme", "checked", "reachable", "latency_ms", "error", "maxmemory_policy", "warnings")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MAXMEMORY_POLICY_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    scheme: str
    checked: bool
    reachable: bool
    latency_ms: float
    error: str
    maxmemory_policy: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, scheme: _Optional[str] = ..., checked: _Optional[bool] = ..., reachable: _Optional[bool] = ..., latency_ms: _Optional[float] = ..., error: _Optional[str] = ..., maxmemory_policy: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class MountStatus(_message.Message):
    __slots__ = ("volume", "mountpoint", "configured_in_fstab", "mounted", "read_only", "health", "state", "reasons", "write_probe_ms", "session_id", "meta_engine", "cache_dir_writable")
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_IN_FSTAB_FIELD_NUMBER: _ClassVar[int]
    MOUNTED_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    WRITE_PROBE_MS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    META_ENGINE_FIELD_NUMBER: _ClassVar[int]
    CACHE_DIR_WRITABLE_FIELD_NUMBER: _ClassVar[int]
    volume: str
    mountpoint: str
    configured_in_fstab: bool
    mounted: bool
    read_only: bool
    health: Health
    state: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    write_probe_ms: float
    session_id: str
    meta_engine: MetaEngineStatus
    cache_dir_writable: bool
    def __init__(self, volume: _Optional[str] = ..., mountpoint: _Optional[str] = ..., configured_in_fstab: _Optional[bool] = ..., mounted: _Optional[bool] = ..., read_only: _Optional[bool] = ..., health: _Optional[_Union[Health, str]] = ..., state: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., write_probe_ms: _Optional[float] = ..., session_id: _Optional[str] = ..., meta_engine: _Optional[_Union[MetaEngineStatus, _Mapping]] = ..., cache_dir_writable: _Optional[bool] = ...) -> None: ...

class ContainerStatus(_message.Message):
    __slots__ = ("name", "id", "image", "state", "role", "epoch", "healthy", "restarts", "error", "gpus", "gpus_labelled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPUS_LABELLED_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    image: str
    state: str
    role: Role
    epoch: int
    healthy: bool
    restarts: int
    error: str
    gpus: _containers.RepeatedScalarFieldContainer[str]
    gpus_labelled: bool
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., image: _Optional[str] = ..., state: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., epoch: _Optional[int] = ..., healthy: _Optional[bool] = ..., restarts: _Optional[int] = ..., error: _Optional[str] = ..., gpus: _Optional[_Iterable[str]] = ..., gpus_labelled: _Optional[bool] = ...) -> None: ...

class NvidiaToolkitStatus(_message.Message):
    __slots__ = ("checked", "found")
    class FoundEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    checked: bool
    found: _containers.ScalarMap[str, str]
    def __init__(self, checked: _Optional[bool] = ..., found: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WriterStop(_message.Message):
    __slots__ = ("epoch", "drain_id", "exit_code", "seconds", "at_unix")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    DRAIN_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    drain_id: int
    exit_code: int
    seconds: float
    at_unix: float
    def __init__(self, epoch: _Optional[int] = ..., drain_id: _Optional[int] = ..., exit_code: _Optional[int] = ..., seconds: _Optional[float] = ..., at_unix: _Optional[float] = ...) -> None: ...

class MilvusMetaStatus(_message.Message):
    __slots__ = ("configured", "host", "port", "database", "user", "create_right", "create_detail", "account", "create_checked_unix")
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATE_RIGHT_FIELD_NUMBER: _ClassVar[int]
    CREATE_DETAIL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_CHECKED_UNIX_FIELD_NUMBER: _ClassVar[int]
    configured: bool
    host: str
    port: int
    database: str
    user: str
    create_right: str
    create_detail: str
    account: str
    create_checked_unix: float
    def __init__(self, configured: _Optional[bool] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., database: _Optional[str] = ..., user: _Optional[str] = ..., create_right: _Optional[str] = ..., create_detail: _Optional[str] = ..., account: _Optional[str] = ..., create_checked_unix: _Optional[float] = ...) -> None: ...

class MilvusWalStatus(_message.Message):
    __slots__ = ("checked", "render_error", "rw_enable_set", "rw_enable", "rw_recovery_error_ignore_set", "rw_recovery_error_ignore", "base_recovery_error_ignore_set", "base_recovery_error_ignore")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    RENDER_ERROR_FIELD_NUMBER: _ClassVar[int]
    RW_ENABLE_SET_FIELD_NUMBER: _ClassVar[int]
    RW_ENABLE_FIELD_NUMBER: _ClassVar[int]
    RW_RECOVERY_ERROR_IGNORE_SET_FIELD_NUMBER: _ClassVar[int]
    RW_RECOVERY_ERROR_IGNORE_FIELD_NUMBER: _ClassVar[int]
    BASE_RECOVERY_ERROR_IGNORE_SET_FIELD_NUMBER: _ClassVar[int]
    BASE_RECOVERY_ERROR_IGNORE_FIELD_NUMBER: _ClassVar[int]
    checked: bool
    render_error: str
    rw_enable_set: bool
    rw_enable: str
    rw_recovery_error_ignore_set: bool
    rw_recovery_error_ignore: str
    base_recovery_error_ignore_set: bool
    base_recovery_error_ignore: str
    def __init__(self, checked: _Optional[bool] = ..., render_error: _Optional[str] = ..., rw_enable_set: _Optional[bool] = ..., rw_enable: _Optional[str] = ..., rw_recovery_error_ignore_set: _Optional[bool] = ..., rw_recovery_error_ignore: _Optional[str] = ..., base_recovery_error_ignore_set: _Optional[bool] = ..., base_recovery_error_ignore: _Optional[str] = ...) -> None: ...

class NodeObservation(_message.Message):
    __slots__ = ("node", "address", "agent_version", "gpus", "mounts", "container", "role_running", "highest_epoch_seen", "observed_at_unix", "last_errors", "milvus_port", "milvus_http_port", "writer_seen_healthy_age_s", "mishards_writer", "lease_left_s", "agent_port", "docker_runtimes", "row_lease_ms", "milvus_image", "milvus_flavor", "nvidia_toolkit", "milvus_meta", "milvus_wal", "last_writer_stop", "stopping_for_s", "waiting_for", "waiting_since_unix", "clock_offset_s", "clock_rtt_s", "mishards", "config_version", "config_conflicts")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    ROLE_RUNNING_FIELD_NUMBER: _ClassVar[int]
    HIGHEST_EPOCH_SEEN_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    LAST_ERRORS_FIELD_NUMBER: _ClassVar[int]
    MILVUS_PORT_FIELD_NUMBER: _ClassVar[int]
    MILVUS_HTTP_PORT_FIELD_NUMBER: _ClassVar[int]
    WRITER_SEEN_HEALTHY_AGE_S_FIELD_NUMBER: _ClassVar[int]
    MISHARDS_WRITER_FIELD_NUMBER: _ClassVar[int]
    LEASE_LEFT_S_FIELD_NUMBER: _ClassVar[int]
    AGENT_PORT_FIELD_NUMBER: _ClassVar[int]
    DOCKER_RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    ROW_LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    MILVUS_IMAGE_FIELD_NUMBER: _ClassVar[int]
    MILVUS_FLAVOR_FIELD_NUMBER: _ClassVar[int]
    NVIDIA_TOOLKIT_FIELD_NUMBER: _ClassVar[int]
    MILVUS_META_FIELD_NUMBER: _ClassVar[int]
    MILVUS_WAL_FIELD_NUMBER: _ClassVar[int]
    LAST_WRITER_STOP_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FOR_S_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    WAITING_SINCE_UNIX_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    CLOCK_RTT_S_FIELD_NUMBER: _ClassVar[int]
    MISHARDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    node: str
    address: str
    agent_version: str
    gpus: GpuReport
    mounts: _containers.RepeatedCompositeFieldContainer[MountStatus]
    container: ContainerStatus
    role_running: Role
    highest_epoch_seen: int
    observed_at_unix: float
    last_errors: _containers.RepeatedScalarFieldContainer[str]
    milvus_port: int
    milvus_http_port: int
    writer_seen_healthy_age_s: float
    mishards_writer: str
    lease_left_s: float
    agent_port: int
    docker_runtimes: _containers.RepeatedScalarFieldContainer[str]
    row_lease_ms: int
    milvus_image: str
    milvus_flavor: str
    nvidia_toolkit: NvidiaToolkitStatus
    milvus_meta: MilvusMetaStatus
    milvus_wal: MilvusWalStatus
    last_writer_stop: WriterStop
    stopping_for_s: float
    waiting_for: str
    waiting_since_unix: float
    clock_offset_s: float
    clock_rtt_s: float
    mishards: MishardsStatus
    config_version: int
    config_conflicts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node: _Optional[str] = ..., address: _Optional[str] = ..., agent_version: _Optional[str] = ..., gpus: _Optional[_Union[GpuReport, _Mapping]] = ..., mounts: _Optional[_Iterable[_Union[MountStatus, _Mapping]]] = ..., container: _Optional[_Union[ContainerStatus, _Mapping]] = ..., role_running: _Optional[_Union[Role, str]] = ..., highest_epoch_seen: _Optional[int] = ..., observed_at_unix: _Optional[float] = ..., last_errors: _Optional[_Iterable[str]] = ..., milvus_port: _Optional[int] = ..., milvus_http_port: _Optional[int] = ..., writer_seen_healthy_age_s: _Optional[float] = ..., mishards_writer: _Optional[str] = ..., lease_left_s: _Optional[float] = ..., agent_port: _Optional[int] = ..., docker_runtimes: _Optional[_Iterable[str]] = ..., row_lease_ms: _Optional[int] = ..., milvus_image: _Optional[str] = ..., milvus_flavor: _Optional[str] = ..., nvidia_toolkit: _Optional[_Union[NvidiaToolkitStatus, _Mapping]] = ..., milvus_meta: _Optional[_Union[MilvusMetaStatus, _Mapping]] = ..., milvus_wal: _Optional[_Union[MilvusWalStatus, _Mapping]] = ..., last_writer_stop: _Optional[_Union[WriterStop, _Mapping]] = ..., stopping_for_s: _Optional[float] = ..., waiting_for: _Optional[str] = ..., waiting_since_unix: _Optional[float] = ..., clock_offset_s: _Optional[float] = ..., clock_rtt_s: _Optional[float] = ..., mishards: _Optional[_Union[MishardsStatus, _Mapping]] = ..., config_version: _Optional[int] = ..., config_conflicts: _Optional[_Iterable[str]] = ...) -> None: ...

class MishardsStatus(_message.Message):
    __slots__ = ("state", "error", "container", "hosts", "left_out", "foreign_overrides", "reason")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    FOREIGN_OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    state: str
    error: str
    container: str
    hosts: _containers.RepeatedScalarFieldContainer[str]
    left_out: _containers.RepeatedScalarFieldContainer[str]
    foreign_overrides: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, state: _Optional[str] = ..., error: _Optional[str] = ..., container: _Optional[str] = ..., hosts: _Optional[_Iterable[str]] = ..., left_out: _Optional[_Iterable[str]] = ..., foreign_overrides: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class DiscoveryConfig(_message.Message):
    __slots__ = ("writer_address", "writer_port", "hosts", "discovery_port")
    WRITER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WRITER_PORT_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    DISCOVERY_PORT_FIELD_NUMBER: _ClassVar[int]
    writer_address: str
    writer_port: int
    hosts: _containers.RepeatedScalarFieldContainer[str]
    discovery_port: int
    def __init__(self, writer_address: _Optional[str] = ..., writer_port: _Optional[int] = ..., hosts: _Optional[_Iterable[str]] = ..., discovery_port: _Optional[int] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("role", "epoch", "lease_ms", "writer", "discovery", "reason", "writer_address", "writer_http_port", "row_lease_ms", "drain_id", "drain_timeout_ms")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    WRITER_FIELD_NUMBER: _ClassVar[int]
    DISCOVERY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WRITER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WRITER_HTTP_PORT_FIELD_NUMBER: _ClassVar[int]
    ROW_LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_ID_FIELD_NUMBER: _ClassVar[int]
    DRAIN_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    role: Role
    epoch: int
    lease_ms: int
    writer: str
    discovery: DiscoveryConfig
    reason: str
    writer_address: str
    writer_http_port: int
    row_lease_ms: int
    drain_id: int
    drain_timeout_ms: int
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., epoch: _Optional[int] = ..., lease_ms: _Optional[int] = ..., writer: _Optional[str] = ..., discovery: _Optional[_Union[DiscoveryConfig, _Mapping]] = ..., reason: _Optional[str] = ..., writer_address: _Optional[str] = ..., writer_http_port: _Optional[int] = ..., row_lease_ms: _Optional[int] = ..., drain_id: _Optional[int] = ..., drain_timeout_ms: _Optional[int] = ...) -> None: ...
