"""Read the values of a Mishards env file in tests (the agent's own parser, applied to a path)."""

from __future__ import annotations

from pathlib import Path

from agent.mishards.envfile import parse_env_values


def env_values(path: Path) -> dict[str, str]:
    try:
        return parse_env_values(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
