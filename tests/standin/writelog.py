"""The stand-in's write log: its format, and pure checks over it (what a role change did to data).

A writer incarnation (one rw server process) appends JSON lines to its own file
`<db>/writelog/<node>.<epoch>.<start_ns>.jsonl`; no two processes ever append to one file. Every line has
`v` (format version, 1), `kind` (start | tick | flush | stop), `node`, `epoch`, `seq` (0, 1, 2, ... within the
file) and `wall_ns` (time.time_ns() of the writer). `flush` lines add `table`, `segment`, `rows`, `lsn` and
`bytes` (one per segment a flush wrote to the volume); `start` adds `pid`; `stop` adds `reason`. Each line is
fsynced before the server goes on. (`write` lines, with `id` and `payload`, are the stand-in's before it spoke
Milvus's gRPC API; they are still read.)

This module is also copied into the image: the server writes and reads its lines with these functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
WRITELOG_DIR = "writelog"  # under the shared volume's db/ directory
SUFFIX = ".jsonl"
KINDS = ("start", "tick", "write", "flush", "stop")  # "write": lines of the stand-in before it spoke gRPC


class WriteLogError(ValueError):
    """A write-log file cannot be read as this format; the message names the file and line."""


@dataclass(frozen=True)
class LogFile:
    """One incarnation's file, parsed. `torn_tail`: its last line had no newline (the writer died mid-line)."""

    name: str
    entries: tuple[dict[str, Any], ...]
    torn_tail: bool = False


@dataclass(frozen=True)
class WriterInterval:
    """When one incarnation ran as a writer: from its first line to its last (inclusive, wall clock ns)."""

    file: str
    node: str
    epoch: int
    first_ns: int
    last_ns: int
    stopped_cleanly: bool  # its last line is a `stop` line
    writes: int  # the lines that wrote data to the volume (flushes)


@dataclass(frozen=True)
class Overlap:
    a: WriterInterval
    b: WriterInterval
    overlap_ns: int  # how long both were writers (negative within a margin: the gap between them)


def file_name(node: str, epoch: int, start_ns: int) -> str:
    safe_node = re.sub(r"[^A-Za-z0-9_-]", "_", node) or "_"
    return f"{safe_node}.{epoch}.{start_ns}{SUFFIX}"


def entry(kind: str, node: str, epoch: int, seq: int, wall_ns: int, **fields: Any) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return {"v": FORMAT_VERSION, "kind": kind, "node": node, "epoch": epoch, "seq": seq, "wall_ns": wall_ns, **fields}


def encode(line: dict[str, Any]) -> bytes:
    return (json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n").encode()


def parse_log(name: str, text: str) -> LogFile:
    """Parse one file's text. A last line without newline is dropped as torn; any other bad line raises."""
    lines = text.split("\n")
    torn = lines[-1] != ""
    body = lines[:-1]
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(body, start=1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WriteLogError(f"{name}:{number}: not JSON: {exc}") from exc
        if not isinstance(item, dict) or item.get("kind") not in KINDS or not isinstance(item.get("wall_ns"), int):
            raise WriteLogError(f"{name}:{number}: not a write-log entry: {line[:200]}")
        entries.append(item)
    return LogFile(name, tuple(entries), torn)


def read_logs(db_dir: Path | str) -> list[LogFile]:
    """Every incarnation's file under `<db_dir>/writelog`, parsed, in name order ([] if there is none)."""
    log_dir = Path(db_dir) / WRITELOG_DIR
    if not log_dir.is_dir():
        return []
    paths = sorted(p for p in log_dir.iterdir() if p.name.endswith(SUFFIX))
    return [parse_log(p.name, p.read_text(errors="replace")) for p in paths]


def writer_intervals(logs: Iterable[LogFile]) -> list[WriterInterval]:
    """One interval per file that holds at least one line, ordered by start."""
    intervals = []
    for log in logs:
        if not log.entries:
            continue
        first, last = log.entries[0], log.entries[-1]
        intervals.append(
            WriterInterval(
                file=log.name,
                node=str(first["node"]),
                epoch=int(first["epoch"]),
                first_ns=min(e["wall_ns"] for e in log.entries),
                last_ns=max(e["wall_ns"] for e in log.entries),
                stopped_cleanly=last["kind"] == "stop",
                writes=sum(1 for e in log.entries if e["kind"] in ("write", "flush")),
            )
        )
    return sorted(intervals, key=lambda i: (i.first_ns, i.file))


def find_overlaps(intervals: Iterable[WriterInterval], margin_ns: int = 0) -> list[Overlap]:
    """Pairs of distinct incarnations that were writers at once (or closer than `margin_ns`, for clock skew).

    Any two incarnations count: different nodes, one node in different epochs, or one node and epoch twice.
    """
    ordered = sorted(intervals, key=lambda i: (i.first_ns, i.file))
    found = []
    for index, a in enumerate(ordered):
        for b in ordered[index + 1 :]:
            if b.first_ns > a.last_ns + margin_ns:
                break  # the rest start later still
            found.append(Overlap(a, b, min(a.last_ns, b.last_ns) - b.first_ns))
    return found
