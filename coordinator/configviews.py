"""The cluster config in `coordinatorctl status`: what each node runs, is to run, and its conflicts."""

from __future__ import annotations

from typing import Any

from jfsmilvus.v1 import coordinator_pb2

from coordinator.checks import Check


def config_row_fields(observation: Any, wanted: int) -> dict[str, Any]:
    """NodeRow's config fields from a node's latest observation (None: no report) and the version it is to run."""
    if observation is None:
        return {"config_wanted": wanted}
    return {
        "config_version": observation.config_version,
        "config_wanted": wanted,
        "config_conflicts": list(observation.config_conflicts),
    }


def config_node_data(n: coordinator_pb2.NodeRow) -> dict[str, Any]:
    return {
        "config_version": n.config_version,
        "config_wanted": n.config_wanted,
        "config_conflicts": list(n.config_conflicts),
    }


def config_lines(data: dict[str, Any]) -> list[str]:
    """The status lines about the cluster config: none while no version exists and nothing conflicts."""
    nodes = data["nodes"]
    current = data.get("config_version", 0)
    if not current and not any(n["config_conflicts"] for n in nodes):
        return []
    lines = [f"Config: version {current}" if current else "Config: no cluster config version yet"]
    for n in nodes:
        if n["config_version"] != n["config_wanted"] and n["lag_s"] is not None:
            runs = f"version {n['config_version']}" if n["config_version"] else "agent.yaml alone"
            lines.append(f"Config: {n['name']} runs {runs}, is to run version {n['config_wanted']}")
        lines += [f"Config conflict: {n['name']}: {line}" for line in n["config_conflicts"]]
    return lines


def judge_config_conflicts(observation: Any) -> Check:
    """Doctor: the agent.yaml values of a node that the cluster config overrides (WARN: they mislead)."""
    node = observation.node
    conflicts = list(observation.config_conflicts)
    if not conflicts:
        return Check("cluster config", node, "PASS", f"no agent.yaml value conflicts (runs version "
                     f"{observation.config_version or 'none'})")  # fmt: skip
    return Check(
        "cluster config",
        node,
        "WARN",
        "; ".join(conflicts),
        "remove these keys from agent.yaml (the cluster config sets them: coordinatorctl config show)",
    )
