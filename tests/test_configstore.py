"""The cluster config in MySQL (coordinator/configstore.py) against a real MariaDB: versions only grow, the
current version moves with each commit, a version that needs a restart pins every node to the version it runs,
one that needs none applies to every node at once, and a deposed leader commits nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coordinator.configplan import config_version_for
from coordinator.configstore import (
    CONFIG_EVENT,
    ConfigConflict,
    commit_version,
    config_state,
    history,
    read_version,
    set_pin,
)
from coordinator.store import ClusterStore, Leadership, NotLeader
from tests.plugin_mysql import MysqlDatabase

CLUSTER = "test-cluster"


@pytest.fixture
def store(mysql_db: MysqlDatabase) -> Iterator[ClusterStore]:
    s = ClusterStore(mysql_db.coordinator, CLUSTER)
    s.migrate()
    yield s
    s.close()


def lead(store: ClusterStore) -> Leadership:
    got = store.acquire_or_renew("coord-a", "coord-a:7000", 10.0, None)
    assert got is not None
    return got


def commit(store: ClusterStore, lead_: Leadership, body: str, expected: int, restart: bool) -> int:
    return commit_version(
        store,
        lead_,
        body,
        author="operator alice",
        reason="test",
        expected_current=expected,
        restart=restart,
        event_reason="cluster config version {version}",
    ).version


def test_versions_grow_and_pins_follow_the_restart_rule(store: ClusterStore) -> None:
    leadership = lead(store)
    for node in ("node-a", "node-b"):
        store.upsert_node(leadership, node, "127.0.0.1", False)
    assert config_state(store).current == 0

    assert commit(store, leadership, "v1", 0, restart=True) == 1
    state = config_state(store)
    # The first version needs a restart: every node stays on what it runs (none: its agent.yaml).
    assert state.current == 1 and state.pins == {"node-a": 0, "node-b": 0}
    assert config_version_for("node-a", state.pins, state.current) == 0

    set_pin(store, leadership, "node-a", None)  # the rollout moved node-a to follow the current version
    set_pin(store, leadership, "node-b", None)
    assert commit(store, leadership, "v2", 1, restart=False) == 2
    state = config_state(store)
    assert state.current == 2 and config_version_for("node-b", state.pins, state.current) == 2

    assert commit(store, leadership, "v3", 2, restart=True) == 3
    state = config_state(store)
    assert state.pins == {"node-a": 2, "node-b": 2}  # pinned to what they ran, in the same transaction
    assert config_version_for("node-c", state.pins, state.current) == 3  # a new node follows the current one

    with pytest.raises(ConfigConflict):
        commit(store, leadership, "v4", 2, restart=False)  # made against version 2, but 3 is current
    assert config_state(store).current == 3

    versions = history(store)
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.restart_needed for v in versions] == [True, False, True]
    assert read_version(store, 2).body == "v2"  # type: ignore[union-attr]
    assert read_version(store, 9) is None
    assert [e.reason for e in store.events(kinds=(CONFIG_EVENT,))] == [
        "cluster config version 1",
        "cluster config version 2",
        "cluster config version 3",
    ]


def test_a_deposed_leader_commits_nothing(store: ClusterStore) -> None:
    leadership = lead(store)
    stale = Leadership(
        coordinator=leadership.coordinator,
        term=leadership.term + 7,
        valid_until=leadership.valid_until,
        address=leadership.address,
    )
    with pytest.raises(NotLeader):
        commit(store, stale, "v1", 0, restart=False)
    assert config_state(store).current == 0 and history(store) == []


def test_the_config_migration_runs_twice_safely(store: ClusterStore, mysql_db: MysqlDatabase) -> None:
    """MySQL commits DDL at once: a migration cut short is run again from its first statement."""
    from coordinator.schema import MIGRATIONS

    statements = dict(MIGRATIONS)[2]
    admin = mysql_db.server.admin(mysql_db.name)
    try:
        with admin.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        admin.close()
    leadership = lead(store)
    store.upsert_node(leadership, "node-a", "127.0.0.1", False)
    assert commit(store, leadership, "v1", 0, restart=False) == 1
