"""How Milvus 1.x reads server_config.yaml, for the stand-in: the keys it uses, the checks that stop it.

Pure (no I/O). Each rule names the Milvus v1.0.0 file it follows (README.md has the table):
- `version` must be exactly "0.5" (config/Config.cpp:205-218, checked at :965-977).
- `cluster.enable` takes true/false/yes/on/1/0 (utils/ValidationUtil.cpp:577-586); `cluster.role` is rw | ro
  (Config.cpp:986-994).
- `general.meta_uri` is split by the greedy regex `(.*)://(.*):(.*)@(.*):(.*)/(.*)` and never URL-decoded
  (db/Utils.cpp:238-265); one that does not match stops the start: "Invalid meta uri" (Config.cpp:1016-1027,
  server/Server.cpp:381-384).
- `network` holds flat dotted keys: `bind.address`, `bind.port`, `http.enable`, `http.port` (Config.cpp constants);
  ports must lie in (1024, 65535).
- `storage.path`, `wal.path` must match `^/(\\w+-?/?)+$` (ValidationUtil.cpp:659); `storage.auto_flush_interval`
  is a natural number, default 1 (Config.cpp).
- `wal.enable` (default true), `wal.recovery_error_ignore` (code default true, Config.cpp:172; the shipped
  template says false, core/conf/server_config.template:97).
- `logs.path` defaults to /tmp/milvus/logs (Config.cpp:187).
- Unknown sections and keys are loaded and ignored (config/YamlConfigMgr.cpp:85-98).

The stand-in's own knobs ride in a `standin:` section, which Milvus would ignore like any unknown section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

META_URI_REGEX = re.compile(r"(.*)://(.*):(.*)@(.*):(.*)/(.*)")  # db/Utils.cpp:247-249, greedy, no decoding
PATH_REGEX = re.compile(r"^/(\w+-?/?)+$")  # utils/ValidationUtil.cpp:659
CONFIG_VERSION = "0.5"
TRUE_WORDS = ("true", "on", "yes", "1")
FALSE_WORDS = ("false", "off", "no", "0")


class ConfigCheckError(ValueError):
    """Milvus would stop at start with this message ("Config check fail: ..."), exit code 1."""


@dataclass(frozen=True)
class MetaUri:
    dialect: str
    username: str
    password: str
    host: str
    port: str
    database: str


@dataclass(frozen=True)
class StandinKnobs:
    """How long the stand-in takes, standing in for a small real node."""

    start_s: float = 3.0  # process start to serving (GPU init, DB open, schema check)
    replay_s_per_1000: float = 0.5  # more start time per 1000 WAL records replayed
    stop_s: float = 1.0  # a graceful stop after its flush (merge and index threads joined)
    tick_ms: int = 200  # the writer's heartbeat line in the write log


@dataclass(frozen=True)
class MilvusSettings:
    cluster_enable: bool
    role: str  # rw | ro
    meta_uri: MetaUri
    bind_address: str
    bind_port: int
    http_enable: bool
    http_port: int
    storage_path: str
    auto_flush_interval: int
    wal_enable: bool
    wal_path: str
    wal_recovery_error_ignore: bool
    logs_path: str
    gpu_enable: bool
    gpu_devices: tuple[str, ...]  # gpu.search_devices and gpu.build_index_devices, as written ("gpu0", ...)
    knobs: StandinKnobs

    @property
    def writable(self) -> bool:
        """Milvus's CLUSTER_READONLY mode is `cluster.enable` and role ro (server/DBWrapper.cpp:87-96)."""
        return not (self.cluster_enable and self.role == "ro")


def unknown_gpu_devices(devices: tuple[str, ...], visible: int) -> list[str]:
    """The configured devices Milvus would refuse: not `gpu<N>`, or N not below the visible GPU count
    ("gpu does not match with the hardware", Config.cpp:1783-1809 and 2557-2597)."""
    bad = []
    for device in devices:
        match = re.fullmatch(r"gpu(\d+)", device)
        if match is None or int(match.group(1)) >= visible:
            bad.append(device)
    return bad


def parse_meta_uri(uri: str) -> MetaUri:
    """Split `uri` as Milvus does; the password is taken byte for byte (a `:` in it moves into the user)."""
    match = META_URI_REGEX.fullmatch(uri)
    if match is None:
        raise ConfigCheckError(f"Invalid meta uri: {uri}")
    return MetaUri(*match.groups())


def _flag(section: str, key: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigCheckError(f"Invalid {section}.{key}: {value}. Possible values: true, false, yes, no, on, off, 1, 0")


def _port(key: str, value: Any) -> int:
    text = str(value)
    if not text.isdigit() or not 1024 < int(text) < 65535:
        raise ConfigCheckError(f"Invalid network {key}: {value}. Should be a number in range (1024, 65535)")
    return int(text)


def _path(key: str, value: Any) -> str:
    text = str(value)
    if not PATH_REGEX.match(text):
        raise ConfigCheckError(f"Invalid {key}: {value}")
    return text


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _knobs(section: dict[str, Any]) -> StandinKnobs:
    defaults = StandinKnobs()
    try:
        return StandinKnobs(
            start_s=float(section.get("start_s", defaults.start_s)),
            replay_s_per_1000=float(section.get("replay_s_per_1000", defaults.replay_s_per_1000)),
            stop_s=float(section.get("stop_s", defaults.stop_s)),
            tick_ms=int(section.get("tick_ms", defaults.tick_ms)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigCheckError(f"standin section: {exc}") from exc


def read_settings(text: str) -> MilvusSettings:
    """The settings Milvus 1.0 would run with, or ConfigCheckError with its message."""
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigCheckError(f"Failed to load config file: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigCheckError("Failed to load config file: not a mapping")
    version = config.get("version")
    if str(version) != CONFIG_VERSION:
        raise ConfigCheckError(f"Invalid config version: {version}. Expected config version: {CONFIG_VERSION}")
    cluster, general, network = (_section(config, n) for n in ("cluster", "general", "network"))
    storage, wal, logs, gpu = (_section(config, n) for n in ("storage", "wal", "logs", "gpu"))
    enable = _flag("cluster", "enable", cluster.get("enable"), False)
    role = str(cluster.get("role", "rw"))
    if role not in ("rw", "ro"):
        raise ConfigCheckError(f"Invalid cluster role: {role}. Possible values: rw, ro.")
    interval = str(storage.get("auto_flush_interval", 1))
    if not interval.isdigit():
        raise ConfigCheckError(f"Invalid storage.auto_flush_interval: {interval}. Should be a natural number")
    return MilvusSettings(
        cluster_enable=enable,
        role=role,
        meta_uri=parse_meta_uri(str(general.get("meta_uri", "sqlite://:@:/"))),
        bind_address=str(network.get("bind.address", "0.0.0.0")),
        bind_port=_port("bind.port", network.get("bind.port", 19530)),
        http_enable=_flag("network", "http.enable", network.get("http.enable"), True),
        http_port=_port("http.port", network.get("http.port", 19121)),
        storage_path=_path("storage.path", storage.get("path", "/var/lib/milvus")),
        auto_flush_interval=int(interval),
        wal_enable=_flag("wal", "enable", wal.get("enable"), True),
        wal_path=_path("wal.path", wal.get("path", "/var/lib/milvus/wal")),
        wal_recovery_error_ignore=_flag("wal", "recovery_error_ignore", wal.get("recovery_error_ignore"), True),
        logs_path=str(logs.get("path", "/tmp/milvus/logs")),
        gpu_enable=_flag("gpu", "enable", gpu.get("enable"), False),
        gpu_devices=tuple(str(d) for key in ("search_devices", "build_index_devices") for d in (gpu.get(key) or [])),
        knobs=_knobs(_section(config, "standin")),
    )
