"""The Milvus stand-in: write-log checks (pure), config reading, and the real image under Docker."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.plugin_standin import StandinFactory
from tests.standin import writelog
from tests.standin.build import ensure_standin
from tests.standin.container import docker, render_config
from tests.standin.server import ConfigError, load_settings
from tests.standin.writelog import (
    LogFile,
    WriteLogError,
    entry,
    find_overlaps,
    missing_acknowledged,
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


def test_missing_acknowledged_names_lost_ids() -> None:
    logs = [make_log("a", 1, 100, 200, ids=("x",)), make_log("b", 2, 300, 400, ids=("y",))]
    assert missing_acknowledged({"x", "y"}, logs) == set()
    assert missing_acknowledged({"x", "z"}, logs) == {"z"}


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


def test_settings_read_milvus_flat_network_keys() -> None:
    text = render_config("ro", "127.0.0.5", 20000, 20001)
    s = load_settings(text, {"JFS_MILVUS_NODE": "n1", "JFS_MILVUS_EPOCH": "7"})
    assert (s.role, s.writable, s.bind_address, s.bind_port, s.http_port) == ("ro", False, "127.0.0.5", 20000, 20001)
    assert (s.node, s.epoch, str(s.storage_path), s.tick_s) == ("n1", 7, "/var/lib/milvus", 0.2)


def test_settings_ignore_nested_network_mappings_like_milvus(capsys: pytest.CaptureFixture[str]) -> None:
    s = load_settings("cluster: {enable: true, role: rw}\nnetwork: {bind: {port: 1}, http: {port: 2}}\n", {})
    assert (s.bind_port, s.http_port) == (19530, 19121)
    assert "Milvus 1.x ignores it" in capsys.readouterr().err


def test_settings_refuse_unknown_role_and_write_when_cluster_is_off() -> None:
    with pytest.raises(ConfigError):
        load_settings("cluster: {enable: true, role: wr}\n", {})
    assert load_settings("cluster: {enable: false, role: ro}\n", {}).writable


# --- the image under Docker ---


@pytest.mark.slow
def test_second_ensure_reuses_the_built_image(standin_image: str) -> None:
    started = time.monotonic()
    again = ensure_standin(progress=lambda line: pytest.fail(f"rebuilt: {line}"))
    assert again.tag == standin_image
    assert not again.built_anything
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_rw_answers_state_and_acknowledges_only_fsynced_writes(
    standin_factory: StandinFactory, standin_db_dir: Path
) -> None:
    rw = standin_factory.start("node-a", "rw", standin_db_dir, epoch=4)
    assert rw.request("GET", "/state") == (200, STATE_OK)
    assert rw.request("GET", "/state", base=rw.bind_url) == (200, STATE_OK)
    status, body = rw.write("rec-1", {"vector": [0.5, 1.5]})
    assert status == 200 and body["code"] == 0
    # On disk (in the bind-mounted db/) by the time the answer arrived.
    (log,) = read_logs(standin_db_dir)
    (line,) = [e for e in log.entries if e["kind"] == "write"]
    assert (line["id"], line["node"], line["epoch"], line["payload"]) == ("rec-1", "node-a", 4, {"vector": [0.5, 1.5]})
    assert log.entries[0]["kind"] == "start"
    assert rw.request("GET", "/records/rec-1")[1]["record"]["seq"] == body["seq"]
    assert rw.request("GET", "/records/nope")[0] == 404


@pytest.mark.slow
def test_ro_refuses_writes_and_reads_the_writers_records(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    rw = standin_factory.start("node-a", "rw", standin_db_dir)
    for i in range(3):
        assert rw.write(f"r{i}", i)[0] == 200
    ro = standin_factory.start("node-b", "ro", standin_db_dir)
    assert ro.request("GET", "/state") == (200, STATE_OK)
    status, body = ro.write("from-ro")
    assert status == 403 and body["code"] == 3
    status, body = ro.request("GET", "/records")
    assert status == 200 and [r["id"] for r in body["records"]] == ["r0", "r1", "r2"]
    assert ro.request("GET", "/records/r1")[1]["record"]["payload"] == 1
    assert [log.entries[0]["node"] for log in read_logs(standin_db_dir)] == ["node-a"]  # ro wrote nothing


@pytest.mark.slow
def test_sigterm_stops_gracefully_with_a_stop_line(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    rw = standin_factory.start("node-a", "rw", standin_db_dir)
    time.sleep(0.5)
    started = time.monotonic()
    assert rw.stop(timeout=10) == 0
    assert time.monotonic() - started < 8  # well before docker's SIGKILL at 10 s: it stopped on SIGTERM
    (log,) = read_logs(standin_db_dir)
    assert log.entries[-1]["kind"] == "stop" and log.entries[-1]["reason"] == "SIGTERM"
    assert sum(e["kind"] == "tick" for e in log.entries) >= 1
    (interval,) = writer_intervals([log])
    assert interval.stopped_cleanly


@pytest.mark.slow
def test_no_acknowledged_write_is_lost_across_sigterm(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    rw = standin_factory.start("node-a", "rw", standin_db_dir)
    acknowledged: list[str] = []
    done = threading.Event()

    def client() -> None:
        n = 0
        while not done.is_set():
            try:
                status, _ = rw.write(f"w{n}", n)
            except OSError:
                return
            if status == 200:
                acknowledged.append(f"w{n}")
            n += 1

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(0.5)
    assert rw.stop() == 0
    done.set()
    thread.join(timeout=15)
    logs = read_logs(standin_db_dir)
    assert len(acknowledged) > 5
    assert missing_acknowledged(acknowledged, logs) == set()
    assert writer_intervals(logs)[0].stopped_cleanly


@pytest.mark.slow
def test_overlap_found_when_two_writers_ran_at_once(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    a = standin_factory.start("node-a", "rw", standin_db_dir, epoch=1)
    b = standin_factory.start("node-b", "rw", standin_db_dir, epoch=2)
    time.sleep(0.5)
    a.stop()
    b.stop()
    (overlap,) = find_overlaps(writer_intervals(read_logs(standin_db_dir)))
    assert {overlap.a.node, overlap.b.node} == {"node-a", "node-b"}
    assert overlap.overlap_ns > 0


@pytest.mark.slow
def test_no_overlap_when_writers_ran_one_after_another(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    a = standin_factory.start("node-a", "rw", standin_db_dir, epoch=1)
    assert a.write("before", 1)[0] == 200
    assert a.stop() == 0
    b = standin_factory.start("node-b", "rw", standin_db_dir, epoch=2, address="127.0.0.1")
    assert b.write("after", 2)[0] == 200
    assert b.stop() == 0
    logs = read_logs(standin_db_dir)
    intervals = writer_intervals(logs)
    assert [(i.node, i.epoch, i.stopped_cleanly) for i in intervals] == [("node-a", 1, True), ("node-b", 2, True)]
    assert find_overlaps(intervals) == []
    assert missing_acknowledged({"before", "after"}, logs) == set()


@pytest.mark.slow
def test_containers_carry_the_test_label(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    c = standin_factory.start("node-a", "ro", standin_db_dir)
    labels = json.loads(docker("inspect", "-f", "{{json .Config.Labels}}", c.name).stdout)
    assert labels.get("org.jfs-milvus.test") == "standin"
