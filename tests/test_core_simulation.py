"""The decision core in a simulated cluster, under random faults: never two writers, epochs only grow.

The simulation plays every part the core does not: MySQL (the durable row, committed before anyone hears of
it), the leader's lease (a restarted coordinator leads only when its predecessor's lease has run out), and
Milvus containers whose rw life ends by their in-container lease watchdog at the latest. The agents are driven
by the agent's own rules, not copies: the assignment judgement (`agent.assignment.judge_assignment`), the lease
(`agent.lease`: granted from the moment the report was sent, renewed from MySQL when cut off from the
coordinator), the convergence table (`agent.milvus.converge` wanted_role and next_step, one step per cycle, a
start or a stop holding the loop until it is done), and one frozen observation per cycle, its epoch read before
observing, which is all a report says. Hypothesis drives random
sequences of node power-offs, agent kills, partitions, broken mounts, coordinator restarts and time, and checks
after every step that no two rw intervals overlap.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from agent.assignment import Assignment, judge_assignment
from agent.lease import Lease, after_rw_answer, lease_for, renewed_by_row, writer_may_run
from agent.milvus.container import ContainerState
from agent.milvus.converge import Action, Seen, Step, Want, next_step, wanted_role
from coordinator.core import Decision, Memory, Timing, committed, decide
from coordinator.model import Assignment as CoreAssignment
from coordinator.model import ClusterRow, Durable, NodeRecord, Report

TICK = 0.25
LEADER_LEASE = 5.0
WATCHDOG_POLL = 0.2
START_DELAY = TICK  # the writer-designate prepared during the fence: the start is one container run
STOP_DELAY = 0.5
NODES = ("a", "b", "c")
TIMING = Timing(startup_wait_s=2.0, failover_window_s=10.0, promote_timeout_s=8.0, settle_s=1.0)


@dataclass(frozen=True)
class Observed:
    """One agent cycle's published observation (agent.daemon.NodeSnapshot): what a report says."""

    container_role: str = "none"  # the running container's role
    role_running: str = "none"  # that role when the cycle found it healthy and converged
    highest_epoch: int = 0  # read before observing; 0 before the first cycle


@dataclass
class Node:
    name: str
    power: bool = True
    agent: bool = True
    cut_coord: bool = False
    cut_mysql: bool = False
    cut_peers: bool = False
    mount_ok: bool = True
    highest_epoch: int = 0  # the agent's state file
    role: str = "none"
    epoch: int = 0
    writer: str | None = None  # as its last assignment names it
    drain_id: int = 0
    lease: Lease | None = None
    mount_mode: str | None = None
    config: str | None = None  # the role server_config.yaml on disk was rendered for
    container: str | None = None  # role of the running container
    container_epoch: int = 0
    starting: tuple[str, float] | None = None  # (role, when it will be up): the loop waits on the start
    stopping_at: float | None = None  # the loop waits on the stop
    rw_since: float | None = None
    observed: Observed = field(default_factory=Observed)  # the last published
    pending: Observed | None = None  # the observation of a cycle still waiting on its start or stop

    @property
    def lease_deadline(self) -> float:
        """What the in-container watchdog reads from the lease file."""
        return self.lease.deadline if self.lease is not None else -1.0

    def forget(self) -> None:
        """A new agent process: it keeps only its epoch on disk (and the watchdog file is not trusted here)."""
        self.role, self.lease, self.observed, self.pending = "none", None, Observed(), None


@dataclass
class World:
    now: float = 0.0
    durable: Durable = field(
        default_factory=lambda: Durable(
            ClusterRow(name="sim", writer=None, epoch=0),
            {n: NodeRecord(n, f"10.0.0.{i + 1}") for i, n in enumerate(NODES)},
        )
    )
    coord_up: bool = True
    leader_until: float = 0.0
    renewals_fail_until: float = 0.0  # MySQL hiccup: the leader cannot renew its lease until then
    memory: Memory | None = None
    reports: dict[str, Report] = field(default_factory=dict)
    assignments: dict = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=lambda: {n: Node(n) for n in NODES})
    rw_intervals: list[tuple[str, float, float]] = field(default_factory=list)  # closed ones
    epochs_seen: list[int] = field(default_factory=list)

    # -- containers ---------------------------------------------------------------------------------------
    def end_rw(self, node: Node, at: float) -> None:
        if node.rw_since is not None:
            self.rw_intervals.append((node.name, node.rw_since, at))
            node.rw_since = None
        node.container = None
        node.stopping_at = None

    def containers(self) -> None:
        for node in self.nodes.values():
            if node.container == "rw" and self.now >= node.lease_deadline + WATCHDOG_POLL:
                self.end_rw(node, node.lease_deadline + WATCHDOG_POLL)  # the in-container watchdog
            if node.stopping_at is not None and self.now >= node.stopping_at:
                self.end_rw(node, node.stopping_at) if node.container == "rw" else self._stop(node)
            if node.starting and self.now >= node.starting[1]:
                role, _ = node.starting
                node.starting = None
                if role == "rw" and (self.now >= node.lease_deadline or not node.power):
                    continue  # the wrapper refuses to start without a lease
                node.container = role
                if role == "rw":
                    node.rw_since = self.now

    def power_off(self, name: str) -> None:
        node = self.nodes[name]
        if node.container == "rw":
            self.end_rw(node, self.now)
        node.power, node.container, node.starting, node.stopping_at = False, None, None, None
        node.mount_mode = None
        node.forget()  # the agent forgets all but its epoch on disk

    def _stop(self, node: Node) -> None:
        node.container = None
        node.stopping_at = None

    # -- the coordinator ----------------------------------------------------------------------------------
    def coordinator(self) -> None:
        if not self.coord_up:
            return
        if self.memory is not None and self.now >= self.leader_until:
            self.memory = None  # its leadership ran out: it stops deciding and must win a new term
        if self.memory is None:
            if self.now < self.leader_until or self.now < self.renewals_fail_until:
                return  # the old leader's lease in MySQL has not run out, or MySQL does not answer
            self.memory = Memory(leader_since=self.now)
            self.reports = {}
        if self.now >= self.renewals_fail_until:
            self.leader_until = self.now + LEADER_LEASE
        left = self.leader_until - self.now - 0.1
        d = self.decide(self.memory, left)
        memory = d.memory
        if d.change_writer is not None:
            c = self.durable.cluster
            assert c.epoch == d.change_writer.expected_epoch
            epoch = d.change_writer.epoch or c.epoch + 1
            assert epoch > c.epoch
            self.durable = replace(self.durable, cluster=replace(c, epoch=epoch, writer=d.change_writer.new_writer))
            memory = committed(memory, epoch, self.now)
            d = self.decide(memory, left)
            assert d.change_writer is None
            memory = d.memory
        self.memory = memory
        self.assignments = dict(d.assignments)
        self.epochs_seen.append(self.durable.cluster.epoch)

    def decide(self, memory: Memory, left: float) -> Decision:
        """The decision, as the daemon makes it (given the last assignments to reuse), checked against one
        made from scratch: `previous` must only save work."""
        d = decide(self.durable, memory, self.reports, self.now, TIMING, left, previous=self.assignments)
        assert d == decide(self.durable, memory, self.reports, self.now, TIMING, left)
        return d

    # -- agents -------------------------------------------------------------------------------------------
    def agents(self) -> None:
        for node in self.nodes.values():
            if not (node.power and node.agent):
                continue
            self._report(node)
            self._converge(node)

    def _observation(self, node: Node) -> Report:
        writer = self.durable.cluster.writer
        witness = None
        w = self.nodes.get(writer) if writer else None
        if w is not None and w is not node and w.container == "rw" and not (w.cut_peers or node.cut_peers):
            witness = 0.1
        seen = node.observed
        return Report(
            node=node.name,
            address=f"10.0.0.{NODES.index(node.name) + 1}",
            received_at=self.now,
            role_running=seen.role_running,
            container_role=seen.container_role,
            highest_epoch=seen.highest_epoch,
            gpu_health="healthy",
            mount_state="healthy" if node.mount_ok else "failed",
            writer_seen_healthy_age_s=witness,
            row_lease_s=node.lease.row_renewal_ms / 1000 if node.lease is not None else None,
        )

    def answer(self, node: Node) -> tuple[bool, CoreAssignment | None]:
        """The coordinator's answer to the node's report: (whether it leads, the node's assignment)."""
        if self.memory is None:
            return False, None
        self.reports[node.name] = self._observation(node)
        return True, self.assignments.get(node.name)

    def _report(self, node: Node) -> None:
        """The reporter thread: the answer is judged and taken as Agent.take_coordinator_answer does."""
        sent = self.now
        leading, a = self.answer(node) if not node.cut_coord and self.coord_up else (False, None)
        if leading:
            if a is None:
                return
            told = Assignment(role=a.role, epoch=a.epoch, source="coordinator", writer=a.writer or "")
            if judge_assignment(told, node.highest_epoch) is not None:
                return
            if a.role == "rw" and a.writer not in (None, "", node.name):
                return
            node.highest_epoch = max(node.highest_epoch, a.epoch)
            node.role, node.epoch, node.writer, node.drain_id = a.role, a.epoch, a.writer, a.drain_id
            if a.role == "rw":
                node.lease = after_rw_answer(node.lease, a.epoch, a.lease_ms, sent, "coordinator", a.row_lease_ms)
            return
        if node.role == "rw" and not node.cut_mysql:
            c = self.durable.cluster  # a read-only SELECT of the cluster row
            held = lease_for(node.role, node.epoch, node.lease)  # Agent.renewable_lease_s
            renewed = renewed_by_row(held, node.name, c.writer, c.epoch, sent)
            if isinstance(renewed, Lease):
                node.lease = renewed

    def _converge(self, node: Node) -> None:
        """One cycle of the agent loop (Agent._cycle): the epoch read first, then observe, the table's step,
        act, publish what was observed (once the start or stop it waits on is done)."""
        if node.starting is not None or node.stopping_at is not None:
            return  # the loop is still in Docker's start or stop
        if node.pending is not None:
            node.observed, node.pending = node.pending, None
        epoch_before = node.highest_epoch
        role, designate = wanted_role(node.role, node.writer or "", node.name, coordinated=True)
        draining = node.role == "rw" and not designate and node.drain_id > 0
        want = Want(
            role=role,
            epoch=node.epoch,
            lease_valid=not designate and writer_may_run(node.role, node.epoch, node.lease, self.now),
            config_sha256=role,
            drain_id=node.drain_id if draining else 0,
            drain_timeout_s=TIMING.drain_timeout_s if draining else 0.0,
        )
        step = next_step(want, self._seen(node))
        observed = Observed(
            container_role=node.container or "none",
            role_running=node.container if node.container and step.action is Action.NOTHING else "none",
            highest_epoch=epoch_before,
        )
        self._act(node, step, want)
        if node.starting is not None or node.stopping_at is not None:
            node.pending = observed
        else:
            node.observed = observed

    def _seen(self, node: Node) -> Seen:
        containers = ()
        if node.container is not None:
            running = ContainerState(
                "c", "milvus", "img", "running", node.container, node.container_epoch, node.container, None, None, None
            )
            containers = (running,)
        return Seen(
            docker_error=None,
            containers=containers,
            container_name="milvus",
            health_error=None,
            running_for_s=1.0,
            mount_mode=node.mount_mode if node.mount_ok else None,
            mount_state="healthy"
            if node.mount_ok and node.mount_mode
            else ("failed" if not node.mount_ok else "unmounted"),
            mount_reasons=(),
            config_on_disk_sha256=node.config,
            backoff_left_s=0.0,
            health_timeout_s=120.0,
            start_timeout_s=600.0,
        )

    def _act(self, node: Node, step: Step, want: Want) -> None:
        if step.action is Action.KILL:
            self.end_rw(node, self.now)
        elif step.action is Action.STOP:
            if node.container == "rw":  # graceful, within the lease: the wrapper kills it at the deadline
                node.stopping_at = min(self.now + STOP_DELAY, node.lease_deadline + WATCHDOG_POLL)
            else:
                node.stopping_at = self.now + STOP_DELAY
        elif step.action is Action.MOUNT and node.mount_ok:
            node.mount_mode = step.mount_mode
        elif step.action is Action.WRITE_CONFIG:
            node.config = want.config_sha256
        elif step.action is Action.START:
            node.starting = (want.role, self.now + START_DELAY)
            node.container_epoch = want.epoch

    def step(self) -> None:
        self.now = round(self.now + TICK, 6)
        self.containers()
        self.coordinator()
        self.agents()

    # -- the checker ----------------------------------------------------------------------------------------
    def intervals(self) -> list[tuple[str, float, float]]:
        open_ = [(n.name, n.rw_since, float("inf")) for n in self.nodes.values() if n.rw_since is not None]
        return self.rw_intervals + open_

    def overlaps(self) -> list[tuple]:
        found = []
        spans = sorted(self.intervals(), key=lambda s: s[1])
        for i, a in enumerate(spans):
            for b in spans[i + 1 :]:
                if b[1] < a[2] and a[0] != b[0]:
                    found.append((a, b))
        return found


class ClusterUnderFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()

    @initialize()
    def a_running_cluster(self) -> None:
        for _ in range(int(12 / TICK)):
            self.world.step()

    @rule(ticks=st.integers(min_value=1, max_value=80))
    def time_passes(self, ticks: int) -> None:
        for _ in range(ticks):
            self.world.step()

    @rule(name=st.sampled_from(NODES))
    def power_off(self, name: str) -> None:
        self.world.power_off(name)

    @rule(name=st.sampled_from(NODES))
    def power_on(self, name: str) -> None:
        node = self.world.nodes[name]
        node.power = node.agent = True

    @rule(name=st.sampled_from(NODES))
    def kill_agent_leave_container(self, name: str) -> None:
        self.world.nodes[name].agent = False

    @rule(name=st.sampled_from(NODES))
    def restart_agent(self, name: str) -> None:
        node = self.world.nodes[name]
        if node.power:
            node.agent = True
            node.forget()  # a restarted agent holds no lease (the watchdog file may)

    @rule(name=st.sampled_from(NODES), coord=st.booleans(), mysql=st.booleans(), peers=st.booleans())
    def partition(self, name: str, coord: bool, mysql: bool, peers: bool) -> None:
        node = self.world.nodes[name]
        node.cut_coord, node.cut_mysql, node.cut_peers = coord, mysql, peers

    @rule(mysql=st.booleans(), peers=st.booleans())
    def isolate_the_writer(self, mysql: bool, peers: bool) -> None:
        writer = self.world.durable.cluster.writer
        if writer is not None:
            node = self.world.nodes[writer]
            node.cut_coord, node.cut_mysql, node.cut_peers = True, not mysql, peers

    @rule(name=st.sampled_from(NODES))
    def heal(self, name: str) -> None:
        node = self.world.nodes[name]
        node.cut_coord = node.cut_mysql = node.cut_peers = False

    @rule(name=st.sampled_from(NODES), ok=st.booleans())
    def mount(self, name: str, ok: bool) -> None:
        self.world.nodes[name].mount_ok = ok

    @rule(seconds=st.floats(min_value=0.5, max_value=8.0))
    def leader_cannot_renew(self, seconds: float) -> None:
        self.world.renewals_fail_until = self.world.now + seconds

    @rule()
    def coordinator_crash(self) -> None:
        self.world.coord_up = False
        self.world.memory = None

    @precondition(lambda self: not self.world.coord_up)
    @rule()
    def coordinator_start(self) -> None:
        self.world.coord_up = True

    @rule(back=st.integers(min_value=1, max_value=3), writer=st.sampled_from((None, *NODES)))
    def mysql_restored_from_an_older_backup(self, back: int, writer: str | None) -> None:
        """The cluster row goes back to an older epoch (and whatever writer it named then): nodes have seen
        epochs above it, and the leader must heal by committing one above them all."""
        w = self.world
        c = w.durable.cluster
        w.durable = replace(w.durable, cluster=replace(c, epoch=max(0, c.epoch - back), writer=writer))
        w.epochs_seen = []  # the one time the committed epoch goes down: by hand, outside the coordinator

    @invariant()
    def never_two_writers(self) -> None:
        assert not self.world.overlaps(), self.world.overlaps()

    @invariant()
    def epochs_only_grow(self) -> None:
        seen = self.world.epochs_seen
        assert all(a <= b for a, b in itertools.pairwise(seen))

    def teardown(self) -> None:
        # Heal everything: the cluster must come back to exactly one writer, the one MySQL names.
        w = self.world
        w.coord_up = True
        for node in w.nodes.values():
            node.power = node.agent = node.mount_ok = True
            node.cut_coord = node.cut_mysql = node.cut_peers = False
        for _ in range(int(120 / TICK)):
            w.step()
        assert not w.overlaps()
        writers = [n.name for n in w.nodes.values() if n.container == "rw"]
        assert writers == [w.durable.cluster.writer], (writers, w.durable.cluster, w.memory)


TestClusterUnderFaults = ClusterUnderFaults.TestCase
TestClusterUnderFaults.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_coordinator_restarts_never_demote_a_healthy_writer() -> None:
    w = World()
    for _ in range(int(15 / TICK)):
        w.step()
    writer = w.durable.cluster.writer
    assert writer is not None and w.nodes[writer].container == "rw"
    since = w.nodes[writer].rw_since
    for _ in range(5):
        w.coord_up, w.memory = False, None
        for _ in range(int(2 / TICK)):
            w.step()
        w.coord_up = True
        for _ in range(int(10 / TICK)):
            w.step()
    assert w.nodes[writer].rw_since == since, "the writer's rw run was interrupted"
    assert w.durable.cluster.writer == writer and not w.overlaps()


def test_a_writer_power_off_fails_over_and_the_old_one_is_fenced() -> None:
    w = World()
    for _ in range(int(15 / TICK)):
        w.step()
    old = w.durable.cluster.writer
    assert old is not None
    w.nodes[old].cut_coord = w.nodes[old].cut_peers = True  # alive, writing, unreachable but via MySQL
    w.nodes[old].cut_mysql = True
    for _ in range(int(20 / TICK)):
        w.step()
    new = w.durable.cluster.writer
    assert new != old and w.nodes[new].container == "rw"
    assert w.nodes[old].container is None
    assert not w.overlaps()


def test_a_writer_that_renews_from_mysql_until_the_bump_is_fenced_until_its_last_row_read_ran_out() -> None:
    w = World()
    for _ in range(int(15 / TICK)):
        w.step()
    old = w.durable.cluster.writer
    assert old is not None
    w.nodes[old].cut_coord = w.nodes[old].cut_peers = True  # cut off from all but MySQL: it keeps renewing
    for _ in range(int(30 / TICK)):
        w.step()
    new = w.durable.cluster.writer
    assert new != old and w.nodes[new].container == "rw"
    assert w.nodes[old].container is None
    assert not w.overlaps(), w.overlaps()
