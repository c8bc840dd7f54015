"""A reader's sighting of the writer: the reader named the writer's address probes its GET /state, at most once
per cycle, and reports how long ago it last saw it healthy (the coordinator's witness of the writer)."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.assignment import Assignment
from agent.milvus.container import check_milvus_health

WITNESS_TIMEOUT_S = 0.5


class WriterWitness:
    def __init__(self, node: str, report_soon: Callable[[], None]) -> None:
        self.node = node
        self._report_soon = report_soon
        self._seen: tuple[tuple[str, int], float | None] | None = None  # (writer address, when last seen healthy)

    def look(self, assignment: Assignment) -> None:
        """Probe the writer `assignment` names, unless this node is the writer or is told no writer address."""
        if assignment.role == "rw" or not assignment.writer_address or not assignment.writer_http_port:
            return
        if assignment.writer == self.node:
            return
        target = (assignment.writer_address, assignment.writer_http_port)
        seen_before = self._seen is not None and self._seen[0] == target and self._seen[1] is not None
        # Only the latest check vouches: a failed one withdraws the sighting at once (and says so at once), so a
        # writer that is down is not kept alive by what this reader saw before it went.
        seen = check_milvus_health(*target, timeout_s=WITNESS_TIMEOUT_S) is None
        self._seen = (target, time.monotonic() if seen else None)
        if seen_before and not seen:
            self._report_soon()

    def healthy_age_s(self) -> float:
        """Seconds since the writer last answered this reader's check; -1 when the latest check failed or none ran."""
        if self._seen is None or self._seen[1] is None:
            return -1.0
        return time.monotonic() - self._seen[1]
