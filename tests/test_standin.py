"""The Milvus 1.x stand-in behaves as Milvus 1.0 does where the product relies on it (tests/standin/README.md).

Pure rules first (config, meta URI, WAL range), then the image under Docker against the real MariaDB, driven by
the real pymilvus 1.0.1 client. Each test names the behaviour; reverting it in the stand-in fails the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from agent.mount import MountManager
from tests.plugin_juicefs import JfsTestVolume
from tests.plugin_standin import MILVUS_META_PASSWORD, MilvusMeta, StandinFactory
from tests.standin import writelog
from tests.standin.build import ensure_standin
from tests.standin.container import StandinContainer, docker, wal_lines
from tests.standin.durable import durable_ids
from tests.standin.milvusconf import ConfigCheckError, parse_meta_uri, read_settings, unknown_gpu_devices
from tests.standin.segments import TABLES_DIR
from tests.standin.wal import LocalWal, RecoveryRange, WalInitError, recovery_range

COLLECTION = {"collection_name": "demo", "dimension": 4, "index_file_size": 1024, "metric_type": 1}
V = [[0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5]]
NO_AUTO_FLUSH = {"storage": {"auto_flush_interval": 0}}


def minimal(**sections: object) -> str:
    text = "version: 0.5\ncluster:\n  enable: true\n  role: rw\ngeneral:\n  meta_uri: mysql://u:p@h:3306/db\n"
    return text + "".join(f"{k}: {v}\n" for k, v in sections.items())


def assert_exit(node: StandinContainer, code: int, said: str) -> None:
    """The container exits with `code` and its output says `said` (Milvus's own message)."""
    assert node.exit_code() == code
    assert said in node.logs()


# --- pure: how Milvus reads its config ---


def test_meta_uri_password_is_taken_raw_and_never_decoded() -> None:
    uri = parse_meta_uri(f"mysql://milvus:{MILVUS_META_PASSWORD}@10.0.0.5:3306/milvus")
    assert (uri.username, uri.password, uri.host, uri.port, uri.database) == (
        "milvus",
        MILVUS_META_PASSWORD,
        "10.0.0.5",
        "3306",
        "milvus",
    )
    assert parse_meta_uri("mysql://milvus:Mv%212021@h:3306/m").password == "Mv%212021"  # no URL decoding


def test_meta_uri_colon_in_password_moves_into_the_user() -> None:
    uri = parse_meta_uri("mysql://milvus:pa:ss@h:3306/m")
    assert (uri.username, uri.password) == ("milvus:pa", "ss")


@pytest.mark.parametrize("uri", ["mysql://milvus@h:3306/m", "mysql://milvus:pw@h/m", "mysql:/milvus:pw@h:1/m"])
def test_meta_uri_without_password_or_port_is_invalid(uri: str) -> None:
    with pytest.raises(ConfigCheckError, match="Invalid meta uri"):
        parse_meta_uri(uri)


@pytest.mark.parametrize("version", ["0.4", "1.0", "'0.50'"])
def test_config_version_other_than_0_5_stops_the_start(version: str) -> None:
    with pytest.raises(ConfigCheckError, match="Invalid config version"):
        read_settings(minimal().replace("version: 0.5", f"version: {version}"))


def test_network_keys_are_flat_and_ports_checked() -> None:
    s = read_settings(minimal(network="{bind.address: 10.0.0.11, bind.port: 19530, http.port: 19121}"))
    assert (s.bind_address, s.bind_port, s.http_port) == ("10.0.0.11", 19530, 19121)
    with pytest.raises(ConfigCheckError, match=r"Invalid network bind\.port"):
        read_settings(minimal(network="{bind.port: 80}"))


def test_a_reader_is_cluster_enable_and_role_ro_only() -> None:
    assert read_settings(minimal()).writable
    assert not read_settings(minimal().replace("role: rw", "role: ro")).writable
    assert read_settings(minimal().replace("enable: true", "enable: false").replace("role: rw", "role: ro")).writable
    with pytest.raises(ConfigCheckError, match="Invalid cluster role"):
        read_settings(minimal().replace("role: rw", "role: rw2"))


def test_recovery_error_ignore_defaults_true_as_the_code_does() -> None:
    assert read_settings(minimal()).wal_recovery_error_ignore is True
    assert read_settings(minimal(wal="{recovery_error_ignore: false}")).wal_recovery_error_ignore is False


def test_gpu_devices_must_exist() -> None:
    assert unknown_gpu_devices(("gpu0", "gpu1"), 2) == []
    assert unknown_gpu_devices(("gpu0", "gpu1"), 1) == ["gpu1"]
    assert unknown_gpu_devices(("cuda0",), 4) == ["cuda0"]


# --- pure: the WAL recovery range (WalManager::Init) ---


def test_recovery_range_from_mysql_lsns() -> None:
    assert recovery_range(40, [], 0) == RecoveryRange(40, 40)
    assert recovery_range(100, [100], 120) == RecoveryRange(100, 120)  # the node's own unflushed records
    assert recovery_range(100, [100], 0) == RecoveryRange(100, 100)  # a fresh node: nothing to replay
    assert recovery_range(40, [50, 100], 0) == RecoveryRange(50, 100)  # one collection flushed alone


def test_a_fresh_wal_cannot_hold_a_foreign_range(tmp_path: Path) -> None:
    wal = LocalWal.open(tmp_path / "wal")
    with pytest.raises(WalInitError, match="Wal init error"):
        wal.init(RecoveryRange(50, 100), error_ignore=False)
    assert wal.init(RecoveryRange(50, 100), error_ignore=True) == []
    assert wal.append({"op": "insert"}) == 101  # reset to the end of the range


def test_own_wal_replays_its_unflushed_records(tmp_path: Path) -> None:
    wal = LocalWal.open(tmp_path / "wal")
    wal.init(RecoveryRange(0, 0), error_ignore=False)
    for i in range(5):
        wal.append({"op": "insert", "ids": [i]})
    wal.set_applied(5)
    wal.close()
    again = LocalWal.open(tmp_path / "wal")
    replay = again.init(recovery_range(2, [2], again.applied), error_ignore=False)
    assert [r["ids"] for r in replay] == [[2], [3], [4]]


# --- the image, against MariaDB, through pymilvus 1.0.1 ---


@pytest.mark.slow
def test_second_ensure_reuses_the_built_image(standin_image: str) -> None:
    started = time.monotonic()
    again = ensure_standin()
    assert again.tag == standin_image and not again.built_anything
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_speaks_milvus_grpc_to_pymilvus_1_0(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    node = standin_factory.start("a", "rw", standin_db_dir)
    answers = node.calls(
        [
            ["server_version"],
            ["create_collection", COLLECTION],
            ["has_collection", "demo"],
            ["get_collection_info", "demo"],
            ["create_partition", "demo", "p1"],
            ["list_partitions", "demo"],
            ["insert", "demo", V[:2], [1, 2]],
            ["insert", "demo", V[2:], [3], "p1"],
            ["flush", ["demo"]],
            ["count_entities", "demo"],
            ["get_entity_by_id", "demo", [3, 9]],
            ["search", "demo", 2, [[1.0, 1.0, 1.0, 1.0]]],
            ["delete_entity_by_id", "demo", [2]],
            ["flush", ["demo"]],
            ["count_entities", "demo"],
            ["list_collections"],
            ["insert", "nope", V[:1], [1]],
            ["drop_collection", "demo"],
            ["has_collection", "demo"],
        ]
    )
    codes = [a.get("code") for a in answers]
    assert codes[:16] == [0] * 16, answers
    assert answers[0]["value"] == "1.0.0"
    assert answers[3]["value"]["dimension"] == 4
    assert [a["value"] for a in answers[9:10]] == [3]
    assert answers[10]["value"][0] == pytest.approx(V[2]) and answers[10]["value"][1] == []
    assert answers[11]["value"]["ids"] == [[2, 3]]
    assert answers[14]["value"] == 2
    assert answers[15]["value"] == ["demo"]
    assert answers[16]["code"] == 4 and "does not exist" in answers[16]["message"]  # COLLECTION_NOT_EXISTS
    assert answers[18]["value"] is False


@pytest.mark.slow
def test_insert_is_acknowledged_from_the_local_wal_and_reaches_the_volume_at_a_flush(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    node = standin_factory.start("a", "rw", standin_db_dir, overrides=NO_AUTO_FLUSH)
    answers = node.calls(
        [["create_collection", COLLECTION], ["insert", "demo", V[:2], [1, 2]], ["count_entities", "demo"]]
    )
    assert [a["code"] for a in answers] == [0, 0, 0] and answers[2]["value"] == 0  # not searchable yet
    assert any('"ids":[1,2]' in line for line in wal_lines(node.wal_dir))  # acknowledged = in the local WAL
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == set()
    assert node.info()["pending_rows"] == 2
    assert node.call("flush", ["demo"])["code"] == 0
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1, 2}
    assert node.call("count_entities", "demo")["value"] == 2


@pytest.mark.slow
def test_auto_flush_moves_inserts_to_the_volume(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    node = standin_factory.start("a", "rw", standin_db_dir, overrides={"storage": {"auto_flush_interval": 1}})
    node.calls([["create_collection", COLLECTION], ["insert", "demo", V[:1], [7]]])
    deadline = time.monotonic() + 5
    while durable_ids(milvus_meta.connect, standin_db_dir, "demo") != {7}:
        assert time.monotonic() < deadline, "the auto flush never wrote the insert"
        time.sleep(0.2)
    flushes = [e for log in writelog.read_logs(standin_db_dir) for e in log.entries if e["kind"] == "flush"]
    assert flushes and flushes[0]["rows"] == 1


@pytest.mark.slow
@pytest.mark.parametrize(("signal", "code", "said"), [("SIGINT", 0, "received signal: 2"), ("SIGTERM", 1, "critical")])
def test_a_signal_flushes_then_exits_as_milvus_does(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, signal: str, code: int, said: str
) -> None:
    node = standin_factory.start("a", "rw", standin_db_dir, overrides=NO_AUTO_FLUSH)
    node.calls([["create_collection", COLLECTION], ["insert", "demo", V[:2], [1, 2]]])
    assert node.stop(timeout=20, signal=signal) == code
    assert said in node.logs()
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1, 2}
    (log,) = writelog.read_logs(standin_db_dir)
    assert log.entries[-1]["kind"] == "stop"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("next_writer", "replayed", "durable"),
    [("a", 1, {1, 2}), ("b", 0, {1})],  # the same node replays its local WAL; another node never sees it
)
def test_sigkill_leaves_unflushed_inserts_in_the_writers_local_wal(
    standin_factory: StandinFactory,
    standin_db_dir: Path,
    milvus_meta: MilvusMeta,
    next_writer: str,
    replayed: int,
    durable: set[int],
) -> None:
    first = standin_factory.start("a", "rw", standin_db_dir, overrides=NO_AUTO_FLUSH)
    first.calls([["create_collection", COLLECTION], ["insert", "demo", V[:1], [1]], ["flush", []]])
    first.call("insert", "demo", V[1:2], [2])
    docker("kill", first.name)
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1}  # 2 was acknowledged, not flushed
    again = standin_factory.start(next_writer, "rw", standin_db_dir, epoch=2, overrides=NO_AUTO_FLUSH)
    assert again.info()["replayed"] == replayed
    again.call("flush", [])
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == durable


@pytest.mark.slow
def test_a_flush_that_cannot_write_answers_ok_and_a_restart_in_place_replays_it(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    node = standin_factory.start("a", "rw", standin_db_dir, overrides=NO_AUTO_FLUSH)
    node.calls([["create_collection", COLLECTION], ["insert", "demo", V[:1], [1]]])
    table_dir = standin_db_dir / TABLES_DIR / "demo"
    table_dir.rmdir()
    table_dir.write_text("not a folder")  # the segment's mkdir fails, as on a dead mount
    assert node.call("flush", ["demo"])["code"] == 0  # DBImpl::Flush answers OK all the same
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == set()
    table_dir.unlink()
    docker("kill", node.name)
    again = standin_factory.start("a", "rw", standin_db_dir, epoch=2, overrides=NO_AUTO_FLUSH)
    assert again.info()["replayed"] == 1  # the flush LSN never moved: the WAL still holds the row
    again.call("flush", [])
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1}


@pytest.mark.slow
def test_foreign_lsn_range_fails_a_new_writer_unless_recovery_errors_are_ignored(
    standin_factory: StandinFactory, standin_db_dir: Path
) -> None:
    first = standin_factory.start("a", "rw", standin_db_dir, overrides=NO_AUTO_FLUSH)
    second_collection = {**COLLECTION, "collection_name": "other"}
    first.calls(
        [
            ["create_collection", COLLECTION],
            ["create_collection", second_collection],
            ["flush", []],
            ["insert", "demo", V[:1], [1]],
            ["flush", ["demo"]],
        ]  # one collection flushed alone: its flush_lsn moves
    )
    assert first.stop() == 0
    strict = standin_factory.start(
        "b", "rw", standin_db_dir, epoch=2, wait=False, overrides={"wal": {"recovery_error_ignore": False}}
    )
    assert_exit(strict, 1, "Wal init error")
    lenient = standin_factory.start(
        "c", "rw", standin_db_dir, epoch=3, overrides={"wal": {"recovery_error_ignore": True}}
    )
    assert lenient.call("count_entities", "demo")["value"] == 1


@pytest.mark.slow
def test_reader_sees_the_writers_flushed_data_and_acknowledges_then_loses_its_own_inserts(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    writer = standin_factory.start("a", "rw", standin_db_dir, overrides=NO_AUTO_FLUSH)
    writer.calls([["create_collection", COLLECTION], ["insert", "demo", V[:2], [1, 2]], ["flush", []]])
    reader = standin_factory.start("b", "ro", standin_db_dir)
    answers = reader.calls([["count_entities", "demo"], ["search", "demo", 1, [V[0]]], ["insert", "demo", V[2:], [3]]])
    assert answers[0]["value"] == 2 and answers[1]["value"]["ids"] == [[1]]
    assert answers[2]["code"] == 0  # Milvus 1.0 has no role check: the insert is acknowledged...
    assert "error" in reader.call("flush", ["demo"], timeout_s=2)  # ...and a flush after it never returns
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1, 2}  # ...and it is never applied
    assert not list(writelog.read_logs(standin_db_dir))[1:]  # a reader keeps no write log


@pytest.mark.slow
def test_reader_create_collection_leaves_the_mysql_row_and_fails_on_the_read_only_mount(
    standin_factory: StandinFactory, standin_db_dir: Path
) -> None:
    standin_factory.start("a", "rw", standin_db_dir).stop()
    reader = standin_factory.start("b", "ro", standin_db_dir)
    answer = reader.call("create_collection", COLLECTION)
    assert answer["code"] == 17 and "Failed to create collection path" in answer["message"]  # CANNOT_CREATE_FOLDER
    assert reader.call("has_collection", "demo")["value"] is True
    assert not (standin_db_dir / TABLES_DIR / "demo").exists()


@pytest.mark.slow
def test_reader_start_needs_create_rights_in_mysql(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    standin_factory.start("a", "rw", standin_db_dir).stop()
    # The tables exist, yet MySQL checks the CREATE right before it looks: a SELECT-only reader account fails.
    reader = standin_factory.start(
        "b", "ro", standin_db_dir, meta_uri=milvus_meta.uri(milvus_meta.select_user), wait=False
    )
    assert_exit(reader, 1, "Failed to create meta collection 'Tables'")


@pytest.mark.slow
def test_a_password_milvus_cannot_log_in_with_ends_the_start(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    from urllib.parse import quote

    encoded = milvus_meta.uri(password=quote(MILVUS_META_PASSWORD, safe=""))  # what SQLAlchemy wants, not Milvus
    node = standin_factory.start("a", "rw", standin_db_dir, meta_uri=encoded, wait=False)
    assert_exit(node, 1, "Access denied")
    no_port = milvus_meta.uri().replace(f":{milvus_meta.server.port}/", "/")
    node = standin_factory.start("b", "rw", standin_db_dir, meta_uri=no_port, wait=False)
    assert_exit(node, 1, "Config check fail: Invalid meta uri")


@pytest.mark.slow
def test_grpc_bind_failure_exits_1_while_http_binds_every_address(
    standin_factory: StandinFactory, standin_db_dir: Path
) -> None:
    node = standin_factory.start(
        "a", "rw", standin_db_dir, overrides={"network": {"bind.address": "10.0.0.11"}}, wait=False
    )
    assert_exit(node, 1, "critical signal: 11")
    bound = standin_factory.start("b", "rw", standin_db_dir, overrides={"network": {"bind.address": "127.0.0.1"}})
    assert bound.call("server_version")["value"] == "1.0.0"
    other = StandinContainer(**{**bound.__dict__, "host": "127.0.0.2"})  # another loopback address
    assert other.request("GET", "/state")[0] == 200  # HTTP binds every address, by port only
    with pytest.raises(ConnectionRefusedError):  # gRPC listens only on the address it was given
        socket.create_connection(("127.0.0.2", bound.grpc_port), timeout=2).close()


@pytest.mark.slow
def test_config_version_other_than_0_5_exits(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    node = standin_factory.start("a", "rw", standin_db_dir, overrides={"version": "0.4"}, wait=False)
    assert_exit(node, 1, "Invalid config version")


@pytest.mark.slow
def test_gpu_image_needs_its_gpu_device_request(
    standin_factory: StandinFactory, standin_db_dir: Path, standin_gpu_image: str
) -> None:
    bare = standin_factory.start("a", "rw", standin_db_dir, image=standin_gpu_image, wait=False)
    assert_exit(bare, 127, "libnvidia-ml.so.1: file too short")
    too_few = standin_factory.start(
        "b",
        "rw",
        standin_db_dir,
        image=standin_gpu_image,
        wait=False,
        env={"NVIDIA_VISIBLE_DEVICES": "GPU-0"},
        overrides={"gpu": {"enable": True, "search_devices": ["gpu0", "gpu1"], "build_index_devices": ["gpu0"]}},
    )
    assert_exit(too_few, 1, "gpu does not match with the hardware")
    ok = standin_factory.start(
        "c",
        "rw",
        standin_db_dir,
        image=standin_gpu_image,
        env={"NVIDIA_VISIBLE_DEVICES": "GPU-0,GPU-1"},
        overrides={"gpu": {"enable": True, "search_devices": ["gpu0", "gpu1"], "build_index_devices": ["gpu0"]}},
    )
    assert ok.call("_cmd", "mode")["value"] == "GPU"


@pytest.mark.slow
def test_start_takes_the_configured_time(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    node = standin_factory.start("a", "rw", standin_db_dir, overrides={"standin": {"start_s": 2.0}}, wait=False)
    assert node.wait_ready(timeout=30) >= 1.9


@pytest.mark.slow
def test_a_writers_stop_drains_and_a_readers_is_quick(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    slow_stop = {"standin": {"stop_s": 2.0}}
    writer = standin_factory.start("a", "rw", standin_db_dir, overrides=slow_stop)
    reader = standin_factory.start("b", "ro", standin_db_dir, overrides=slow_stop)
    took = {}
    for node in (writer, reader):
        began = time.monotonic()
        assert node.stop() == 0
        took[node.role] = time.monotonic() - began
    assert took["rw"] >= 2.0 > took["ro"] + 0.5


@pytest.mark.slow
def test_overlap_found_when_two_writers_ran_at_once(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    a = standin_factory.start("a", "rw", standin_db_dir)
    b = standin_factory.start("b", "rw", standin_db_dir, epoch=2)  # storage.path is per container: both run
    time.sleep(0.5)
    a.stop()
    b.stop()
    overlaps = writelog.find_overlaps(writelog.writer_intervals(writelog.read_logs(standin_db_dir)))
    assert len(overlaps) == 1 and overlaps[0].overlap_ns > 0


@pytest.mark.slow
def test_no_overlap_when_writers_ran_one_after_another(standin_factory: StandinFactory, standin_db_dir: Path) -> None:
    standin_factory.start("a", "rw", standin_db_dir).stop()
    standin_factory.start("b", "rw", standin_db_dir, epoch=2).stop()
    intervals = writelog.writer_intervals(writelog.read_logs(standin_db_dir))
    assert len(intervals) == 2 and all(i.stopped_cleanly for i in intervals)
    assert writelog.find_overlaps(intervals) == []


@pytest.mark.slow
def test_on_juicefs_a_reader_on_a_read_only_mount_sees_what_the_writer_flushed(
    standin_factory: StandinFactory, jfs_volume: JfsTestVolume, milvus_meta: MilvusMeta, tmp_path: Path
) -> None:
    """The writer on a rw JuiceFS mount, a reader on a second, `--read-only` mount of the same volume: the
    flush reaches the volume through FUSE, the reader finds it through MySQL, and its own writes hit EROFS."""
    MountManager(jfs_volume.volume, jfs_volume.settings, "test").ensure("rw")
    writer_db = Path(jfs_volume.mountpoint) / "milvus" / "db"
    writer_db.mkdir(parents=True)
    reader_mount = tmp_path / "reader mount"
    reader_mount.mkdir()
    subprocess.run(
        [jfs_volume.settings.binary, "mount", "-d", "--read-only", jfs_volume.volume.meta_url, str(reader_mount)],
        env={**os.environ, "META_PASSWORD": jfs_volume.redis.password or ""},
        check=True,
        capture_output=True,
        timeout=60,
    )
    writer = standin_factory.start("a", "rw", writer_db, overrides=NO_AUTO_FLUSH)
    writer.calls([["create_collection", COLLECTION], ["insert", "demo", V, [1, 2, 3]], ["flush", ["demo"]]])
    reader = standin_factory.start("b", "ro", reader_mount / "milvus" / "db")
    answers = reader.calls(
        [
            ["count_entities", "demo"],
            ["search", "demo", 1, [V[1]]],
            ["create_collection", {**COLLECTION, "collection_name": "ro_made"}],
        ]
    )
    assert answers[0]["value"] == 3 and answers[1]["value"]["ids"] == [[2]]
    assert answers[2]["code"] == 17 and "Read-only file system" in answers[2]["message"]
    assert durable_ids(milvus_meta.connect, writer_db, "demo") == {1, 2, 3}
