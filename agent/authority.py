"""What this node is told to be and what it may run: the assignment, the writer lease and the highest epoch seen.

The one holder of the three, shared by the loop (which reads them every cycle), the reporter thread (the leading
coordinator's answers, the MySQL cluster row's renewals) and the API (`Assign` pushes), under one lock that a slow
cycle never holds long. The lease rules themselves are `agent.lease`'s; this module applies them to what it holds.

Where the assignment comes from:
- with `coordinators` configured (coordinated mode), from the leading coordinator's answers to the reports and from
  `Assign` pushes; the local assignment file is ignored. A rw assignment is only as good as this node's lease.
  Until the first answer after a start, the node keeps the role its running container has (a writer only under
  the lease it left on disk);
- without coordinators, from the local file (`jfs-milvus-agent assign`) and `Assign` pushes, with no lease: the
  operator holds the one-writer rule, as in the manual procedure.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import replace

from jfsmilvus.common.wirecheck import assignment_problem

from agent.assignment import UNASSIGNED, Assignment, AssignmentError, LocalAssignmentFile, judge_assignment
from agent.clock import ClockSample, best_estimate, clock_sample, with_sample
from agent.config import AgentConfig
from agent.coordination import LeaderAnswer
from agent.lease import (
    Lease,
    after_rw_answer,
    holds_writer_lease,
    lapse_text,
    lease_for,
    lease_now,
    manual_writer_may_run,
    renewed_by_row,
    stop_timeout_s,
    writer_may_run,
)
from agent.milvus.container import ContainerState
from agent.milvus.leasewatch import LEASE_FILE_NAME, LeaseFile, read_lease_file, write_lease_file
from agent.milvus.situation import LEASE_LAPSED, Action, Step
from agent.milvus.spec import conf_dir
from agent.observation import WriterLease
from agent.state import LocalState, load_state, save_state
from agent.wire import assignment_from_wire

log = logging.getLogger("jfs_milvus.agent")

_SECONDS = re.compile(r"\d+(\.\d+)?s\b")


class Authority:
    """The assignment, lease and epoch of this node. `wake` is set when what the loop acts on changes;
    `report_soon` asks the reporter for a report now (a pushed rw assignment waits on a report's answer)."""

    def __init__(
        self,
        config: AgentConfig,
        wake: threading.Event,
        report_soon: Callable[[], None],
        note_error: Callable[[str], None],
    ) -> None:
        self.config = config
        self._wake = wake
        self._report_soon = report_soon
        self._note_error = note_error
        # Called with each answer taken (after the lock): what else it carries (the cluster config) is the agent's.
        self.on_answer: Callable[[LeaderAnswer], None] = lambda answer: None
        self.local_assignment = LocalAssignmentFile(config.state_dir)
        self.pushed: Assignment | None = None
        self.state: LocalState = load_state(config.state_dir)
        # The latest coordinator answer or push (self.pushed), the lease and the epoch state are guarded by it.
        self.lock = threading.Lock()
        self.leader_term_seen = 0  # the highest leader term heard, in a push or a report's answer
        self.clock: tuple[ClockSample, ...] = ()  # this node's clock against the leader's, from report answers
        # For /metrics: writer lease renewals by where they came from, and renewals due that did not happen.
        self.lease_renewals = {"coordinator": 0, "mysql": 0}
        self.lease_renewal_failures = 0
        self._renewal_note = ""
        self._last_no_renewal: str | None = None
        self._last_answer: tuple[str, int, str, int] | None = None
        self._last_answer_refusal: str | None = None
        self._last_refusal: str | None = None
        self._assignment_error: str | None = None  # the local assignment file's, as last logged
        self._local_file_ignored = False
        self._last_rw: tuple[float | None] | None = None  # the deadline of the last rw assignment (manual mode)
        self.lease: Lease | None = self._restore_lease()
        if self.lease is not None:
            # Kept (and renewable from MySQL) until a coordinator answers: an agent restart during a coordinator
            # outage does not demote a healthy writer.
            self.pushed = Assignment(
                role="rw",
                epoch=self.lease.epoch,
                source=f"lease file {self.lease_file}",
                reason="the writer lease a previous agent process left, until a coordinator answers",
                writer=config.node_name,
                lease_ms=self.lease.lease_ms,
            )

    @property
    def coordinated(self) -> bool:
        return bool(self.config.coordinators)

    @property
    def lease_file(self) -> str:
        return os.path.join(conf_dir(self.config.milvus), LEASE_FILE_NAME)

    def reload(self, config: AgentConfig) -> None:
        self.config = config
        self.local_assignment = LocalAssignmentFile(config.state_dir)

    # -- the lease on disk, for the wrapper ------------------------------------------------------------------
    def _restore_lease(self) -> Lease | None:
        """The writer lease a previous agent process left on disk (same boot, same clock), if any."""
        if not self.config.coordinators:
            return None
        found = read_lease_file(self.lease_file)
        if found is None or found.epoch < self.state.highest_epoch:
            return None
        lease = Lease(
            found.epoch, found.lease_ms, found.deadline, "lease file (agent restart)", row_lease_ms=found.row_lease_ms
        )
        left = lease.left(lease_now())
        log.info("found a writer lease for epoch %d on disk with %.1fs left (%s)", lease.epoch, left, self.lease_file)
        return lease

    def save_lease(self) -> None:
        """Write the lease for the wrapper; called with `lock` held, at every grant and renewal."""
        if self.lease is None:
            return
        try:
            lease = self.lease
            write_lease_file(
                self.lease_file, LeaseFile(lease.deadline, lease.epoch, lease.lease_ms, lease.row_lease_ms)
            )
        except OSError as exc:
            # The wrapper then kills the writer at the old deadline: safe, and said here.
            self._note_error(f"lease file {self.lease_file} not written: {exc}")
            log.error(
                "lease file %s not written (the rw container stops at the old deadline): %s", self.lease_file, exc
            )

    # -- what comes in: pushes, answers, row renewals ------------------------------------------------------
    def push_assignment(self, assignment: Assignment, leader_term: int = 0) -> str | None:
        """An assignment from the API; returns why it was refused, or None when taken.

        A push from an older leader term than the last this agent heard (in a push or a report's answer) is
        refused: a deposed leader's late push must not undo what the current one said.
        In coordinated mode a pushed rw assignment carries no lease of its own: the writer starts once a
        report's answer grants one, so it reports at once, while a push that demotes acts at once."""
        with self.lock:
            refusal = None
            if leader_term < self.leader_term_seen:
                seen = self.leader_term_seen
                refusal = f"it comes from leader term {leader_term}, older than term {seen} already heard"
            else:
                self.leader_term_seen = leader_term
                refusal = judge_assignment(assignment, self.state.highest_epoch)
            if refusal is None:
                self._take(assignment, self.lease)
            lease = self.rw_lease()
        if refusal:
            log.warning("refused assignment %s at epoch %d: %s", assignment.role, assignment.epoch, refusal)
        elif self.coordinated and assignment.role == "rw" and (lease is None or not lease.valid(lease_now())):
            self._report_soon()
        return refusal

    def _take(self, assignment: Assignment, lease: Lease | None) -> None:
        """Make `assignment` and `lease` the current ones (the caller holds `lock`, and has judged the
        assignment). What the loop acts on changing wakes it now rather than at its next tick: the role, epoch or
        writer, or whether a writer's lease is valid (rule 17 holds a writer ready to start until it is)."""
        before = self._loop_cares_about()
        self.pushed, self.lease = assignment, lease
        self._remember_epoch(assignment.epoch)
        if self._loop_cares_about() != before:
            self._wake.set()

    def _loop_cares_about(self) -> tuple[str, int, str, bool, int] | None:
        a, lease = self.pushed, self.rw_lease()
        if a is None:
            return None
        return (a.role, a.epoch, a.writer, lease is not None and lease.valid(lease_now()), a.drain_id)

    def rw_lease(self) -> Lease | None:
        """The lease for the epoch this node is assigned rw at, live or lapsed; None when it is not assigned rw
        or holds no lease for that epoch (the caller holds `lock`). Only this lease lets a writer run."""
        a = self.pushed
        return None if a is None else lease_for(a.role, a.epoch, self.lease)

    def _remember_epoch(self, epoch: int) -> None:
        if epoch > self.state.highest_epoch:
            self.state = LocalState(highest_epoch=epoch)
            save_state(self.config.state_dir, self.state)

    def take_coordinator_answer(self, answer: LeaderAnswer) -> str | None:
        """The leader's answer: the assignment, and for the writer its lease from the request's send time."""
        assignment = assignment_from_wire(
            answer.assignment, source=f"coordinator {answer.coordinator}", default_reason="assigned by the coordinator"
        )
        self.clock = with_sample(
            self.clock, clock_sample(answer.coordinator, answer.sent_unix, answer.rtt_s, answer.leader_unix)
        )
        with self.lock:
            self.leader_term_seen = max(self.leader_term_seen, answer.leader_term)
            refusal = assignment_problem(answer.assignment) or judge_assignment(assignment, self.state.highest_epoch)
            if refusal is None and assignment.role == "rw" and assignment.writer not in ("", self.config.node_name):
                refusal = f"it assigns rw to this node but names {assignment.writer} as the writer"
            if refusal is None:
                self._take_answer(assignment, answer)
        self._say_answer(assignment, answer.coordinator, refusal)
        if refusal is None:
            self.on_answer(answer)
        return refusal

    def _take_answer(self, assignment: Assignment, answer: LeaderAnswer) -> None:
        """Take an accepted answer, and for the writer its lease (the caller holds `lock`)."""
        lease = self.lease
        if assignment.role == "rw":
            lease = after_rw_answer(
                lease,
                assignment.epoch,
                assignment.lease_ms,
                answer.sent_at,
                f"coordinator {answer.coordinator}",
                assignment.row_lease_ms,
            )
        self._take(assignment, lease)
        if assignment.role == "rw":
            if assignment.lease_ms > 0:
                self.lease_renewals["coordinator"] += 1
            self.save_lease()
            self._renewal_note = ""
            self._last_no_renewal = None

    def _say_answer(self, assignment: Assignment, coordinator: str, refusal: str | None) -> None:
        """One line per new answer or new refusal (a writer is answered several times per lease)."""
        if refusal is not None:
            if refusal != self._last_answer_refusal:
                log.warning(
                    "refused the assignment %s at epoch %d from coordinator %s: %s",
                    assignment.role,
                    assignment.epoch,
                    coordinator,
                    refusal,
                )
                self._last_answer_refusal = refusal
            return
        self._last_answer_refusal = None
        key = (assignment.role, assignment.epoch, assignment.writer, assignment.lease_ms)
        if key != self._last_answer:
            self._last_answer = key
            lease = f" with a {assignment.lease_ms / 1000:.1f}s lease" if assignment.role == "rw" else ""
            log.info(
                "coordinator %s assigns %s at epoch %d%s: %s",
                coordinator,
                assignment.role,
                assignment.epoch,
                lease,
                assignment.reason,
            )

    def granted_lease_ms(self) -> int | None:
        """The length of the lease the coordinator last granted for the epoch this node is assigned rw at; None
        when it holds none (the reporter reports more often while it does: agent.lease.report_period_s)."""
        with self.lock:
            lease = self.rw_lease()
        return lease.lease_ms if lease is not None else None

    def renewable_lease_s(self) -> float | None:
        """What one MySQL row read would renew this node's writer lease for; None when it holds none to renew
        (it must be assigned rw and hold a lease, live or lapsed, for that epoch)."""
        with self.lock:
            lease = self.rw_lease()
        return lease.row_renewal_ms / 1000 if lease is not None else None

    def renew_lease_from_row(self, writer: str | None, epoch: int, sent_at: float, silence_s: float) -> None:
        with self.lock:
            previous = self.lease
            renewed = renewed_by_row(self.lease, self.config.node_name, writer, epoch, sent_at)
            if isinstance(renewed, Lease):
                if renewed is not previous:  # a grant that runs longer still is left as it is
                    self.lease_renewals["mysql"] += 1
                self.lease = renewed
                self.save_lease()
                self._renewal_note = ""
                self._last_no_renewal = None
        if not isinstance(renewed, Lease):
            self.note_no_renewal(f"no coordinator answered for {silence_s:.1f}s and {renewed}")
            return
        if previous is None or previous.renewed_by != renewed.renewed_by:
            log.info(
                "renewed the writer lease for %.1fs from the MySQL cluster row (writer %s, epoch %d): "
                "no coordinator answered for %.1fs",
                renewed.row_renewal_ms / 1000,
                writer,
                epoch,
                silence_s,
            )

    def note_no_renewal(self, why: str) -> None:
        """The lease was due for renewal and was not renewed: say why, once per kind of reason."""
        self._renewal_note = why
        self.lease_renewal_failures += 1
        kind = _SECONDS.sub("Ns", why)
        if kind != self._last_no_renewal:
            self._last_no_renewal = kind
            lease = self.lease
            left = lease.left(lease_now()) if lease else 0.0
            log.warning("writer lease not renewed (%.1fs left): %s", left, why)

    # -- what the loop reads ---------------------------------------------------------------------------------
    def current_assignment(self, containers: tuple[ContainerState, ...] = ()) -> Assignment:
        if self.coordinated:
            return self._coordinated_assignment(containers)
        candidates = [a for a in (self._read_local_file(), self.pushed) if a is not None]
        if not candidates:
            return UNASSIGNED
        newest = max(candidates, key=lambda a: a.epoch)
        refusal = judge_assignment(newest, self.state.highest_epoch)
        if refusal:
            if refusal != self._last_refusal:
                log.warning("refused assignment %s at epoch %d: %s", newest.role, newest.epoch, refusal)
                self._last_refusal = refusal
            return replace(UNASSIGNED, epoch=self.state.highest_epoch, reason=refusal)
        with self.lock:
            self._remember_epoch(newest.epoch)
        return newest

    def _read_local_file(self) -> Assignment | None:
        try:
            local = self.local_assignment.read()
        except AssignmentError as exc:
            self._note_error(str(exc))
            if str(exc) != self._assignment_error:
                self._assignment_error = str(exc)
                log.error("local assignment ignored: %s", exc)
            return None
        self._assignment_error = None
        return local

    def _coordinated_assignment(self, containers: tuple[ContainerState, ...]) -> Assignment:
        """The coordinator's assignment, its rw lease read now; before any answer, the running container's role."""
        if not self._local_file_ignored and os.path.exists(self.local_assignment.path):
            log.warning(
                "ignoring %s: coordinators are configured and their assignment outranks the local file",
                self.local_assignment.path,
            )
            self._local_file_ignored = True
        with self.lock:
            assignment = self.pushed
            lease = self.rw_lease()
            highest = self.state.highest_epoch
        if assignment is None:
            running = next((c for c in containers if c.running and c.role in ("rw", "ro")), None)
            role = running.role if running is not None and running.role else "none"
            assignment = Assignment(
                role=role,
                epoch=highest,
                source="the running container, until a coordinator answers",
                reason=f"keeping {role} until a coordinator answers",
            )
        if assignment.role == "rw":
            # Only a lease for this very epoch counts (rw_lease); without one the deadline is already past.
            assignment = replace(assignment, lease_deadline=lease.deadline if lease is not None else 0.0)
        return assignment

    def writer_may_run(self, assignment: Assignment) -> bool:
        """A rw container may run: under a valid rw lease, or, once demoted, until the last rw lease ends."""
        now = lease_now()
        if self.coordinated:
            return writer_may_run(assignment.role, assignment.epoch, self.lease, now)  # the simulation's rule too
        if assignment.role == "rw":
            self._last_rw = (assignment.lease_deadline,)
        return manual_writer_may_run(assignment.role, assignment.lease_deadline, self._last_rw, now)

    def holds_writer_lease(self, assignment: Assignment) -> bool:
        """A rw container may run now under `assignment` (read only: for the load balancer's check)."""
        role, epoch, deadline = assignment.role, assignment.epoch, assignment.lease_deadline
        return holds_writer_lease(self.coordinated, role, epoch, self.lease, deadline, lease_now())

    def stop_timeout_s(self, rw_running: bool) -> float:
        """How long a graceful stop of the running container may take (a writer's ends within its lease)."""
        writer_under_lease = self.coordinated and rw_running
        return stop_timeout_s(self.config.milvus.stop_timeout_s, self.lease, writer_under_lease, lease_now())

    def explain(self, step: Step, containers: tuple[ContainerState, ...]) -> Step:
        """A step that answers a lapsed lease, with why the lease lapsed (coordinated mode)."""
        if not self.coordinated:
            return step
        lapse = lapse_text(self.lease, self._renewal_note, lease_now())
        if step.action is Action.KILL:
            name = next((c.name for c in containers if c.id == step.container_id), "")
            return replace(step, reason=f"{lapse}; killed the rw container {name}")
        if step.cause == LEASE_LAPSED:
            return replace(step, reason=f"{lapse}; {step.reason}")
        return step

    def writer_lease(self) -> WriterLease:
        """The writer lease as the reports and the metrics tell it."""
        lease = self.lease  # read once: the reporter thread may replace it meanwhile
        return WriterLease(
            left_s=lease.left(lease_now()) if lease is not None else 0.0,
            row_lease_ms=lease.row_renewal_ms if lease is not None else 0,
            renewals=dict(self.lease_renewals),
            renewal_failures=self.lease_renewal_failures,
        )

    def clock_estimate(self) -> ClockSample | None:
        """This node's clock against the leader's, from the report answers (None before any)."""
        return best_estimate(self.clock)
