"""Rollouts in MySQL (coordinator/rolloutstore.py) against a real MariaDB: what is stored comes back whole, one
rollout is active at a time, and a coordinator that no longer leads writes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from coordinator.rollout import DONE, HALTED, Rollout
from coordinator.rolloutstore import RolloutConflict
from coordinator.store import ClusterStore, Leadership, NotLeader
from tests.plugin_mysql import MysqlDatabase

CLUSTER = "test-cluster"


@pytest.fixture
def store(mysql_db: MysqlDatabase) -> Iterator[ClusterStore]:
    with ClusterStore(mysql_db.coordinator, CLUSTER) as migrated:
        migrated.migrate()
        yield migrated


def lead(store: ClusterStore, name: str = "coord-a", lease_s: float = 10.0) -> Leadership:
    got = store.acquire_or_renew(name, f"{name}:7000", lease_s, None)
    assert got is not None
    return got


def draft(**kw: object) -> Rollout:
    base: dict[str, object] = dict(id=0, from_version=1, to_version=2, started_at=time.time(), image="img:1.1.1")
    base.update(kw)
    return Rollout(**base)  # type: ignore[arg-type]


def test_a_rollout_is_stored_whole_and_read_back_by_another_coordinator(store: ClusterStore, mysql_db) -> None:
    rollouts = store
    leadership = lead(store)
    created = rollouts.create_rollout(leadership, draft())
    assert created.id > 0
    moved = replace(
        created, done=("node-b",), current="node-c", current_since=123.5, phases=(("node-b", 120.0),), reason="é"
    )
    rollouts.save_rollout(leadership, moved)
    other = ClusterStore(mysql_db.coordinator, CLUSTER)
    try:
        assert other.active_rollout() == moved  # a new leader continues from exactly this
        assert other.get_rollout(created.id) == moved and other.latest_rollout() == moved
    finally:
        other.close()


def test_only_one_rollout_is_active_at_a_time(store: ClusterStore) -> None:
    rollouts = store
    leadership = lead(store)
    first = rollouts.create_rollout(leadership, draft())
    rollouts.save_rollout(leadership, replace(first, status=HALTED, halted_reason="node-b not healthy"))
    with pytest.raises(RolloutConflict, match=rf"rollout {first.id} to version 2 is halted"):
        rollouts.create_rollout(leadership, draft(from_version=2, to_version=3))
    rollouts.save_rollout(leadership, replace(first, status=DONE))
    second = rollouts.create_rollout(leadership, draft(from_version=2, to_version=3))
    assert second.id > first.id and rollouts.active_rollout() == second


def test_a_coordinator_that_no_longer_leads_cannot_create_or_move_a_rollout(store: ClusterStore) -> None:
    rollouts = store
    old = lead(store, lease_s=0.5)
    created = rollouts.create_rollout(old, draft())
    time.sleep(0.7)
    new = lead(store, "coord-b")
    with pytest.raises(NotLeader):
        rollouts.save_rollout(old, replace(created, current="node-b"))
    with pytest.raises(NotLeader):
        rollouts.create_rollout(old, draft())
    assert rollouts.active_rollout() == created
    rollouts.save_rollout(new, replace(created, current="node-b"))
    assert rollouts.active_rollout().current == "node-b"
