"""The agent owns the Mishards container (issue 14): pure decisions, then the keeper against Docker, the Mishards
stand-in and Milvus stand-ins: writes reach the writer through it, a dead reader is left out, a writer not up
yet holds the restart, a restart does not wait for an ignored SIGTERM, a restarted agent adopts its container,
a seed-style compose container is found, `$` is refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jfsmilvus.common.secrets import Secret

from agent.milvus.container import MilvusDocker
from agent.mishards.container import MishardsDocker
from agent.mishards.envfile import MishardsDiscovery, MishardsEnvError, owned_values
from agent.mishards.keeper import MishardsKeeper, MishardsWant
from agent.mishards.plan import overriding_keys, plan, refuse_dollar
from agent.mishards.probe import milvus_answers, parse_version_reply
from tests.plugin_standin import MilvusMeta, StandinFactory
from tests.standin.container import docker, free_port, milvus_calls
from tests.standin.mishards_container import database_uri

COLLECTION = {"collection_name": "demo", "dimension": 4, "index_file_size": 1024, "metric_type": 1}
W = "tcp://10.0.0.1:19530"


# --- pure ---


def test_a_reader_that_does_not_answer_is_left_out() -> None:
    p = plan(W, None, ("a", "b"), {"a": None, "b": "no answer"}, 0, 60, None, None)
    assert (p.action, p.hosts, p.left_out) == ("start", ("a",), ("b",))


def test_a_writer_not_up_yet_holds_the_restart_until_the_bound() -> None:
    assert plan(W, "down", ("a",), {"a": None}, 5, 60, None, None).action == "hold"
    late = plan(W, "down", ("a",), {"a": None}, 61, 60, None, None)
    assert late.action == "start" and "although the writer does not answer" in late.reason


def test_no_answering_host_is_refused_and_same_settings_kept() -> None:
    assert plan(W, None, ("a",), {"a": "dead"}, 0, 60, None, None).action == "refuse"
    assert plan(W, None, (), {}, 0, 60, None, None).action == "refuse"
    assert plan(W, None, ("a",), {"a": None}, 0, 60, ("a",), W).action == "keep"


def test_a_dollar_in_any_value_is_refused_naming_the_key_not_the_value() -> None:
    discovery = MishardsDiscovery("10.0.0.1", 19530, ("10.0.0.2",))
    # A password's `$` is made safe: percent-encoded in the URI, which SQLAlchemy decodes and dotenv leaves alone.
    safe = owned_values(discovery, 19531, "mysql+pymysql://m@h:3306/db", Secret("p${HOME}w"))
    refuse_dollar(safe)
    assert "%24%7BHOME%7D" in safe["SQLALCHEMY_DATABASE_URI"]
    values = owned_values(discovery, 19531, "mysql+pymysql://m@h:3306/db_${USER}", Secret("secret"))
    with pytest.raises(MishardsEnvError) as info:
        refuse_dollar(values)
    assert "SQLALCHEMY_DATABASE_URI" in str(info.value) and "secret" not in str(info.value)


def test_the_seed_compose_environment_is_found_as_overriding() -> None:
    seed = ["FROM_EXAMPLE=true", "WOSERVER=tcp://10.0.0.1:19530", "DISCOVERY_STATIC_HOSTS=10.0.0.1", "PATH=/usr/bin"]
    assert overriding_keys(seed) == ["WOSERVER", "DISCOVERY_STATIC_HOSTS", "FROM_EXAMPLE"]
    assert overriding_keys(["PATH=/usr/bin"]) == []


def test_the_version_reply_is_decoded_by_hand() -> None:
    assert parse_version_reply(b"\x0a\x00\x12\x051.0.0") == (0, "1.0.0")
    assert parse_version_reply(b"\x0a\x02\x08\x01") == (1, "")


# --- against Docker and the stand-ins ---


@pytest.fixture
def keeper_setup(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, mishards_image: str
) -> Iterator[dict[str, object]]:
    node = f"keeper-{uuid.uuid4().hex[:6]}"
    name = f"jfs-milvus-mishards-{node}"
    writer = standin_factory.start("a", "rw", standin_db_dir)
    yield {"node": node, "name": name, "writer": writer, "meta": milvus_meta, "image": mishards_image}
    docker("rm", "-f", name, check=False)


def want_for(setup: dict[str, object], hosts: tuple[str, ...], port: int, hold_s: float = 5.0) -> MishardsWant:
    meta = setup["meta"]
    writer = setup["writer"]
    assert isinstance(meta, MilvusMeta)
    uri = database_uri(meta.server.host, meta.server.port, meta.user, meta.password, meta.database)
    values = {
        "WOSERVER": f"tcp://127.0.0.1:{writer.grpc_port}",  # type: ignore[attr-defined]
        "DISCOVERY_CLASS_NAME": "static",
        "DISCOVERY_STATIC_HOSTS": ",".join(hosts),
        "DISCOVERY_STATIC_PORT": str(writer.grpc_port),  # type: ignore[attr-defined]
        "SERVER_PORT": str(port),
        "SQLALCHEMY_DATABASE_URI": uri,
        "MAX_RETRY": "1",
        "STANDIN_CONNECT_TIMEOUT_S": "2",
    }
    return MishardsWant(
        image=str(setup["image"]),
        name=str(setup["name"]),
        values=values,
        writer_host="127.0.0.1",
        writer_port=writer.grpc_port,  # type: ignore[attr-defined]
        hosts=hosts,
        host_port=writer.grpc_port,  # type: ignore[attr-defined]
        hold_s=hold_s,
        probe_timeout_s=0.5,
    )


def serving(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while milvus_answers("127.0.0.1", port, 0.5) is not None:
        assert time.monotonic() < deadline, f"Mishards on {port} not serving"
        time.sleep(0.1)


def test_the_keeper_runs_mishards_writes_reach_the_writer_and_a_restarted_agent_adopts_it(
    keeper_setup: dict[str, object],
) -> None:
    port = free_port()
    edge = MishardsDocker(MilvusDocker(str(keeper_setup["node"])), str(keeper_setup["node"]))
    keeper = MishardsKeeper(edge, milvus_answers)
    want = want_for(keeper_setup, ("127.0.0.1",), port)
    keeper.step(want)
    assert keeper.status["state"] == "running", keeper.status
    first = keeper.status["container"]["id"]
    serving(port)
    answers = milvus_calls(
        "127.0.0.1", port, [["create_collection", COLLECTION], ["insert", "demo", [[1, 2, 3, 4]], [7]]]
    )
    assert all(a.get("code") == 0 for a in answers), answers
    # A new agent process: the same container is adopted, not restarted.
    again = MishardsKeeper(edge, milvus_answers)
    again.step(want)
    assert again.status["decision"] == "keep" and again.status["container"]["id"] == first
    assert again.started_count == 0


def test_a_restart_does_not_wait_for_sigterm_and_a_dead_reader_is_left_out(keeper_setup: dict[str, object]) -> None:
    port = free_port()
    edge = MishardsDocker(MilvusDocker(str(keeper_setup["node"])), str(keeper_setup["node"]))
    keeper = MishardsKeeper(edge, milvus_answers)
    keeper.step(want_for(keeper_setup, ("127.0.0.1",), port))
    serving(port)
    began = time.monotonic()
    keeper.step(want_for(keeper_setup, ("127.0.0.1", "192.0.2.1"), port))  # TEST-NET: answers nothing
    took = time.monotonic() - began
    assert keeper.status["left_out"] == ["192.0.2.1"]
    assert keeper.status["container"]["hosts"] == ["127.0.0.1"]
    assert keeper.status["decision"] == "keep"  # left out: the answering hosts did not change
    keeper.step(want_for(keeper_setup, ("localhost",), port))
    assert keeper.status["decision"] == "start"
    assert took < 5 and time.monotonic() - began < 8  # no 10 s SIGTERM wait


def test_a_writer_not_up_holds_then_the_restart_goes_ahead(keeper_setup: dict[str, object]) -> None:
    port = free_port()
    writer = keeper_setup["writer"]
    edge = MishardsDocker(MilvusDocker(str(keeper_setup["node"])), str(keeper_setup["node"]))
    keeper = MishardsKeeper(edge, milvus_answers)
    docker("pause", writer.name)  # type: ignore[attr-defined]
    try:
        want = want_for(keeper_setup, ("127.0.0.1",), port, hold_s=30)
        keeper.step(want)
        assert keeper.status["state"] == "held" and "holding the Mishards restart" in keeper.status["reason"]
        assert keeper.status["container"] is None
    finally:
        docker("unpause", writer.name)  # type: ignore[attr-defined]
    keeper.step(want)
    assert keeper.status["state"] == "running"


def test_a_seed_style_mishards_container_is_found(keeper_setup: dict[str, object]) -> None:
    seed = f"seed_mishards_{uuid.uuid4().hex[:6]}"
    docker(
        "create",
        "--name",
        seed,
        "-e",
        "FROM_EXAMPLE=true",
        "-e",
        "WOSERVER=tcp://10.0.0.1:19530",
        str(keeper_setup["image"]),
    )
    try:
        edge = MishardsDocker(MilvusDocker(str(keeper_setup["node"])), str(keeper_setup["node"]))
        keeper = MishardsKeeper(edge, milvus_answers)
        keeper.step(want_for(keeper_setup, ("127.0.0.1",), free_port()))
        found = {f["name"]: f["overriding_keys"] for f in keeper.status["foreign"]}
        assert found[seed] == ["WOSERVER", "FROM_EXAMPLE"]
    finally:
        docker("rm", "-f", seed, check=False)
