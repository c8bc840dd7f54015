"""The Report handler's answers while the tick commits a change of writer (in process, MySQL faked).

`Coordinator.receive` answers from the published snapshot without waiting for the tick. These tests hold a
switchover's epoch bump inside `change_writer` and check what reports get meanwhile: never the new epoch or
role (commit-before-tell), never a renewed lease (the fence counts leases from the commit), and at once.
And the API's threads: streaming calls cannot take them all.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace

import grpc
import pytest

from coordinator.config import CoordinatorConfig, MysqlRef
from coordinator.configstore import ConfigState
from coordinator.core import Request, Timing
from coordinator.daemon import Coordinator
from coordinator.model import Assignment, ClusterRow, Durable, Event, NodeRecord, Report
from coordinator.server import API_WORKERS, LONG_CALLS, CoordinatorServicer
from coordinator.storeapi import Leadership, StoreError

STARTUP_WAIT_S = 0.2  # a new leader listens this long before it decides
ANSWER_WITHIN_S = 2.0  # a report is answered at once; this only bounds a test that would otherwise hang


class HeldStore:
    """The ClusterStore calls a leading coordinator makes, in memory; `change_writer` waits for `release`."""

    def __init__(self, durable: Durable, fail_commit: bool = False):
        self.durable = durable
        self.fail_commit = fail_commit
        self.committing = threading.Event()
        self.release = threading.Event()
        self.events: list[Event] = []

    def acquire_or_renew(
        self, coordinator: str, address: str, lease_s: float, current: Leadership | None
    ) -> Leadership | None:
        return Leadership(coordinator, address, 1, time.monotonic() + lease_s)

    def leader_info(self) -> tuple[str | None, str, int, float]:
        return "c1", "127.0.0.1:1", 1, 5.0

    def load(self) -> Durable:
        return self.durable

    def upsert_node(self, leadership: Leadership, name: str, address: str, hosts_mishards: bool) -> None:
        nodes = {**self.durable.nodes, name: NodeRecord(name, address, hosts_mishards=hosts_mishards)}
        self.durable = replace(self.durable, nodes=nodes)

    def change_writer(
        self, leadership: Leadership, expected_epoch: int, new_writer: str | None, new_epoch: int | None = None
    ) -> int:
        self.committing.set()
        assert self.release.wait(10), "the test never released the commit"
        if self.fail_commit:
            raise StoreError("change_writer: connection lost (the outcome is unknown)")
        epoch = new_epoch or expected_epoch + 1
        cluster = replace(self.durable.cluster, writer=new_writer, epoch=epoch)
        self.durable = replace(self.durable, cluster=cluster)
        return epoch

    def add_event(self, leadership: Leadership, event: Event) -> int:
        self.events.append(event)
        return len(self.events)

    def config_state(self) -> ConfigState:
        return ConfigState(current=0, pins={})  # no cluster config: every node runs its agent.yaml

    def read_config_versions(self, versions: list[int]) -> dict[int, object]:
        return {}

    def active_rollout(self) -> None:
        return None  # no rollout

    def update_event(self, leadership: Leadership, event_id: int, phases: object, reason: str) -> None:
        pass


def config() -> CoordinatorConfig:
    return CoordinatorConfig(
        path=None,
        cluster="test",
        coordinator_id="c1",
        listen="127.0.0.1:1",
        advertise="127.0.0.1:1",
        metrics_port=1,
        mysql=MysqlRef("127.0.0.1", 3306, "u", "d", None),
        leader_lease_s=5.0,
        timing=Timing(startup_wait_s=STARTUP_WAIT_S),
    )


def report(node: str, role: str, epoch: int) -> Report:
    return Report(
        node=node,
        address=f"10.0.0.{ord(node[-1]) - ord('a') + 1}",
        received_at=time.monotonic(),
        role_running=role,
        container_role=role,
        highest_epoch=epoch,
        gpu_health="healthy",
        mount_state="healthy",
    )


def answer(c: Coordinator, r: Report) -> tuple[bool, Assignment | None]:
    """c.receive(r) from another thread, as a gRPC handler calls it; fails if it waits on the tick."""
    out: list[tuple[bool, Assignment | None]] = []
    t = threading.Thread(target=lambda: out.append(c.receive(r)), daemon=True)
    started = time.monotonic()
    t.start()
    t.join(ANSWER_WITHIN_S)
    assert out, f"the report of {r.node} was not answered within {ANSWER_WITHIN_S}s: it waits on the tick"
    assert time.monotonic() - started < ANSWER_WITHIN_S
    return out[0]


@pytest.fixture
def steady() -> tuple[Coordinator, HeldStore]:
    """A leader with writer a (rw, leased) and reader b at epoch 1, a failover to b requested."""
    nodes = {"a": NodeRecord("a", "10.0.0.1"), "b": NodeRecord("b", "10.0.0.2")}
    store = HeldStore(Durable(ClusterRow("test", "a", 1), nodes))
    c = Coordinator(config(), store=store)  # type: ignore[arg-type]
    assert c.receive(report("a", "rw", 1)) == (False, None)  # not leading yet
    c.tick()  # wins leadership and listens
    for r in (report("a", "rw", 1), report("b", "ro", 1)):
        c.receive(r)
    time.sleep(STARTUP_WAIT_S)
    c.tick()  # settles: a runs rw at the durable epoch, so it keeps its lease
    leading, a = c.receive(report("a", "rw", 1))
    assert leading and a is not None and (a.role, a.epoch) == ("rw", 1) and a.lease_ms > 0, a
    assert c.request(Request("failover", "b", "test")) is None  # no drain: straight to the commit
    return c, store


def test_a_report_during_an_uncommitted_epoch_bump_gets_neither_the_new_role_nor_a_lease(
    steady: tuple[Coordinator, HeldStore],
) -> None:
    c, store = steady
    tick = threading.Thread(target=c.tick, daemon=True)
    tick.start()
    assert store.committing.wait(5), "the switchover did not reach the commit"
    try:
        for _ in range(3):
            leading, b = answer(c, report("b", "ro", 1))
            assert leading and b is not None
            assert (b.role, b.epoch) == ("ro", 1), f"b heard of its promotion before the commit: {b}"
            leading, a = answer(c, report("a", "rw", 1))
            assert leading and a is not None
            assert a.epoch == 1, f"a heard of epoch {a.epoch} before the commit: {a}"
            assert a.lease_ms == 0, f"a's lease was renewed while the epoch bump was committing: {a}"
    finally:
        store.release.set()
        tick.join(10)
    assert not tick.is_alive()
    # Committed and published: the new epoch is told, b is still held at ro until a is fenced.
    _, b = answer(c, report("b", "ro", 1))
    assert b is not None and (b.role, b.epoch) == ("ro", 2), b
    _, a = answer(c, report("a", "rw", 1))
    assert a is not None and (a.role, a.epoch, a.lease_ms) == ("ro", 2, 0), a


def test_a_commit_with_an_unknown_outcome_steps_down_without_telling_anyone(
    steady: tuple[Coordinator, HeldStore],
) -> None:
    c, store = steady
    store.fail_commit = True
    tick = threading.Thread(target=c.tick, daemon=True)
    tick.start()
    assert store.committing.wait(5)
    _, a = answer(c, report("a", "rw", 1))
    assert a is not None and a.epoch == 1 and a.lease_ms == 0, a
    store.release.set()
    tick.join(10)
    assert not tick.is_alive()
    assert c.leadership is None
    assert answer(c, report("b", "ro", 1)) == (False, None)
    assert answer(c, report("a", "rw", 1)) == (False, None)


class AbortingContext:
    """What the sync gRPC server's context does on abort: raise, with the status recorded."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise RuntimeError(details)


def test_streaming_calls_cannot_take_every_api_thread(steady: tuple[Coordinator, HeldStore]) -> None:
    """Each switchover progress or `events --follow` holds a thread for its length: past LONG_CALLS they are
    refused, so the API's other threads stay free for reports."""
    c, _ = steady
    servicer = CoordinatorServicer(c)
    assert LONG_CALLS < API_WORKERS
    with contextlib.ExitStack() as held:
        for _ in range(LONG_CALLS):
            held.enter_context(servicer._long_call(AbortingContext()))  # type: ignore[arg-type]
        refused = AbortingContext()
        with pytest.raises(RuntimeError, match="streaming calls"), servicer._long_call(refused):  # type: ignore[arg-type]
            pass
        assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    with servicer._long_call(AbortingContext()):  # type: ignore[arg-type]
        pass  # one ended: a slot is free again
