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
import logging
import re
import time
from dataclasses import replace

from coordinator.assignments import lease_to_grant_ms
from coordinator.coordstate import Published
from coordinator.core import Decision, Memory, abandoned, committed, decide
from coordinator.forget import NodeForgetting
from coordinator.model import ROLE_CHANGES, Assignment, Durable, Event, Report
from coordinator.phases import progress_event
from coordinator.publishing import Publishing
from coordinator.registration import NodeRegistration
from coordinator.storeapi import NotLeader, StoreError

log = logging.getLogger("jfs_milvus.coordinator")

PHASE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120)
# A leader that has completed no decision for this many ticks says so (status, why), and when MySQL still
# renews its leadership (so the lease would never lapse by itself), steps down and stays off the lead for
# RESIGNED_FOR_LEASES of its leader lease, so that another coordinator can lead.
STALE_DECISION_TICKS = 5
RESIGNED_FOR_LEASES = 2.0


class Coordinator(Publishing, NodeRegistration, NodeForgetting):
    """The coordinator: leads or follows, ticks, answers reports (coordinator/coordstate.py holds its state)."""

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

    # -- the tick -----------------------------------------------------------------------------------------
    def tick(self) -> str:
        """One tick; whatever it throws, a leader that decides nothing for STALE_DECISION_TICKS says so and
        steps down rather than keep a lease it does nothing with."""
        try:
            with self.tick_lock:
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
            # The change in progress, recorded once committed and updated as its phases go by.
            progress = progress_event(decision.memory.transition, time.monotonic(), time.time())
            if progress is not None:
                recorded = self._transition_events.get(progress.epoch)
                if recorded is None:
                    self._transition_events[progress.epoch] = self.store.add_event(self.leadership, progress)
                    self._phases_recorded[progress.epoch] = len(progress.phases)
                elif self._phases_recorded.get(progress.epoch) != len(progress.phases):
                    self.store.update_event(self.leadership, recorded, progress.phases, progress.reason)
                    self._phases_recorded[progress.epoch] = len(progress.phases)
        except NotLeader:
            self._step_down()
        except StoreError as exc:
            self._error(f"could not record events: {exc}")

    def _count_phases(self, event: Event) -> None:
        for (name, at), (_, before) in zip(event.phases[1:], event.phases, strict=False):
            self.counters.phase_seconds.setdefault(name, []).append(max(0.0, at - before))

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
            # (fence.lease_ends_by), and a report delayed in gRPC must not hide a later one already answered.
            before = self.reports.get(report.node)
            if before is None or report.received_at >= before.received_at:
                self.reports[report.node] = report
        published = self.published
        assignment = published.assignments.get(report.node)
        if assignment is None:
            return True, None
        if assignment.lease_ms > 0:
            # Measured from now: the same rule as the decision's (assignments.lease_to_grant_ms), or none while a change
            # of writer is being committed.
            left = leadership.left_s(time.monotonic())
            lease_ms = lease_to_grant_ms(assignment.lease_ms / 1000, left, self.config.timing)
            if published.leases_withheld:
                lease_ms = 0
            if lease_ms != assignment.lease_ms:
                assignment = replace(assignment, lease_ms=lease_ms)
        return True, assignment
