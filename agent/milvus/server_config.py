"""Render Milvus 1.x `server_config.yaml` for a role from the operator's base file.

Every key the operator set is kept; only what the role needs is overridden: `cluster.enable`, `cluster.role`,
`general.meta_uri` (with the password), `storage.path` and `wal.path` (container paths: `db/` is the JuiceFS
volume, `wal/` is local disk so that a reader replays its own WAL), and the GPU device lists when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

from agent.secrets import Secret

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
    meta_uri: str | None  # mysql://user@host:port/db, no password
    meta_password: Secret | None
    port: int
    http_port: int
    gpu_count: int | None  # GPUs visible in the container (numbered 0..n-1); None leaves the gpu section alone


def meta_uri_with_password(uri: str, password: Secret | None) -> str:
    if password is None:
        return uri
    parts = urlsplit(uri)
    user = parts.username or "root"
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}:{quote(password.reveal(), safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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
    return data


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

    config.setdefault("version", 0.5)
    section("cluster").update({"enable": True, "role": settings.role})
    if settings.meta_uri:
        section("general")["meta_uri"] = meta_uri_with_password(settings.meta_uri, settings.meta_password)
    # Milvus 1.x reads the network section with dotted keys ("bind.port"), not nested mappings.
    network = section("network")
    network.setdefault("bind.address", "0.0.0.0")
    network.update({"bind.port": settings.port, "http.enable": True, "http.port": settings.http_port})
    section("storage")["path"] = CONTAINER_ROOT
    section("wal")["path"] = CONTAINER_WAL_DIR
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
