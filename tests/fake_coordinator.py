"""A scripted CoordinatorService on 127.0.0.1 for agent tests: it records every report and answers as told.

`FakeCoordinator.start(credentials=None)` returns its HOST:PORT (TLS with server credentials). Tell it how to
answer with `lead(assignment)` (leader=True), `redirect(address)` (leader=False, leader_address), `hang()`
(never answers in time) or `answer_with(fn)`; `stop()` takes it off the network (connection refused).
`reports` holds what it received, with times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from jfsmilvus.v1 import coordinator_pb2, coordinator_pb2_grpc, node_pb2

Answer = Callable[[coordinator_pb2.ReportRequest], coordinator_pb2.ReportResponse | None]


@dataclass(frozen=True)
class Received:
    request: coordinator_pb2.ReportRequest
    wall: float  # time.time() when it arrived
    monotonic: float
    answered: bool  # as leader


def rw(
    epoch: int, lease_ms: int, writer: str, reason: str = "test grants rw", row_lease_ms: int = 0
) -> node_pb2.Assignment:
    return node_pb2.Assignment(
        role=node_pb2.ROLE_RW, epoch=epoch, lease_ms=lease_ms, writer=writer, reason=reason, row_lease_ms=row_lease_ms
    )


def ro(epoch: int, writer: str = "", reason: str = "test assigns ro", **extra: object) -> node_pb2.Assignment:
    return node_pb2.Assignment(role=node_pb2.ROLE_RO, epoch=epoch, writer=writer, reason=reason, **extra)  # type: ignore[arg-type]


class FakeCoordinator(coordinator_pb2_grpc.CoordinatorServiceServicer):
    def __init__(self) -> None:
        self.reports: list[Received] = []
        self._answer: Answer = lambda request: None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server: grpc.Server | None = None
        self.address = ""

    # -- scripting -------------------------------------------------------------------------------------
    def answer_with(self, answer: Answer) -> None:
        with self._lock:
            self._answer = answer

    def lead(self, assignment: node_pb2.Assignment) -> None:
        self.answer_with(lambda request: coordinator_pb2.ReportResponse(leader=True, assignment=assignment))

    def redirect(self, leader_address: str) -> None:
        self.answer_with(lambda request: coordinator_pb2.ReportResponse(leader=False, leader_address=leader_address))

    def hang(self) -> None:
        self.answer_with(lambda request: None)

    # -- reading ---------------------------------------------------------------------------------------
    def observations(self) -> list[node_pb2.NodeObservation]:
        with self._lock:
            return [r.request.observation for r in self.reports]

    def last(self) -> node_pb2.NodeObservation | None:
        with self._lock:
            return self.reports[-1].request.observation if self.reports else None

    def count(self) -> int:
        with self._lock:
            return len(self.reports)

    def last_answered(self) -> Received | None:
        with self._lock:
            return next((r for r in reversed(self.reports) if r.answered), None)

    # -- the service -----------------------------------------------------------------------------------
    def Report(
        self, request: coordinator_pb2.ReportRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ReportResponse:
        with self._lock:
            answer = self._answer(request)
            self.reports.append(Received(request, time.time(), time.monotonic(), bool(answer and answer.leader)))
        if answer is None:
            self._stopped.wait(3.0)  # longer than any agent waits
            context.abort(grpc.StatusCode.UNAVAILABLE, "fake coordinator hangs")
        return answer

    def start(self, credentials: grpc.ServerCredentials | None = None) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="fake-coordinator"))
        coordinator_pb2_grpc.add_CoordinatorServiceServicer_to_server(self, server)
        if credentials is not None:
            port = server.add_secure_port("127.0.0.1:0", credentials)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self.address = f"127.0.0.1:{port}"
        return self.address

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.stop(grace=0).wait(5)
            self._server = None
