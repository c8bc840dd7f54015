"""The writer's WAL directory on the node (the edge of agent/milvus/walplan.py).

Layout under `milvus.data_dir`:
- `wal/`: the WAL of the current writer stint, bind-mounted at /var/lib/milvus/wal in a rw container only;
- `wal.stint`: the marker, `{"epoch": E, "role": "rw"}`, written atomically once `wal/` belongs to that stint;
- `wal.set-aside/epoch-<E>-<unix time>/`: earlier stints' WALs, renamed away whole (never replayed), the newest
  KEEP_SET_ASIDE kept for forensics. Each may hold the only copy of inserts acknowledged at epoch E and never
  flushed, so one is deleted only with a warning that says so.

Order, so that a crash anywhere leaves a state the next start reads right: rename `wal/` away first, then
create the empty `wal/`, then write the marker. A marker never names a directory it was not written for: a
crash before the marker leaves an empty `wal/`, which is fresh whatever the old marker says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass

from jfsmilvus.common.atomicfile import NotUtf8Error, fsync_dir, read_text, write_atomic

from agent.milvus.walplan import WalAction, WalPlan, WalStint, parse_stint, plan_writer_wal

log = logging.getLogger("jfs_milvus.agent.wal")

WAL_NAME = "wal"
MARKER_NAME = "wal.stint"
SET_ASIDE_NAME = "wal.set-aside"


@dataclass(frozen=True)
class WriterWal:
    data_dir: str  # milvus.data_dir

    @property
    def wal_dir(self) -> str:
        return os.path.join(self.data_dir, WAL_NAME)

    @property
    def marker_file(self) -> str:
        return os.path.join(self.data_dir, MARKER_NAME)

    @property
    def set_aside_dir(self) -> str:
        return os.path.join(self.data_dir, SET_ASIDE_NAME)

    def _marker_text(self) -> str | None:
        """The marker's text; None when there is none, or when it is not text (a WAL of unknown stint)."""
        try:
            return read_text(self.marker_file)
        except NotUtf8Error as exc:
            log.warning("%s: the WAL beside it is of an unknown stint", exc)
            return None

    def prepare(self, epoch: int, now_unix: int | None = None) -> WalPlan:
        """Make `wal_dir` the WAL of the writer stint at `epoch`, right before its rw container starts."""
        plan = plan_writer_wal(
            parse_stint(self._marker_text()),
            _has_entries(self.wal_dir),
            epoch,
            int(time.time()) if now_unix is None else now_unix,
            tuple(_entries(self.set_aside_dir)),
        )
        if plan.action is WalAction.SET_ASIDE and plan.set_aside_as:
            target = os.path.join(self.set_aside_dir, plan.set_aside_as)
            os.makedirs(self.set_aside_dir, exist_ok=True)
            os.rename(self.wal_dir, target)  # one directory, same file system: atomic
            fsync_dir(self.set_aside_dir)
            fsync_dir(self.data_dir)
            log.warning("WAL %s set aside as %s: %s", self.wal_dir, target, plan.reason)
            for name in plan.prune:
                self._delete_set_aside(name)
        else:
            log.info("WAL %s: %s", self.wal_dir, plan.reason)
        os.makedirs(self.wal_dir, exist_ok=True)
        write_atomic(self.marker_file, WalStint(epoch).to_text())
        return plan

    def _delete_set_aside(self, name: str) -> None:
        path = os.path.join(self.set_aside_dir, name)
        size = _tree_bytes(path)
        shutil.rmtree(path, ignore_errors=True)
        log.warning(
            "deleted the set-aside WAL %s (%d bytes) to keep the newest %d: it may have held the only copy of "
            "inserts and deletes acknowledged in that writer stint and never flushed",
            path,
            size,
            len(_entries(self.set_aside_dir)),
        )


def _entries(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def _has_entries(path: str) -> bool:
    return bool(_entries(path))


def _tree_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
