"""One node's row or failure never stops the leader (issue 15): a registration that fails leaves that node out
of the decision and the others decided for; a leader that completes no decision says so and steps down."""

from __future__ import annotations

import time
from dataclasses import replace

from coordinator.daemon import STALE_DECISION_TICKS, Coordinator
from coordinator.model import ClusterRow, Durable, NodeRecord
from coordinator.server import why
from coordinator.storeapi import Leadership, StoreError
from tests.test_coordinator_answers import STARTUP_WAIT_S, HeldStore, config, report


class FlakyStore(HeldStore):
    """HeldStore where registering `bad_node` fails, and load() fails while `load_fails` is set."""

    def __init__(self, durable: Durable, bad_node: str = "") -> None:
        super().__init__(durable)
        self.bad_node = bad_node
        self.load_fails = False
        self.released = False
        del self.release  # HeldStore's commit gate (unused here) would hide ClusterStore.release

    def load(self) -> Durable:
        if self.load_fails:
            raise StoreError("load: Data too long for column 'name' at row 1")
        return self.durable

    def upsert_node(self, leadership: Leadership, name: str, address: str, hosts_mishards: bool) -> None:
        if name == self.bad_node:
            raise StoreError(f"upsert_node {name!r}: Data too long for column 'name'")
        super().upsert_node(leadership, name, address, hosts_mishards)

    def release(self, leadership: Leadership) -> bool:
        self.released = True
        return True


def leader_with(store: FlakyStore, *reports: tuple[str, str, int]) -> Coordinator:
    c = Coordinator(replace(config(), tick_s=0.05), store=store)  # type: ignore[arg-type]
    c.tick()
    for node, role, epoch in reports:
        c.receive(report(node, role, epoch))
    time.sleep(STARTUP_WAIT_S)
    return c


def test_a_node_that_cannot_be_registered_does_not_stop_the_decision_for_the_others() -> None:
    nodes = {"a": NodeRecord("a", "10.0.0.1")}
    store = FlakyStore(Durable(ClusterRow("test", "a", 1), nodes), bad_node="x")
    c = leader_with(store, ("a", "rw", 1), ("b", "ro", 1), ("x", "ro", 1))
    for _ in range(3):
        sentence = c.tick()
        for node, role in (("a", "rw"), ("b", "ro"), ("x", "ro")):
            c.receive(report(node, role, 1))
    assert "a is the writer at epoch 1" in sentence, sentence
    assert set(store.durable.nodes) == {"a", "b"}  # b registered, x not
    assert "x" not in c.published.assignments and c.published.assignments["b"].role == "ro"
    assert c.decided_at is not None and time.monotonic() - c.decided_at < 1


def test_a_leader_that_decides_nothing_says_so_and_steps_down() -> None:
    nodes = {"a": NodeRecord("a", "10.0.0.1")}
    store = FlakyStore(Durable(ClusterRow("test", "a", 1), nodes))
    c = leader_with(store, ("a", "rw", 1))
    c.tick()
    assert c.leadership is not None and "a is the writer" in why(c)
    store.load_fails = True
    c._invalidate_durable()
    deadline = time.monotonic() + 10
    while c.leadership is not None and time.monotonic() < deadline:
        c.receive(report("a", "rw", 1))
        c.tick()
        time.sleep(0.05)
    assert c.leadership is None, "the leader kept its lead without deciding"
    assert store.released  # another coordinator need not wait for the lease to lapse
    sentence = why(c)
    assert sentence.startswith("No decision completed for") and "Data too long" in sentence, sentence
    assert "stepped down" in sentence and "a is the writer" not in sentence
    # It stays off the lead for a while, so that another coordinator can take it.
    assert c.tick() == "following" and c.leadership is None
    assert STALE_DECISION_TICKS >= 2
