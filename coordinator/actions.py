"""The operator's actions on a leading coordinator: a switchover or failover request, pause, maintenance,
priority; each write is made under the leadership and recorded as an event."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from coordinator.coordstate import CoordinatorState
from coordinator.core import Request
from coordinator.model import Event
from coordinator.requests import validate_request, with_asker
from coordinator.storeapi import Leadership, NotLeader

log = logging.getLogger("jfs_milvus.coordinator")


class OperatorActions(CoordinatorState):
    """Queue a request for the next tick, or write a pause, maintenance or priority at once."""

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
