"""The rolling upgrade's imperative shell: each leader tick runs the pure `coordinator.rollout.step` on the
stored rollout and what the cluster shows, stores the result, then acts (a pin, a switchover request, the end);
the operator's start, resume and rollback go through here too (under the coordinator's tick lock, so they never
interleave with a tick).

Order of writes: the rollout is stored before its pin is moved, so a leader that dies in between finds the node
in progress with the wrong pin and pins it again (`step` re-pins a node in progress whose pin differs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from jfsmilvus.common.clusterconfig import parse_cluster_config, render_cluster_config

from coordinator.configstore import ConfigCommit
from coordinator.core import Request
from coordinator.model import Durable, Event, Report
from coordinator.rollout import (
    DEFAULT_NODE_TIMEOUT_S,
    DEFAULT_SETTLE_S,
    HALTED,
    RUNNING,
    AskSwitchover,
    ClusterView,
    Finish,
    NodeView,
    Pin,
    Plan,
    Rollout,
    Step,
    halt,
    plan,
    resumed,
    rollback_of,
    step,
)
from coordinator.store import Leadership, NotLeader, StoreError

if TYPE_CHECKING:
    from coordinator.daemon import Coordinator, Decision

log = logging.getLogger("jfs_milvus.coordinator.rollout")

STEP_EVENT = "rollout-step"  # one per step (coordinatorctl events, and what `rollout` streams)
HISTORY_EVENT = "rollout"  # one per rollout, its phases the nodes as they were done (coordinatorctl history)
IDLE_RECHECK_S = 1.0  # with no rollout running, MySQL is asked again this often (an operator's start resets it)


class RolloutRefused(Exception):
    """The operator's rollout action cannot be done now; the message says why in one line."""


@dataclass(frozen=True)
class Started:
    rollout: Rollout | None  # None: a dry run
    plan: Plan
    message: str


def node_views(
    durable: Durable,
    reports: Mapping[str, Report],
    observations: Mapping[str, tuple[object, float]],
    pins: Mapping[str, int | None],
    hosts: tuple[str, ...],
    now: float,
    fresh_s: float,
) -> dict[str, NodeView]:
    """Every known node as the rollout sees it: the version its container runs (its last observation), its pin,
    whether Milvus serves in its role, and (a reader) whether Mishards has it among the hosts."""
    writer = durable.cluster.writer
    views: dict[str, NodeView] = {}
    for name in sorted(set(durable.nodes) | set(reports)):
        report = reports.get(name)
        record = durable.nodes.get(name)
        observed = observations.get(name)
        running = getattr(observed[0], "config_version", 0) if observed is not None else 0
        fresh = report is not None and now - report.received_at <= fresh_s
        role = "rw" if name == writer else "ro"
        serving = fresh and report is not None and report.role_running == role and report.mount_state == "healthy"
        views[name] = NodeView(
            name=name,
            config_version=running or None,
            pinned=pins.get(name),
            serving=serving,
            in_hosts=name == writer or (report is not None and report.address in hosts),
            maintenance=record.maintenance if record is not None else False,
            priority=record.priority if record is not None else 1,
        )
    return views


class RolloutRunner:
    def __init__(self, coordinator: Coordinator):
        self.c = coordinator
        self._sentence = ""
        self._history_event: dict[int, int] = {}  # rollout id -> its history event's id
        self._idle_until = 0.0  # monotonic: no rollout was running when last looked; look again after this

    # -- the view -------------------------------------------------------------------------------------------
    def view(self, durable: Durable, hosts: tuple[str, ...] | None = None) -> ClusterView:
        c = self.c
        memory = c.memory
        transition = memory.transition if memory is not None else None
        role_change = f"a {transition.kind} to {transition.new}" if transition is not None else ""
        if not role_change and c.pending_request is not None:
            role_change = f"a {c.pending_request.kind} asked for"
        if hosts is None:
            discovery = c.published.discovery
            hosts = discovery.hosts if discovery is not None else ()
        state = c.store.config_state()
        nodes = node_views(
            durable, c.snapshot_reports(), dict(c.observations), state.pins, hosts, time.monotonic(),
            c.config.timing.detect_after_s,
        )  # fmt: skip
        refused, refused_at = "", 0.0
        if c.last_refused is not None:
            event, at = c.last_refused
            refused, refused_at = event.reason, time.time() - (time.monotonic() - at)
        return ClusterView(durable.cluster.writer, nodes, durable.cluster.paused, role_change, refused, refused_at)

    # -- the tick hook ----------------------------------------------------------------------------------------
    def tick(self, durable: Durable, decision: Decision) -> str:
        """Run the active rollout one step (called by the leader's tick after it published); its sentence."""
        leadership, memory = self.c.leadership, self.c.memory
        if leadership is None or memory is None or not memory.settled:
            return ""  # a new leader acts on nothing until it has listened to the reports (core.decide's wait)
        now = time.monotonic()
        if self._idle_until > now:
            return ""
        try:
            r = self.c.store.active_rollout()
            if r is None or r.status != RUNNING:
                self._idle_until = now + IDLE_RECHECK_S  # none to run: look again in a moment, not every tick
                return ""
            hosts = decision.discovery.hosts if decision.discovery is not None else ()
            s = step(r, self.view(durable, hosts), time.time())
            self._apply(leadership, s)
        except NotLeader:
            return ""
        except StoreError as exc:
            log.error("rollout: cannot continue this tick: %s", exc)
            return ""
        except Exception as exc:  # the rollout never stops the coordinator's tick
            log.exception("rollout: the step failed: %s: %s", type(exc).__name__, str(exc)[:200])
            return ""
        return s.sentence

    def _apply(self, leadership: Leadership, s: Step) -> None:
        if s.changed:
            self.c.store.save_rollout(leadership, s.rollout)
        for action in s.actions:
            self._act(leadership, s.rollout, action)
        if s.event:
            self._record(leadership, s)
        elif s.sentence != self._sentence:
            log.info("%s", s.sentence)
        self._sentence = s.sentence

    def _act(self, leadership: Leadership, r: Rollout, action: object) -> None:
        if isinstance(action, Pin):
            self.c.store.set_config_pin(leadership, action.node, action.version)
            self.c.cluster_config.invalidate()
            log.info("rollout %d: %s pinned to config version %s", r.id, action.node, action.version)
        elif isinstance(action, AskSwitchover):
            refusal = self.c.request(Request("switchover", action.to, action.reason, by=f"rollout {r.id}"))
            if refusal is not None:
                halted = halt(r, f"the switchover to {action.to} was refused: {refusal}", time.time(), False)
                self.c.store.save_rollout(leadership, halted.rollout)
                self._record(leadership, halted)
        elif isinstance(action, Finish):
            self._finish(leadership, r, action.version)

    def _finish(self, leadership: Leadership, r: Rollout, version: int) -> None:
        state = self.c.store.config_state()
        if state.current == version:
            for node, pin in sorted(state.pins.items()):
                if pin == version:
                    self.c.store.set_config_pin(leadership, node, None)
        else:
            # A rollback: every node runs `version` again (pinned to it); the cluster's version becomes a new one
            # with its body, which needs no restart (versions only grow), so nodes joining later run it too.
            old = self.c.store.read_config_version(version)
            if old is None:
                raise StoreError(f"config version {version} is gone")
            commit = ConfigCommit(
                body=old.body, author=f"rollout {r.id}", reason=f"rollback to {version}",
                expected_current=state.current, restart=False,
                event_reason=f"config version {{version}}: the body of version {version} again (rollout {r.id})",
            )  # fmt: skip
            self.c.store.commit_config(leadership, commit)
        self.c.cluster_config.invalidate()

    def _record(self, leadership: Leadership, s: Step) -> None:
        r = s.rollout
        log.info("%s", s.sentence)
        epoch = self.c.published.durable.cluster.epoch if self.c.published.durable else 0
        node = r.current or (r.done[-1] if r.done else None)
        self.c.store.add_event(
            leadership, Event(kind=STEP_EVENT, reason=s.sentence, node=node, epoch=epoch, at_unix=time.time())
        )
        phases = ((f"{r.kind} {r.from_version}->{r.to_version}", r.started_at), *r.phases)
        event_id = self._history_event.get(r.id)
        summary = f"{r.kind} {r.id} to config version {r.to_version} ({r.image or 'same image'}): {r.status}"
        if r.halted_reason:
            summary += f": {r.halted_reason}"
        if event_id is None:
            found = self.c.store.events(limit=200, kinds=(HISTORY_EVENT,))
            ids = [e.id for e in found if e.reason.startswith(f"{r.kind} {r.id} ")]
            event_id = ids[-1] if ids else None
        if event_id is None:
            event = Event(kind=HISTORY_EVENT, reason=summary, epoch=epoch, phases=phases, at_unix=r.started_at)
            event_id = self.c.store.add_event(leadership, event)
        else:
            self.c.store.update_event(leadership, event_id, phases, summary)
        self._history_event[r.id] = event_id

    # -- the operator's actions ---------------------------------------------------------------------------------
    def _leading(self) -> tuple[Leadership, Durable]:
        leadership, durable = self.c.leadership, self.c.published.durable
        if leadership is None or durable is None:
            raise RolloutRefused("this coordinator does not lead")
        return leadership, durable

    def start(
        self,
        image: str,
        reason: str,
        by: str,
        dry_run: bool,
        settle_s: float = DEFAULT_SETTLE_S,
        node_timeout_s: float = DEFAULT_NODE_TIMEOUT_S,
    ) -> Started:
        """A new config version with milvus.image = `image` and a rollout to it (or, `dry_run`, only the plan)."""
        with self.c.tick_lock:
            leadership, durable = self._leading()
            self._refuse_while_active()
            state = self.c.store.config_state()
            current = self.c.store.read_config_version(state.current) if state.current else None
            if current is None:
                raise RolloutRefused("the cluster has no config version yet: commit one first (coordinatorctl config)")
            config = parse_cluster_config(current.body, f"cluster config version {current.version}")
            if config.image == image:
                raise RolloutRefused(f"config version {current.version} runs {image} already")
            view = self.view(durable)
            the_plan = plan(view, state.current, state.current + 1)
            if dry_run:
                versions = f"config version {state.current} -> {state.current + 1} (milvus.image {image})"
                return Started(None, the_plan, plan_sentence(the_plan, versions))
            if the_plan.problem:
                raise RolloutRefused(f"the rollout cannot start: {the_plan.problem}")
            body = render_cluster_config(replace(config, image=image))
            commit = ConfigCommit(
                body=body, author=by, reason=reason or f"rollout of {image}",
                expected_current=state.current, restart=True,
                event_reason=f"config version {{version}}: milvus.image {config.image} -> {image} (rollout)",
            )  # fmt: skip
            outcome = self.c.store.commit_config(leadership, commit)
            self.c.cluster_config.invalidate()
            now = time.time()
            r = Rollout(
                id=0, from_version=state.current, to_version=outcome.version, started_at=now, image=image,
                reason=reason, settle_s=settle_s, node_timeout_s=node_timeout_s,
            )  # fmt: skip
            return self._launch(leadership, r, the_plan, f"{config.image} -> {image}, ")

    def start_pending(
        self,
        reason: str,
        by: str,
        dry_run: bool,
        settle_s: float = DEFAULT_SETTLE_S,
        node_timeout_s: float = DEFAULT_NODE_TIMEOUT_S,
    ) -> Started:
        """A rollout of the cluster's current config version to the nodes a restart-needing commit (config edit,
        rollback) left pinned behind it (or, `dry_run`, only the plan)."""
        with self.c.tick_lock:
            leadership, durable = self._leading()
            self._refuse_while_active()
            state = self.c.store.config_state()
            if not state.current:
                raise RolloutRefused("the cluster has no config version yet: commit one first (coordinatorctl config)")
            behind = {n: pin for n, pin in state.pins.items() if pin is not None and pin != state.current}
            if not behind:
                raise RolloutRefused(f"no node is pinned behind config version {state.current}: nothing to roll out")
            versions = sorted(set(behind.values()))
            if len(versions) > 1:
                pins = ", ".join(f"{n} on {v}" for n, v in sorted(behind.items()))
                raise RolloutRefused(f"nodes are pinned to several versions ({pins}): roll them to one first")
            from_version = versions[0]
            current = self.c.store.read_config_version(state.current)
            image = parse_cluster_config(current.body, f"config version {state.current}").image if current else ""
            the_plan = plan(self.view(durable), from_version, state.current)
            sentence = plan_sentence(the_plan, f"config version {from_version} -> {state.current}")
            if dry_run:
                return Started(None, the_plan, sentence)
            if the_plan.problem:
                raise RolloutRefused(f"the rollout cannot start: {the_plan.problem}")
            r = Rollout(
                id=0, from_version=from_version, to_version=state.current, started_at=time.time(), image=image,
                reason=reason or f"config version {state.current}", settle_s=settle_s, node_timeout_s=node_timeout_s,
            )  # fmt: skip
            return self._launch(leadership, r, the_plan, "", f", asked by {by}")

    def _launch(self, leadership: Leadership, draft: Rollout, the_plan: Plan, what: str, who: str = "") -> Started:
        """Store the new rollout (the caller holds tick_lock), record its start, and step it from the next tick."""
        r = self.c.store.create_rollout(leadership, draft)
        self._idle_until = 0.0
        sentence = f"Rollout {r.id} started: {what}config version {r.from_version} -> {r.to_version}{who}."
        self._record(leadership, Step(r, sentence=sentence, event=True))
        return Started(r, the_plan, sentence)

    def _refuse_while_active(self) -> None:
        active = self.c.store.active_rollout()
        if active is not None:
            raise RolloutRefused(
                f"rollout {active.id} to version {active.to_version} is {active.status}: "
                f"`coordinatorctl rollout {'resume' if active.status == HALTED else 'status'}` or roll it back"
            )

    def resume(self, by: str) -> Rollout:
        with self.c.tick_lock:
            leadership, _ = self._leading()
            r = self.c.store.active_rollout()
            if r is None or r.status != HALTED:
                raise RolloutRefused("no rollout is halted" if r is None else f"rollout {r.id} is {r.status}")
            again = resumed(r, time.time())
            self.c.store.save_rollout(leadership, again)
            self._idle_until = 0.0
            self._record(leadership, Step(again, sentence=f"Rollout {r.id} resumed by {by}.", event=True))
            return again

    def rollback(self, by: str, reason: str) -> Rollout:
        with self.c.tick_lock:
            leadership, _ = self._leading()
            r = self.c.store.active_rollout() or self.c.store.latest_rollout()
            if r is None:
                raise RolloutRefused("there is no rollout to roll back")
            try:
                old, back = rollback_of(r, 0, time.time(), reason)
            except ValueError as exc:
                raise RolloutRefused(str(exc)) from None
            self.c.store.save_rollout(leadership, old)
            self._record(leadership, Step(old, sentence=f"Rollout {r.id} rolled back by {by}.", event=True))
            back = self.c.store.create_rollout(leadership, back)
            self._idle_until = 0.0
            sentence = f"Rollout {back.id} started: back to config version {back.to_version} from {back.from_version}."
            self._record(leadership, Step(back, sentence=sentence, event=True))
            return back

    def latest(self) -> Rollout | None:
        return self.c.store.latest_rollout()


def plan_sentence(p: Plan, versions: str) -> str:
    lines = [f"Plan: {versions}"]
    for i, name in enumerate(p.readers, 1):
        lines.append(f"  {i}. {name} (reader)")
    if p.switchover_to is not None:
        lines.append(f"  {len(p.readers) + 1}. switchover: {p.writer} -> {p.switchover_to} (planned: drained first)")
        lines.append(f"  {len(p.readers) + 2}. {p.writer} (the old writer, now a reader)")
    for name in p.skipped:
        lines.append(f"  skipped: {name} (in maintenance; it follows the new version when it comes back)")
    if p.problem:
        lines.append(f"It cannot start now: {p.problem}.")
    return "\n".join(lines)
