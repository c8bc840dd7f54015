"""Pushing an assignment to an agent at once (AgentService.Assign), off the decision loop.

Pushes to one node go out one at a time and in the order they were made, and one that a newer push to the
same node has replaced before it went out is dropped: the node needs only the latest, and an older one
arriving last (the fence's "ro, you are the writer-designate" after the promotion's "rw") would stop a writer
that just started until its next report. Pushes to different nodes go out in parallel: a node that does not
answer holds one worker, never the others' pushes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from jfsmilvus.common.tls import TlsSettings, channel_credentials
from jfsmilvus.v1 import agent_pb2, agent_pb2_grpc

from coordinator.model import Assignment, Report

log = logging.getLogger("jfs_milvus.coordinator.push")

# (agent address, assignment, leader term) -> the agent's answer; raises grpc.RpcError when it is not delivered
Deliver = Callable[[str, Assignment, int], str]


class AssignmentPusher:
    def __init__(self, coordinator_id: str, tls: TlsSettings, timeout_s: float = 1.0, deliver: Deliver | None = None):
        self.coordinator_id = coordinator_id
        self.timeout_s = timeout_s
        self.credentials = channel_credentials(tls)
        self.deliver: Deliver = deliver or self._assign
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="push")
        self._guard = threading.Lock()
        self._pending: dict[str, tuple[str, Assignment, int]] = {}  # node -> its newest push not yet sent
        self._sending: set[str] = set()  # nodes a worker is pushing to now

    def __call__(self, report: Report | None, assignment: Assignment, term: int) -> None:
        if report is None or not report.agent_port:
            return
        node = assignment.node
        with self._guard:
            self._pending[node] = (f"{report.address}:{report.agent_port}", assignment, term)
            if node in self._sending:
                return  # the worker pushing to it sends this one next (and only this one)
            self._sending.add(node)
        self.pool.submit(self._drain, node)

    def _drain(self, node: str) -> None:
        while True:
            with self._guard:
                item = self._pending.pop(node, None)
                if item is None:
                    self._sending.discard(node)
                    return
            target, assignment, term = item
            try:
                answer = self.deliver(target, assignment, term)
                log.info("pushed %s at epoch %d to %s: %s", assignment.role, assignment.epoch, node, answer)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else exc
                log.info("could not push to %s at %s (it will hear at its next report): %s", node, target, code)

    def _assign(self, target: str, assignment: Assignment, term: int) -> str:
        from coordinator.server import assignment_pb

        channel = grpc.secure_channel(target, self.credentials) if self.credentials else grpc.insecure_channel(target)
        try:
            request = agent_pb2.AssignRequest(
                assignment=assignment_pb(assignment), coordinator=self.coordinator_id, leader_term=term
            )
            return agent_pb2_grpc.AgentServiceStub(channel).Assign(request, timeout=self.timeout_s).reason
        finally:
            channel.close()
