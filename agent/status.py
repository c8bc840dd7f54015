"""`jfs-milvus-agent status`: what this node looks like now, GPUs and mounts, without a daemon; and what the
agent daemon says it is doing (its now file, `agent.saywhy`), when one runs."""

from __future__ import annotations

import os
import time
from typing import Any

from jfsmilvus.common.atomicfile import read_text
from jfsmilvus.common.milvus1 import RUNTIME_HOOK

from agent import __version__
from agent.clusterconf import cluster_config_summary, render_cluster_config_lines
from agent.config import AgentConfig
from agent.gpu import probe_gpus
from agent.milvus.nvidiatoolkit import probe_nvidia_toolkit
from agent.mount import MountManager
from agent.saywhy import NOW_FILE, daemon_status, parse_now_file, render_daemon_line

NO_MOUNT_CONFIGURED = "no JuiceFS volume is configured (juicefs.volumes is empty)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def daemon_now(state_dir: str) -> dict[str, Any]:
    """What the agent daemon on this node says it is doing (its now file), or why that cannot be said."""
    path = os.path.join(state_dir, NOW_FILE)
    text, error = None, None
    try:
        text = read_text(path)
    except OSError as exc:
        error = f"cannot be read: {exc.strerror or exc}"
    found = parse_now_file(text) if text is not None else None
    alive = found is not None and _pid_alive(found[1])
    return daemon_status(path, text, error, alive, time.time())


def collect_status(config: AgentConfig) -> dict[str, Any]:
    """Observe GPUs and every configured mount once, and read what the agent daemon says it is doing; changes
    nothing on the node."""
    config, cluster_config = cluster_config_summary(config)  # what the daemon runs: agent.yaml and the cluster's
    gpus = (
        probe_gpus(config.gpu).to_dict()
        if config.gpu.enabled
        else {
            "available": False,
            "reason": "GPU monitoring is disabled in the config (gpu.enabled: false)",
            "driver_version": None,
            "gpus": [],
        }
    )
    mounts = [
        MountManager(volume, config.juicefs, config.node_name).observe().to_dict() for volume in config.juicefs.volumes
    ]
    return {
        "node": config.node_name,
        "address": config.address,
        "agent_version": __version__,
        "config": config.path,
        "observed_at": time.time(),
        "gpu": gpus,
        "milvus_image": config.milvus.image,
        "milvus_flavor": config.milvus.flavor,
        "nvidia_toolkit": probe_nvidia_toolkit(),
        "mounts": mounts,
        "mounts_note": None if mounts else NO_MOUNT_CONFIGURED,
        "daemon": daemon_now(config.state_dir),
        "cluster_config": cluster_config,
    }


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.1f}G"


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}{suffix}"
    return f"{value}{suffix}"


def _fmt_capability(value: list[int] | None) -> str:
    return "?" if not value else f"{value[0]}.{value[1]}"


def _toolkit_line(found: dict[str, str]) -> str:
    if not found:
        return f"NVIDIA container toolkit: none found ({RUNTIME_HOOK} serves Docker's --gpus)"
    return "NVIDIA container toolkit: " + ", ".join(f"{name} {path}" for name, path in sorted(found.items()))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return [line(header), *(line(r) for r in rows)]


def render_status_table(status: dict[str, Any]) -> str:
    config = status["config"] or "(none: defaults)"
    out = [f"node {status['node']} ({status['address']})  agent {status['agent_version']}  config {config}"]
    out.append(f"Milvus image {status['milvus_image']} (flavor {status['milvus_flavor']})")
    out.append(_toolkit_line(status["nvidia_toolkit"]))
    out.append(render_daemon_line(status["daemon"]))
    out += render_cluster_config_lines(status.get("cluster_config"))
    gpu = status["gpu"]
    out.append("")
    if not gpu["available"]:
        out.append(f"GPUs: {gpu['reason']}")
    else:
        out.append(f"GPUs: {len(gpu['gpus'])}, driver {gpu['driver_version']}")
        rows = [
            [
                str(g["index"]),
                g["name"] or "-",
                _fmt_capability(g.get("compute_capability")),
                g["uuid"] or "-",
                f"{_fmt_bytes(g['memory_used_bytes'])}/{_fmt_bytes(g['memory_total_bytes'])}",
                _fmt(g["utilization_pct"], "%"),
                _fmt(g["temperature_c"], "C"),
                _fmt(g["power_w"], "W"),
                g["health"],
                "; ".join(g["reasons"]) or "-",
            ]
            for g in gpu["gpus"]
        ]
        out += _table(["GPU", "NAME", "CC", "UUID", "MEMORY", "UTIL", "TEMP", "POWER", "HEALTH", "REASONS"], rows)
    out.append("")
    if not status["mounts"]:
        out.append(f"Mounts: {status['mounts_note']}")
    else:
        rows = []
        for m in status["mounts"]:
            meta = m.get("meta_engine") or {}
            meta_text = "-"
            if meta.get("reachable") is not None:
                meta_text = f"ok {meta['latency_ms']:.1f}ms" if meta.get("reachable") else f"DOWN: {meta.get('error')}"
            probe = m.get("write_probe_ms")
            rows.append(
                [
                    m["volume"],
                    m["mountpoint"],
                    "yes" if m["configured_in_fstab"] else "no",
                    m["mode"] or "-",
                    m["state"],
                    "-" if probe is None else f"{probe:.1f}ms",
                    meta_text,
                    "; ".join(m["reasons"]) or "-",
                ]
            )
        out += _table(["VOLUME", "MOUNTPOINT", "FSTAB", "MODE", "STATE", "WRITE PROBE", "META ENGINE", "REASONS"], rows)
    return "\n".join(out)
