"""Where the WAL lives, on the stand-in: the agent's rendered server_config.yaml and its WAL directory per writer
stint (agent/milvus/server_config.py `wal_settings`, agent/milvus/waldir.py), from a base with the shipped
template's `wal` section (`recovery_error_ignore: false`), as an operator leaves it. README "Where the WAL lives".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from jfsmilvus.common.secrets import Secret

from agent.milvus.metauri import parse_meta_uri
from agent.milvus.server_config import RoleSettings, parse_base_config, render_server_config
from agent.milvus.waldir import WriterWal
from agent.milvus.walplan import WalAction
from tests.plugin_standin import MilvusMeta, StandinFactory
from tests.standin.container import FAST_KNOBS, StandinContainer, docker
from tests.standin.durable import durable_ids
from tests.standin.meta import FILE_NEW

pytestmark = pytest.mark.slow

COLLECTION = {"collection_name": "demo", "dimension": 4, "index_file_size": 1024, "metric_type": 1}
OTHER = {**COLLECTION, "collection_name": "other"}
V = [[0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5]]
TEMPLATE_BASE = {  # core/conf/server_config.template (v1.0.0) as CMake fills it; no periodic flush here
    "version": 0.5,
    "cluster": {"enable": False, "role": "rw"},
    "general": {"timezone": "UTC+8", "meta_uri": "sqlite://:@:/"},
    "storage": {"path": "/var/lib/milvus", "auto_flush_interval": 0},
    "wal": {"enable": True, "recovery_error_ignore": False, "buffer_size": "256MB", "path": "/var/lib/milvus/wal"},
    "standin": dict(FAST_KNOBS),
}


def agent_config(meta: MilvusMeta, role: str) -> Callable[[int, int], str]:
    """The agent's render of TEMPLATE_BASE for `role` (the password from its secret, raw in the URI)."""
    base = parse_base_config(yaml.safe_dump(TEMPLATE_BASE), "server_config.yaml")
    uri = parse_meta_uri(f"mysql://{meta.user}@{meta.server.host}:{meta.server.port}/{meta.database}")

    def render(port: int, http_port: int) -> str:
        return render_server_config(base, RoleSettings(role, uri, Secret(meta.password), port, http_port, None))

    return render


def start_as_agent(
    factory: StandinFactory, node: str, role: str, db_dir: Path, epoch: int, **kwargs: object
) -> StandinContainer:
    """Start as the agent does: a writer's WAL prepared for its stint first, a reader with no WAL mount."""
    work_dir = factory.work_dir / node
    if role == "rw":
        WriterWal(str(work_dir)).prepare(epoch)
    return factory.start(
        node,
        role,
        db_dir,
        epoch=epoch,
        work_dir=work_dir,
        config=agent_config(factory.meta, role),
        wal_mount=role == "rw",
        **kwargs,
    )


def new_rows(meta: MilvusMeta) -> int:
    """TableFiles rows left NEW: a segment whose row was written and whose files never were."""
    conn = meta.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM TableFiles WHERE file_type = %s", (FILE_NEW,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def lsns(meta: MilvusMeta) -> tuple[int, list[int]]:
    conn = meta.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT global_lsn FROM Environment")
            row = cur.fetchone()  # no row until a flush-all moved it
            cur.execute("SELECT flush_lsn FROM Tables")
            return int(row[0]) if row else 0, [int(r[0]) for r in cur.fetchall()]
    finally:
        conn.close()


def killed_with_one_unflushed(factory: StandinFactory, db_dir: Path) -> None:
    """Node a, writer at epoch 1: row 1 flushed, row 2 acknowledged into its WAL only, then SIGKILL."""
    writer = start_as_agent(factory, "a", "rw", db_dir, epoch=1)
    writer.calls([["create_collection", COLLECTION], ["insert", "demo", V[:1], [1]], ["flush", []]])
    assert writer.call("insert", "demo", V[1:2], [2])["code"] == 0
    docker("kill", writer.name)


@pytest.mark.parametrize("layout", ["agent", "one local WAL for both roles"])
def test_a_former_writer_restarted_as_reader_leaves_no_orphan_rows(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta, layout: str
) -> None:
    killed_with_one_unflushed(standin_factory, standin_db_dir)
    if layout == "agent":  # wal.enable: false, no WAL mount
        reader = start_as_agent(standin_factory, "a", "ro", standin_db_dir, epoch=2)
        assert reader.info()["replayed"] == 0 and new_rows(milvus_meta) == 0
    else:  # the control, as before: the reader opened the node's WAL and replayed it onto the read-only mount
        reader = standin_factory.start("a", "ro", standin_db_dir, epoch=2)
        assert reader.info()["replayed"] == 1 and new_rows(milvus_meta) == 1
    assert reader.call("count_entities", "demo")["value"] == 1
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1}


def test_a_newly_promoted_writer_starts_although_the_base_says_recovery_error_ignore_false(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    first = start_as_agent(standin_factory, "a", "rw", standin_db_dir, epoch=1)
    first.calls(
        [
            ["create_collection", COLLECTION],
            ["create_collection", OTHER],
            ["flush", []],
            ["insert", "demo", V[:1], [1]],
            ["flush", ["demo"]],  # a client's per-collection flush: demo's flush_lsn moves, the global LSN stays
        ]
    )
    assert first.stop() == 0
    global_lsn, flush_lsns = lsns(milvus_meta)
    assert max(flush_lsns) > global_lsn  # the recovery range is not empty, and only node a's WAL held it
    control = standin_factory.start("c", "rw", standin_db_dir, epoch=2, wait=False)  # the base's false, as is
    assert control.exit_code() == 1 and "Wal init error" in control.logs()

    promoted = start_as_agent(standin_factory, "b", "rw", standin_db_dir, epoch=3)
    assert promoted.info()["replayed"] == 0
    assert promoted.call("count_entities", "demo")["value"] == 1
    promoted.calls([["insert", "demo", V[1:2], [2]], ["flush", []]])  # and it writes on, LSNs above MySQL's
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1, 2}


def test_a_restart_at_the_same_epoch_replays_acknowledged_unflushed_inserts(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    killed_with_one_unflushed(standin_factory, standin_db_dir)
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1}
    again = start_as_agent(standin_factory, "a", "rw", standin_db_dir, epoch=1)  # restart in place
    assert again.info()["replayed"] == 1
    again.call("flush", [])
    assert again.call("count_entities", "demo")["value"] == 2
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {1, 2}


def test_a_writer_promoted_again_later_does_not_replay_its_old_stint(
    standin_factory: StandinFactory, standin_db_dir: Path, milvus_meta: MilvusMeta
) -> None:
    """Writer at epoch 1, another writer at 2, the first again at 3: its epoch-1 WAL is set aside, not replayed
    against LSNs the other writer wrote (MILVUS1.md items 4-5)."""
    killed_with_one_unflushed(standin_factory, standin_db_dir)
    other = start_as_agent(standin_factory, "b", "rw", standin_db_dir, epoch=2)
    other.calls([["delete_entity_by_id", "demo", [1]], ["insert", "demo", V[2:], [3]], ["flush", []]])
    assert other.stop() == 0
    wal = WriterWal(str(standin_factory.work_dir / "a"))
    assert wal.prepare(3).action is WalAction.SET_ASIDE
    again = standin_factory.start(
        "a", "rw", standin_db_dir, epoch=3, config=agent_config(milvus_meta, "rw"), work_dir=Path(wal.data_dir)
    )
    assert again.info()["replayed"] == 0
    again.call("flush", [])
    assert durable_ids(milvus_meta.connect, standin_db_dir, "demo") == {3}
    (kept,) = Path(wal.set_aside_dir).iterdir()
    assert kept.name.startswith("epoch-1-") and (kept / "mxlog.jsonl").exists()  # kept for forensics
