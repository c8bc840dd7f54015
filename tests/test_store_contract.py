"""The in-memory store (tests/memstore.py) answers as the MySQL `ClusterStore` does: one sequence of calls, the
lease taken, renewed, released and run out, conditional writes by the leader and by a deposed one, gives the
same results and the same errors on both (a real MariaDB, tests/plugin_mysql.py)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from coordinator.configstore import ConfigCommit, ConfigConflict, ConfigVersion
from coordinator.model import Durable, Event
from coordinator.rollout import Rollout
from coordinator.rolloutstore import RolloutConflict
from coordinator.schema import LATEST_VERSION
from coordinator.store import ClusterStore
from coordinator.storeapi import ClusterStoreApi, Leadership, NotLeader, StoreError
from tests.memstore import MemoryClusterStore
from tests.plugin_mysql import MysqlDatabase

CLUSTER = "contract"
SHORT_LEASE_S = 0.5


def _plain(value: Any) -> Any:
    """A result without what differs by nature: the local lease deadline, event times, lease seconds left."""
    if isinstance(value, Leadership):
        return ("leadership", value.coordinator, value.address, value.term)
    if isinstance(value, Durable):
        return (value.cluster, tuple(sorted(value.nodes.items())))
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, ConfigVersion):
        return (value.version, value.body, value.author, value.reason, value.restart_needed)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Event):
        return (value.id, value.kind, value.node, value.epoch, value.reason, value.phases)
    return value


class Recorder:
    """Calls a store and records each outcome: the plain result, or the kind of error."""

    def __init__(self, store: ClusterStoreApi):
        self.store = store
        self.outcomes: list[tuple[str, Any]] = []

    def __call__(self, what: str, call: Callable[[ClusterStoreApi], Any]) -> Any:
        try:
            result = call(self.store)
        except NotLeader:
            self.outcomes.append((what, "NotLeader"))
            return None
        except ConfigConflict:
            self.outcomes.append((what, "ConfigConflict"))
            return None
        except RolloutConflict:
            self.outcomes.append((what, "RolloutConflict"))
            return None
        except StoreError:
            self.outcomes.append((what, "StoreError"))
            return None
        self.outcomes.append((what, _plain(result)))
        return result


def _lease_left(store: ClusterStoreApi) -> tuple[str | None, str, int, bool]:
    leader, address, term, left = store.leader_info()
    return leader, address, term, left > 0


def scenario(store: ClusterStoreApi) -> list[tuple[str, Any]]:
    """The same calls on any store; every outcome, in order."""
    do = Recorder(store)
    do("load before migrate", lambda s: s.load())
    do("migrate", lambda s: s.migrate())
    do("migrate again", lambda s: s.migrate())
    do("nobody leads", _lease_left)
    a = do("a leads", lambda s: s.acquire_or_renew("coord-a", "a:7000", 10.0, None))
    do("b waits", lambda s: s.acquire_or_renew("coord-b", "b:7000", 10.0, None))
    do("a restarted waits", lambda s: s.acquire_or_renew("coord-a", "a:7000", 10.0, None))
    a = do("a renews", lambda s: s.acquire_or_renew("coord-a", "a:7000", 10.0, a))
    do("a leads, by the row", _lease_left)
    do("upsert node-a", lambda s: s.upsert_node(a, "node-a", "10.0.0.1", False))
    do("upsert node-b", lambda s: s.upsert_node(a, "node-b", "10.0.0.2", True))
    do("upsert a bad address", lambda s: s.upsert_node(a, "node-c", "not-an-address", False))
    do("first writer", lambda s: s.change_writer(a, 0, "node-a"))
    do("from a stale epoch", lambda s: s.change_writer(a, 0, "node-b"))
    do("to an unknown node", lambda s: s.change_writer(a, 1, "node-x"))
    do("not upward", lambda s: s.change_writer(a, 1, "node-b", 1))
    do("healed above", lambda s: s.change_writer(a, 1, "node-b", 5))
    do("no cluster config yet", lambda s: s.config_state())
    v1 = ConfigCommit("v1", "operator alice", "first", 0, True, "config {version} (restart)", epoch=5)
    do("config v1, a restart", lambda s: s.commit_config(a, v1))
    do("config made against an old version", lambda s: s.commit_config(a, replace(v1, body="v2")))
    do("pinned to what they ran", lambda s: s.config_state())
    do("node-a follows", lambda s: s.set_config_pin(a, "node-a", None))
    do("pin nobody", lambda s: s.set_config_pin(a, "node-q", 1))
    v2 = ConfigCommit("v2", "operator bob", "x" * 300, 1, False, "config {version}")
    do("config v2, no restart", lambda s: s.commit_config(a, v2))
    do("config after v2", lambda s: s.config_state())
    do("config history", lambda s: s.config_history())
    do("config history, newest", lambda s: s.config_history(limit=1))
    do("config version 1", lambda s: s.read_config_version(1))
    do("config version 9", lambda s: s.read_config_version(9))
    do("config versions", lambda s: s.read_config_versions([1, 2, 9]))
    do("no rollout yet", lambda s: (s.active_rollout(), s.latest_rollout()))
    r0 = Rollout(id=0, from_version=1, to_version=2, started_at=1_700_000_000.5, image="img:2", reason="upgrade")
    r1 = do("rollout created", lambda s: s.create_rollout(a, r0))
    do("a second rollout while one is active", lambda s: s.create_rollout(a, r0))
    moved = replace(r1, current="node-a", done=("node-b",), phases=(("node-b", 1_700_000_010.25),))
    do("rollout moved", lambda s: s.save_rollout(a, moved))
    do("the active rollout", lambda s: s.active_rollout())
    do("rollout by id", lambda s: (s.get_rollout(r1.id), s.get_rollout(99)))
    do("save a rollout never created", lambda s: s.save_rollout(a, replace(r0, id=99)))
    do("rollout done", lambda s: s.save_rollout(a, replace(moved, status="done")))
    do("none active, the latest", lambda s: (s.active_rollout(), s.latest_rollout()))
    do("priority", lambda s: s.set_priority(a, "node-a", 3))
    do("priority of nobody", lambda s: s.set_priority(a, "node-q", 3))
    do("negative priority", lambda s: s.set_priority(a, "node-a", -1))
    do("maintenance", lambda s: s.set_maintenance(a, "node-a", True, "disk swap"))
    do("maintenance of nobody", lambda s: s.set_maintenance(a, "node-q", True, "?"))
    do("upsert keeps priority and maintenance", lambda s: s.upsert_node(a, "node-a", "10.0.0.9", False))
    do("pause", lambda s: s.set_paused(a, True, "x" * 300))
    do("state", lambda s: s.load())
    first = do("event", lambda s: s.add_event(a, Event("failover", "node-a lost", "node-b", 5, (("begin", 1.5),))))
    do("event 2", lambda s: s.add_event(a, Event("paused", "by hand", None, 5, at_unix=1_700_000_000.25)))
    do("event 3", lambda s: s.add_event(a, Event("priority", "node-a priority 3", "node-a", 5)))
    do("update", lambda s: s.update_event(a, first, (("begin", 1.5), ("done", 2.25))))
    do("update the reason", lambda s: s.update_event(a, first, (("begin", 1.5),), "node-a lost, node-b took over"))
    do("update nothing", lambda s: s.update_event(a, 999, ()))
    do("events", lambda s: s.events())
    do("events of a kind", lambda s: s.events(kinds=("paused", "priority")))
    do("events of no kind", lambda s: s.events(kinds=()))
    do("events after", lambda s: s.events(after_id=first))
    do("events of a node", lambda s: s.events(node="node-a"))
    do("the newest event", lambda s: s.events(limit=1))
    do("forget the writer", lambda s: s.forget_node(a, "node-b"))
    do("forget node-a", lambda s: s.forget_node(a, "node-a"))
    do("forget node-a again", lambda s: s.forget_node(a, "node-a"))
    do("release", lambda s: s.release(a))
    do("release again", lambda s: s.release(a))
    do("after the release", _lease_left)
    b = do("b leads at once", lambda s: s.acquire_or_renew("coord-b", "b:7000", SHORT_LEASE_S, None))
    do("a renews no more", lambda s: s.acquire_or_renew("coord-a", "a:7000", 10.0, a))
    for what, write in (
        ("change_writer", lambda s: s.change_writer(a, 5, None)),
        ("set_paused", lambda s: s.set_paused(a, False, "")),
        ("upsert_node", lambda s: s.upsert_node(a, "node-d", "10.0.0.4", False)),
        ("set_priority", lambda s: s.set_priority(a, "node-b", 2)),
        ("set_maintenance", lambda s: s.set_maintenance(a, "node-b", False, "")),
        ("forget_node", lambda s: s.forget_node(a, "node-b")),
        ("add_event", lambda s: s.add_event(a, Event("x", "deposed"))),
        ("update_event", lambda s: s.update_event(a, first, ())),
        ("commit_config", lambda s: s.commit_config(a, replace(v2, expected_current=2))),
        ("set_config_pin", lambda s: s.set_config_pin(a, "node-b", 2)),
        ("create_rollout", lambda s: s.create_rollout(a, r0)),
        ("save_rollout", lambda s: s.save_rollout(a, r1)),
    ):
        do(f"deposed a: {what}", write)
    do("b writes", lambda s: s.set_paused(b, False, ""))
    time.sleep(SHORT_LEASE_S + 0.3)
    do("b's lease ran out", _lease_left)
    do("b after its lease: change_writer", lambda s: s.change_writer(b, 5, None))
    do("b after its lease: add_event", lambda s: s.add_event(b, Event("x", "late")))
    do("a leads again", lambda s: s.acquire_or_renew("coord-a", "a:7000", 10.0, None))
    do("b renews no more", lambda s: s.acquire_or_renew("coord-b", "b:7000", 10.0, b))
    do("the end", lambda s: s.load())
    do("every event", lambda s: s.events(limit=100))
    return do.outcomes


@pytest.fixture
def mysql_store(mysql_db: MysqlDatabase) -> Iterator[ClusterStore]:
    store = ClusterStore(mysql_db.coordinator, CLUSTER)
    yield store
    store.close()


def test_the_memory_store_answers_as_the_mysql_store(mysql_store: ClusterStore) -> None:
    mysql = scenario(mysql_store)
    memory = scenario(MemoryClusterStore(CLUSTER))
    assert [what for what, _ in memory] == [what for what, _ in mysql]
    for (what, in_mysql), (_, in_memory) in zip(mysql, memory, strict=True):
        assert in_memory == in_mysql, f"{what}: MySQL gave {in_mysql!r}, the memory store {in_memory!r}"
    # And what both gave is what the coordinator relies on.
    got = dict(mysql)
    assert got["migrate"] == LATEST_VERSION
    assert got["a leads"] == ("leadership", "coord-a", "a:7000", 1) and got["a renews"] == got["a leads"]
    assert got["b waits"] is None and got["a restarted waits"] is None
    assert (got["first writer"], got["from a stale epoch"], got["healed above"]) == (1, "NotLeader", 5)
    assert got["to an unknown node"] == "StoreError" and got["not upward"] == "StoreError"
    assert got["forget the writer"] == "StoreError" and got["forget node-a"] is True
    assert got["forget node-a again"] is False
    assert (got["release"], got["release again"]) == (True, False)
    assert got["b leads at once"] == ("leadership", "coord-b", "b:7000", 2)
    assert all(outcome == "NotLeader" for what, outcome in mysql if what.startswith(("deposed a", "b after")))
    assert got["a leads again"] == ("leadership", "coord-a", "a:7000", 3) and got["b renews no more"] is None
    end_row, end_nodes = got["the end"]
    assert (end_row.writer, end_row.epoch, end_row.leader, end_row.leader_term) == ("node-b", 5, "coord-a", 3)
    assert [name for name, _ in end_nodes] == ["node-b"]


def test_both_stores_have_every_call_of_the_api_with_its_signature() -> None:
    calls = [
        name for name in dir(ClusterStoreApi) if not name.startswith("_") and callable(getattr(ClusterStoreApi, name))
    ]
    assert "change_writer" in calls and "acquire_or_renew" in calls
    for store in (ClusterStore, MemoryClusterStore):
        for name in calls:
            want, got = inspect.signature(getattr(ClusterStoreApi, name)), inspect.signature(getattr(store, name))
            assert got == want, f"{store.__name__}.{name}{got} is not ClusterStoreApi.{name}{want}"
    assert isinstance(MemoryClusterStore(CLUSTER), ClusterStoreApi)
