"""What a leader tells after a decision: the snapshot the Report handler answers from, the pushes to nodes
whose role changed, and the announcement of a new writer on Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from jfsmilvus.common.milvus1 import MILVUS_PORT

from coordinator.coordstate import CoordinatorState, Published
from coordinator.core import Decision
from coordinator.endpoints import node_endpoint
from coordinator.model import ROLE_CHANGES, Assignment, Durable, Report


class Publishing(CoordinatorState):
    """Publish a decision, push its changes, announce a new writer."""

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
        """Make `decision` what the Report handler answers with (one assignment of `published`)."""
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


def redis_publisher(url: str, password: str | None, channel: str) -> Callable[[dict[str, object]], None]:
    """PUBLISH each writer change as JSON on `channel`, as Sentinel's +switch-master announces a new master."""
    import redis

    client = redis.Redis.from_url(url, password=password, socket_timeout=1.0, socket_connect_timeout=1.0)

    def publish(message: dict[str, object]) -> None:
        client.publish(channel, json.dumps(message, sort_keys=True))

    return publish
