"""The real `coordinator.daemon.Coordinator` in the simulated cluster of tests/test_core_simulation.py.

There the simulation plays the coordinator's part with the pure core alone; here the real Coordinator does: its
tick (lead, load, register, decide, commit, publish, record) and its Report handler (`receive`, the lease it
grants), on the in-memory store (tests/memstore.py, which answers as MySQL does: tests/test_store_contract.py),
all on the simulation's clock. The agents, their leases, the containers and the watchdog are the simulation's,
driven by the agent's own rules. Checked after every step: no two rw intervals overlap, the committed epoch
never goes down; through a writer's failure, a failover elects a new writer at a higher epoch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from coordinator.config import CoordinatorConfig, MysqlRef
from coordinator.daemon import Coordinator
from coordinator.model import Assignment, ClusterRow
from coordinator.storeapi import Leadership, StoreError
from tests.memstore import MemoryClusterStore
from tests.test_core_simulation import LEADER_LEASE, NODES, TICK, TIMING, ClusterUnderFaults, Node, World

WALL_CLOCK_AT_ZERO = 1_700_000_000.0


class SimClock:
    """The simulation's time as the `time` module the coordinator's modules call: monotonic() and time() follow
    the simulation, the rest is the real module's."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return WALL_CLOCK_AT_ZERO + self.now

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


CLOCK = SimClock()


@pytest.fixture(autouse=True)
def on_the_simulation_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every coordinator module that imported `time` reads the simulation's clock instead."""
    for name, module in list(sys.modules.items()):
        if name.startswith("coordinator.") and getattr(module, "time", None) is time:
            monkeypatch.setattr(module, "time", CLOCK)
    yield


class SimStore(MemoryClusterStore):
    """The memory store on the simulation's clock; MySQL does not answer a lease call until `unreachable_until`
    (the world's `renewals_fail_until`), and a backup can be restored under it."""

    def __init__(self) -> None:
        super().__init__("sim", clock=CLOCK.monotonic, wall_clock=CLOCK.time)
        self.unreachable_until = 0.0

    def acquire_or_renew(
        self, coordinator: str, address: str, lease_s: float, current: Leadership | None
    ) -> Leadership | None:
        if CLOCK.now < self.unreachable_until:
            raise StoreError("acquire_or_renew: mysql://sim unreachable (simulated)")
        return super().acquire_or_renew(coordinator, address, lease_s, current)

    def restore(self, row: ClusterRow) -> None:
        """An older backup of the cluster row restored by hand: its writer and epoch (the lease stays)."""
        with self._lock:
            self._cluster = ClusterRow(name=self.cluster_name, writer=row.writer, epoch=row.epoch)


def coordinator_config(coordinator_id: str) -> CoordinatorConfig:
    return CoordinatorConfig(
        path=None,
        cluster="sim",
        coordinator_id=coordinator_id,
        listen="127.0.0.1:19800",
        advertise=f"{coordinator_id}:19800",
        metrics_port=19801,
        mysql=MysqlRef("127.0.0.1", 3306, "sim", "sim", None),
        leader_lease_s=LEADER_LEASE,
        tick_s=TICK,
        timing=TIMING,
    )


@dataclass
class CoordinatedWorld(World):
    """The simulated cluster with the real Coordinator (one process at a time) on the memory store."""

    store: SimStore = field(default_factory=SimStore)
    real: Coordinator | None = None
    starts: int = 0  # coordinator processes started

    def __post_init__(self) -> None:
        CLOCK.now = self.now
        self.store.migrate()
        self.durable = self.store.load()

    def coordinator(self) -> None:
        CLOCK.now = self.now
        self.store.unreachable_until = self.renewals_fail_until
        if not self.coord_up:
            self.real = None  # the process is gone; its lease in the store runs out by itself
            return
        if self.real is None:
            self.starts += 1
            self.real = Coordinator(coordinator_config(f"coord-{self.starts}"), store=self.store)
        outcome = self.real.tick()
        assert outcome != "tick failed", self.real.last_error
        self.memory = self.real.memory
        self.durable = self.store.load()
        self.epochs_seen.append(self.durable.cluster.epoch)

    def answer(self, node: Node) -> tuple[bool, Assignment | None]:
        if self.real is None:
            return False, None
        CLOCK.now = self.now
        return self.real.receive(self._observation(node))

    def run(self, seconds: float) -> None:
        """Step for `seconds`, checking after every step that no two writers overlap and epochs only grow."""
        for _ in range(int(seconds / TICK)):
            self.step()
            assert not self.overlaps(), self.overlaps()
            assert self.epochs_seen == sorted(self.epochs_seen), self.epochs_seen

    def writers(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.container == "rw"]


def a_running_cluster() -> tuple[CoordinatedWorld, str, int]:
    w = CoordinatedWorld()
    w.run(15)
    writer, epoch = w.durable.cluster.writer, w.durable.cluster.epoch
    assert writer is not None and w.writers() == [writer], (w.writers(), w.durable.cluster)
    assert set(w.durable.nodes) == set(NODES), "the coordinator registered every node that reported"
    return w, writer, epoch


def test_a_powered_off_writer_is_failed_over_to_a_new_writer_at_a_higher_epoch() -> None:
    w, old, epoch = a_running_cluster()
    w.power_off(old)
    w.run(25)
    new = w.durable.cluster.writer
    assert new is not None and new != old and w.writers() == [new]
    assert w.durable.cluster.epoch > epoch
    failovers = w.store.events(kinds=("failover",))
    assert failovers and failovers[-1].node == new and failovers[-1].epoch == w.durable.cluster.epoch


def test_a_writer_cut_off_but_renewing_from_mysql_is_fenced_before_the_new_writer_runs() -> None:
    w, old, epoch = a_running_cluster()
    w.nodes[old].cut_coord = w.nodes[old].cut_peers = True  # it keeps renewing its lease from the cluster row
    w.run(35)
    new = w.durable.cluster.writer
    assert new is not None and new != old and w.writers() == [new]
    assert w.nodes[old].container is None and w.durable.cluster.epoch > epoch


def test_the_coordinator_dies_during_a_failover_and_the_next_one_completes_it() -> None:
    w, old, epoch = a_running_cluster()
    w.power_off(old)
    w.run(3)
    w.coord_up = False
    w.run(2)
    w.coord_up = True  # a new process: it waits out the old lease in the store, then leads at a new term
    w.run(30)
    new = w.durable.cluster.writer
    assert w.starts == 2 and w.store.leader_info()[:3] == ("coord-2", "coord-2:19800", 2)
    assert new is not None and new != old and w.writers() == [new] and w.durable.cluster.epoch > epoch


def test_coordinator_restarts_never_demote_a_healthy_writer() -> None:
    w, writer, epoch = a_running_cluster()
    since = w.nodes[writer].rw_since
    for _ in range(3):
        w.coord_up = False
        w.run(2)
        w.coord_up = True
        w.run(10)
    assert w.nodes[writer].rw_since == since, "the writer's rw run was interrupted"
    assert (w.durable.cluster.writer, w.durable.cluster.epoch) == (writer, epoch)


class RealCoordinatorUnderFaults(ClusterUnderFaults):
    """tests/test_core_simulation.py's random faults, with the real Coordinator deciding."""

    def __init__(self) -> None:
        super().__init__()
        self.world = CoordinatedWorld()

    @rule(back=st.integers(min_value=1, max_value=3), writer=st.sampled_from((None, *NODES)))
    def mysql_restored_from_an_older_backup(self, back: int, writer: str | None) -> None:
        super().mysql_restored_from_an_older_backup(back, writer)
        world = self.world
        assert isinstance(world, CoordinatedWorld)
        world.store.restore(world.durable.cluster)


TestRealCoordinatorUnderFaults = RealCoordinatorUnderFaults.TestCase
TestRealCoordinatorUnderFaults.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
