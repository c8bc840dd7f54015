"""How coordinatorctl reaches the cluster: which coordinators to ask, with which credentials, and the leader
(reads and actions follow it; a follower answers a read only when the leader does not)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import grpc
from jfsmilvus.common.configschema import ConfigError, pem_file_problem
from jfsmilvus.common.tls import TlsSettings, channel_credentials
from jfsmilvus.v1 import coordinator_pb2, coordinator_pb2_grpc

from coordinator.config import DEFAULT_CONFIG_PATH, CoordinatorConfig, load_coordinator_config
from coordinator.output import EXIT_USAGE, CtlError

ADDRESS_ENV = "JFS_MILVUS_COORDINATOR"


@dataclass(frozen=True)
class Answerer:
    """The coordinator a read goes to: the leader, or a follower when the leader it names does not answer."""

    address: str
    stub: coordinator_pb2_grpc.CoordinatorServiceStub
    leading: bool
    note: str = ""  # why a follower answers ("" when the leader does); said on stderr with the answer


def follower_note(address: str, leader_address: str, leader_error: str | None) -> str:
    """Why the answer comes from a follower, in one line."""
    if not leader_address:
        return f"answered by {address}, which follows and knows no leader right now"
    return f"answered by {address}, which follows: the leader at {leader_address} does not answer ({leader_error})"


class Connection:
    """The coordinators to try, in order, with mTLS credentials when given; reads and actions follow the leader."""

    def __init__(
        self,
        addresses: list[str],
        credentials: grpc.ChannelCredentials | None,
        timeout_s: float = 5.0,
    ):
        self.addresses = addresses
        self.credentials = credentials
        self.timeout_s = timeout_s

    def _stub(self, address: str) -> coordinator_pb2_grpc.CoordinatorServiceStub:
        channel = grpc.secure_channel(address, self.credentials) if self.credentials else grpc.insecure_channel(address)
        return coordinator_pb2_grpc.CoordinatorServiceStub(channel)

    def _first(self) -> tuple[str, coordinator_pb2_grpc.CoordinatorServiceStub, coordinator_pb2.WhyResponse]:
        """The first coordinator that answers, and its answer to Why (who leads)."""
        errors = []
        for address in self.addresses:
            stub = self._stub(address)
            try:
                return address, stub, stub.Why(coordinator_pb2.WhyRequest(), timeout=self.timeout_s)
            except grpc.RpcError as exc:
                errors.append(f"{address}: {exc.code().name.lower()}")
        raise CtlError(
            f"no coordinator answers ({'; '.join(errors)}); check --coordinator, ${ADDRESS_ENV} or the TLS files"
        )

    def answerer(self) -> Answerer:
        """Where reads go (status, why, history, events, doctor) and actions: the leader, found through whichever
        coordinator answers first; that coordinator itself, with a note saying why, when the leader it names
        does not answer or it knows none."""
        address, stub, said = self._first()
        if said.leading:
            return Answerer(address, stub, True)
        leader = said.leader_address
        if not leader or leader == address:
            return Answerer(address, stub, False, follower_note(address, "", None))
        leader_stub = self._stub(leader)
        try:
            again = leader_stub.Why(coordinator_pb2.WhyRequest(), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            return Answerer(address, stub, False, follower_note(address, leader, exc.code().name.lower()))
        if not again.leading:  # it stepped down meanwhile
            return Answerer(address, stub, False, follower_note(address, leader, "it no longer leads"))
        return Answerer(leader, leader_stub, True)

    def read(self) -> Answerer:
        """Where a read goes, the leader if it answers; a follower's note goes to stderr first."""
        answerer = self.answerer()
        if answerer.note:
            print(f"coordinatorctl: note: {answerer.note}", file=sys.stderr)
        return answerer

    def status(self) -> coordinator_pb2.ClusterStatus:
        """The cluster as the leader sees it (a follower knows no node's state); a follower's answer, which says
        who leads, only when the leader it names does not answer."""
        return self.read().stub.GetClusterStatus(coordinator_pb2.ClusterStatusRequest(), timeout=self.timeout_s)

    def leader(self) -> coordinator_pb2_grpc.CoordinatorServiceStub:
        """A stub on the leader, for actions and what only the leader knows; CtlError when none answers."""
        answerer = self.answerer()
        if not answerer.leading:
            raise CtlError(f"no coordinator leads that answers ({answerer.note}); retry in a few seconds")
        return answerer.stub


def build_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    ca, cert, key = args.ca, args.cert, args.key
    if not (ca or cert or key):
        return None
    if not (ca and cert and key):
        raise CtlError("give all three of --ca, --cert and --key (or none)", EXIT_USAGE)
    for option, path in (("--ca", ca), ("--cert", cert), ("--key", key)):
        problem = pem_file_problem(path)
        if problem:
            raise CtlError(f"{option} {path}: the TLS file {problem}", EXIT_USAGE)
    try:
        return channel_credentials(TlsSettings(ca=ca, cert=cert, key=key))
    except OSError as exc:
        raise CtlError(f"cannot read a TLS file: {exc}", EXIT_USAGE) from exc


def local_coordinator(args: argparse.Namespace) -> CoordinatorConfig | None:
    """The config of the coordinator on this host, when no address is given and it loads."""
    if args.coordinator or os.environ.get(ADDRESS_ENV):
        return None
    path = args.config or DEFAULT_CONFIG_PATH
    if not os.path.exists(path):
        return None
    try:
        return load_coordinator_config(path)
    except ConfigError as exc:
        print(f"coordinatorctl: warning: {exc.problems[0]}; asking 127.0.0.1:19800", file=sys.stderr)
        return None


def coordinator_addresses(args: argparse.Namespace) -> list[str]:
    """--coordinator, $JFS_MILVUS_COORDINATOR, where the coordinator on this host listens, or 127.0.0.1:19800."""
    given = args.coordinator or os.environ.get(ADDRESS_ENV)
    if given:
        return [a.strip() for a in given.split(",") if a.strip()]
    local = local_coordinator(args)
    return [local.local_address if local is not None else "127.0.0.1:19800"]


def connect(args: argparse.Namespace) -> Connection:
    return Connection(coordinator_addresses(args), build_credentials(args))
