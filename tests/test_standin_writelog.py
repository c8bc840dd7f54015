"""The stand-in's write log: the pure checks the overlap checker is built on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.standin import writelog
from tests.standin.writelog import (
    LogFile,
    WriteLogError,
    entry,
    find_overlaps,
    parse_log,
    read_logs,
    writer_intervals,
)

MS = 1_000_000
STATE_OK = {"message": "Success", "code": 0}


def make_log(
    node: str, epoch: int, start_ms: int, end_ms: int, stop: bool = True, ids: tuple[str, ...] = ()
) -> LogFile:
    lines = [entry("start", node, epoch, 0, start_ms * MS, pid=1)]
    lines += [entry("write", node, epoch, i + 1, (start_ms + 1) * MS, id=x, payload=x) for i, x in enumerate(ids)]
    lines.append(entry("stop" if stop else "tick", node, epoch, len(lines), end_ms * MS))
    return LogFile(writelog.file_name(node, epoch, start_ms * MS), tuple(lines))


# --- write-log checks (pure) ---


def test_intervals_span_first_to_last_line_and_tell_clean_stops() -> None:
    logs = [make_log("b", 2, 300, 400, stop=False), make_log("a", 1, 100, 200, ids=("x", "y"))]
    a, b = writer_intervals(logs)
    assert (a.node, a.epoch, a.first_ns, a.last_ns, a.stopped_cleanly, a.writes) == (
        "a",
        1,
        100 * MS,
        200 * MS,
        True,
        2,
    )
    assert (b.node, b.epoch, b.stopped_cleanly, b.writes) == ("b", 2, False, 0)


def test_overlap_found_between_concurrent_writers_only() -> None:
    logs = [make_log("a", 1, 100, 200), make_log("b", 2, 150, 300), make_log("c", 3, 301, 400)]
    overlaps = find_overlaps(writer_intervals(logs))
    assert [(o.a.node, o.b.node, o.overlap_ns) for o in overlaps] == [("a", "b", 50 * MS)]


def test_overlap_counts_same_node_other_epoch_and_contained_intervals() -> None:
    logs = [make_log("a", 1, 100, 500), make_log("a", 2, 200, 300)]
    (overlap,) = find_overlaps(writer_intervals(logs))
    assert (overlap.a.epoch, overlap.b.epoch, overlap.overlap_ns) == (1, 2, 100 * MS)


def test_margin_flags_writers_closer_than_the_clock_skew() -> None:
    intervals = writer_intervals([make_log("a", 1, 100, 200), make_log("b", 2, 210, 300)])
    assert find_overlaps(intervals) == []
    (near,) = find_overlaps(intervals, margin_ns=20 * MS)
    assert near.overlap_ns == -10 * MS


def test_torn_last_line_is_dropped_and_a_bad_middle_line_raises() -> None:
    good = writelog.encode(entry("start", "a", 1, 0, 5)).decode()
    parsed = parse_log("f", good + '{"kind":"wri')
    assert parsed.torn_tail and len(parsed.entries) == 1
    with pytest.raises(WriteLogError, match="f:1"):
        parse_log("f", "garbage\n" + good)


def test_read_logs_reads_every_incarnation_file(tmp_path: Path) -> None:
    assert read_logs(tmp_path) == []
    log_dir = tmp_path / writelog.WRITELOG_DIR
    log_dir.mkdir()
    for log in (make_log("a", 1, 1, 2), make_log("b", 2, 3, 4)):
        (log_dir / log.name).write_bytes(b"".join(writelog.encode(e) for e in log.entries))
    (log_dir / "notes.txt").write_text("not a log")
    assert [len(log.entries) for log in read_logs(tmp_path)] == [2, 2]


# --- server config reading ---


