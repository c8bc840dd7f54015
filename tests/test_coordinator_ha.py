"""Coordinators against a real MariaDB: schema from empty, one leader, takeover, MySQL restarted under them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from jfsmilvus.v1 import node_pb2

from coordinator.store import ClusterStore
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess, report
from tests.plugin_mysql import MysqlDatabase

pytestmark = pytest.mark.slow


def test_schema_from_empty_and_a_first_writer_committed_before_anyone_hears(
    coordinator_factory: Callable[..., CoordinatorProcess], mysql_db: MysqlDatabase
) -> None:
    c = coordinator_factory()
    c.start()
    wait_until(c.leads, 15, "leadership")
    store = ClusterStore(mysql_db.coordinator, "test")
    assert store.load().cluster.epoch == 0
    first = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for node in ("node-a", "node-b"):
            answer = report(c, node, node_pb2.ROLE_RO if first else 0)
            first[node] = answer
        if any(a.assignment.role == node_pb2.ROLE_RW for a in first.values()):
            break
        time.sleep(0.2)
    writer = [n for n, a in first.items() if a.assignment.role == node_pb2.ROLE_RW]
    assert writer == ["node-a"], first
    assert first["node-a"].assignment.epoch == 1 and first["node-a"].assignment.lease_ms > 0
    row = store.load().cluster
    assert row.writer == "node-a" and row.epoch == 1  # durable before the node was told
    assert first["node-b"].assignment.role == node_pb2.ROLE_RO
    assert first["node-b"].assignment.writer_address == "127.0.0.2"


def test_two_coordinators_one_leads_and_the_other_takes_over(
    coordinator_factory: Callable[..., CoordinatorProcess],
) -> None:
    a, b = coordinator_factory("coord-a"), coordinator_factory("coord-b")
    a.start()
    wait_until(a.leads, 15, "coord-a leading")
    b.start()
    time.sleep(1)
    assert a.leads() and not b.leads()
    follower_answer = report(b, "node-a")
    assert not follower_answer.leader and follower_answer.leader_address == a.address
    report(a, "node-a")
    # `coordinatorctl status` shows the leader's view even when a follower answers first.
    run = subprocess.run(
        [sys.executable, "-m", "coordinator.ctl", "--coordinator", f"{b.address},{a.address}", "status", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown = json.loads(run.stdout)
    assert run.returncode == 0 and shown["leader"].startswith("coord-a") and "follows" not in shown["why"], shown
    assert [n["name"] for n in shown["nodes"] if n["lag_s"] is not None] == ["node-a"], shown  # the leader heard it
    a.kill()
    began = time.monotonic()
    wait_until(b.leads, 15, "coord-b taking over")
    took = time.monotonic() - began
    assert took < 4.0 + 2.0, took  # within the leader lease and a tick or two
    assert "leading the cluster test at term 2" in b.log()


def test_a_clean_stop_hands_over_at_once(coordinator_factory: Callable[..., CoordinatorProcess]) -> None:
    a, b = coordinator_factory("coord-a"), coordinator_factory("coord-b")
    a.start()
    wait_until(a.leads, 15, "coord-a leading")
    b.start()
    assert a.stop() == 0
    began = time.monotonic()
    wait_until(b.leads, 10, "coord-b taking over")
    assert time.monotonic() - began < 2.5
    assert "released the leadership" in a.log()


def test_mysql_restarted_under_a_running_coordinator(
    coordinator_factory: Callable[..., CoordinatorProcess], mysql_db: MysqlDatabase
) -> None:
    c = coordinator_factory()
    c.start()
    wait_until(c.leads, 15, "leadership")
    mysql_db.server.stop()
    try:
        wait_until(lambda: "cannot" in c.log() and "MySQL" in c.log(), 15, "the MySQL error in the log")
        assert c.process is not None and c.process.poll() is None
    finally:
        mysql_db.server.start()
    wait_until(c.leads, 20, "leadership again after MySQL came back")
    assert c.process is not None and c.process.poll() is None
