"""The coordinator's loop: lead (or follow), decide, commit, publish; each tick ends in one sentence.

Every `tick_s`: renew or win the leadership row in MySQL; as leader, load the durable state, run the pure
`decide` on the latest reports, commit a change of writer to MySQL before anything else, then publish the
assignments that the Report handler answers with, record events, and announce a new writer on Redis.

The Report handler never waits for the tick: it answers from `Coordinator.published`, one immutable snapshot
replaced by a single assignment. Why that keeps commit-before-tell and the fence sound, while a change of
writer is being committed and reports keep arriving:

- the new epoch and roles are only in the snapshot published after `change_writer` returned, so no node
  hears of them before they are durable;
- before the commit starts, the snapshot is replaced by one that grants no lease (`leases_withheld`); a lease
  runs from when the node sent its report, so a lease from the old snapshot was asked for before that
  replacement, hence before the commit, and ends before commit + lease, which is what the fence waits out.
  A lease_ms of 0 renews nothing (the node's current lease runs on unchanged: agent.lease.after_rw_answer).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from jfsmilvus.common.logsetup import LogContext
from jfsmilvus.common.milvus1 import MILVUS_PORT

from coordinator.config import CoordinatorConfig
from coordinator.configanswer import ConfigAnswers
from coordinator.core import (
    Decision,
    Memory,
    Request,
    Transition,
    abandoned,
    committed,
    decide,
    forget_refusal,
    lease_to_grant_ms,
    node_endpoint,
    validate_request,
    with_asker,
    without_node,
)
from coordinator.model import ROLE_CHANGES, Assignment, Discovery, Durable, Event, Report
from coordinator.rolloutrun import RolloutRunner
from coordinator.store import ClusterStore, Leadership, MysqlSettings, NotLeader, StoreError

log = logging.getLogger("jfs_milvus.coordinator")

PHASE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120)
# While it leads, only this coordinator writes the cluster row and the nodes table, and it drops its copy after
# each write; the copy is reloaded at least this often anyway, to see edits made by hand in MySQL.
DURABLE_REFRESH_S = 1.0
# A leader that has completed no decision for this many ticks says so (status, why), and when MySQL still
# renews its leadership (so the lease would never lapse by itself), steps down and stays off the lead for
# RESIGNED_FOR_LEASES of its leader lease, so that another coordinator can lead.
STALE_DECISION_TICKS = 5
RESIGNED_FOR_LEASES = 2.0


class ForgetRefused(Exception):
    """A node must not be forgotten now; the message is the one-line reason."""


class UnknownNode(ForgetRefused):
    """The node to forget is neither in MySQL nor heard from, and was never forgotten."""


@dataclass(frozen=True)
class ForgetOutcome:
    forgotten: bool  # False: it was forgotten already, nothing changed
    message: str


def mysql_settings(config: CoordinatorConfig) -> MysqlSettings:
    ref = config.mysql
    return MysqlSettings(
        host=ref.host,
        port=ref.port,
        user=ref.user,
        database=ref.database,
        password=ref.password.load() if ref.password else None,
        connect_timeout_s=ref.connect_timeout_s,
    )


@dataclass
class Counters:
    failovers: int = 0
    switchovers: int = 0
    phase_seconds: dict[str, list[float]] = field(default_factory=dict)
    decide_seconds: list[float] = field(default_factory=list)  # the last 1000 decisions
    decide_count: int = 0
    decide_total_s: float = 0.0


@dataclass(frozen=True)
class Published:
    """What the Report handler answers with, from the last committed decision."""

    durable: Durable | None = None
    assignments: dict[str, Assignment] = field(default_factory=dict)
    discovery: Discovery | None = None
    why: str = "this coordinator does not lead"
    transition: Transition | None = None
    leases_withheld: bool = False  # a change of writer is being committed: answers renew no lease


class Coordinator:
    def __init__(
        self,
        config: CoordinatorConfig,
        store: ClusterStore | None = None,
        publish: Callable[[dict[str, object]], None] | None = None,
        push: Callable[[Report | None, Assignment, int], None] | None = None,
        log_context: LogContext | None = None,
    ):
        self.config = config
        self.store = store or ClusterStore(mysql_settings(config), config.cluster)
        self.publish_writer_change = publish
        self.push = push
        self.log_context = log_context
        self.leadership: Leadership | None = None
        self.memory: Memory | None = None
        self.reports: dict[str, Report] = {}
        self.published = Published()
        self.counters = Counters()
        self.leader_seen: tuple[str | None, str] = (None, "")
        self.last_error: str | None = None
        # Serializes replacing `published` and `memory` with readers that need both (operator requests). The
        # Report handler does not take it: it reads `published` once (see the module docstring).
        self.answer_lock = threading.Lock()
        self._state_lock = threading.Lock()
        # Held for a whole tick, and while a node is forgotten: a tick must not register again, from a report
        # it took before, a node whose row was just deleted, nor publish memory that still holds it.
        self._tick_lock = threading.Lock()
        self._last_why = ""
        self._transition_events: dict[int, int] = {}  # transition epoch -> event id
        self._phases_recorded: dict[int, int] = {}
        self._last_renew = 0.0
        # The durable state as last loaded: (state, generation it was loaded at, monotonic time of the load).
        self._durable: tuple[Durable, int, float] | None = None
        self._durable_generation = 0  # bumped after every write that may change it
        self.pending_request: Request | None = None  # an operator's request, taken by the next tick
        self.last_completed: Event | None = None
        # The last request the core refused when it came to decide it (its `refused` event), and when (monotonic).
        self.last_refused: tuple[Event, float] | None = None
        self.observations: dict[
            str, tuple[object, float]
        ] = {}  # node -> (latest NodeObservation, unix time)  # the last role change that finished, with all its phases
        self.decided_at: float | None = None  # monotonic time of this leader's last completed decision
        self._resigned_until = 0.0  # after stepping down for want of decisions: do not take the lead before
        self._unregistered: dict[str, str] = {}  # node -> why its registration failed (logged once per reason)
        self.last_stale = ""  # why this coordinator last stepped down for want of decisions ("" since it decided)
        self.cluster_config = ConfigAnswers()  # the cluster config each Report's answer carries (configanswer.py)
        self.rollouts = RolloutRunner(self)  # the rolling upgrade, one step per tick (coordinator/rolloutrun.py)

    # -- leadership ---------------------------------------------------------------------------------------
    def _lead(self, now: float) -> bool:
        if self.leadership is None and now < self._resigned_until:
            self._follow()
            return False
        renew_every = self.config.leader_lease_s / 4
        if self.leadership is not None and now - self._last_renew < renew_every and self.leadership.valid(now):
            return True
        try:
            got = self.store.acquire_or_renew(
                self.config.coordinator_id, self.config.advertise, self.config.leader_lease_s, self.leadership
            )
        except StoreError as exc:
            self._error(f"cannot reach MySQL to renew leadership: {exc}")
            got = self.leadership if self.leadership is not None and self.leadership.valid(time.monotonic()) else None
        else:
            self._last_renew = now
        if got is None and self.leadership is not None:
            log.warning(
                "lost leadership (term %d): another coordinator leads or MySQL is unreachable", self.leadership.term
            )
            self._step_down()
        elif got is not None and (self.leadership is None or got.term != self.leadership.term):
            log.info("leading the cluster %s at term %d", self.config.cluster, got.term)
            with self._state_lock:
                self.reports = {}
            self.observations = {}
            self.memory = Memory(leader_since=time.monotonic())
            self.decided_at = time.monotonic()
            self._transition_events = {}
            self._invalidate_durable()
        self.leadership = got
        if got is None:
            self._follow()
        return got is not None

    def _step_down(self) -> None:
        with self.answer_lock:
            self._step_down_locked()

    def _step_down_locked(self) -> None:
        """Step down with answer_lock already held (threading.Lock is not reentrant)."""
        self.leadership = None
        self.memory = None
        self.published = Published()
        if self.log_context is not None:
            self.log_context.role = "follower"

    def _follow(self) -> None:
        try:
            leader, address, _term, left = self.store.leader_info()
        except StoreError as exc:
            self._error(f"cannot read who leads: {exc}")
            return
        self.leader_seen = (leader if left > 0 else None, address if left > 0 else "")

    def _error(self, message: str) -> None:
        if message != self.last_error:
            log.error("%s", message)
        self.last_error = message

    # -- the tick -----------------------------------------------------------------------------------------
    def tick(self) -> str:
        """One tick; whatever it throws, a leader that decides nothing for STALE_DECISION_TICKS says so and
        steps down rather than keep a lease it does nothing with."""
        try:
            with self._tick_lock:
                outcome = self._tick()
        except Exception as exc:
            self._error(f"the tick failed: {type(exc).__name__}: {str(exc)[:200]}")
            outcome = "tick failed"
        self._watch_decisions(outcome)
        return outcome

    def _watch_decisions(self, outcome: str) -> None:
        leadership, decided = self.leadership, self.decided_at
        if leadership is None or decided is None:
            return
        now = time.monotonic()
        stale_s = now - decided
        if stale_s < STALE_DECISION_TICKS * self.config.tick_s:
            return
        why = f"No decision completed for {stale_s:.1f}s ({self.last_error or outcome})"
        if self._last_renew <= decided:
            # MySQL has renewed no lead since either: the lead lapses by itself; until then, say so rather
            # than the last decision's sentence.
            with self.answer_lock:
                self.published = replace(self.published, why=f"{why}; the lead lapses unless MySQL answers.")
            return
        log.error("%s: stepping down so that another coordinator can lead", why)
        with contextlib.suppress(StoreError):
            self.store.release(leadership)
        self._resigned_until = now + RESIGNED_FOR_LEASES * self.config.leader_lease_s
        self._step_down()
        self.leader_seen = (None, "")
        self.last_stale = f"{why}; this coordinator stepped down at term {leadership.term}."

    def _tick(self) -> str:
        now = time.monotonic()
        if not self._lead(now):
            return "following"
        assert self.leadership is not None and self.memory is not None
        self.cluster_config.refresh(self.store, now)
        # One snapshot of the reports serves registration and the decision, so that every node the decision
        # can name (e.g. as the new writer) is in the nodes table the commit checks against.
        with self._state_lock:
            reports = dict(self.reports)
        try:
            durable = self._load_durable(now)
            durable, unregistered = self._register_nodes(durable, reports)
        except NotLeader:
            self._step_down()
            return "lost leadership"
        except StoreError as exc:
            self._error(f"cannot load the cluster state: {exc}")
            return "MySQL unreachable"
        # A node whose registration failed takes no part in this decision; the others do.
        for name in unregistered:
            reports.pop(name, None)
        with self._state_lock:
            if self.pending_request is not None:
                self.memory = replace(self.memory, request=self.pending_request)
                self.pending_request = None
        started = time.perf_counter()
        now = time.monotonic()
        decision = self._decide(durable, self.memory, reports, now)
        self._measure(time.perf_counter() - started)
        previous = self.published.assignments
        if decision.change_writer is not None:
            with self.answer_lock:
                # No answer may renew a lease from here until the committed decision is published.
                self.published = replace(self.published, leases_withheld=True)
            result = self._commit(durable, decision, reports)
            if result is None:
                return "lost leadership"
            durable, decision = result
            with self.answer_lock:
                self._publish(durable, decision)
        else:
            with self.answer_lock:
                self._publish(durable, decision)
        self.decided_at = time.monotonic()
        self.last_stale = ""
        self._push_changes(previous, decision.assignments, reports)
        self._record(decision)
        self.rollouts.tick(durable, decision)
        if self.log_context is not None:
            self.log_context.epoch = durable.cluster.epoch
            self.log_context.role = "leader"
        # One line per change of situation: countdowns ("in 2.1s") do not make a new sentence.
        gist = re.sub(r"\d+(\.\d+)?", "#", decision.why)
        if gist != self._last_why:
            log.info("%s", decision.why)
            self._last_why = gist
        return decision.why

    def _commit(
        self, durable: Durable, decision: Decision, reports: dict[str, Report]
    ) -> tuple[Durable, Decision] | None:
        """Write epoch+1 and the new writer to MySQL, then decide again on the committed state."""
        assert self.leadership is not None and decision.change_writer is not None
        change = decision.change_writer
        try:
            epoch = self.store.change_writer(
                self.leadership, change.expected_epoch, change.new_writer, change.epoch or None
            )
        except StoreError as exc:
            self._invalidate_durable()
            # The write may or may not have committed (a broken connection hides the outcome). Stepping down
            # is the safe answer either way: the next term starts by fencing for a full lease unless the
            # writer MySQL names is already running rw.
            self.memory = abandoned(decision.memory)
            log.error("could not commit the new writer %s, stepping down: %s", change.new_writer, exc)
            self._step_down()
            return None
        self._invalidate_durable()  # the next tick reads the committed row back
        now = time.monotonic()
        old = durable.cluster.writer
        memory = committed(decision.memory, epoch, now)
        durable = replace(durable, cluster=replace(durable.cluster, writer=change.new_writer, epoch=epoch))
        t = memory.transition
        log.info(
            "committed epoch %d: writer %s -> %s (%s)",
            epoch,
            old,
            change.new_writer,
            t.reason if t else "no transition",
        )
        if t is not None and t.kind == "failover":
            self.counters.failovers += 1
        elif t is not None and t.kind == "switchover":
            self.counters.switchovers += 1
        if change.new_writer is not None:
            self._announce(durable, old, change.new_writer, epoch, reports)
        again = self._decide(durable, memory, reports, now)
        if again.change_writer is not None:  # cannot happen: the transition is committed now
            log.error("decision asked for a second change of writer in one tick; holding it")
            again = replace(again, change_writer=None)
        # What the first decision recorded (the end of a standing condition the change ends) is recorded too.
        return durable, replace(again, events=decision.events + again.events)

    def _push_changes(
        self, previous: Mapping[str, Assignment], assignments: Mapping[str, Assignment], reports: dict[str, Report]
    ) -> None:
        """Tell a node at once, rather than at its next report, when its role, epoch or writer changed: the old
        writer stops sooner, the new one asks for its lease at once, readers watch the new writer. Nothing
        depends on a push arriving; the next report's answer says the same."""
        if self.push is None or self.leadership is None:
            return
        for name, now_told in assignments.items():
            before = previous.get(name)
            if before is None or before is now_told:  # decide keeps an unchanged node's object: most, every tick
                continue
            if (before.role, before.epoch, before.writer) != (now_told.role, now_told.epoch, now_told.writer):
                self.push(reports.get(name), now_told, self.leadership.term)

    def _publish(self, durable: Durable, decision: Decision) -> None:
        self.memory = decision.memory
        for event in decision.events:
            if event.kind in ROLE_CHANGES:
                self.last_completed = event
            elif event.kind == "refused":
                self.last_refused = (event, time.monotonic())
        self.published = Published(
            durable=durable,
            assignments=dict(decision.assignments),
            discovery=decision.discovery,
            why=decision.why,
            transition=decision.memory.transition,
        )

    def _invalidate_durable(self) -> None:
        self._durable_generation += 1

    def _decide(self, durable: Durable, memory: Memory, reports: dict[str, Report], now: float) -> Decision:
        """The pure core on this leader's state; the last published assignments let it reuse unchanged ones."""
        assert self.leadership is not None
        return decide(
            durable,
            memory,
            reports,
            now,
            self.config.timing,
            self.leadership.left_s(now),
            time.time(),
            self.published.assignments,
        )

    def _load_durable(self, now: float) -> Durable:
        """The durable state: the copy from an earlier tick unless something was written since, or it is older
        than DURABLE_REFRESH_S (a load costs a few round trips to MySQL; the store reads the node rows again only
        when they changed)."""
        generation = self._durable_generation
        cached = self._durable
        if cached is not None and cached[1] == generation and now - cached[2] < DURABLE_REFRESH_S:
            return cached[0]
        durable = self.store.load()
        self._durable = (durable, generation, now)
        return durable

    def _register_nodes(self, durable: Durable, reports: dict[str, Report]) -> tuple[Durable, set[str]]:
        """Nodes seen in reports but not in MySQL (or with a new address) are written there; returns the state
        and the nodes whose write failed (each logged once per reason), which must not stop the others."""
        assert self.leadership is not None
        changed = False
        failed: set[str] = set()
        nodes = durable.nodes
        for name, report in reports.items():
            record = nodes.get(name)
            if record is None or record.address != report.address or record.hosts_mishards != report.hosts_mishards:
                address, hosts = report.address, report.hosts_mishards
                self._invalidate_durable()
                try:
                    self.store.upsert_node(self.leadership, name, address, hosts)
                except NotLeader:
                    raise
                except StoreError as exc:
                    failed.add(name)
                    if self._unregistered.get(name) != str(exc):
                        log.error("cannot register node %s; deciding for the others without it: %s", name, exc)
                    self._unregistered[name] = str(exc)
                    continue
                self._unregistered.pop(name, None)
                log.info("registered node %s at %s%s", name, address, " (hosts Mishards)" if hosts else "")
                changed = True
        return (self._load_durable(time.monotonic()) if changed else durable), failed

    def _measure(self, seconds: float) -> None:
        self.counters.decide_count += 1
        self.counters.decide_total_s += seconds
        samples = self.counters.decide_seconds
        samples.append(seconds)
        del samples[:-1000]

    # -- events ------------------------------------------------------------------------------------------
    def _record(self, decision: Decision) -> None:
        assert self.leadership is not None
        try:
            for event in decision.events:
                existing = self._transition_events.pop(event.epoch, None) if event.kind in ROLE_CHANGES else None
                if existing is not None:
                    self.store.update_event(self.leadership, existing, event.phases, event.reason)
                else:
                    self.store.add_event(self.leadership, event)
                if event.phases:
                    self._count_phases(event)
                log.info("event %s: %s", event.kind, event.reason)
            t = decision.memory.transition
            if t is not None and t.committed_at is not None:
                phases = tuple((name, time.time() - (time.monotonic() - at)) for name, at in t.phases)
                event = Event(
                    kind=t.kind, reason=t.reason, node=t.new, epoch=t.epoch, phases=phases, at_unix=time.time()
                )
                if t.epoch not in self._transition_events:
                    self._transition_events[t.epoch] = self.store.add_event(self.leadership, event)
                    self._phases_recorded[t.epoch] = len(phases)
                elif self._phases_recorded.get(t.epoch) != len(phases):
                    self.store.update_event(self.leadership, self._transition_events[t.epoch], phases, t.reason)
                    self._phases_recorded[t.epoch] = len(phases)
        except NotLeader:
            self._step_down()
        except StoreError as exc:
            self._error(f"could not record events: {exc}")

    def _count_phases(self, event: Event) -> None:
        for (name, at), (_, before) in zip(event.phases[1:], event.phases, strict=False):
            self.counters.phase_seconds.setdefault(name, []).append(max(0.0, at - before))

    # -- announcing a new writer ------------------------------------------------------------------------------
    def _announce(self, durable: Durable, old: str | None, new: str, epoch: int, reports: dict[str, Report]) -> None:
        if self.publish_writer_change is None:
            return
        address, port = node_endpoint(durable, reports, new) or ("", MILVUS_PORT)
        message: dict[str, object] = {
            "event": "switch-writer",
            "cluster": self.config.cluster,
            "old": old,
            "new": new,
            "epoch": epoch,
            "address": f"{address}:{port}",
            "at": time.time(),
        }
        try:
            self.publish_writer_change(message)
        except Exception as exc:  # a broken announcement never stops a failover
            self._error(f"could not announce the new writer on Redis: {exc}")

    # -- the Report handler -------------------------------------------------------------------------------
    def receive(self, report: Report) -> tuple[bool, Assignment | None]:
        """Record a node's report; (leading, its assignment with a lease measured from now).

        Never waits for the tick: `published` is read once, after `leadership` (see the module docstring for
        why an answer from a snapshot older than a commit in progress is still safe)."""
        leadership = self.leadership
        if leadership is None or self.memory is None:
            return False, None
        with self._state_lock:
            # Only a newer report replaces one: the fence counts the last lease granted from the latest report
            # (core._lease_ends_by), and a report delayed in gRPC must not hide a later one already answered.
            before = self.reports.get(report.node)
            if before is None or report.received_at >= before.received_at:
                self.reports[report.node] = report
        published = self.published
        assignment = published.assignments.get(report.node)
        if assignment is None:
            return True, None
        if assignment.lease_ms > 0:
            # Measured from now: the same rule as the decision's (core.lease_to_grant_ms), or none while a change
            # of writer is being committed.
            left = leadership.left_s(time.monotonic())
            lease_ms = lease_to_grant_ms(assignment.lease_ms / 1000, left, self.config.timing)
            if published.leases_withheld:
                lease_ms = 0
            if lease_ms != assignment.lease_ms:
                assignment = replace(assignment, lease_ms=lease_ms)
        return True, assignment

    # -- operator actions ---------------------------------------------------------------------------------
    def request(self, request: Request) -> str | None:
        """Queue a switchover or failover for the next tick; the refusal, or None."""
        with self.answer_lock:
            if self.memory is None or self.published.durable is None:
                return "this coordinator does not lead"
            with self._state_lock:
                reports = dict(self.reports)
            refusal = validate_request(
                self.published.durable, self.memory, reports, request, time.monotonic(), self.config.timing
            )
            if refusal is None:
                with self._state_lock:
                    self.pending_request = request
        return refusal

    def set_paused(self, paused: bool, reason: str, by: str = "") -> None:
        self._leader_action(lambda lead: self.store.set_paused(lead, paused, reason))
        self._log_event("paused" if paused else "resumed", reason or ("paused" if paused else "resumed"), by=by)

    def set_maintenance(self, node: str, on: bool, reason: str, by: str = "") -> None:
        self._leader_action(lambda lead: self.store.set_maintenance(lead, node, on, reason))
        self._log_event("maintenance", f"{node} maintenance {'on' if on else 'off'}: {reason}", node, by)

    def set_priority(self, node: str, priority: int, by: str = "") -> None:
        self._leader_action(lambda lead: self.store.set_priority(lead, node, priority))
        self._log_event("priority", f"{node} priority set to {priority}", node, by)

    def forget_node(self, node: str, reason: str, by: str = "") -> ForgetOutcome:
        """Remove a node that is gone: its row in MySQL, its report, observation and memory here.

        ForgetRefused (UnknownNode for a name never known) with the one-line reason; StoreError when MySQL
        failed or holds it as the writer; NotLeader when this coordinator does not lead."""
        with self._tick_lock:
            leadership, memory = self.leadership, self.memory
            if leadership is None or memory is None:
                raise NotLeader("this coordinator does not lead")
            durable = self.store.load()
            reports = self.snapshot_reports()
            if node not in durable.nodes and node not in reports:
                earlier = self.store.events(limit=1, kinds=("forget",), node=node)
                if not earlier:
                    raise UnknownNode(f"{node} is not a known node")
                at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(earlier[-1].at_unix))
                return ForgetOutcome(False, f"{node} was already forgotten at {at}: {earlier[-1].reason}")
            with self._state_lock:
                pending = self.pending_request
            why_not = forget_refusal(durable, memory, reports, node, time.monotonic(), self.config.timing, pending)
            if why_not is not None:
                raise ForgetRefused(why_not)
            self._leader_action(lambda lead: self.store.forget_node(lead, node))
            with self._state_lock:
                self.reports.pop(node, None)
            self.observations.pop(node, None)
            self._unregistered.pop(node, None)
            with self.answer_lock:
                if self.memory is not None:
                    self.memory = without_node(self.memory, node)
                # What status and the Report handler read until the next tick must not hold it either.
                published = self.published
                kept_durable = published.durable
                if kept_durable is not None:
                    kept_nodes = {name: rec for name, rec in kept_durable.nodes.items() if name != node}
                    kept_durable = replace(kept_durable, nodes=kept_nodes)
                kept = {name: a for name, a in published.assignments.items() if name != node}
                self.published = replace(published, durable=kept_durable, assignments=kept)
            self._log_event("forget", f"{node} forgotten: {reason or 'no reason given'}", node, by)
        return ForgetOutcome(True, f"{node} forgotten; if its agent reports again it is registered as a new node")

    def _leader_action(self, action: Callable[[Leadership], object]) -> None:
        leadership = self.leadership
        if leadership is None:
            raise NotLeader("this coordinator does not lead")
        try:
            action(leadership)
        finally:
            self._invalidate_durable()  # after the write (even a failed one: its outcome is unknown)

    def _log_event(self, kind: str, reason: str, node: str | None = None, by: str = "") -> None:
        reason = with_asker(reason, by)
        leadership = self.leadership
        epoch = self.published.durable.cluster.epoch if self.published.durable else 0
        if leadership is not None:
            self.store.add_event(
                leadership, Event(kind=kind, reason=reason, node=node, epoch=epoch, at_unix=time.time())
            )
        log.info("%s: %s", kind, reason)

    def snapshot_reports(self) -> dict[str, Report]:
        with self._state_lock:
            return dict(self.reports)


def redis_publisher(url: str, password: str | None, channel: str) -> Callable[[dict[str, object]], None]:
    """PUBLISH each writer change as JSON on `channel`, as Sentinel's +switch-master announces a new master."""
    import redis

    client = redis.Redis.from_url(url, password=password, socket_timeout=1.0, socket_connect_timeout=1.0)

    def publish(message: dict[str, object]) -> None:
        client.publish(channel, json.dumps(message, sort_keys=True))

    return publish
