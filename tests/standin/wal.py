"""The node-local write-ahead log of a Milvus 1.x stand-in, and the recovery range Milvus computes at start.

Modelled on db/wal (v1.0.0):
- An insert or delete is acknowledged once appended to the WAL with `fwrite` + `fflush`, no fsync
  (WalFileHandler.cpp:67-71; DBImpl::InsertVectors, DBImpl.cpp:734-738). The stand-in appends a JSON line
  and flushes Python's buffer: the bytes are in the page cache, not on disk.
- Records are applied by the background WAL thread, which runs only on a writable node (DBImpl.cpp:151-166); the
  last applied LSN is kept in `mxlog.meta` (MXLogMetaHandler).
- `WalManager::Init` (WalManager.cpp:53-141) takes the recovery range from MySQL: start = max(global LSN,
  lowest collection/partition flush_lsn), end = max(local applied LSN, highest flush_lsn), end >= start. When
  start != end the local files must hold that range (WalBuffer.cpp:54-120); on a fresh or foreign WAL directory
  they do not, and then `wal.recovery_error_ignore: false` makes the start fail ("Wal init error!",
  DBImpl.cpp:128-135) while `true` resets the buffer to `end` and goes on (WalManager.cpp:123-130).

File format (the stand-in's own): `mxlog.jsonl`, first line `{"begin": N}` (every record with an LSN above N
is in the file), then one record a line: `{"lsn", "op": insert|delete, "collection", "table", "ids", "vectors"}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_NAME = "mxlog.jsonl"
META_NAME = "mxlog.meta"
COMPACT_AFTER = 5000  # records beyond the flushed LSN before the file is rewritten without the flushed ones


class WalInitError(RuntimeError):
    """Milvus: "Wal init error!" (the start fails, exit 1)."""


@dataclass(frozen=True)
class RecoveryRange:
    start: int
    end: int


def recovery_range(global_lsn: int, flush_lsns: Iterable[int], applied_lsn: int) -> RecoveryRange:
    """WalManager::Init's range from MySQL's LSNs and this node's applied LSN (pure)."""
    lsns = list(flush_lsns)
    start, end = global_lsn, applied_lsn
    if lsns:
        end = max(end, max(lsns))
        start = max(start, min(lsns))
    return RecoveryRange(start, max(end, start))


@dataclass
class LocalWal:
    directory: Path
    begin: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _file: Any = None

    @classmethod
    def open(cls, directory: Path) -> LocalWal:
        """Read what this node's WAL directory holds (a torn last line is dropped)."""
        directory.mkdir(parents=True, exist_ok=True)
        wal = cls(directory)
        try:
            lines = (directory / LOG_NAME).read_text().split("\n")
        except FileNotFoundError:
            lines = []
        complete = lines[:-1] if lines and lines[-1] != "" else lines
        for line in complete:
            if not line:
                continue
            try:
                item = json.loads(line)
            except ValueError:
                break
            if "begin" in item:
                wal.begin = int(item["begin"])
            else:
                wal.records.append(item)
        with contextlib.suppress(FileNotFoundError, ValueError):
            wal.applied = int((directory / META_NAME).read_text().split()[0])
        return wal

    @property
    def last_lsn(self) -> int:
        return int(self.records[-1]["lsn"]) if self.records else self.begin

    def covers(self, span: RecoveryRange) -> bool:
        """The files hold every record in (start, end]: MXLogBuffer::Init succeeds."""
        return span.start == span.end or (self.begin <= span.start and self.last_lsn >= span.end)

    def init(self, span: RecoveryRange, error_ignore: bool) -> list[dict[str, Any]]:
        """WalManager::Init: the records to replay, or WalInitError. Afterwards the file holds what was kept."""
        if span.start == span.end:
            replay, kept, begin = [], [], span.end  # nothing to recover: the buffer starts at `end`
        elif self.covers(span):
            replay = [r for r in self.records if span.start < int(r["lsn"]) <= span.end]
            kept, begin = [r for r in self.records if int(r["lsn"]) <= span.end], self.begin
        elif error_ignore:
            replay, kept, begin = [], [], span.end  # MXLogBuffer::Reset(applied_lsn)
        else:
            raise WalInitError(
                f"Wal init error! recovery needs LSNs {span.start}..{span.end} but {self.directory} holds "
                f"{self.begin}..{self.last_lsn}"
            )
        self._rewrite(begin, kept)
        self.set_applied(span.end)
        return replay

    def _rewrite(self, begin: int, kept: list[dict[str, Any]]) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            tmp = self.directory / f".{LOG_NAME}.tmp"
            with open(tmp, "w") as f:
                f.write(json.dumps({"begin": begin}) + "\n")
                f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in kept)
            os.replace(tmp, self.directory / LOG_NAME)
            self.begin, self.records = begin, kept
            self._file = open(self.directory / LOG_NAME, "a")  # noqa: SIM115 (kept open while the server runs)

    def append(self, record: dict[str, Any]) -> int:
        """Give the record the next LSN and append it (fwrite + fflush, no fsync); the LSN."""
        with self._lock:
            lsn = self.last_lsn + 1
            item = {"lsn": lsn, **record}
            self._file.write(json.dumps(item, separators=(",", ":")) + "\n")
            self._file.flush()
            self.records.append(item)
            return lsn

    def set_applied(self, lsn: int) -> None:
        """mxlog.meta: what the WAL thread has applied (no fsync, as MXLogMetaHandler)."""
        self.applied = lsn
        (self.directory / META_NAME).write_text(f"{lsn}\n")

    def unapplied(self) -> list[dict[str, Any]]:
        return [r for r in self.records if int(r["lsn"]) > self.applied]

    def forget_flushed(self, flushed_lsn: int) -> None:
        """Drop records every collection has flushed once the file grows (WalManager::RemoveOldFiles)."""
        if len(self.records) > COMPACT_AFTER:
            self._rewrite(flushed_lsn, [r for r in self.records if int(r["lsn"]) > flushed_lsn])

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
