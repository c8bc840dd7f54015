"""Render Milvus 1.x `server_config.yaml` for a role from the operator's base file.

Every key the operator set is kept; only what the role needs is overridden: `cluster.enable`, `cluster.role`,
`general.meta_uri` (with the raw password, as Milvus parses it: `agent.milvus.metauri`), `network`
(`bind.address` is always 0.0.0.0: the node address is applied by the port publishing, and a host IP inside
the container makes Milvus's gRPC server crash on bind), `storage.path` and `wal.path` (container paths: `db/`
is the JuiceFS volume, `wal/` the writer's local WAL of this stint, agent/milvus/waldir.py), the WAL switches
of the role (`wal_settings`), `logs.path` (the logs volume; Milvus's default /tmp/milvus/logs would die with the
container), and the GPU device lists when asked.
A base `version` other than 0.5 is refused: Milvus 1.x exits on it. Keys Milvus does not read are kept and
warned about (`base_config_warnings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from jfsmilvus.common.secrets import Secret

from agent.milvus.metauri import MetaUri, meta_uri_with_password
from agent.milvus.milvuskeys import CONFIG_VERSION, unknown_keys

CONTAINER_ROOT = "/var/lib/milvus"
CONTAINER_CONF_DIR = f"{CONTAINER_ROOT}/conf"
CONTAINER_DB_DIR = f"{CONTAINER_ROOT}/db"
CONTAINER_LOGS_DIR = f"{CONTAINER_ROOT}/logs"
CONTAINER_WAL_DIR = f"{CONTAINER_ROOT}/wal"
ROLES = ("rw", "ro")


class BaseConfigError(ValueError):
    """The operator's base server_config.yaml cannot be used; the message says where and why."""


@dataclass(frozen=True)
class RoleSettings:
    role: str  # rw | ro
    meta_uri: MetaUri  # from milvus.meta_uri, without the password
    meta_password: Secret
    port: int
    http_port: int
    gpu_count: int | None  # GPUs visible in the container (numbered 0..n-1); None leaves the gpu section alone


def parse_base_config(text: str, path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise BaseConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BaseConfigError(f"{path}: must be a YAML mapping of sections (cluster, general, network, ...)")
    for section, value in data.items():
        if value is not None and not isinstance(value, dict) and section != "version":
            raise BaseConfigError(f"{path}: section '{section}' must be a mapping, not {type(value).__name__}")
    if "version" in data and not _is_config_version(data["version"]):
        raise BaseConfigError(
            f"{path}: version = {data['version']!r}: Milvus 1.x reads only config version {CONFIG_VERSION} and exits "
            f"on any other (a 0.x config needs the 1.x layout of server_config.template, version: {CONFIG_VERSION})"
        )
    return data


def _is_config_version(value: object) -> bool:
    if isinstance(value, float):
        return str(value) == CONFIG_VERSION
    return isinstance(value, str) and value == CONFIG_VERSION


PINNED = (("network", "bind.address", "0.0.0.0"), ("logs", "path", CONTAINER_LOGS_DIR))
FALSE_WORDS = ("false", "off", "no", "0")  # how Milvus reads a false flag (utils/ValidationUtil.cpp:577-586)


def wal_settings(role: str) -> dict[str, bool]:
    """The `wal` keys a role's container runs with, whatever the base says.

    - A reader: `enable: false`. With the WAL off, `DBImpl::Start` runs no WAL init and no replay
      (db/DBImpl.cpp:128-147; no WalManager is built, :84-91) and DBWrapper reads no other WAL key
      (server/DBWrapper.cpp:123-154); a reader starts no WAL, flush or index thread either way (DBImpl.cpp:151-166)
      and neither checks nor creates a WAL path (server/init/StorageChecker.cpp:53-55, server/Server.cpp:254).
      So a former writer restarted as a reader no longer replays its old WAL into orphan NEW rows, and a reader
      no longer dies on "Wal init error!" when MySQL's LSNs are another node's.
    - A writer: `recovery_error_ignore: true`. A writer of a new stint starts on an empty WAL directory
      (agent/milvus/waldir.py), and whenever some `flush_lsn` in MySQL is above the global LSN (a per-collection
      Flush, insert/MemManagerImpl.cpp:143) the recovery range is not empty: `MXLogBuffer::Init` finds no file
      for it (db/wal/WalBuffer.cpp:54-120), and with `false` the start throws "Wal init error!"
      (WalManager.cpp:126-133, DBImpl.cpp:128-135). With `true` Milvus resets its buffer to the highest LSN
      MySQL holds and goes on (WalManager.cpp:101-104, :128-130, WalBuffer.cpp:155-175); a torn last record
      of its own WAL ends the replay there instead of ending the start (WalManager.cpp:147-155).
    """
    return {"enable": False} if role == "ro" else {"recovery_error_ignore": True}


def _is_false(value: object) -> bool:
    return value is False or (isinstance(value, str | int) and str(value).strip().lower() in FALSE_WORDS)


def base_config_warnings(base: dict[str, Any], path: str) -> list[str]:
    """What the operator should know about the base (nothing here stops Milvus): keys Milvus 1.x ignores, and
    values the agent replaces inside the container."""
    warnings = unknown_keys(base, path)
    for section, key, value in PINNED:
        given = (base.get(section) or {}).get(key)
        if given is not None and given != value:
            warnings.append(
                f"{path}: {section}.{key} = {given!r} is replaced by {value!r} in the container "
                + (
                    "(the node address is applied by the port publishing; a host IP makes Milvus's gRPC bind fail)"
                    if key == "bind.address"
                    else "(the logs volume, kept on the node under milvus.data_dir)"
                )
            )
    wal = base.get("wal") or {}
    if _is_false(wal.get("recovery_error_ignore")):
        warnings.append(
            f"{path}: wal.recovery_error_ignore = {wal['recovery_error_ignore']!r} is rendered true for the writer: "
            "a newly promoted writer starts on an empty WAL, and with false Milvus refuses to start whenever MySQL's "
            "LSNs name a range that WAL does not hold (after a per-collection flush); a reader runs with wal.enable "
            "false"
        )
    if str((base.get("storage") or {}).get("auto_flush_interval", "")).strip() == "0":
        warnings.append(
            f"{path}: storage.auto_flush_interval = 0 turns Milvus's periodic flush off: acknowledged inserts stay "
            "only in the writer's local WAL until a client flushes, and a failover loses all of them"
        )
    return warnings


def render_server_config(base: dict[str, Any], settings: RoleSettings) -> str:
    """The server_config.yaml text for `settings.role`, keeping every key of `base` not overridden."""
    if settings.role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {settings.role!r}")
    config: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}

    def section(name: str) -> dict[str, Any]:
        value = config.get(name)
        if not isinstance(value, dict):
            value = {}
            config[name] = value
        return value

    config.setdefault("version", float(CONFIG_VERSION))
    section("cluster").update({"enable": True, "role": settings.role})
    section("general")["meta_uri"] = meta_uri_with_password(settings.meta_uri, settings.meta_password)
    # Milvus 1.x reads the network section with dotted keys ("bind.port"), not nested mappings.
    section("network").update(
        {"bind.address": "0.0.0.0", "bind.port": settings.port, "http.enable": True, "http.port": settings.http_port}
    )
    section("storage")["path"] = CONTAINER_ROOT
    section("wal").update({"path": CONTAINER_WAL_DIR, **wal_settings(settings.role)})
    section("logs")["path"] = CONTAINER_LOGS_DIR
    if settings.gpu_count is not None:
        gpu = section("gpu")
        devices = [f"gpu{i}" for i in range(settings.gpu_count)]
        gpu["enable"] = bool(devices)
        if devices:
            gpu["search_devices"] = devices
            gpu["build_index_devices"] = devices
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def role_of_rendered(text: str) -> str | None:
    """The cluster.role a rendered config holds (used to check a config on disk), or None."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    cluster = data.get("cluster") if isinstance(data, dict) else None
    role = cluster.get("role") if isinstance(cluster, dict) else None
    return role if role in ROLES else None
