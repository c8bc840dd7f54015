"""Write an agent.yaml for a test node (shared by the CLI and daemon tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.plugin_juicefs import JfsTestVolume


def juicefs_section(volume: JfsTestVolume) -> dict[str, Any]:
    s, v = volume.settings, volume.volume
    entry: dict[str, Any] = {
        "name": v.name,
        "meta_url": v.meta_url,
        "mountpoint": v.mountpoint,
        "cache_dir": v.cache_dir,
        "cache_size_mib": v.cache_size_mib,
    }
    if v.password is not None:
        entry["password_file"] = v.password.file
    return {
        "binary": s.binary,
        "mount_helper": s.mount_helper,
        "fstab": s.fstab,
        "systemd_dir": s.systemd_dir,
        "secrets_dir": s.secrets_dir,
        "probe_timeout_s": s.probe_timeout_s,
        "write_probe_limit_ms": s.write_probe_limit_ms,
        "volumes": [entry],
    }


def write_agent_yaml(path: Path, node_name: str, address: str, volume: JfsTestVolume | None, **sections: Any) -> str:
    data: dict[str, Any] = {"node": {"name": node_name, "address": address}}
    if volume is not None:
        data["juicefs"] = juicefs_section(volume)
    for key, value in sections.items():
        data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)
