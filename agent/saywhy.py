"""Saying why, once: which steps and mount states are news for the agent's log, and what `status` shows now.

Pure. The loop hands each cycle's step (`next_doing`) and each mount's observation (`mount_news`) to these
rules and logs the line they return, if any: a step that changed something always, a wait or a "nothing" only
when its sentence is new, where sentences that differ only in durations or timestamps ("starting for 3s", "for
4s") are the same sentence. So a wait is said once when it begins and again only when its reason changes, and
a mount that turns failed (its juicefs killed, even when it comes back by itself) is said once, with why.

What the agent is doing now (`Doing`: the step, its sentence, since when) is served by its `status` RPC and
written to `<state_dir>/agent-now.json`, which `jfs-milvus-agent status` reads (`render_doing`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace
from typing import Any

NOW_FILE = "agent-now.json"
_DURATION = re.compile(r"\d+(\.\d+)?\s?(ms|s)\b")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?")


def gist(sentence: str) -> str:
    """The sentence without what changes while the situation does not: durations and timestamps."""
    return _DURATION.sub("N\\2", _TIMESTAMP.sub("T", sentence))


@dataclass(frozen=True)
class Doing:
    """The agent's current step as `status` shows it: its action, its sentence (the latest), since when."""

    action: str  # a converge Action value: wait, nothing, start, mount, ...
    reason: str
    since_unix: float

    @property
    def waiting(self) -> bool:
        return self.action == "wait"

    def to_dict(self, now_unix: float) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "since_unix": self.since_unix,
            "for_s": round(max(0.0, now_unix - self.since_unix), 1),
        }


def next_doing(previous: Doing | None, action: str, reason: str, acted: bool, now_unix: float) -> tuple[Doing, bool]:
    """This cycle's step as what the agent is doing now, and whether it is news for the log. A step that acted
    is always news; a wait or a nothing only when its action or the gist of its sentence is new (the same wait
    keeps its start time and takes the latest sentence)."""
    if previous is not None and not acted and previous.action == action and gist(previous.reason) == gist(reason):
        return replace(previous, reason=reason), False
    return Doing(action, reason, now_unix), True


def mount_key(state: str, mode: str | None, reasons: tuple[str, ...]) -> tuple[str, str, str]:
    return (state, mode or "-", gist("; ".join(reasons)))


def mount_news(
    previous: tuple[str, str, str] | None,
    volume: str,
    mountpoint: str,
    state: str,
    mode: str | None,
    reasons: tuple[str, ...],
) -> tuple[tuple[str, str, str], str | None]:
    """The mount's key now, and the line to log when it differs from the last one: its state, mode and reasons
    (without durations and timestamps)."""
    key = mount_key(state, mode, reasons)
    if key == previous:
        return key, None
    was = f"{previous[0]} -> " if previous is not None else ""
    in_mode = f" ({mode})" if mode else ""
    why = f": {'; '.join(reasons)}" if reasons else ""
    return key, f"mount {mountpoint} (volume {volume}): {was}{state}{in_mode}{why}"


# -- agent-now.json: what the running daemon is doing, for `jfs-milvus-agent status` ------------------------
def now_file_text(doing: Doing, pid: int, node: str) -> str:
    data = {"node": node, "pid": pid, "action": doing.action, "reason": doing.reason, "since_unix": doing.since_unix}
    return json.dumps(data, sort_keys=True) + "\n"


def parse_now_file(text: str) -> tuple[Doing, int] | None:
    """The step and the daemon's pid a now file holds; None when it is not one."""
    try:
        data = json.loads(text)
        doing = Doing(str(data["action"]), str(data["reason"]), float(data["since_unix"]))
        return doing, int(data["pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def daemon_status(path: str, text: str | None, read_error: str | None, alive: bool, now_unix: float) -> dict[str, Any]:
    """What `status` says of the daemon from its now file: running and what it is doing (and since when), or why
    that cannot be said."""
    if read_error is not None:
        return {"running": None, "note": f"{path}: {read_error}"}
    if text is None:
        return {"running": False, "note": f"the agent daemon is not running here ({path} does not exist)"}
    found = parse_now_file(text)
    if found is None:
        return {"running": None, "note": f"{path}: not what the agent writes"}
    doing, pid = found
    out: dict[str, Any] = {"running": alive, "pid": pid, **doing.to_dict(now_unix)}
    if not alive:
        out["note"] = f"the agent daemon that wrote {path} (pid {pid}) is not running; this is what it last said"
    return out


def render_daemon_line(daemon: dict[str, Any]) -> str:
    if "action" not in daemon:
        return f"Agent: {daemon['note']}"
    since = time.strftime("%H:%M:%S", time.localtime(daemon["since_unix"]))
    doing = "waiting" if daemon["action"] == "wait" else daemon["action"]
    line = f"Agent: {doing} since {since} ({_ago(daemon['for_s'])}): {daemon['reason']}"
    return f"{line}\n  ({daemon['note']})" if daemon.get("note") else line
