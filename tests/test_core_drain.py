"""A planned change of writer drains the old writer first (the decision core, no I/O).

The old writer is still the durable writer during the drain: it keeps its lease, is told to stop gracefully
(Milvus flushes its WAL on SIGINT), and reports how the stop ended. Only an exit code 0 lets the change go on
without loss; anything else ends as the operator chose (abandon, the default, or force).
"""

from __future__ import annotations

from coordinator.core import Decision, Memory, Request, Timing, committed, decide
from coordinator.model import NodeRecord, WriterStop
from coordinator.phases import ChangeWriter
from tests.test_core_rules import durable, healthy_cluster, rep, settled

T = Timing(drain_timeout_s=30.0)


def start(now: float = 100.0, **request) -> Decision:
    memory = settled(request=Request("switchover", "b", "planned", **request))
    return decide(durable(), memory, healthy_cluster(now), now, T, 5, now_unix=1000.0 + now)


def stopped(now: float, drain_id: int, exit_code: int = 0, seconds: float = 1.2, **kw) -> dict:
    a = rep("a", now, "none", container_role="none", last_writer_stop=WriterStop(1, drain_id, exit_code, seconds), **kw)
    return {**healthy_cluster(now), "a": a}


def test_the_old_writer_drains_with_its_lease_before_anything_is_committed() -> None:
    d = start()
    t = d.memory.transition
    assert t is not None and t.phase() == "drain" and t.drain_id > 0
    assert d.change_writer is None  # no epoch is committed while the old writer may still flush
    a = d.assignments["a"]
    assert (a.role, a.epoch, a.drain_id, a.drain_timeout_ms) == ("rw", 1, t.drain_id, 30_000)
    assert a.lease_ms == int(T.lease_s * 1000)  # renewed: a drain longer than a lease is not cut short
    assert d.assignments["b"].role == "ro" and d.assignments["b"].drain_id == 0
    assert "draining a first" in d.why

    # While it stops: still rw with a lease, and the sentence says how far it got.
    reports = {**healthy_cluster(105.0), "a": rep("a", 105.0, "rw", stopping_for_s=4.5)}
    d = decide(durable(), d.memory, reports, 105.0, T, 5, now_unix=1105.0)
    assert d.change_writer is None and d.assignments["a"].lease_ms > 0
    assert "its Milvus has been stopping for 4.5s (5.0s of 30s)" in d.why


def test_a_drain_that_exits_0_commits_the_change_and_the_event_keeps_the_drain_phase() -> None:
    d = start()
    drain_id = d.memory.transition.drain_id
    d = decide(durable(), d.memory, stopped(107.0, drain_id, seconds=6.5), 107.0, T, 5, now_unix=1107.0)
    assert d.change_writer == ChangeWriter("b", 1) and "a drained in 6.5s" in d.why
    memory = committed(d.memory, 2, 107.1)
    after = durable(writer="b", epoch=2)
    acked = {**healthy_cluster(107.5, epoch=2), "a": rep("a", 107.5, "ro", 2)}
    d = decide(after, memory, acked, 107.6, T, 5, now_unix=1107.6)
    assert d.assignments["b"].role == "rw" and "acknowledged" in d.why
    running = {**acked, "b": rep("b", 108.5, "rw", 2)}
    d = decide(after, d.memory, running, 108.6, T, 5, now_unix=1108.6)
    (event,) = d.events
    assert [p for p, _ in event.phases][:3] == ["drain", "decide", "fence"]
    assert "drained in 6.5s" in event.reason


def test_a_drain_that_fails_is_abandoned_and_the_old_writer_keeps_writing() -> None:
    d = start()
    drain_id = d.memory.transition.drain_id
    d = decide(durable(), d.memory, stopped(131.0, drain_id, exit_code=137, seconds=30.0), 131.0, T, 5)
    assert d.change_writer is None and d.memory.transition is None
    (event,) = d.events
    assert event.kind == "switchover-abandoned" and "exit code 137" in event.reason
    assert "restarts on its own WAL" in d.why
    a = d.assignments["a"]
    assert (a.role, a.epoch, a.drain_id) == ("rw", 1, 0) and a.lease_ms > 0  # told to run rw again


def test_a_drain_that_fails_is_forced_when_the_operator_chose_so() -> None:
    d = start(on_drain_timeout="force")
    drain_id = d.memory.transition.drain_id
    d = decide(durable(), d.memory, stopped(131.0, drain_id, exit_code=137, seconds=30.0), 131.0, T, 5)
    assert d.change_writer == ChangeWriter("b", 1)
    assert "drain forced" in d.memory.transition.drain_note


def test_a_drain_with_no_answer_times_out_on_the_coordinators_clock() -> None:
    d = start()
    late = 100.0 + T.drain_timeout_s + T.detect_after_s + T.report_interval_s + 0.1
    reports = {**healthy_cluster(late), "a": rep("a", late, "rw", stopping_for_s=late - 100.0)}
    d = decide(durable(), d.memory, reports, late, T, 5)
    assert d.memory.transition is None and "did not finish draining within drain_timeout_s (30s)" in d.why


def test_an_old_writer_that_goes_silent_while_draining_is_left_to_the_failure_rules() -> None:
    d = start()
    silent = {**healthy_cluster(104.0), "a": rep("a", 101.0, "rw")}
    d = decide(durable(), d.memory, silent, 104.0, T, 5)
    assert d.memory.transition is None and "stopped reporting while it drained" in d.why
    d = decide(durable(), d.memory, silent, 104.1, T, 5)
    assert d.change_writer is not None and d.memory.transition.kind == "failover"


def test_a_stop_report_of_another_drain_does_not_count() -> None:
    d = start()
    drain_id = d.memory.transition.drain_id
    d = decide(durable(), d.memory, stopped(102.0, drain_id - 1), 102.0, T, 5)
    assert d.change_writer is None and d.memory.transition.phase() == "drain"


def test_a_target_that_cannot_take_over_when_the_drain_ends_is_replaced_by_the_best_other() -> None:
    d = start()
    drain_id = d.memory.transition.drain_id
    reports = stopped(103.0, drain_id)
    reports["b"] = rep("b", 103.0, mount_state="failed")
    d = decide(durable(), d.memory, reports, 103.0, T, 5)
    assert d.change_writer == ChangeWriter("c", 1) and "so c does" in d.why


def test_a_writer_running_no_rw_container_has_nothing_to_drain() -> None:
    memory = settled(request=Request("switchover", "b", "planned"))
    reports = {**healthy_cluster(100.0), "a": rep("a", 100.0, "none", container_role="none")}
    d = decide(durable(), memory, reports, 100.0, T, 5)
    assert d.change_writer == ChangeWriter("b", 1) and "runs no rw Milvus to drain" in d.memory.transition.reason


def test_maintenance_does_not_retry_a_failed_drain_at_once() -> None:
    in_maintenance = durable(a=NodeRecord("a", "10.0.0.1", maintenance=True))
    d = decide(in_maintenance, settled(), healthy_cluster(100.0), 100.0, T, 5, now_unix=1100.0)
    drain_id = d.memory.transition.drain_id
    d = decide(in_maintenance, d.memory, stopped(101.0, drain_id, exit_code=1), 101.0, T, 5)
    assert d.memory.transition is None
    again = healthy_cluster(110.0)
    d = decide(in_maintenance, d.memory, again, 110.0, T, 5, now_unix=1110.0)
    assert d.memory.transition is None and "draining it again in 21s" in d.why
    d = decide(in_maintenance, d.memory, healthy_cluster(131.5), 131.5, T, 5, now_unix=1131.5)
    assert d.memory.transition is not None and d.memory.transition.phase() == "drain"
    assert d.memory.transition.drain_id != drain_id


def test_a_new_leader_during_a_drain_resumes_the_durable_writer() -> None:
    """A drain lives in the leader's memory only: its successor finds the old writer stopped and resumes it
    (it restarts on its own WAL; the switchover is simply not done)."""
    reports = {**healthy_cluster(13.1), "a": rep("a", 13.1, "none", container_role="none")}
    d = decide(durable(), Memory(leader_since=10.0), reports, 13.1, T, 5)
    assert d.memory.transition is not None and d.memory.transition.kind == "resume"
    assert d.memory.transition.new == "a"
