"""The coordinator's store in memory, with the semantics of the MySQL `ClusterStore` that `Coordinator` relies on.

For running the real `coordinator.daemon.Coordinator` without MySQL (tests/test_coordinator_simulation.py), on
a clock the test drives. What it keeps of MySQL (coordinator/storeapi.py; checked against the real store by
tests/test_store_contract.py):

- the leader lease on the cluster row, judged by the store's own clock: taken only when none is valid, a
  renewal keeps the term, a new lead gets term + 1, a coordinator starting afresh waits out any lease;
- every write names the leadership it is made under and raises `NotLeader` unless that leadership is the one
  with a valid lease (checked before anything else, as the MySQL statements' leader clause is);
- `change_writer` commits the writer and the epoch together, only from the expected epoch, only upward, and
  only to a node in the nodes table; `forget_node` never deletes the writer's row;
- nothing before `migrate()`.

Not kept: connections, timeouts, and the statement-level failures of a real server (a test that needs a
failing store wraps this one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from jfsmilvus.common.wirecheck import ipv4_problem, name_problem

from coordinator.configstore import (
    CONFIG_EVENT,
    CommitOutcome,
    ConfigCommit,
    ConfigConflict,
    ConfigState,
    ConfigVersion,
    conflict_message,
)
from coordinator.model import ClusterRow, Durable, Event, NodeRecord
from coordinator.mysqlsession import DEFAULT_LEASE_MARGIN_FRACTION, NAME_MAX, check_length, clip
from coordinator.rollout import Rollout
from coordinator.rolloutstore import ACTIVE, RolloutConflict
from coordinator.schema import LATEST_VERSION
from coordinator.storeapi import Leadership, NotLeader, StoreError


@dataclass(frozen=True)
class LeaderRow:
    """The leader columns of the cluster row."""

    leader: str | None = None
    address: str = ""
    term: int = 0
    until: float | None = None  # on the store's clock


class MemoryClusterStore:
    """`ClusterStoreApi` in memory; `clock` is the store's own (MySQL's NOW()) and the callers' monotonic clock,
    `wall_clock` stamps events."""

    def __init__(
        self,
        cluster_name: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        lease_margin_fraction: float = DEFAULT_LEASE_MARGIN_FRACTION,
    ):
        self.cluster_name = cluster_name
        self.clock = clock
        self.wall_clock = wall_clock
        self.lease_margin_fraction = lease_margin_fraction
        self._lock = threading.Lock()
        self._cluster: ClusterRow | None = None
        self._leader = LeaderRow()
        self._nodes: dict[str, NodeRecord] = {}
        self._events: list[tuple[Event, int]] = []  # (event, the leader term that recorded it)
        self._config_versions: dict[int, ConfigVersion] = {}
        self._config_current = 0
        self._rollouts: dict[int, Rollout] = {}
        self._pins: dict[str, int | None] = {}  # node -> its pin; a node not here follows the current version

    # -- what the MySQL statements check ----------------------------------------------------------------

    def _row(self) -> ClusterRow:
        if self._cluster is None:
            raise StoreError(f"memory store of {self.cluster_name!r} is not migrated")
        return self._cluster

    def _leads(self, leadership: Leadership) -> ClusterRow:
        """The cluster row when `leadership` holds a valid lease on it; NotLeader otherwise."""
        row = self._row()
        held = self._leader
        valid = held.until is not None and held.until > self.clock()
        if held.leader != leadership.coordinator or held.term != leadership.term or not valid:
            state = "valid" if valid else "expired"
            raise NotLeader(
                f"coordinator {leadership.coordinator!r} term {leadership.term} no longer leads "
                f"(leader is {held.leader!r} term {held.term}, its lease {state})"
            )
        return row

    # -- schema -----------------------------------------------------------------------------------------

    def migrate(self) -> int:
        with self._lock:
            if self._cluster is None:
                self._cluster = ClusterRow(name=self.cluster_name, writer=None, epoch=0)
            return LATEST_VERSION

    # -- leadership -------------------------------------------------------------------------------------

    def acquire_or_renew(
        self, coordinator: str, address: str, lease_s: float, current: Leadership | None
    ) -> Leadership | None:
        if not lease_s > 0:
            raise ValueError("lease_s must be > 0")
        with self._lock:
            self._row()
            sent_at = self.clock()
            held = self._leader
            renewing = current is not None and current.coordinator == coordinator
            ours = renewing and held.leader == coordinator and current is not None and held.term == current.term
            if not (held.until is None or held.until <= sent_at or ours):
                return None
            term = held.term if ours else held.term + 1
            self._leader = LeaderRow(coordinator, address, term, sent_at + lease_s)
            return Leadership(coordinator, address, term, sent_at + lease_s * (1.0 - self.lease_margin_fraction))

    def release(self, leadership: Leadership) -> bool:
        with self._lock:
            try:
                self._leads(leadership)
            except NotLeader:
                return False
            self._leader = replace(self._leader, until=self.clock())
            return True

    def leader_info(self) -> tuple[str | None, str, int, float]:
        with self._lock:
            self._row()
            held = self._leader
            left = held.until - self.clock() if held.until is not None else 0.0
            return held.leader, held.address, held.term, left

    # -- reads ------------------------------------------------------------------------------------------

    def load(self) -> Durable:
        with self._lock:
            row = replace(self._row(), leader=self._leader.leader, leader_term=self._leader.term)
            return Durable(cluster=row, nodes=MappingProxyType(dict(sorted(self._nodes.items()))))

    def events(
        self, limit: int = 50, kinds: tuple[str, ...] | None = None, after_id: int = 0, node: str | None = None
    ) -> list[Event]:
        if limit <= 0 or kinds == ():
            return []
        with self._lock:
            self._row()
            chosen = [
                event
                for event, _term in self._events
                if event.id > after_id and (not kinds or event.kind in kinds) and (node is None or event.node == node)
            ]
            return chosen[-limit:]

    # -- conditional writes -----------------------------------------------------------------------------

    def change_writer(
        self, leadership: Leadership, expected_epoch: int, new_writer: str | None, new_epoch: int | None = None
    ) -> int:
        if new_writer is not None:
            check_length("node name", new_writer, NAME_MAX)
        target = expected_epoch + 1 if new_epoch is None else new_epoch
        if target <= expected_epoch:
            raise StoreError(f"change_writer: epoch {target} is not above {expected_epoch}")
        with self._lock:
            row = self._leads(leadership)
            if row.epoch != expected_epoch:
                raise NotLeader(f"epoch moved: expected {expected_epoch}, the cluster is at {row.epoch}")
            if new_writer is not None and new_writer not in self._nodes:
                raise StoreError(f"change_writer: node {new_writer!r} is not in the nodes table")
            self._cluster = replace(row, writer=new_writer, epoch=target)
            return target

    def set_paused(self, leadership: Leadership, paused: bool, reason: str) -> None:
        with self._lock:
            row = self._leads(leadership)
            self._cluster = replace(row, paused=paused, paused_reason=clip(reason))

    def upsert_node(self, leadership: Leadership, name: str, address: str, hosts_mishards: bool) -> None:
        check_length("node name", name, NAME_MAX)
        problem = name_problem("node name", name) or ipv4_problem(f"node {name!r} address", address, required=False)
        if problem is not None:
            raise StoreError(f"upsert_node: {problem}")
        with self._lock:
            self._leads(leadership)
            before = self._nodes.get(name) or NodeRecord(name, address)
            self._nodes[name] = replace(before, address=address, hosts_mishards=hosts_mishards)

    def _update_node(
        self, what: str, leadership: Leadership, name: str, change: Callable[[NodeRecord], NodeRecord]
    ) -> None:
        with self._lock:
            self._leads(leadership)
            if name not in self._nodes:
                raise StoreError(f"{what}: node {name!r} does not exist")
            self._nodes[name] = change(self._nodes[name])

    def set_priority(self, leadership: Leadership, name: str, priority: int) -> None:
        if priority < 0:
            raise StoreError(f"set_priority: node {name!r}: priority must be >= 0 (0: never a writer)")
        self._update_node("set_priority", leadership, name, lambda n: replace(n, priority=priority))

    def set_maintenance(self, leadership: Leadership, name: str, on: bool, reason: str) -> None:
        self._update_node(
            "set_maintenance",
            leadership,
            name,
            lambda n: replace(n, maintenance=on, maintenance_reason=clip(reason)),
        )

    def forget_node(self, leadership: Leadership, name: str) -> bool:
        with self._lock:
            row = self._leads(leadership)
            if row.writer == name:
                raise StoreError(f"forget_node: node {name!r} is the writer")
            self._pins.pop(name, None)
            return self._nodes.pop(name, None) is not None

    def add_event(self, leadership: Leadership, event: Event) -> int:
        with self._lock:
            self._leads(leadership)
            return self._append_event(event, leadership.term)

    def _append_event(self, event: Event, term: int) -> int:
        """As an INSERT INTO events: the next id, the time now unless given (the caller holds the lock)."""
        event_id = (self._events[-1][0].id if self._events else 0) + 1
        at = event.at_unix or self.wall_clock()
        self._events.append((replace(event, id=event_id, at_unix=at, phases=_phases(event.phases)), term))
        return event_id

    def update_event(
        self,
        leadership: Leadership,
        event_id: int,
        phases: Sequence[tuple[str, float]],
        reason: str | None = None,
    ) -> None:
        with self._lock:
            self._leads(leadership)
            for i, (event, term) in enumerate(self._events):
                if event.id == event_id:
                    changed = replace(event, phases=_phases(phases), reason=event.reason if reason is None else reason)
                    self._events[i] = (changed, term)
                    return
            raise StoreError(f"update_event: event {event_id} does not exist")

    # -- the cluster config ---------------------------------------------------------------------------

    def config_state(self) -> ConfigState:
        with self._lock:
            self._row()
            pins = {n: v for n, v in self._pins.items() if v is not None and n in self._nodes}
            return ConfigState(current=self._config_current, pins=pins)

    def read_config_version(self, version: int) -> ConfigVersion | None:
        with self._lock:
            return self._config_versions.get(version)

    def read_config_versions(self, versions: list[int]) -> dict[int, ConfigVersion]:
        with self._lock:
            return {v: self._config_versions[v] for v in versions if v in self._config_versions}

    def config_history(self, limit: int = 50) -> list[ConfigVersion]:
        with self._lock:
            return [self._config_versions[v] for v in sorted(self._config_versions)[-limit:]]

    def commit_config(self, leadership: Leadership, commit: ConfigCommit) -> CommitOutcome:
        with self._lock:
            self._leads(leadership)
            current = self._config_current
            if current != commit.expected_current:
                raise ConfigConflict(conflict_message(current, commit.expected_current))
            version = max(self._config_versions, default=0) + 1
            self._config_versions[version] = ConfigVersion(
                version, commit.body, commit.author[:255], clip(commit.reason), self.wall_clock(), commit.restart
            )
            if commit.restart:
                followers = [n for n in self._nodes if self._pins.get(n) is None]
                self._pins.update(dict.fromkeys(followers, current))
                pinned, unpinned = len(followers), 0
            else:
                moved = [n for n in self._nodes if self._pins.get(n) == current]
                for n in moved:
                    self._pins.pop(n)
                pinned, unpinned = 0, len(moved)
            self._config_current = version
            reason = commit.event_reason.replace("{version}", str(version))
            self._append_event(Event(kind=CONFIG_EVENT, reason=reason, epoch=commit.epoch), leadership.term)
            return CommitOutcome(version=version, nodes_pinned=pinned, nodes_unpinned=unpinned)

    def set_config_pin(self, leadership: Leadership, node: str, version: int | None) -> None:
        with self._lock:
            self._leads(leadership)
            if node not in self._nodes:
                raise StoreError(f"set_config_pin: node {node!r} does not exist")
            self._pins[node] = version

    # -- the rollouts ---------------------------------------------------------------------------------

    def create_rollout(self, leadership: Leadership, rollout: Rollout) -> Rollout:
        with self._lock:
            self._leads(leadership)
            active = self._active_rollout()
            if active is not None:
                raise RolloutConflict(
                    f"rollout {active.id} to version {active.to_version} is {active.status}: resume it or roll it "
                    "back first"
                )
            stored = replace(rollout, id=max(self._rollouts, default=0) + 1)
            self._rollouts[stored.id] = stored
            return stored

    def save_rollout(self, leadership: Leadership, rollout: Rollout) -> None:
        with self._lock:
            self._leads(leadership)
            if rollout.id not in self._rollouts:
                raise StoreError(f"rollout {rollout.id} does not exist")
            self._rollouts[rollout.id] = rollout

    def _active_rollout(self) -> Rollout | None:
        return next((r for _, r in sorted(self._rollouts.items(), reverse=True) if r.status in ACTIVE), None)

    def active_rollout(self) -> Rollout | None:
        with self._lock:
            return self._active_rollout()

    def latest_rollout(self) -> Rollout | None:
        with self._lock:
            return self._rollouts[max(self._rollouts)] if self._rollouts else None

    def get_rollout(self, rollout_id: int) -> Rollout | None:
        with self._lock:
            return self._rollouts.get(rollout_id)


def _phases(phases: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """As the events table gives them back (JSON of names and floats)."""
    return tuple((str(name), float(at)) for name, at in phases)
