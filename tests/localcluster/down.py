"""Stop a local cluster and leave nothing behind: processes, containers, mounts, iptables rules, cgroups, files.

Works from the root directory alone, so it also cleans up after a run that crashed half-way: every process
whose command line names the root, every container with a bind mount under it, every mount under it, every
iptables rule tagged with its comment and every node cgroup its manifest names.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil

from agent.milvus.container import LABEL_NODE
from agent.mishards.container import COMPONENT, LABEL_COMPONENT
from tests.localcluster.cluster import CGROUP_PREFIX, NET_CLS, Say, rule_comment, sweep_rules
from tests.localcluster.up import MANIFEST
from tests.plugin_juicefs import cleanup_mounts_under, mounts_under


def processes_under(root: Path) -> list[psutil.Process]:
    """Processes whose command line names `root` or that work in it (redis-server rewrites its title)."""
    # Never this process nor what runs it (a `timeout` or shell whose command line names the root too).
    me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        cwd = p.info["cwd"] or ""
        if p.info["pid"] not in me and (str(root) in cmdline or cwd == str(root) or cwd.startswith(str(root) + "/")):
            found.append(p)
    return found


def containers_under(root: Path, nodes: list[str] | None = None) -> list[str]:
    """Names of containers (running or not) with a bind mount from under `root`, and the Mishards containers
    the agents of `nodes` run (they have no bind mount)."""
    nodes = manifest_nodes(root) if nodes is None else nodes
    listed = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True, timeout=60)
    ids = listed.stdout.split()
    if not ids:
        return []
    inspected = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, timeout=60)
    names = []
    for c in json.loads(inspected.stdout or "[]"):
        labels = c.get("Config", {}).get("Labels") or {}
        ours = labels.get(LABEL_COMPONENT) == COMPONENT and labels.get(LABEL_NODE) in nodes
        if ours or any(str(m.get("Source", "")).startswith(str(root) + "/") for m in c.get("Mounts", [])):
            names.append(c["Name"].lstrip("/"))
    return names


def rules_tagged(root: Path) -> list[str]:
    saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True)
    return [line for line in saved.stdout.splitlines() if rule_comment(root) in line]


def manifest_nodes(root: Path) -> list[str]:
    """The names of the cluster's nodes, from its manifest (none when it is gone)."""
    manifest = root / MANIFEST
    if manifest.exists():
        with contextlib.suppress(ValueError, KeyError, OSError):
            return [n["name"] for n in json.loads(manifest.read_text())["nodes"]]
    return []


def node_cgroups(root: Path) -> list[Path]:
    names = manifest_nodes(root)
    return [NET_CLS / f"{CGROUP_PREFIX}{name}" for name in names if (NET_CLS / f"{CGROUP_PREFIX}{name}").exists()]


def _kill(processes: list[psutil.Process]) -> None:
    for p in processes:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGCONT)  # a hung juicefs (SIGSTOP) must be able to die
            p.kill()
    psutil.wait_procs(processes, timeout=10)


def keep_logs(root: Path, to: Path, progress: Say) -> None:
    """Copy every coordinator's, agent's and write client's log of the cluster in `root` to `to` (before
    tearing it down)."""
    to.mkdir(parents=True, exist_ok=True)
    for log in [*root.glob("*.log"), *root.glob("nodes/*.log"), *root.glob("nodes/*/agent.log")]:
        name = f"{log.parent.name}.log" if log.name == "agent.log" else log.name  # nodes/<node>/agent.log
        shutil.copy(log, to / name)
    progress(f"logs kept in {to}")


def tear_down(root: Path, progress: Say) -> list[str]:
    """Remove everything of the cluster in `root`; returns what is left (empty when all went)."""
    root = root.resolve()
    if not root.exists():
        progress(f"nothing to stop: {root} does not exist")
        return []
    controllers = [
        p
        for p in processes_under(root)
        if "agent.cli" in " ".join(p.cmdline()) or "coordinator.cli" in " ".join(p.cmdline())
    ]
    progress(f"stopping {len(controllers)} agents and coordinators")
    _kill(controllers)
    nodes = manifest_nodes(root)
    names = containers_under(root, nodes)
    progress(f"removing {len(names)} containers")
    if names:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True, timeout=120)
    progress(f"unmounting {len(mounts_under(str(root)))} JuiceFS mounts")
    cleanup_mounts_under(str(root))
    rest = processes_under(root)
    progress(f"stopping {len(rest)} remaining processes (MariaDB, Redis, juicefs)")
    _kill(rest)
    progress(f"removing {sweep_rules(rule_comment(root))} iptables rules")
    cgroups = node_cgroups(root)
    for cgroup in cgroups:
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    deadline = time.monotonic() + 10
    while mounts_under(str(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = leftovers(root, cgroups, nodes)
    if not any(item.startswith("mount") for item in left):
        shutil.rmtree(root, ignore_errors=True)
    return leftovers(root, cgroups, nodes)


def leftovers(root: Path, cgroups: list[Path] | None = None, nodes: list[str] | None = None) -> list[str]:
    """Everything of the cluster still on this machine, one line each."""
    left = [f"process {p.pid}: {' '.join(p.cmdline())[:120]}" for p in processes_under(root) if p.is_running()]
    left += [f"container {name}" for name in containers_under(root, nodes)]
    left += [f"mount {mp}" for mp in mounts_under(str(root))]
    left += [f"iptables rule {rule}" for rule in rules_tagged(root)]
    left += [f"cgroup {cg}" for cg in (node_cgroups(root) if cgroups is None else cgroups) if cg.exists()]
    if root.exists():
        left.append(f"directory {root}")
    return left
