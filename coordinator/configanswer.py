"""The cluster config each Report's answer carries: a copy the leader's tick refreshes from MySQL.

The Report handler never waits on MySQL: it reads `ConfigAnswers.for_node`, which looks at the copy the tick
made last (at most every REFRESH_S). Bodies are cached by version: a version never changes once written.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from coordinator.configplan import config_version_for
from coordinator.configstore import ConfigState, config_state, read_versions
from coordinator.store import ClusterStore, StoreError

log = logging.getLogger("jfs_milvus.coordinator.config")

REFRESH_S = 1.0


@dataclass(frozen=True)
class _Copy:
    state: ConfigState = field(default_factory=lambda: ConfigState(current=0, pins={}))
    bodies: dict[int, str] = field(default_factory=dict)
    loaded: bool = False  # read from MySQL at least once: until then the answers say nothing


class ConfigAnswers:
    def __init__(self) -> None:
        self._copy = _Copy()
        self._refreshed_at: float | None = None
        self._lock = threading.Lock()
        self._error: str | None = None

    @property
    def current(self) -> int:
        return self._copy.state.current

    def version_for(self, node: str) -> int:
        copy = self._copy
        return config_version_for(node, copy.state.pins, copy.state.current)

    def for_node(self, node: str) -> tuple[int, str] | None:
        """(version, body) `node` is to run, (0, "") for none (its agent.yaml alone); None when the copy cannot
        say (not read from MySQL yet, or the body not read): the agent then keeps what it took last."""
        copy = self._copy
        if not copy.loaded:
            return None
        version = config_version_for(node, copy.state.pins, copy.state.current)
        if version == 0:
            return 0, ""
        body = copy.bodies.get(version)
        return None if body is None else (version, body)

    def invalidate(self) -> None:
        self._refreshed_at = None

    def refresh(self, store: ClusterStore, now: float) -> None:
        """Read the state again if REFRESH_S has passed (or after invalidate()); a failure keeps the old copy."""
        with self._lock:
            if self._refreshed_at is not None and now - self._refreshed_at < REFRESH_S:
                return
            self._refreshed_at = now
            try:
                state = config_state(store)
                wanted = {state.current, *(p for p in state.pins.values() if p is not None)} - {0}
                bodies = {v: b for v, b in self._copy.bodies.items() if v in wanted}
                found = read_versions(store, sorted(wanted - bodies.keys()))
            except StoreError as exc:
                if str(exc) != self._error:
                    log.warning("cannot read the cluster config: %s", exc)
                    self._error = str(exc)
                return
            self._error = None
            bodies.update({v: c.body for v, c in found.items()})
            self._copy = _Copy(state=state, bodies=bodies, loaded=True)
