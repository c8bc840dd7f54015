"""Which cluster config version each node is to run, and what a new version does to the pins. Pure.

A node's pin (`nodes.config_version`) wins; without one it follows the cluster's current version. The rollout
(`coordinatorctl rollout`) moves pins one node at a time; a commit that needs no restart moves them all.
"""

from __future__ import annotations

from collections.abc import Mapping


def config_version_for(node: str, pins: Mapping[str, int | None], current: int) -> int:
    """The version `node` is to run: its pin, else the cluster's current version (0: none, its agent.yaml)."""
    pin = pins.get(node)
    return current if pin is None else pin


def nodes_behind(pins: Mapping[str, int | None], running: Mapping[str, int], current: int) -> list[str]:
    """The nodes whose Milvus does not run the version they are to run yet, by name."""
    return sorted(n for n in pins if running.get(n, 0) != config_version_for(n, pins, current))
