"""The Mishards stand-in behaves as Mishards 1.x does where the product relies on it (tests/standin/README.md).

Pure rules first (settings, routing), then the image under Docker in front of Milvus stand-ins on the session
MariaDB, driven by pymilvus 1.0.1. Each test names the behaviour.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugin_standin import MilvusMeta, StandinFactory
from tests.standin.container import StandinContainer, docker
from tests.standin.mishards.routing import Ring, SegmentRow, merge_topk, route, to_reload
from tests.standin.mishards.settings import (
    SettingsError,
    env_file_path,
    merged_environment,
    parse_dotenv,
    settings_from,
)
from tests.standin.mishards_container import MishardsContainer, database_uri, run_mishards

COLLECTION = {"collection_name": "demo", "dimension": 4, "index_file_size": 1024, "metric_type": 1}
V = [[0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.9, 0.1]]
FAST_PROBE = {"MAX_RETRY": "2", "STANDIN_CONNECT_TIMEOUT_S": "1"}


# --- pure: settings as Mishards reads them ---


def test_dotenv_expands_variables_even_inside_single_quotes() -> None:
    values = parse_dotenv("A='x${HOME}y'\nB=\"p${A}\"\nC=plain # note\nD='lit$eral'\n", {"HOME": "/root"})
    assert values == {"A": "x/rooty", "B": "px/rooty", "C": "plain", "D": "lit$eral"}


def test_the_real_environment_beats_the_file() -> None:
    merged = merged_environment({"WOSERVER": "tcp://10.0.0.9:19530"}, "WOSERVER=tcp://10.0.0.1:19530\nX=1\n")
    assert merged == {"WOSERVER": "tcp://10.0.0.9:19530", "X": "1"}


def test_from_example_reads_the_example_and_otherwise_dot_env_up_from_the_module(tmp_path: Path) -> None:
    module = tmp_path / "source" / "mishards"
    module.mkdir(parents=True)
    assert env_file_path({"FROM_EXAMPLE": "true"}, tmp_path / "source", module) == (
        tmp_path / "source" / "mishards" / ".env.example"
    )
    assert env_file_path({}, tmp_path, module) is None
    (tmp_path / "source" / ".env").write_text("")
    assert env_file_path({"FROM_EXAMPLE": "false"}, tmp_path, module) == tmp_path / "source" / ".env"


def test_settings_hosts_ports_and_required_keys() -> None:
    s = settings_from(
        {
            "WOSERVER": "tcp://10.0.0.1:19530",
            "SQLALCHEMY_DATABASE_URI": "mysql+pymysql://u:p@h:3306/m",
            "DISCOVERY_STATIC_HOSTS": "10.0.0.2, 10.0.0.3:19540,",
            "DISCOVERY_STATIC_PORT": "19531",
        }
    )
    assert s.hosts == (("10.0.0.2", 19531), ("10.0.0.3", 19540))
    assert (s.woserver_host, s.woserver_port, s.server_port, s.max_retry, s.connect_timeout_s) == (
        "10.0.0.1",
        19530,
        19530,
        3,
        30.0,
    )
    with pytest.raises(SettingsError, match="WOSERVER"):
        settings_from({"SQLALCHEMY_DATABASE_URI": "x"})


# --- pure: routing ---


def test_files_hash_onto_every_listed_host_and_reload_only_what_moved() -> None:
    files = [SegmentRow(i, 100) for i in range(1, 41)]
    routes = route(["10.0.0.2:19530", "10.0.0.3:19530"], files)
    assert set(routes) == {"10.0.0.2:19530", "10.0.0.3:19530"}
    assert sorted(f.id for fs in routes.values() for f in fs) == list(range(1, 41))
    assert Ring.of(["a"]).host_of("7") == "a" and Ring.of([]).host_of("7") is None
    seen: dict[str, int] = {}
    assert to_reload(seen, files[:2]) == ["1", "2"]
    assert to_reload(seen, [SegmentRow(1, 100), SegmentRow(2, 101)]) == ["2"]


def test_merge_keeps_the_best_topk_per_query() -> None:
    a = (2, [1, 2, 5, 6], [0.1, 0.4, 0.2, 0.9])
    b = (2, [3, 4, 7, 8], [0.2, 0.3, 0.1, 0.3])
    assert merge_topk([a, b], 2, False) == (2, [1, 3, 7, 5], [0.1, 0.2, 0.1, 0.2])
    assert merge_topk([(0, [], [])], 2, False) == (0, [], [])


# --- the image, in front of Milvus stand-ins ---


@pytest.fixture
def mishards_run(mishards_image: str) -> Iterator[object]:
    started: list[MishardsContainer] = []

    def run(env: dict[str, str], **kwargs: object) -> MishardsContainer:
        m = run_mishards(mishards_image, f"mishards-test-{uuid.uuid4().hex[:8]}", env, **kwargs)  # type: ignore[arg-type]
        started.append(m)
        return m

    yield run
    for m in started:
        m.remove()


def mishards_env(
    meta: MilvusMeta, writer: StandinContainer | str, hosts: list[StandinContainer | str]
) -> dict[str, str]:
    def address(x: StandinContainer | str) -> str:
        return x if isinstance(x, str) else f"{x.host}:{x.grpc_port}"

    return {
        "WOSERVER": f"tcp://{address(writer)}",
        "DISCOVERY_STATIC_HOSTS": ",".join(address(h) for h in hosts),
        "SQLALCHEMY_DATABASE_URI": database_uri(
            meta.server.host, meta.server.port, meta.user, meta.password, meta.database
        ),
        **FAST_PROBE,
    }


def serving_pair(
    factory: StandinFactory, db_dir: Path, meta: MilvusMeta, run: object
) -> tuple[StandinContainer, StandinContainer, MishardsContainer]:
    """A writer, a reader, and a serving Mishards listing the reader."""
    writer = factory.start("a", "rw", db_dir)
    reader = factory.start("b", "ro", db_dir)
    m = run(mishards_env(meta, writer, [reader]))  # type: ignore[operator]
    m.wait_serving()
    return writer, reader, m


def dead_address() -> str:
    from tests.standin.container import free_port

    return f"127.0.0.1:{free_port()}"


def test_writes_go_to_the_writer_and_searches_to_the_readers_in_files(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, mishards_run: object
) -> None:
    writer = standin_factory.start("a", "rw", standin_db_dir)
    readers = [standin_factory.start(n, "ro", standin_db_dir) for n in ("b", "c")]
    m = mishards_run(mishards_env(milvus_meta, writer, readers))  # type: ignore[operator]
    m.wait_serving()
    calls: list[list[object]] = [["server_version"], ["create_collection", COLLECTION]]
    for i, v in enumerate(V):
        calls += [["insert", "demo", [v], [i + 1]], ["flush", ["demo"]]]
    calls += [["count_entities", "demo"], ["search", "demo", 2, [V[0], V[1]], None, {}]]
    answers = m.calls(calls)
    assert answers[0]["value"] == "1.0.0"
    assert all(a.get("code") == 0 for a in answers), answers
    assert answers[-2]["value"] == 4
    ids = answers[-1]["value"]["ids"]  # type: ignore[index]
    assert [row[0] for row in ids] == [1, 2]
    assert writer.call("count_entities", "demo")["value"] == 4  # the writer holds what went through Mishards
    logs = m.logs()
    assert "Routing:" in logs and "ReloadSegments on" in logs
    routed = {line for line in logs.splitlines() if "Routing:" in line}
    assert any(f"{r.host}:{r.grpc_port}" in line for line in routed for r in readers)
    assert f"{writer.host}:{writer.grpc_port}'" not in "".join(routed)


def test_a_dead_host_at_start_exits_1_after_every_try(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, mishards_run: object
) -> None:
    writer = standin_factory.start("a", "rw", standin_db_dir)
    began = time.monotonic()
    m = mishards_run(mishards_env(milvus_meta, writer, [writer, dead_address()]))  # type: ignore[operator]
    assert m.exit_code() == 1
    assert 1.5 < time.monotonic() - began < 20
    assert "NotConnectError" in m.logs() and "Listening" not in m.logs()


def test_a_host_that_comes_back_within_the_tries_lets_it_start(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, mishards_run: object
) -> None:
    writer = standin_factory.start("a", "rw", standin_db_dir)
    env = {**mishards_env(milvus_meta, writer, [writer]), "STANDIN_CONNECT_TIMEOUT_S": "20"}
    docker("pause", writer.name)
    m = mishards_run(env)  # type: ignore[operator]
    time.sleep(2)
    assert "Listening" not in m.logs()
    docker("unpause", writer.name)
    m.wait_serving(30)


def test_an_empty_host_list_is_refused(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, mishards_run: object
) -> None:
    writer = standin_factory.start("a", "rw", standin_db_dir)
    m = mishards_run(mishards_env(milvus_meta, writer, []))  # type: ignore[operator]
    assert m.exit_code() == 1
    assert "No address is specified" in m.logs()


def test_a_listed_reader_dying_fails_every_search_and_writes_go_on(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, mishards_run: object
) -> None:
    _writer, reader, m = serving_pair(standin_factory, standin_db_dir, milvus_meta, mishards_run)
    setup = m.calls([["create_collection", COLLECTION], ["insert", "demo", V, [1, 2, 3, 4]], ["flush", ["demo"]]])
    assert all(a.get("code") == 0 for a in setup), setup
    reader.stop(signal="SIGKILL")
    began = time.monotonic()
    search, insert = m.calls([["search", "demo", 1, [V[0]], None, {}], ["insert", "demo", [V[0]], [9]]])
    assert search.get("code") != 0, search
    assert time.monotonic() - began >= 1.5  # MAX_RETRY x the connect timeout
    assert insert.get("code") == 0, insert


def test_the_version_check_goes_to_the_writer(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, mishards_run: object
) -> None:
    writer, _reader, m = serving_pair(standin_factory, standin_db_dir, milvus_meta, mishards_run)
    assert m.calls([["server_version"]])[0]["value"] == "1.0.0"
    writer.stop(signal="SIGKILL")
    answer = m.calls([["server_version"]])[0]
    assert answer.get("code") != 0 or "error" in answer, answer


def test_the_environment_beats_dot_env_and_from_example_ignores_it(
    standin_factory: StandinFactory,
    standin_db_dir: Path,
    milvus_meta: MilvusMeta,
    mishards_run: object,
    tmp_path: Path,
) -> None:
    writer = standin_factory.start("a", "rw", standin_db_dir)
    env = mishards_env(milvus_meta, writer, [writer])
    env_file = tmp_path / "mishards.env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))
    dead = dead_address()
    # The file names the live writer; the environment a dead one, and wins.
    m = mishards_run({"WOSERVER": f"tcp://{dead}", **FAST_PROBE}, env_file=env_file)  # type: ignore[operator]
    assert m.exit_code() == 1 and dead in m.logs()
    # FROM_EXAMPLE: the mounted .env is not read at all (the example names 127.0.0.1:19530 and SERVER_PORT 19535).
    m = mishards_run({"FROM_EXAMPLE": "true", **FAST_PROBE}, env_file=env_file, port=19535)  # type: ignore[operator]
    assert m.exit_code() == 1
    assert ".env.example" in m.logs() and "127.0.0.1:19530" in m.logs()


@pytest.mark.parametrize(("init", "at_least", "at_most"), [(False, 2.5, 15.0), (True, 0.0, 2.0)])
def test_sigterm_is_ignored_as_pid_1_and_not_under_an_init(
    standin_factory: StandinFactory,
    standin_db_dir: Path,
    milvus_meta: MilvusMeta,
    mishards_run: object,
    init: bool,
    at_least: float,
    at_most: float,
) -> None:
    writer = standin_factory.start("a", "rw", standin_db_dir)
    m = mishards_run(mishards_env(milvus_meta, writer, [writer]), init=init)  # type: ignore[operator]
    m.wait_serving()
    began = time.monotonic()
    docker("stop", "-t", "3", m.name)
    took = time.monotonic() - began
    assert at_least <= took <= at_most, took
