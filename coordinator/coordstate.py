"""The coordinator shell's state: what the tick loop, the Report handler and the operator actions share.

`CoordinatorState` is the base of `coordinator.daemon.Coordinator`; the parts with one job each
(`coordinator.publishing`, `coordinator.registration`, `coordinator.actions`, `coordinator.forget`) build on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from jfsmilvus.common.logsetup import LogContext

from coordinator.config import CoordinatorConfig
from coordinator.configanswer import ConfigAnswers
from coordinator.core import Memory, Request
from coordinator.model import Assignment, Discovery, Durable, Event, Report
from coordinator.mysqlsession import MysqlSettings
from coordinator.phases import Transition
from coordinator.rolloutrun import RolloutRunner
from coordinator.store import ClusterStore
from coordinator.storeapi import ClusterStoreApi, Leadership

log = logging.getLogger("jfs_milvus.coordinator")

# While it leads, only this coordinator writes the cluster row and the nodes table, and it drops its copy after
# each write; the copy is reloaded at least this often anyway, to see edits made by hand in MySQL.
DURABLE_REFRESH_S = 1.0


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


class CoordinatorState:
    """The state of one coordinator process, leading or following (see coordinator/daemon.py)."""

    def __init__(
        self,
        config: CoordinatorConfig,
        store: ClusterStoreApi | None = None,
        publish: Callable[[dict[str, object]], None] | None = None,
        push: Callable[[Report | None, Assignment, int], None] | None = None,
        log_context: LogContext | None = None,
    ):
        self.config = config
        self.store: ClusterStoreApi = store or ClusterStore(mysql_settings(config), config.cluster)
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
        # Report handler does not take it: it reads `published` once (see coordinator/daemon.py).
        self.answer_lock = threading.Lock()
        self._state_lock = threading.Lock()
        # Held for a whole tick, and while a node is forgotten: a tick must not register again, from a report
        # it took before, a node whose row was just deleted, nor publish memory that still holds it.
        self.tick_lock = threading.Lock()
        self._last_why = ""
        self._transition_events: dict[int, int] = {}  # transition epoch -> event id
        self._phases_recorded: dict[int, int] = {}
        self._last_renew = 0.0
        # The durable state as last loaded: (state, generation it was loaded at, monotonic time of the load).
        self._durable: tuple[Durable, int, float] | None = None
        self._durable_generation = 0  # bumped after every write that may change it
        self.pending_request: Request | None = None  # an operator's request, taken by the next tick
        self.last_completed: Event | None = None  # the last role change that finished, with all its phases
        # The last request the core refused when it came to decide it (its `refused` event), and when (monotonic).
        self.last_refused: tuple[Event, float] | None = None
        self.observations: dict[str, tuple[object, float]] = {}  # node -> (latest NodeObservation, unix time)
        self.decided_at: float | None = None  # monotonic time of this leader's last completed decision
        self._resigned_until = 0.0  # after stepping down for want of decisions: do not take the lead before
        self._unregistered: dict[str, str] = {}  # node -> why its registration failed (logged once per reason)
        self.last_stale = ""  # why this coordinator last stepped down for want of decisions ("" since it decided)
        self.cluster_config = ConfigAnswers()  # the cluster config each Report's answer carries (configanswer.py)
        self.rollouts = RolloutRunner(self)  # the rolling upgrade, one step per tick (coordinator/rolloutrun.py)

    def _error(self, message: str) -> None:
        if message != self.last_error:
            log.error("%s", message)
        self.last_error = message

    def _invalidate_durable(self) -> None:
        self._durable_generation += 1

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

    def snapshot_reports(self) -> dict[str, Report]:
        with self._state_lock:
            return dict(self.reports)
