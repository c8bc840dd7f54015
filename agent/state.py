"""What the agent must not forget across restarts: the highest epoch it has seen.

Kept in `<state_dir>/agent-state.json`, written atomically and only when it changes. An assignment whose
epoch is lower than this is refused: a deposed coordinator or a replayed message cannot move the writer back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from agent.atomicfile import read_text, write_atomic

STATE_FILE = "agent-state.json"


class StateError(Exception):
    """The state file exists but cannot be read; the agent must not guess an epoch."""


@dataclass(frozen=True)
class LocalState:
    highest_epoch: int = 0


def load_state(state_dir: str) -> LocalState:
    path = os.path.join(state_dir, STATE_FILE)
    text = read_text(path)
    if text is None:
        return LocalState()
    try:
        data = json.loads(text)
        epoch = int(data["highest_epoch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{path}: unreadable ({exc}); fix or remove it only if you know the cluster's epoch") from exc
    if epoch < 0:
        raise StateError(f"{path}: highest_epoch {epoch} is negative")
    return LocalState(highest_epoch=epoch)


def save_state(state_dir: str, state: LocalState) -> bool:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    text = json.dumps({"highest_epoch": state.highest_epoch}, sort_keys=True) + "\n"
    return write_atomic(os.path.join(state_dir, STATE_FILE), text, mode=0o600)
