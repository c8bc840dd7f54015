"""Epochs that cannot be stuck (issue 15): a node that reports an epoch above the committed one is never a
candidate, and the leader commits an epoch above the highest reported before it assigns anything lower."""

from __future__ import annotations

from coordinator.candidates import choose_candidate
from coordinator.core import Memory, Request, Timing, committed, decide
from coordinator.model import Durable, Report
from coordinator.requests import validate_request
from tests.test_core_rules import durable, rep

TIMING = Timing(startup_wait_s=0.0)
FORGED = 10**9


def report(node: str, role: str, epoch: int, now: float) -> Report:
    return rep(node, now, role, epoch)


def cluster(epoch: int = 11) -> Durable:
    return durable("a", epoch)


def test_a_node_ahead_of_the_committed_epoch_is_never_a_candidate() -> None:
    now = 100.0
    reports = {"a": report("a", "rw", 11, now), "b": report("b", "ro", FORGED, now), "c": report("c", "ro", 11, now)}
    memory = Memory(leader_since=0.0, settled=True)
    best, blocked = choose_candidate(cluster(), memory, reports, now, TIMING, exclude="a")
    assert best == "c" and blocked["b"] == [f"reports epoch {FORGED}, above the committed epoch 11"]
    refusal = validate_request(cluster(), memory, reports, Request("failover", "b", "", force=True), now, TIMING)
    assert refusal == f"b reports epoch {FORGED}, above the committed epoch 11"


def test_the_leader_commits_above_the_highest_reported_before_assigning_anything() -> None:
    now = 100.0
    reports = {"a": report("a", "rw", 11, now), "b": report("b", "ro", FORGED, now), "c": report("c", "ro", 11, now)}
    memory = Memory(leader_since=0.0, settled=True)
    d = decide(cluster(), memory, reports, now, TIMING, 10.0)
    assert d.change_writer is not None
    assert (d.change_writer.new_writer, d.change_writer.expected_epoch, d.change_writer.epoch) == ("a", 11, FORGED + 1)
    assert f"b ({FORGED}) reported epochs above the committed epoch 11" in d.why
    assert f"committing epoch {FORGED + 1} before assigning anything" in d.why
    # Committed: everyone is told the new epoch, and the writer resumes only after a full lease.
    healed = durable("a", FORGED + 1)
    memory = committed(d.memory, FORGED + 1, now)
    d = decide(healed, memory, reports, now, TIMING, 10.0)
    assert d.change_writer is None
    assert {a.epoch for a in d.assignments.values()} == {FORGED + 1}
    assert all(a.lease_ms == 0 for a in d.assignments.values())
    assert "a full lease" in d.why
    later = now + TIMING.lease_s + TIMING.fence_margin_s + 0.1
    reports = {n: report(n, r.role_running, FORGED + 1, later) for n, r in reports.items()}
    d = decide(healed, d.memory, reports, later, TIMING, 10.0)
    assert d.assignments["a"].role == "rw" and d.assignments["a"].lease_ms > 0
