"""`coordinatorctl doctor` on what the real Milvus 1.x image needs: the MySQL account's CREATE right (probed by the
agent against a real MariaDB), one meta database for every node, the image's version, and the writer's WAL recovery
as the agent renders it. Each finding is judged from the agent's status as it comes over the wire."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from jfsmilvus.common.milvus1 import GRANTED, LOGIN_REFUSED, REFUSED, UNREACHABLE
from jfsmilvus.common.secrets import Secret, SecretRef
from jfsmilvus.v1 import node_pb2

from agent.config import GpuSettings, default_agent_config
from agent.daemon import Agent
from agent.milvus.metaright import (
    PROBE_TABLE,
    MetaRight,
    MetaRightWatch,
    probe_create_right,
)
from agent.milvus.metauri import MetaUri, parse_meta_uri
from agent.milvus.milvusfacts import MetaTarget, WalRecovery, meta_target, wal_recovery
from agent.milvus.server_config import RoleSettings, parse_base_config, render_server_config
from agent.observation import AgentObservation, MilvusMeta, MilvusWal
from agent.wire import observation_pb
from coordinator.checks import Check
from coordinator.doctor import node_checks
from coordinator.milvuschecks import bound_milvus_facts, judge_meta_databases, milvus_version
from tests.plugin_mysql import MariaDB
from tests.test_doctor import GPU_IMAGE, agent_status

CPU_11 = "milvusdb/milvus:1.1.1-cpu-d061621-330cc6"
READER_USER = "milvus_reader"
READER_PASSWORD = "Rd!#@/% only"  # no ':' (Milvus's meta_uri regex gives it to the user)
WRITER_USER = "milvus_writer"
WRITER_PASSWORD = "Wr!#@/% all"


def node_status(
    node: str = "node-a",
    milvus_meta: MilvusMeta | None = None,
    milvus_wal: dict[str, Any] | None = None,
    milvus_image: str = CPU_11,
) -> AgentObservation:
    """A CPU node's observation; `milvus_wal` as the agent's WAL facts name their fields (absent: not known)."""
    status = agent_status(None, image=milvus_image, flavor="cpu")
    return replace(
        status, node=node, milvus_meta=milvus_meta, milvus_wal=None if milvus_wal is None else wal_facts(milvus_wal)
    )


def wal_facts(found: dict[str, Any]) -> MilvusWal:
    keys = ("rw_enable", "rw_recovery_error_ignore", "base_recovery_error_ignore")
    recovery = WalRecovery(*(found.get(k) for k in keys)) if any(k in found for k in keys) else None
    return MilvusWal(render_error=found.get("render_error") or "", recovery=recovery)


def wire(status: AgentObservation) -> node_pb2.NodeObservation:
    """The status as the coordinator stores it: over the wire, then bounded as it enters."""
    observation = node_pb2.NodeObservation.FromString(observation_pb(status).SerializeToString())
    bound_milvus_facts(observation)
    return observation


def finding(status: AgentObservation, name: str) -> Check:
    found = [c for c in node_checks(wire(status), received_unix=1000.0, max_skew=1.0) if c.name == name]
    assert len(found) == 1, found
    return found[0]


def meta(host: str = "10.0.0.5", database: str = "milvus", right: MetaRight | None = None, **kw: Any) -> MilvusMeta:
    return MilvusMeta(MetaTarget(host=host, port=3306, database=database, user=kw.get("user", "milvus")), right)


# -- the CREATE right, judged --------------------------------------------------------------------------------
CREATE = "Milvus MySQL CREATE right"


def test_a_refused_create_right_fails_naming_the_node_user_and_grant() -> None:
    denied = "(1142) CREATE command denied to user 'milvus_reader'@'10.0.0.12' for table `milvus`.`Environment`"
    right = MetaRight(REFUSED, denied, "milvus_reader@%", 1000.0)
    check = finding(node_status("node-b", milvus_meta=meta(right=right, user="milvus_reader")), CREATE)
    assert (check.result, check.where) == ("FAIL", "node-b")
    assert "MySQL user 'milvus_reader'" in check.detail and "1142" in check.detail
    assert "a reader's too" in check.detail and "exits at start" in check.detail
    assert check.fix == "GRANT CREATE ON `milvus`.* TO 'milvus_reader'@'%'"


def test_a_refused_right_is_a_warning_for_an_image_that_creates_only_missing_tables() -> None:
    right = MetaRight(REFUSED, "(1142) CREATE command denied", "milvus@%", 1000.0)
    status = node_status(milvus_meta=meta(right=right), milvus_image="milvusdb/milvus:1.1.2-cpu")
    check = finding(status, CREATE)
    assert check.result == "WARN" and "milvus#6670" in check.detail and check.fix.startswith("GRANT CREATE")
    unknown = finding(node_status(milvus_meta=meta(right=right), milvus_image="milvusdb/milvus:latest"), CREATE)
    assert unknown.result == "FAIL"


def test_a_granted_create_right_passes() -> None:
    right = MetaRight(GRANTED, "went through", "milvus@%", 1000.0)
    check = finding(node_status(milvus_meta=meta(right=right)), CREATE)
    assert check.result == "PASS" and "milvus@%" in check.detail and "10.0.0.5:3306" in check.detail


@pytest.mark.parametrize(
    ("right", "result", "words"),
    [
        (MetaRight(UNREACHABLE, "(2003) Can't connect to MySQL server", "", 1.0), "WARN", "cannot tell"),
        (MetaRight(LOGIN_REFUSED, "(1045) Access denied for user", "", 1.0), "FAIL", "refuses the login"),
        (MetaRight("error", "(1049) Unknown database 'milvus'", "", 1.0), "WARN", "Unknown database"),
        (None, "WARN", "not checked yet"),
    ],
)
def test_no_answer_is_not_a_missing_right(right: MetaRight | None, result: str, words: str) -> None:
    check = finding(node_status(milvus_meta=meta(right=right)), CREATE)
    assert check.result == result and words in check.detail
    assert "GRANT" not in check.fix


def test_an_agent_that_reports_no_meta_database_is_a_warning() -> None:
    check = finding(node_status(), CREATE)
    assert check.result == "WARN" and "upgrade jfs-milvus-agent" in check.fix


def test_what_enters_the_coordinator_is_bounded() -> None:
    status = node_status(
        milvus_meta=meta(host="h" * 5000, right=MetaRight("weird", "x\n" * 500, "a" * 900, 1.0)),
        milvus_wal={"render_error": "e" * 5000, "rw_recovery_error_ignore": "t" * 100},
    )
    observation = wire(status)
    assert len(observation.milvus_meta.host) == 255 and len(observation.milvus_meta.account) == 336
    assert (
        observation.milvus_meta.create_right == "error"
        and "unknown state 'weird'" in observation.milvus_meta.create_detail
    )
    assert (
        len(observation.milvus_wal.render_error) == 300 and len(observation.milvus_wal.rw_recovery_error_ignore) == 32
    )


# -- the CREATE right, probed against a real MariaDB --------------------------------------------------------
@pytest.fixture
def milvus_database(mariadb: MariaDB) -> Iterator[str]:
    """An empty Milvus meta database, a full account and a SELECT-only one (what a "read-only" node seems to need)."""
    mariadb.start()
    name = f"milvus_meta_{uuid.uuid4().hex[:12]}"
    conn = mariadb.admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            for user, password in ((READER_USER, READER_PASSWORD), (WRITER_USER, WRITER_PASSWORD)):
                cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (WRITER_USER,))
            cur.execute(f"GRANT SELECT ON `{name}`.* TO %s@'%%'", (READER_USER,))
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def uri_of(mariadb: MariaDB, user: str, database: str) -> MetaUri:
    return parse_meta_uri(f"mysql://{user}@{mariadb.host}:{mariadb.port}/{database}")


def environment_columns(mariadb: MariaDB, database: str) -> list[tuple[str, str]]:
    conn = mariadb.admin(database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DESC {PROBE_TABLE}")
            return [(row[0], row[1]) for row in cur.fetchall()]
    finally:
        conn.close()


def test_the_probe_creates_nothing_but_milvus_own_table_and_repeats_as_a_no_op(
    mariadb: MariaDB, milvus_database: str
) -> None:
    uri = uri_of(mariadb, WRITER_USER, milvus_database)
    first = probe_create_right(uri, Secret(WRITER_PASSWORD))
    assert first.state == GRANTED and first.account == f"{WRITER_USER}@%"
    # Milvus's ValidateMetaSchema compares DESC's Field and Type with ENVIRONMENT_SCHEMA: global_lsn BIGINT.
    assert [(name, kind.split("(")[0]) for name, kind in environment_columns(mariadb, milvus_database)] == [
        ("global_lsn", "bigint")
    ]
    assert probe_create_right(uri, Secret(WRITER_PASSWORD)).state == GRANTED


def test_a_select_only_account_is_refused_even_where_the_table_exists(mariadb: MariaDB, milvus_database: str) -> None:
    for exists in (False, True):
        if exists:  # Milvus's writer made its tables: MySQL still checks CREATE before it looks
            assert (
                probe_create_right(uri_of(mariadb, WRITER_USER, milvus_database), Secret(WRITER_PASSWORD)).state
                == GRANTED
            )
        right = probe_create_right(uri_of(mariadb, READER_USER, milvus_database), Secret(READER_PASSWORD))
        assert (right.state, right.account) == (REFUSED, f"{READER_USER}@%"), (exists, right)
        assert "1142" in right.detail and READER_PASSWORD not in right.detail


def test_a_wrong_password_or_a_dead_server_is_no_missing_right(mariadb: MariaDB, milvus_database: str) -> None:
    uri = uri_of(mariadb, WRITER_USER, milvus_database)
    wrong = probe_create_right(uri, Secret("not-it!#"))
    assert wrong.state == LOGIN_REFUSED and "1045" in wrong.detail and "not-it" not in wrong.detail
    closed = dataclasses.replace(uri, port=str(_closed_port()))
    assert probe_create_right(closed, Secret(WRITER_PASSWORD), timeout_s=2).state == UNREACHABLE
    mariadb.freeze()
    try:
        began = time.monotonic()
        hung = probe_create_right(uri, Secret(WRITER_PASSWORD), timeout_s=1)
        assert hung.state == UNREACHABLE and time.monotonic() - began < 5
    finally:
        mariadb.thaw()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_agent_probes_in_the_background_and_the_doctor_fails_a_select_only_reader(
    mariadb: MariaDB, milvus_database: str, tmp_path: Path
) -> None:
    secret = tmp_path / "meta-password"
    secret.write_text(READER_PASSWORD + "\n")
    secret.chmod(0o600)
    defaults = default_agent_config()
    milvus = dataclasses.replace(
        defaults.milvus,
        image=CPU_11,
        flavor="cpu",
        data_dir=str(tmp_path / "milvus"),
        meta_uri=f"mysql://{READER_USER}@{mariadb.host}:{mariadb.port}/{milvus_database}",
        meta_password=SecretRef(file=str(secret)),
    )
    config = dataclasses.replace(defaults, state_dir=str(tmp_path), gpu=GpuSettings(enabled=False), milvus=milvus)
    agent = Agent(config, docker_url=f"unix://{tmp_path}/no-docker.sock")
    agent.loop_once()  # Docker unreachable: the agent still looks at the node, and starts the probe
    agent.facts.meta_right.wait(10)
    check = finding(agent.status(), CREATE)
    assert check.result == "FAIL" and f"MySQL user '{READER_USER}'" in check.detail
    assert check.fix == f"GRANT CREATE ON `{milvus_database}`.* TO '{READER_USER}'@'%'"
    assert READER_PASSWORD not in repr(agent.status())
    wal = finding(agent.status(), "WAL recovery_error_ignore")
    assert wal.result == "PASS", wal  # the default base has no wal section: Milvus's default, true


def test_the_watch_never_blocks_nor_runs_two_probes_and_probes_again_when_due() -> None:
    release = threading.Event()
    calls: list[str] = []

    def slow_probe(uri: MetaUri, password: Secret) -> MetaRight:
        calls.append(uri.user)
        release.wait(5)
        return MetaRight(GRANTED, "ok", f"{uri.user}@%", time.time())

    watch = MetaRightWatch(slow_probe, interval_s=0.2)
    uri, password = parse_meta_uri("mysql://milvus@db:3306/milvus"), Secret("pw")
    began = time.monotonic()
    watch.refresh(uri, password)
    watch.refresh(uri, password)
    assert time.monotonic() - began < 0.5 and calls == ["milvus"]
    assert watch.latest(uri, password) is None
    release.set()
    watch.wait(5)
    assert watch.latest(uri, password) == MetaRight(
        GRANTED, "ok", "milvus@%", watch.latest(uri, password).checked_at_unix
    )
    watch.refresh(uri, password)
    assert calls == ["milvus"]  # not due yet
    other = parse_meta_uri("mysql://other@db:3306/milvus")
    watch.refresh(other, password)  # a new login is probed at once
    watch.wait(5)
    assert calls == ["milvus", "other"] and watch.latest(uri, password) is None
    time.sleep(0.25)
    watch.refresh(other, password)
    watch.wait(5)
    assert calls == ["milvus", "other", "other"]


# -- one meta database --------------------------------------------------------------------------------------
def databases(*metas: tuple[str, MilvusMeta | None]) -> Check | None:
    return judge_meta_databases([(node, wire(node_status(node, milvus_meta=m)).milvus_meta) for node, m in metas])


def test_nodes_naming_one_database_pass() -> None:
    one = MilvusMeta(meta_target(parse_meta_uri("mysql://milvus@DB.example:3306/milvus")), create_right=None)
    check = databases(("a", one), ("b", meta(host="db.example")))
    assert check is not None and (check.result, check.where) == ("PASS", "cluster")
    assert check.detail == "all 2 nodes name db.example:3306/milvus"


def test_nodes_naming_different_databases_fail_naming_each() -> None:
    check = databases(("a", meta()), ("b", meta()), ("c", meta(database="milvus2")), ("d", meta(host="127.0.0.1")))
    assert check is not None and check.result == "FAIL"
    assert "a, b name 10.0.0.5:3306/milvus" in check.detail and "c name 10.0.0.5:3306/milvus2" in check.detail
    assert "d name 127.0.0.1:3306/milvus" in check.detail and "each node's own MySQL" in check.detail
    assert "same milvus.meta_uri" in check.fix


def test_a_node_that_reports_no_database_is_a_warning() -> None:
    check = databases(("a", meta()), ("b", None))
    assert check is not None and check.result == "WARN" and "b report none" in check.detail
    assert databases() is None


# -- the image's version ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "result", "words"),
    [
        (GPU_IMAGE, "WARN", "merge at every start"),
        ("milvusdb/milvus:1.0.1-cpu-d041521-3b4dfe", "WARN", "c20e0bfd4f"),
        (CPU_11, "PASS", "Milvus 1.1.1"),
        ("registry.local:5000/milvusdb/milvus:v1.1.0-gpu", "PASS", "Milvus 1.1.0"),
        ("milvusdb/milvus:latest", "WARN", "cannot tell the version"),
        ("registry.local:5000/milvusdb/milvus", "WARN", "cannot tell the version"),
        ("milvusdb/milvus@sha256:" + "0" * 64, "WARN", "cannot tell the version"),
        ("milvusdb/milvus:2.3.4", "WARN", "Milvus 1.x only"),
    ],
)
def test_the_version_comes_from_the_image_tag(image: str, result: str, words: str) -> None:
    check = finding(node_status(milvus_image=image), "Milvus version")
    assert (check.result, check.where) == (result, "node-a") and words in check.detail and image in check.detail
    if result == "WARN":
        assert check.fix


def test_version_parsing() -> None:
    assert milvus_version(GPU_IMAGE) == (1, 0, 0)
    assert milvus_version("milvusdb/milvus:1.1-gpu") == (1, 1, 0)
    assert milvus_version("milvusdb/milvus:gpu-1.1.1") is None


# -- the writer's WAL recovery ------------------------------------------------------------------------------
WAL = "WAL recovery_error_ignore"


def rendered_wal(base: dict[str, Any]) -> dict[str, Any]:
    """What the agent reports for `base`, from the real render of the rw config."""
    settings = RoleSettings("rw", parse_meta_uri("mysql://milvus@db:3306/milvus"), Secret("pw"), 19530, 19121, None)
    text = render_server_config(parse_base_config(yaml.safe_dump(base), "base.yaml"), settings)
    facts = wal_recovery(base, text)
    rendered = (yaml.safe_load(text).get("wal") or {}).get("recovery_error_ignore")
    expected = None if rendered is None else str(rendered).lower()
    assert facts.rw_recovery_error_ignore == expected  # the report is the rendered truth, whatever render gives
    return {"render_error": "", **facts.to_dict()}


@pytest.mark.parametrize(
    ("wal", "result", "words"),
    [
        (
            {"rw_enable": "true", "rw_recovery_error_ignore": "false", "base_recovery_error_ignore": "false"},
            "FAIL",
            "exits",
        ),
        ({"rw_enable": "true", "rw_recovery_error_ignore": "off"}, "FAIL", "exits"),
        ({"rw_enable": None, "rw_recovery_error_ignore": "maybe"}, "FAIL", "no boolean"),
        (
            {"rw_enable": "true", "rw_recovery_error_ignore": "true", "base_recovery_error_ignore": "false"},
            "WARN",
            "overrides",
        ),
        (
            {"rw_enable": "true", "rw_recovery_error_ignore": "true", "base_recovery_error_ignore": "true"},
            "PASS",
            "true",
        ),
        ({"rw_enable": None, "rw_recovery_error_ignore": None}, "PASS", "default true"),
        ({"rw_enable": "false", "rw_recovery_error_ignore": "false"}, "PASS", "WAL is off"),
        ({"render_error": "milvus.meta_uri: names no port"}, "WARN", "cannot render"),
        (None, "WARN", "does not report"),
    ],
)
def test_the_writers_rendered_wal_recovery(wal: dict[str, Any] | None, result: str, words: str) -> None:
    check = finding(node_status(milvus_wal=wal), WAL)
    assert (check.result, check.where) == (result, "node-a") and words in check.detail, check
    if result == "FAIL" and words == "exits":
        assert "wal.recovery_error_ignore: true" in check.fix and "upgrade jfs-milvus-agent" in check.fix
    if result == "WARN" and words == "overrides":
        assert "so that it says what runs" in check.fix


def test_the_agent_reports_what_its_render_gives() -> None:
    assert rendered_wal({"wal": {"recovery_error_ignore": True}})["rw_recovery_error_ignore"] == "true"
    unset = rendered_wal({"version": 0.5})
    assert unset["base_recovery_error_ignore"] is None
    operator_false = rendered_wal({"wal": {"enable": True, "recovery_error_ignore": False}})
    assert operator_false["base_recovery_error_ignore"] == "false"
    # Today's render keeps the operator's false (FAIL); once the agent renders true for a writer, the base's false is
    # a WARN. Either way the doctor judges what the writer's Milvus would really read.
    expected = "FAIL" if operator_false["rw_recovery_error_ignore"] == "false" else "WARN"
    assert finding(node_status(milvus_wal=operator_false), WAL).result == expected
