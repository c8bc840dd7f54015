"""Reporting to the coordinator, from a thread of its own, and renewing a writer's lease from MySQL meanwhile.

Every `coordination.report_interval_s` (a writer: at least three times per lease, `agent.lease.report_period_s`) the
reporter sends the node's full observation (`Report`) to the coordinator that last answered as leader (at first: the
first in `coordinators`). An answer with leader=False and a leader_address sends the same report there at once; one
that does not come within `coordination.report_timeout_s` moves on to the next coordinator. The leader's answer is
the node's assignment and, for the writer, its lease, measured from the lease-clock reading taken just before that
RPC was sent.

When no coordinator has renewed the lease for one report interval (none answered, or a new leader answered
without a lease while it still listens) and this node holds a rw lease, a second thread reads the MySQL cluster
row with the read-only account (`coordination.mysql`) three times per row lease (what one read renews, at most
a whole lease, as the coordinator said) and renews the lease when the row still names this node at the lease's
epoch (agent.lease). It never waits for a report to time out, so a short row lease holds while the coordinators
are unreachable. The loop thread never waits for any of this, and these threads never wait for the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc
from jfsmilvus.common.tls import TlsSettings, channel_credentials
from jfsmilvus.v1 import coordinator_pb2, coordinator_pb2_grpc, node_pb2

from agent.config import AgentConfig, MysqlReadSettings
from agent.lease import lease_now, report_period_s
from agent.writerrow import WriterRowError, read_writer_row

log = logging.getLogger("jfs_milvus.agent.coordination")


@dataclass(frozen=True)
class LeaderAnswer:
    coordinator: str
    assignment: node_pb2.Assignment
    sent_at: float  # lease clock, read just before the RPC that got this answer
    leader_term: int = 0  # the answering leader's term (0 from an older coordinator)
    sent_unix: float = 0.0  # this node's wall clock as the RPC was sent
    rtt_s: float = 0.0  # from the send to the answer (monotonic)
    leader_unix: float = 0.0  # the leader's wall clock as it answered (0 from an older coordinator)
    cluster_config: coordinator_pb2.ClusterConfig | None = None  # the version to run; None: the leader did not say


class LeaseHolder(Protocol):
    """What holds this node's assignment and lease (agent.authority.Authority), as the reporter feeds it."""

    def take_coordinator_answer(self, answer: LeaderAnswer) -> str | None: ...

    def renewable_lease_s(self) -> float | None: ...

    def granted_lease_ms(self) -> int | None: ...

    def renew_lease_from_row(self, writer: str | None, epoch: int, sent_at: float, silence_s: float) -> None: ...

    def note_no_renewal(self, why: str) -> None: ...


class CoordinatorLink:
    """Channels to the coordinators; remembers the one that leads."""

    def __init__(self, addresses: tuple[str, ...], tls: TlsSettings, timeout_s: float):
        self.addresses = list(addresses)
        self.timeout_s = timeout_s
        self.credentials = channel_credentials(tls)
        self.leader: str | None = None
        self._channels: dict[str, grpc.Channel] = {}
        # A coordinator that comes back is found within about a second, not after gRPC's default backoff.
        self._options = [
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        self._last_problem: str | None = None

    def _stub(self, address: str) -> coordinator_pb2_grpc.CoordinatorServiceStub:
        channel = self._channels.get(address)
        if channel is None:
            if self.credentials is not None:
                channel = grpc.secure_channel(address, self.credentials, options=self._options)
            else:
                channel = grpc.insecure_channel(address, options=self._options)
            self._channels[address] = channel
        return coordinator_pb2_grpc.CoordinatorServiceStub(channel)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def _order(self) -> list[str]:
        first = self.leader or (self.addresses[0] if self.addresses else None)
        rest = [a for a in self.addresses if a != first]
        return ([first] if first else []) + rest

    def report(self, request: coordinator_pb2.ReportRequest) -> LeaderAnswer | None:
        """Send the report until a leader answers (each coordinator at most once); None when none did."""
        queue = self._order()
        tried: set[str] = set()
        problems: list[str] = []
        while queue:
            address = queue.pop(0)
            if address in tried:
                continue
            tried.add(address)
            sent_at = lease_now()
            sent_unix, started = time.time(), time.monotonic()
            try:
                response = self._stub(address).Report(request, timeout=self.timeout_s)
                rtt_s = time.monotonic() - started
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                late = code == grpc.StatusCode.DEADLINE_EXCEEDED
                detail = f"no answer within {self.timeout_s:.1f}s" if late else (code.name if code else str(exc))
                problems.append(f"{address}: {detail}")
                continue
            if response.leader:
                if address != self.leader:
                    log.info(
                        "reporting to coordinator %s: it leads%s",
                        address,
                        f" ({'; '.join(problems)})" if problems else "",
                    )
                self.leader = address
                self._last_problem = None
                return LeaderAnswer(
                    address,
                    response.assignment,
                    sent_at,
                    response.leader_term,
                    sent_unix=sent_unix,
                    rtt_s=rtt_s,
                    leader_unix=response.now_unix,
                    cluster_config=response.cluster_config if response.HasField("cluster_config") else None,
                )
            if response.leader_address and response.leader_address not in tried:
                log.info("coordinator %s does not lead; going to the leader %s", address, response.leader_address)
                problems.append(f"{address}: not the leader")
                queue.insert(0, response.leader_address)
                continue
            problems.append(f"{address}: not the leader and knows no leader")
        self.leader = None
        problem = "; ".join(problems) or "no coordinator is configured"
        if problem != self._last_problem:
            log.warning("no coordinator answered as leader: %s", problem)
            self._last_problem = problem
        return None


class Reporter:
    """The reporting thread."""

    def __init__(
        self, report_request: Callable[[], coordinator_pb2.ReportRequest], holder: LeaseHolder, config: AgentConfig
    ):
        settings = config.coordination
        self.report_request = report_request
        self.holder = holder
        self.interval_s = settings.report_interval_s
        self.mysql: MysqlReadSettings | None = settings.mysql
        self.link = CoordinatorLink(config.coordinators, config.tls, settings.report_timeout_s)
        self.last_answer_at = lease_now()
        if holder.renewable_lease_s() is not None:
            # A lease left by the previous agent process: nobody has renewed it since, so try MySQL at once.
            self.last_answer_at -= self.interval_s
        self.rounds = 0
        self._stop = threading.Event()
        self._soon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reporter", daemon=True)
        self._renewer = threading.Thread(target=self._renew_run, name="row-renewer", daemon=True)

    def start(self) -> None:
        log.info(
            "reporting every %.1fs to coordinators %s (%s)",
            self.interval_s,
            ", ".join(self.link.addresses),
            "mutual TLS" if self.link.credentials is not None else "plaintext",
        )
        self._thread.start()
        self._renewer.start()

    def report_soon(self) -> None:
        """Report now rather than at the next interval (the role running changed: the coordinator waits on it)."""
        self._soon.set()

    def stop(self, last_report: bool = False) -> None:
        self._stop.set()
        self._soon.set()
        self._thread.join(timeout=5)
        self._renewer.join(timeout=5)
        if last_report:
            # One report as the agent exits, after everything else has stopped: a writer leaves with a lease
            # renewed from this moment (its file written), so the next agent process (a restart, an upgrade)
            # takes over before the lease wrapper stops Milvus. Renewed as any answer is: safe.
            try:
                self.report_once()
            except Exception as exc:  # exiting anyway
                log.warning("no last report before exiting: %s", exc)
        self.link.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.report_once()
            except Exception:  # the reporter must survive anything one round throws
                log.exception("report round failed; continuing")
            next_at += report_period_s(self.interval_s, self.holder.granted_lease_ms())
            now = time.monotonic()
            if next_at < now:  # a slow round: start the next one now, do not try to catch up
                next_at = now
            if self._soon.wait(next_at - now):
                self._soon.clear()
                next_at = time.monotonic()

    def report_once(self) -> None:
        self.rounds += 1
        answer = self.link.report(self.report_request())
        if answer is not None:
            self.holder.take_coordinator_answer(answer)
            a = answer.assignment
            if a.role != node_pb2.ROLE_RW or a.lease_ms > 0:
                self.last_answer_at = answer.sent_at
            # A leader that answers but renews no lease (a new one still listening before it decides): for
            # the lease it is as if no coordinator answered, so the MySQL row may renew it meanwhile. Safe for
            # the same reason as any MySQL renewal: a change of writer bumps the epoch in that row first.

    def _renew_run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            row_lease_s = self.holder.renewable_lease_s()
            try:
                if row_lease_s is not None:
                    self._renew_once()
            except Exception:  # the renewer must survive anything one round throws
                log.exception("lease renewal round failed; continuing")
            # Paced by send time, not by when the read came back: a slow MySQL delays one renewal, not the next.
            period = min(self.interval_s, row_lease_s / 3) if row_lease_s else self.interval_s / 2
            self._stop.wait(max(0.05, period - (time.monotonic() - started)))

    def _renew_once(self) -> None:
        """One read of the MySQL cluster row for the rw lease this node holds, when no coordinator renewed it
        lately (the row names it at that epoch or the read renews nothing: agent.lease.renewed_by_row)."""
        silence = lease_now() - self.last_answer_at
        if silence < self.interval_s:
            return
        if self.mysql is None:
            self.holder.note_no_renewal(
                f"no coordinator answered for {silence:.1f}s and no MySQL is configured to renew the lease"
            )
            return
        sent_at = lease_now()
        try:
            writer, epoch = read_writer_row(self.mysql)
        except WriterRowError as exc:
            self.holder.note_no_renewal(f"no coordinator answered for {silence:.1f}s and the MySQL read failed: {exc}")
            return
        self.holder.renew_lease_from_row(writer, epoch, sent_at, silence)
