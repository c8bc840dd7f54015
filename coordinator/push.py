"""Pushing an assignment to an agent at once (AgentService.Assign), off the decision loop."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
from jfsmilvus.v1 import agent_pb2, agent_pb2_grpc

from agent.config import TlsSettings
from coordinator.model import Assignment, Report

log = logging.getLogger("jfs_milvus.coordinator.push")


class AssignmentPusher:
    def __init__(self, coordinator_id: str, tls: TlsSettings, timeout_s: float = 1.0):
        self.coordinator_id = coordinator_id
        self.timeout_s = timeout_s
        self.credentials = None
        if tls.enabled:
            with open(tls.ca or "", "rb") as ca, open(tls.key or "", "rb") as key, open(tls.cert or "", "rb") as cert:
                self.credentials = grpc.ssl_channel_credentials(ca.read(), key.read(), cert.read())
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="push")

    def __call__(self, report: Report | None, assignment: Assignment, term: int) -> None:
        if report is None or not report.agent_port:
            return
        self.pool.submit(self._send, f"{report.address}:{report.agent_port}", assignment, term)

    def _send(self, target: str, assignment: Assignment, term: int) -> None:
        from coordinator.server import assignment_pb

        channel = grpc.secure_channel(target, self.credentials) if self.credentials else grpc.insecure_channel(target)
        try:
            answer = agent_pb2_grpc.AgentServiceStub(channel).Assign(
                agent_pb2.AssignRequest(
                    assignment=assignment_pb(assignment), coordinator=self.coordinator_id, leader_term=term
                ),
                timeout=self.timeout_s,
            )
            log.info(
                "pushed %s at epoch %d to %s: %s", assignment.role, assignment.epoch, assignment.node, answer.reason
            )
        except grpc.RpcError as exc:
            log.info(
                "could not push to %s at %s (it will hear at its next report): %s", assignment.node, target, exc.code()
            )
        finally:
            channel.close()
