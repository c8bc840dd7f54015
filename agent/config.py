"""The agent's configuration: /etc/jfs-milvus/agent.yaml, validated at load.

`load_agent_config(path)` returns an `AgentConfig` or raises `ConfigError` listing every problem, each
naming the file, the key, the bad value and what is allowed. Secrets are referenced (`*_file` of mode
0600/0400, or `*_env`), never written in the YAML.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from jfsmilvus.common.clusterconfig import DEFAULT_FATAL_XIDS
from jfsmilvus.common.configschema import (
    NAME_ALLOWED,
    NAME_PATTERN,
    Section,
    check_host_port,
    check_ipv4,
    load_config_file,
    parse_config_text,
    secret_ref,
)
from jfsmilvus.common.milvus1 import MILVUS_HTTP_PORT, MILVUS_PORT, MISHARDS_SERVER_PORT
from jfsmilvus.common.secrets import SecretError, SecretRef, secret_file_problem
from jfsmilvus.common.tls import TlsSettings, read_tls

from agent.milvus.gpuchoice import FLAVORS
from agent.milvus.metauri import MetaUriError, parse_meta_uri, password_problem

DEFAULT_CONFIG_PATH = "/etc/jfs-milvus/agent.yaml"
CONFIG_ENV = "JFS_MILVUS_AGENT_CONFIG"


DEFAULT_MOUNT_HELPER = "/sbin/mount.juicefs-jfsmilvus"
# Where mount(8) looks for mount.TYPE helpers (/usr/sbin is /sbin on Debian 12's merged /usr).
MOUNT_HELPER_DIRS = ("/sbin", "/usr/sbin", "/sbin/fs.d", "/sbin/fs")

META_SCHEMES = ("redis", "rediss", "unix", "mysql", "postgres", "tikv", "etcd", "sqlite3", "badger")


@dataclass(frozen=True)
class GpuSettings:
    enabled: bool = True
    poll_interval_s: float = 5.0
    fatal_xids: tuple[int, ...] = DEFAULT_FATAL_XIDS
    # How long a fatal XID keeps the GPU failed; None means until the agent restarts (a reset is needed).
    xid_hold_s: float | None = None


@dataclass(frozen=True)
class VolumeSettings:
    name: str
    meta_url: str
    mountpoint: str
    password: SecretRef | None = None
    cache_dir: str = "/var/jfsCache"
    cache_size_mib: int = 102400
    options: tuple[str, ...] = ()

    @property
    def meta_scheme(self) -> str:
        return urlsplit(self.meta_url).scheme


@dataclass(frozen=True)
class JuicefsSettings:
    binary: str = "juicefs"
    # The helper mount(8) runs for the agent's fstab lines (agent/mounthelper.py); its name gives their type.
    mount_helper: str = DEFAULT_MOUNT_HELPER
    fstab: str = "/etc/fstab"
    systemd_dir: str = "/etc/systemd/system"
    secrets_dir: str = "/etc/jfs-milvus/secrets"
    probe_timeout_s: float = 5.0
    write_probe_limit_ms: float = 2000.0
    # The write probe (write + fsync + read back) runs at most this often on a healthy rw mount; the stat and
    # `.config` read run at every observation. 0: write at every observation.
    write_probe_interval_s: float = 5.0
    # A mount hung this long (counted from the start of the stuck probe) while its metadata engine answers is
    # the juicefs client's own fault: the agent kills it and recovers the mount in place. 0: never kill.
    hung_kill_after_s: float = 10.0
    volumes: tuple[VolumeSettings, ...] = ()


@dataclass(frozen=True)
class MilvusSettings:
    image: str = "milvusdb/milvus:1.0.0-gpu-d030521-1ea92e"
    container_name: str = "milvus"
    volume: str | None = None
    db_subdir: str = "milvus/db"
    base_config: str = "/etc/jfs-milvus/server_config.yaml"
    data_dir: str = "/var/lib/jfs-milvus/milvus"
    port: int = MILVUS_PORT
    http_port: int = MILVUS_HTTP_PORT
    gpus: str = "all"
    gpu_indexes: tuple[int, ...] = ()
    set_gpu_devices: bool = True
    # Required by the config file (cluster roles keep Milvus's metadata in MySQL); None only without a file.
    meta_uri: str | None = None
    meta_password: SecretRef | None = None
    flavor: str = "gpu"  # gpu: never started without its GPUs; cpu: a CPU image, no GPU request
    stop_timeout_s: float = 30.0
    start_timeout_s: float = 600.0  # to the first answered GET /state (WAL replay, preload)
    health_timeout_s: float = 120.0  # of failed checks, once it has answered


@dataclass(frozen=True)
class MishardsSettings:
    enabled: bool = False
    env_file: str = "/etc/jfs-milvus/mishards.env"  # the agent's record of the settings it gave Mishards
    container_name: str = "jfs-milvus-mishards"
    image: str | None = None  # required when enabled: the agent runs the Mishards container itself
    writer_hold_s: float = 60.0  # a restart waits this long at most for a new writer to answer Milvus gRPC
    probe_timeout_s: float = 1.0  # per server, Cmd version
    server_port: int = MISHARDS_SERVER_PORT
    discovery_port: int = MILVUS_PORT
    database_uri: str | None = None
    database_password: SecretRef | None = None


@dataclass(frozen=True)
class MysqlReadSettings:
    """A READ-ONLY MySQL account with which a writer renews its lease from the cluster row."""

    host: str
    user: str
    database: str
    port: int = 3306
    password: SecretRef | None = None
    timeout_s: float = 0.5  # connect and read


@dataclass(frozen=True)
class CoordinationSettings:
    report_interval_s: float = 1.0
    report_timeout_s: float = 0.5
    mysql: MysqlReadSettings | None = None


@dataclass(frozen=True)
class AgentConfig:
    path: str | None
    node_name: str
    address: str
    agent_port: int = 19700
    metrics_port: int = 19701
    coordinators: tuple[str, ...] = ()
    state_dir: str = "/var/lib/jfs-milvus"
    log_level: str = "info"
    loop_interval_s: float = 1.0
    tls: TlsSettings = field(default_factory=TlsSettings)
    gpu: GpuSettings = field(default_factory=GpuSettings)
    juicefs: JuicefsSettings = field(default_factory=JuicefsSettings)
    milvus: MilvusSettings = field(default_factory=MilvusSettings)
    mishards: MishardsSettings = field(default_factory=MishardsSettings)
    coordination: CoordinationSettings = field(default_factory=CoordinationSettings)


def find_executable(name: str) -> str | None:
    """`name` on PATH, or beside this Python (a virtual environment's bin/), as an absolute path."""
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    return os.path.abspath(found) if found else None


def default_agent_config() -> AgentConfig:
    """What the agent assumes with no config file: probe this host, mount nothing."""
    return AgentConfig(path=None, node_name=os.uname().nodename.split(".")[0].lower() or "node", address="127.0.0.1")


def config_path_from_env(explicit: str | None) -> str:
    return explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def load_agent_config(path: str) -> AgentConfig:
    return load_config_file(path, _read_top)


def parse_agent_config(text: str, path: str) -> AgentConfig:
    return parse_config_text(text, path, _read_top)


# -- sections ----------------------------------------------------------------------------------------
def _check_url_without_password(value: str, schemes: tuple[str, ...]) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        return f"must be a URL with one of the schemes: {', '.join(schemes)}"
    if parts.password:
        return "must not carry a password (it would land in world-readable files); use the *_password_file key"
    return None


def _read_top(top: Section) -> AgentConfig | None:
    node = top.section("node", required=True)
    node_name = node.string("name", pattern=NAME_PATTERN, allowed=NAME_ALLOWED)
    address = node.string("address", check=check_ipv4)
    agent_port = node.number("agent_port", 19700, minimum=1, maximum=65535, integer=True)
    metrics_port = node.number("metrics_port", 19701, minimum=1, maximum=65535, integer=True)
    node.finish()

    coordinators = tuple(top.string_list("coordinators", [], check=check_host_port))
    state_dir = top.path_("state_dir", "/var/lib/jfs-milvus")
    log_level = top.choice("log_level", ("debug", "info", "warning", "error"), "info")
    loop_interval_s = top.number("loop_interval_s", 1.0, minimum=0.1, maximum=60)

    tls = read_tls(top.section("tls"), private_key=True)

    gpu = _read_gpu(top.section("gpu"))
    juicefs = _read_juicefs(top.section("juicefs"))
    milvus = _read_milvus(top.section("milvus"), juicefs)
    mishards = _read_mishards(top.section("mishards"))
    coordination = _read_coordination(top.section("coordination"))
    if node_name is None or address is None:
        return None
    return AgentConfig(
        path=top.file,
        node_name=node_name,
        address=address,
        agent_port=agent_port,
        metrics_port=metrics_port,
        coordinators=coordinators,
        state_dir=state_dir,
        log_level=log_level,
        loop_interval_s=loop_interval_s,
        tls=tls,
        gpu=gpu,
        juicefs=juicefs,
        milvus=milvus,
        mishards=mishards,
        coordination=coordination,
    )


def _read_coordination(sec: Section) -> CoordinationSettings:
    interval = sec.number("report_interval_s", 1.0, minimum=0.1, maximum=60)
    timeout = sec.number("report_timeout_s", 0.5, minimum=0.05, maximum=60)
    mysql = None
    has_mysql = sec.has("mysql")
    msec = sec.section("mysql")
    if has_mysql:
        mysql = MysqlReadSettings(
            host=msec.string("host") or "",
            port=msec.number("port", 3306, minimum=1, maximum=65535, integer=True),
            user=msec.string("user") or "",
            database=msec.string("database") or "",
            password=secret_ref(msec, "password", required=False),
            timeout_s=msec.number("timeout_s", 0.5, minimum=0.05, maximum=10),
        )
    msec.finish()
    sec.finish()
    return CoordinationSettings(report_interval_s=interval, report_timeout_s=timeout, mysql=mysql)


def _read_gpu(sec: Section) -> GpuSettings:
    settings = GpuSettings(
        enabled=sec.boolean("enabled", True),
        poll_interval_s=sec.number("poll_interval_s", 5.0, minimum=0.1, maximum=3600),
        fatal_xids=tuple(sec.int_list("fatal_xids", list(DEFAULT_FATAL_XIDS), minimum=1)),
        xid_hold_s=sec.number("xid_hold_s", None, minimum=1),
    )
    sec.finish()
    return settings


def _read_juicefs(sec: Section) -> JuicefsSettings:
    binary = sec.string("binary", "juicefs")
    found = find_executable(binary) if binary else None
    if binary and not found:
        sec.problem("binary", binary, "no such executable (install juicefs, or give its absolute path)")
    binary = found or binary
    if found and _check_fstab_option_path(found):
        sec.problem("binary", found, f"{_check_fstab_option_path(found)} (the fstab line names it)")
    settings = dict(
        binary=binary,
        mount_helper=sec.string("mount_helper", DEFAULT_MOUNT_HELPER, check=_check_mount_helper),
        fstab=sec.path_("fstab", "/etc/fstab"),
        systemd_dir=sec.path_("systemd_dir", "/etc/systemd/system"),
        secrets_dir=sec.string("secrets_dir", "/etc/jfs-milvus/secrets", check=_check_fstab_option_path),
        probe_timeout_s=sec.number("probe_timeout_s", 5.0, minimum=0.1, maximum=600),
        write_probe_limit_ms=sec.number("write_probe_limit_ms", 2000.0, minimum=1),
        write_probe_interval_s=sec.number("write_probe_interval_s", 5.0, minimum=0, maximum=600),
        hung_kill_after_s=sec.number("hung_kill_after_s", 10.0, minimum=0, maximum=3600),
    )
    volumes: list[VolumeSettings] = []
    seen: dict[str, set[object]] = {"name": set(), "mountpoint": set()}
    for i, vsec in enumerate(sec.sections("volumes")):
        for key, taken in seen.items():
            value = vsec.data.get(key)
            if isinstance(value, str) and key == "mountpoint":
                value = os.path.normpath(value)
            if value is not None and value in taken:
                sec.problem(f"volumes[{i}].{key}", value, f"each volume needs its own {key}")
            taken.add(value)
        vol = _read_volume(vsec)
        if vol is not None:
            volumes.append(vol)
    sec.finish()
    return JuicefsSettings(volumes=tuple(volumes), **settings)


def _check_fstab_option_path(value: str) -> str | None:
    """A path that goes into the options of the agent's fstab line (the env file's folder, juicefs)."""
    if not value.startswith("/"):
        return "must be an absolute path"
    if "," in value or '"' in value:
        return "must not contain a comma or a double quote: it goes into the options of the fstab line"
    return None


def _check_mount_helper(value: str) -> str | None:
    directory, name = os.path.split(value)
    if directory not in MOUNT_HELPER_DIRS:
        return f"must be in a directory mount(8) looks in: {', '.join(MOUNT_HELPER_DIRS)}"
    if not re.fullmatch(r"mount\.juicefs-[A-Za-z0-9_-]+", name):
        return (
            f"must be named mount.juicefs-NAME (default {DEFAULT_MOUNT_HELPER}): mount(8) runs mount.TYPE for "
            "the fstab type TYPE, and mount.juicefs is JuiceFS's own"
        )
    return None


def _check_option(value: str) -> str | None:
    if any(c in value for c in ", \t\n\"'"):
        return "must be one mount option such as 'writeback' or 'max-uploads=50' (no commas, spaces or quotes)"
    key = value.split("=", 1)[0]
    if key in ("ro", "rw", "read-only", "_netdev", "nofail", "cache-dir", "cache-size"):
        return f"'{key}' is set by the agent (mode follows the role; cache_dir and cache_size_mib have keys)"
    return None


def _read_volume(sec: Section) -> VolumeSettings | None:
    name = sec.string(
        "name", pattern=r"[a-zA-Z0-9][a-zA-Z0-9-]{1,62}", allowed="a JuiceFS volume name: 2-63 letters, digits or '-'"
    )
    meta_url = sec.string("meta_url", check=lambda v: _check_url_without_password(v, META_SCHEMES))
    mountpoint = sec.path_("mountpoint")
    password = secret_ref(sec, "password", required=False)
    cache_dir = sec.path_("cache_dir", "/var/jfsCache")
    cache_size = sec.number("cache_size_mib", 102400, minimum=0, integer=True)
    options = sec.string_list("options", [], check=_check_option)
    sec.finish()
    if not (name and meta_url and mountpoint):
        return None
    return VolumeSettings(
        name=name,
        meta_url=meta_url,
        mountpoint=os.path.normpath(mountpoint),
        password=password,
        cache_dir=cache_dir,
        cache_size_mib=cache_size,
        options=tuple(options),
    )


def _read_milvus(sec: Section, juicefs: JuicefsSettings) -> MilvusSettings:
    gpus_raw = sec.data.get("gpus", "all")
    gpu_indexes: tuple[int, ...] = ()
    if isinstance(gpus_raw, list):
        gpu_indexes = tuple(sec.int_list("gpus", [], minimum=0))
        gpus = "list"
    else:
        gpus = sec.choice("gpus", ("all", "none"), "all")
    volume_names = [v.name for v in juicefs.volumes]
    volume = sec.string("volume", None)
    if volume and volume not in volume_names:
        sec.problem(
            "volume", volume, f"must name a volume in juicefs.volumes ({', '.join(volume_names) or 'none configured'})"
        )
    if volume is None and len(volume_names) == 1:
        volume = volume_names[0]
    settings = MilvusSettings(
        image=sec.string("image", MilvusSettings.image),
        container_name=sec.string(
            "container_name", "milvus", pattern=r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", allowed="a Docker container name"
        ),
        volume=volume,
        db_subdir=sec.string(
            "db_subdir",
            "milvus/db",
            check=lambda v: (
                "must be a relative path inside the volume" if v.startswith("/") or ".." in v.split("/") else None
            ),
        ),
        base_config=sec.path_("base_config", "/etc/jfs-milvus/server_config.yaml"),
        data_dir=sec.path_("data_dir", "/var/lib/jfs-milvus/milvus"),
        port=sec.number("port", MILVUS_PORT, minimum=1, maximum=65535, integer=True),
        http_port=sec.number("http_port", MILVUS_HTTP_PORT, minimum=1, maximum=65535, integer=True),
        gpus=gpus,
        gpu_indexes=gpu_indexes,
        set_gpu_devices=sec.boolean("set_gpu_devices", True),
        meta_uri=_read_meta_uri(sec),
        meta_password=_read_meta_password(sec),
        flavor=sec.choice("flavor", FLAVORS, "gpu"),
        stop_timeout_s=sec.number("stop_timeout_s", 30.0, minimum=1, maximum=3600),
        start_timeout_s=sec.number("start_timeout_s", 600.0, minimum=1, maximum=86400),
        health_timeout_s=sec.number("health_timeout_s", 120.0, minimum=1, maximum=3600),
    )
    sec.finish()
    return settings


def _meta_uri_problem(value: str) -> str | None:
    try:
        parse_meta_uri(value)
    except MetaUriError as exc:
        return str(exc)
    return None


def _read_meta_uri(sec: Section) -> str | None:
    if sec.data.get("meta_uri") is None:
        sec.missing(
            "meta_uri",
            "required; Milvus nodes in cluster roles keep their metadata in MySQL, mysql://USER@HOST:PORT/DATABASE "
            "(SQLite on the shared volume cannot serve readers)",
        )
    return sec.string("meta_uri", None, check=_meta_uri_problem)


def _read_meta_password(sec: Section) -> SecretRef | None:
    """The MySQL password for meta_uri: required, and loaded here so that one Milvus cannot use is refused now
    (a secret the agent cannot read yet, such as an unset variable, is checked again at every start)."""
    ref = secret_ref(sec, "meta_password", required=True)
    if ref is None or (ref.file and secret_file_problem(ref.file)):
        return ref
    try:
        password = ref.load().reveal()
    except (SecretError, OSError):
        return ref
    problem = password_problem(password)
    if problem:
        key = "meta_password_file" if ref.file else "meta_password_env"
        sec.problem(key, ref.file or ref.env, f"the MySQL password in it {problem}")
    return ref


def _read_mishards(sec: Section) -> MishardsSettings:
    enabled = sec.boolean("enabled", False)
    settings = MishardsSettings(
        enabled=enabled,
        env_file=sec.path_("env_file", "/etc/jfs-milvus/mishards.env"),
        container_name=sec.string(
            "container_name",
            "jfs-milvus-mishards",
            pattern=r"[a-zA-Z0-9][a-zA-Z0-9_.-]*",
            allowed="a Docker container name",
        ),
        image=sec.string("image", None, pattern=r"[^\s$]+", allowed="a Docker image reference"),
        writer_hold_s=sec.number("writer_hold_s", 60.0, minimum=0, maximum=3600),
        probe_timeout_s=sec.number("probe_timeout_s", 1.0, minimum=0.05, maximum=30),
        server_port=sec.number("server_port", MISHARDS_SERVER_PORT, minimum=1, maximum=65535, integer=True),
        discovery_port=sec.number("discovery_port", MILVUS_PORT, minimum=1, maximum=65535, integer=True),
        database_uri=sec.string(
            "database_uri",
            None,
            check=lambda v: _check_url_without_password(v, ("mysql+pymysql", "mysql")),
        ),
        database_password=secret_ref(sec, "database_password", required=False),
    )
    if enabled and not settings.image:
        sec.problem("image", None, "required when mishards.enabled is true (the agent runs the Mishards container)")
    if enabled and not settings.database_uri:
        sec.problem(
            "database_uri", None, "required when mishards.enabled is true (Mishards needs SQLALCHEMY_DATABASE_URI)"
        )
    sec.finish()
    return settings
