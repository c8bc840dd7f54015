"""A standing condition ("no candidate", "paused", ...) is an event when it begins and one when it ends, not one
at every tick (173 `no-candidate` events in 35 s were seen): the pure rule in the core (`record_standing`, held
in Memory), and a real coordinator on MariaDB deciding every 0.1 s."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
from jfsmilvus.v1 import node_pb2

from coordinator.core import Memory, decide
from coordinator.model import Event, NodeRecord
from coordinator.standing import STANDING_KINDS, record_standing
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess, report
from tests.test_core_rules import T, durable, rep, settled


def no_candidate_cluster(now: float) -> dict:
    """Writer a silent since 90; b's mount failed; c in maintenance (see `cluster`)."""
    return {"a": rep("a", 90.0, "rw"), "b": rep("b", now, mount_state="failed"), "c": rep("c", now)}


def cluster(paused: bool = False):
    return durable(c=NodeRecord("c", "10.0.0.3", maintenance=True), paused=paused)


def ticks(memory: Memory, start: float, count: int, reports: Callable[[float], dict], **kw) -> tuple[Memory, list]:
    events = []
    for i in range(count):
        now = start + i * 0.1
        d = decide(kw.get("state", cluster()), memory, reports(now), now, T, 5, now_unix=1000 + now)
        memory = d.memory
        events += d.events
    return memory, events


def test_no_candidate_is_recorded_when_it_begins_and_when_it_ends_not_at_every_tick() -> None:
    memory, events = ticks(settled(), 100.0, 350, no_candidate_cluster)  # 35 s at the coordinator's 0.1 s tick
    assert [e.kind for e in events] == ["no-candidate"]
    assert "b mount failed" in events[0].reason and "c in maintenance" in events[0].reason
    assert memory.standing is not None and memory.standing.kind == "no-candidate" and memory.standing.node == "a"

    def writer_back(now: float) -> dict:
        return {**no_candidate_cluster(now), "a": rep("a", now, "rw")}

    memory, after = ticks(memory, 135.0, 50, writer_back)
    assert [e.kind for e in after] == ["no-candidate-ended"]
    ended = after[0]
    assert ended.node == "a" and ended.reason.startswith("held for 35s; now: a is the writer at epoch 1 and healthy")
    assert memory.standing is None


def test_a_failover_that_ends_it_is_recorded_with_the_change() -> None:
    memory, events = ticks(settled(), 100.0, 10, no_candidate_cluster)
    assert [e.kind for e in events] == ["no-candidate"]
    healthy_b = {**no_candidate_cluster(101.0), "b": rep("b", 101.0)}
    d = decide(cluster(), memory, healthy_b, 101.0, T, 5, now_unix=1101.0)
    assert d.change_writer is not None and d.change_writer.new_writer == "b"
    assert [e.kind for e in d.events] == ["no-candidate-ended"] and "Failover from a to b" in d.events[0].reason


def test_another_condition_ends_the_one_before() -> None:
    memory, events = ticks(settled(), 100.0, 10, no_candidate_cluster)
    memory, events = ticks(memory, 101.0, 30, no_candidate_cluster, state=cluster(paused=True))
    assert [e.kind for e in events] == ["no-candidate-ended", "failover-paused"]
    assert "the cluster is paused" in events[1].reason and events[1].node == "a"
    memory, events = ticks(memory, 104.0, 30, lambda now: {**no_candidate_cluster(now), "a": rep("a", now, "rw")})
    assert [e.kind for e in events] == ["failover-paused-ended"]


def test_the_rule_itself() -> None:
    """Only standing kinds are held back; other events pass every time; one begun about another node ends it."""
    begun = Event(kind="no-candidate", reason="x", node="a", epoch=1)
    refused = Event(kind="refused", reason="switchover refused", node="b", epoch=1)
    memory, out = record_standing(settled(), [begun, refused], "why", 1, 10.0, 1010.0)
    assert [e.kind for e in out] == ["refused", "no-candidate"]
    memory, out = record_standing(memory, [begun, refused], "why", 1, 11.0, 1011.0)
    assert [e.kind for e in out] == ["refused"]
    memory, out = record_standing(memory, [replace(begun, node="b")], "why now", 2, 12.0, 1012.0)
    assert [(e.kind, e.node) for e in out] == [("no-candidate-ended", "a"), ("no-candidate", "b")]
    assert out[0].reason == "held for 2s; now: why now" and out[0].epoch == 2 and out[0].at_unix == 1012.0
    assert all(len(f"{kind}-ended") <= 32 for kind in STANDING_KINDS)  # the events table's kind column


# -- a real coordinator ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_coordinator_records_one_begin_and_one_end_over_many_ticks(
    coordinator_factory: Callable[..., CoordinatorProcess],
) -> None:
    c = coordinator_factory()  # tick_s 0.1
    c.start()
    wait_until(c.leads, 15, "leadership")

    def writer_is_a() -> bool:
        answer = report(c, "node-a", node_pb2.ROLE_UNSPECIFIED, 0)
        report(c, "node-b", node_pb2.ROLE_RO, 0, mount="failed")
        return answer.assignment.role == node_pb2.ROLE_RW

    wait_until(writer_is_a, 30, "node-a made the first writer")
    wait_until(
        lambda: report(c, "node-a", node_pb2.ROLE_RW, 1) and "node-a is the writer at epoch 1" in c.why(),
        20,
        lambda: f"node-a healthy as the writer ({c.why()})",
    )
    # node-a falls silent; node-b, the only other node, cannot take over (its mount failed): 8 s of ticks.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        report(c, "node-b", node_pb2.ROLE_RO, 1, mount="failed")
        time.sleep(0.3)
    assert "no node can take over" in c.why()

    def writer_back() -> bool:
        report(c, "node-a", node_pb2.ROLE_RW, 1)
        report(c, "node-b", node_pb2.ROLE_RO, 1, mount="failed")
        return "node-a is the writer at epoch 1 and healthy" in c.why()

    wait_until(writer_back, 20, lambda: f"node-a back as a healthy writer ({c.why()})")
    time.sleep(1)  # more ticks with the writer healthy
    kinds = Counter(e.kind for e in c.events())
    assert kinds["no-candidate"] == 1 and kinds["no-candidate-ended"] == 1, kinds
    (ended,) = [e for e in c.events() if e.kind == "no-candidate-ended"]
    assert ended.node == "node-a" and "node-a is the writer at epoch 1 and healthy" in ended.reason
    assert "event no-candidate: writer node-a is failing" in c.log() and c.log().count("event no-candidate:") == 1


def test_a_request_the_decision_refuses_ends_its_progress_with_the_refusal_event() -> None:
    """The progress stream learns of the refusal from the core's `refused` event, not from a word in a sentence."""
    import threading
    from types import SimpleNamespace

    from coordinator.core import Request, Timing
    from coordinator.server import CoordinatorServicer

    fake = SimpleNamespace(
        config=SimpleNamespace(timing=Timing()),
        published=SimpleNamespace(transition=None, durable=None, why="Switchover to b is being decided."),
        last_refused=None,
        last_completed=None,
        pending_request=None,
        memory=None,
    )

    def request(asked: Request) -> None:  # taken; the next tick's decision refuses it
        def decide() -> None:
            event = Event(kind="refused", reason="switchover refused: b is in maintenance", node="b", epoch=1)
            fake.last_refused = (event, time.monotonic())

        threading.Timer(0.2, decide).start()

    fake.request = request
    context = SimpleNamespace(is_active=lambda: True)
    servicer = CoordinatorServicer(fake)  # type: ignore[arg-type]
    began = time.monotonic()
    stream = list(servicer._follow_progress(Request("switchover", "b", "test"), context))  # type: ignore[arg-type]
    assert [(p.phase, p.message, p.done) for p in stream] == [
        ("refused", "switchover refused: b is in maintenance", True)
    ]
    assert time.monotonic() - began < 5
