"""What the agent must not forget across restarts: the highest epoch it has seen.

Kept in `<state_dir>/agent-state.json`, written atomically and only when it changes. An assignment whose
epoch is lower than this is refused: a deposed coordinator or a replayed message cannot move the writer back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from jfsmilvus.common.atomicfile import read_text, write_atomic

STATE_FILE = "agent-state.json"


class StateError(Exception):
    """The state file exists but cannot be read; the agent must not guess an epoch."""


def unreadable_state(path: str, why: str) -> str:
    """The one line that says the state file is unusable and what the operator does about it.

    The agent refuses to start rather than start at epoch 0: the file is this node's only memory of the highest
    epoch it has seen, so without it a deposed coordinator's late answer or a replayed push at an older epoch
    would be taken, and could make this node a writer again beside the real one. The cluster's committed epoch
    (MySQL, `coordinatorctl status`) is at least every epoch this node was legitimately told, so writing it back is
    safe; the exit code is 2, which systemd does not restart (RestartPreventExitStatus), so it does not crash-loop."""
    return (
        f"{path}: {why}; it holds the highest epoch this node has seen, which the agent will not guess: write the "
        f"cluster's epoch (the Epoch of `coordinatorctl status`) into it, "
        f"echo '{{\"highest_epoch\": EPOCH}}' > {path}, then start the agent again"
    )


@dataclass(frozen=True)
class LocalState:
    highest_epoch: int = 0


def load_state(state_dir: str) -> LocalState:
    path = os.path.join(state_dir, STATE_FILE)
    try:
        text = read_text(path)
    except OSError as exc:
        raise StateError(unreadable_state(path, f"cannot be read: {exc.strerror or exc}")) from None
    if text is None:
        return LocalState()
    try:
        data = json.loads(text)
        epoch = int(data["highest_epoch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(unreadable_state(path, f"not the agent's JSON ({exc})")) from exc
    if epoch < 0:
        raise StateError(unreadable_state(path, f"highest_epoch {epoch} is negative"))
    return LocalState(highest_epoch=epoch)


def save_state(state_dir: str, state: LocalState) -> bool:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    text = json.dumps({"highest_epoch": state.highest_epoch}, sort_keys=True) + "\n"
    return write_atomic(os.path.join(state_dir, STATE_FILE), text, mode=0o600)
