"""Pushed assignments reach each node in the order they were made; a replaced one is dropped (coordinator.push)."""

from __future__ import annotations

import threading
import time

import grpc
from jfsmilvus.common.tls import TlsSettings

from coordinator.model import Assignment, Report
from coordinator.push import AssignmentPusher


def report(node: str) -> Report:
    return Report(
        node=node,
        address="127.0.0.9",
        received_at=0.0,
        role_running="ro",
        container_role="ro",
        highest_epoch=2,
        gpu_health="healthy",
        agent_port=7000,
    )


def told(node: str, role: str, epoch: int = 2) -> Assignment:
    return Assignment(node=node, role=role, epoch=epoch, lease_ms=0, writer=node)


class SlowFirstDelivery:
    """Delivers at once, except the first push to node `slow_node`, which takes `delay_s` on the way."""

    def __init__(self, slow_node: str, delay_s: float):
        self.slow_node, self.delay_s = slow_node, delay_s
        self.arrived: list[tuple[str, str]] = []
        self.started = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, target: str, assignment: Assignment, term: int) -> str:
        with self._lock:
            first = assignment.node == self.slow_node and not self.started.is_set()
            if first:
                self.started.set()
        if first:
            time.sleep(self.delay_s)
        with self._lock:
            self.arrived.append((assignment.node, assignment.role))
        return "taken"


def test_pushes_to_one_node_arrive_in_order_and_a_replaced_one_is_dropped() -> None:
    delivery = SlowFirstDelivery("b", 0.5)
    pusher = AssignmentPusher("c1", TlsSettings(), deliver=delivery)
    pusher(report("b"), told("b", "ro"), 1)  # the fence: b is the writer-designate
    assert delivery.started.wait(2)
    pusher(report("b"), told("b", "rw"), 1)  # the promotion, made while the first push is still on its way
    pusher(report("c"), told("c", "ro"), 1)  # another node is not held up by b's slow push
    time.sleep(0.2)
    assert delivery.arrived == [("c", "ro")]
    pusher.pool.shutdown(wait=True)
    assert delivery.arrived == [("c", "ro"), ("b", "ro"), ("b", "rw")]  # rw last: never undone by the older ro

    queued = SlowFirstDelivery("x", 0.5)
    pusher = AssignmentPusher("c1", TlsSettings(), deliver=queued)
    pusher(report("x"), told("x", "ro", 1), 1)
    assert queued.started.wait(2)
    pusher(report("y"), told("y", "ro", 1), 1)
    pusher(report("y"), told("y", "ro", 2), 1)  # replaces the one before it while both wait for a worker
    pusher(report("y"), told("y", "rw", 2), 1)
    pusher.pool.shutdown(wait=True)
    assert [a for a in queued.arrived if a[0] == "y"][-1] == ("y", "rw")


def test_a_push_that_cannot_be_delivered_is_said_and_forgotten(caplog) -> None:  # type: ignore[no-untyped-def]
    class Unreachable(grpc.RpcError):
        pass

    def deliver(target: str, assignment: Assignment, term: int) -> str:
        raise Unreachable()

    pusher = AssignmentPusher("c1", TlsSettings(), deliver=deliver)
    with caplog.at_level("INFO", logger="jfs_milvus.coordinator.push"):
        pusher(report("b"), told("b", "ro"), 1)
        pusher(None, told("z", "ro"), 1)  # no report yet: nowhere to push
        pusher.pool.shutdown(wait=True)
    assert "could not push to b at 127.0.0.9:7000 (it will hear at its next report)" in caplog.text
    assert "to z" not in caplog.text
