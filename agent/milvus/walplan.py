"""Which WAL directory a Milvus 1.x writer starts on: its own from this stint, or a fresh one (pure, no I/O).

Milvus's WAL is per node and per writer stint. An LSN is a byte position in that node's own files,
`(file_no << 32) | offset` in `<file_no>.wal` (db/wal/WalBuffer.cpp:31-39), and recovery replays the range
that MySQL's global LSN and per-collection `flush_lsn` name (db/wal/WalManager.cpp:53-141). Those numbers
were written by whichever writer flushed last. So:

- a writer restarted at the SAME epoch (a crash, a remount, an agent restart) must reuse its WAL: that is how
  its acknowledged-unflushed inserts survive (`DBImpl::Start` replays them, db/DBImpl.cpp:128-147);
- a writer started at another epoch must not: the WAL it holds is from an earlier stint, and another writer may
  have moved MySQL's LSNs since. Replaying its positions against those numbers would apply old or torn records.
  It is set aside (kept for forensics, never replayed) and Milvus starts on an empty directory, where it resets
  to MySQL's highest `flush_lsn` (WalManager.cpp:101-104, :128-130 with `recovery_error_ignore`);
- a reader runs with `wal.enable: false` and has no WAL directory at all (agent/milvus/server_config.py).

The marker (`WalStint`) says which writer stint the directory belongs to; the edge (agent/milvus/waldir.py)
reads it, asks `plan_writer_wal`, renames, and writes the marker after the rename.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum

KEEP_SET_ASIDE = 3  # set-aside WAL directories kept per node; older ones are deleted, each with a warning
SET_ASIDE_NAME = re.compile(r"epoch-(\d+|unknown)-(\d+)(?:-(\d+))?")


class WalAction(Enum):
    REUSE = "reuse"  # this stint's own WAL: Milvus replays it
    SET_ASIDE = "set-aside"  # another stint's WAL: renamed away, the writer starts on an empty directory
    FRESH = "fresh"  # nothing there: the writer starts on an empty directory


@dataclass(frozen=True)
class WalStint:
    """The writer stint a node's WAL directory belongs to (the marker file beside it)."""

    epoch: int
    role: str = "rw"

    def to_text(self) -> str:
        return json.dumps({"epoch": self.epoch, "role": self.role}) + "\n"


def parse_stint(text: str | None) -> WalStint | None:
    """The marker's stint; None when there is none or it cannot be read (treated as a foreign WAL)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        epoch, role = data["epoch"], data.get("role", "rw")
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0 or role not in ("rw", "ro"):
        return None
    return WalStint(epoch, role)


@dataclass(frozen=True)
class WalPlan:
    action: WalAction
    reason: str
    set_aside_as: str | None = None  # the new name under the set-aside folder (SET_ASIDE only)
    prune: tuple[str, ...] = ()  # set-aside names to delete, oldest first, to keep KEEP_SET_ASIDE


def plan_writer_wal(
    marker: WalStint | None,
    wal_has_files: bool,
    epoch: int,
    now_unix: int,
    set_aside: tuple[str, ...] = (),
    keep: int = KEEP_SET_ASIDE,
) -> WalPlan:
    """What to do with the node's WAL directory before it starts rw at `epoch`.

    `marker` is the stint the directory was last started for, `wal_has_files` whether it holds anything,
    `set_aside` the names already under the set-aside folder."""
    if not wal_has_files:
        return WalPlan(WalAction.FRESH, f"no WAL on this node: the writer at epoch {epoch} starts on an empty one")
    if marker is not None and marker.role == "rw" and marker.epoch == epoch:
        return WalPlan(WalAction.REUSE, f"the WAL is this writer's own (epoch {epoch}): Milvus replays it")
    whose = f"epoch {marker.epoch}" if marker is not None else "an unknown epoch (no readable marker)"
    name = _unique(f"epoch-{marker.epoch if marker is not None else 'unknown'}-{now_unix}", set_aside)
    ours = _oldest_first((*set_aside, name))
    prune = ours[: max(0, len(ours) - keep)]
    return WalPlan(
        WalAction.SET_ASIDE,
        f"the WAL is from {whose}, not this writer's epoch {epoch}: set aside as {name}, never replayed "
        "(MySQL's LSNs may be another writer's since)",
        set_aside_as=name,
        prune=tuple(p for p in prune if p != name),
    )


def _unique(name: str, taken: tuple[str, ...]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _oldest_first(names: tuple[str, ...]) -> list[str]:
    """By the time in the name (then its counter); names not ours sort first but are never pruned."""

    def key(name: str) -> tuple[int, int]:
        match = SET_ASIDE_NAME.fullmatch(name)
        return (int(match.group(2)), int(match.group(3) or 1)) if match else (-1, 0)

    return [n for n in sorted(names, key=key) if SET_ASIDE_NAME.fullmatch(n)]
