"""Write an agent.yaml for a test node (shared by the CLI and daemon tests, and the benchmarks).

Every test agent runs the stand-in as a CPU image (`milvus.flavor: cpu`: a GPU image is never started without
GPUs) and needs `milvus.meta_uri` with its password file. A caller that names no meta database gets one that
validates but reaches no MySQL (`PLACEHOLDER_META_URI`): enough for `status` and `check-config`, not for a
Milvus start, which logs in to MySQL (tests.plugin_agent gives running agents a real one).
"""

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


PLACEHOLDER_META_URI = "mysql://milvus@127.0.0.1:3306/milvus"
PLACEHOLDER_META_PASSWORD = "no-such!#@/%db"


def milvus_defaults(milvus: dict[str, Any], beside: Path) -> dict[str, Any]:
    """`milvus` with what every test agent needs and did not say: the cpu flavour and a meta URI."""
    out = {"flavor": "cpu", **milvus}
    if "meta_uri" not in out:
        secret = beside.parent / f"{beside.stem}-milvus-mysql-password"
        secret.write_text(PLACEHOLDER_META_PASSWORD + "\n")
        secret.chmod(0o600)
        out.update(meta_uri=PLACEHOLDER_META_URI, meta_password_file=str(secret))
    return out


def write_agent_yaml(path: Path, node_name: str, address: str, volume: JfsTestVolume | None, **sections: Any) -> str:
    data: dict[str, Any] = {"node": {"name": node_name, "address": address}}
    if volume is not None:
        data["juicefs"] = juicefs_section(volume)
    for key, value in sections.items():
        data[key] = value
    data["milvus"] = milvus_defaults(data.get("milvus") or {}, path)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)
