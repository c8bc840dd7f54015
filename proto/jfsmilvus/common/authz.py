"""Who may call what: the caller's identity from its certificate, and the table of RPCs each kind may call.

`jfs-milvus-coordinator make-certs` writes the identity into every certificate as a subject alternative name
URI, `jfs-milvus://KIND/NAME`: KIND is coordinator, agent (NAME is the node it is the agent of), operator or
viewer (read only). Mutual TLS proves that the CA issued the certificate; this table says what it may do.
Without TLS the servers listen on loopback only, and anyone on the host may call anything.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc

from jfsmilvus.common.configschema import NAME_PATTERN

URI_SCHEME = "jfs-milvus"
KINDS = ("coordinator", "agent", "operator", "viewer")
_URI = re.compile(rf"{URI_SCHEME}://({'|'.join(KINDS)})/({NAME_PATTERN})")

READERS = ("operator", "viewer")
# RPC (service.method) -> the kinds of caller allowed. A Report is further allowed only for the caller's node.
ALLOWED: Mapping[str, tuple[str, ...]] = {
    "AgentService.Assign": ("coordinator",),
    "AgentService.Status": ("coordinator", *READERS),
    "CoordinatorService.Report": ("agent",),
    "CoordinatorService.Switchover": ("operator",),
    "CoordinatorService.Failover": ("operator",),
    "CoordinatorService.SetPaused": ("operator",),
    "CoordinatorService.SetMaintenance": ("operator",),
    "CoordinatorService.SetPriority": ("operator",),
    "CoordinatorService.ForgetNode": ("operator",),
    "CoordinatorService.Rollout": ("operator",),  # every action, status too (coordinatorctl rollout)
    "CoordinatorService.GetClusterStatus": READERS,
    "CoordinatorService.ListEvents": READERS,
    "CoordinatorService.Why": READERS,
    "CoordinatorService.GetNodeObservations": READERS,
    "CoordinatorService.GetClusterConfig": ("operator",),
    "CoordinatorService.ListClusterConfigs": ("operator",),
    "CoordinatorService.CommitClusterConfig": ("operator",),
}
HOW_TO_ISSUE = (
    "issue one with `jfs-milvus-coordinator make-certs DIR KIND:NAME` (KIND: coordinator, agent, operator or "
    f"viewer; it is written as the SAN URI {URI_SCHEME}://KIND/NAME)"
)


def identity_uri(kind: str, name: str) -> str:
    return f"{URI_SCHEME}://{kind}/{name}"


@dataclass(frozen=True)
class Caller:
    """Who called: `kind` and `name` from the certificate; tls False when the call came in plaintext."""

    tls: bool
    kind: str | None = None
    name: str = ""
    subject: str = ""  # the certificate's subject, to name a caller that carries no identity

    def __str__(self) -> str:
        if not self.tls:
            return "a local caller (no TLS)"
        if self.kind is None:
            return f"a certificate without a jfs-milvus identity ({self.subject or 'no subject'})"
        return f"{self.kind} {self.name}"


def parse_identity(uris: Sequence[str]) -> tuple[str, str] | None:
    """(kind, name) of the one jfs-milvus URI among a certificate's URIs; None when there is none, or several."""
    found = {(m.group(1), m.group(2)) for u in uris if (m := _URI.fullmatch(u))}
    return found.pop() if len(found) == 1 else None


def caller_from(auth: Mapping[str, Sequence[bytes]]) -> Caller:
    """The caller of a gRPC call from its auth context (grpc.ServicerContext.auth_context())."""
    if b"ssl" not in auth.get("transport_security_type", ()):
        return Caller(tls=False)
    uris = [u.decode(errors="replace") for u in auth.get("peer_uri", ())]
    subject = b",".join(auth.get("x509_subject", ())).decode(errors="replace")[:200]
    identity = parse_identity(uris)
    if identity is None:
        return Caller(tls=True, subject=subject)
    return Caller(tls=True, kind=identity[0], name=identity[1], subject=subject)


def refusal(rpc: str, caller: Caller, node: str | None = None) -> str | None:
    """Why `caller` may not call `rpc` (for `node`, for a Report); None when it may. One line."""
    if not caller.tls:
        return None
    if caller.kind is None:
        subject = caller.subject or "no subject"
        return f"{rpc} refused: the caller's certificate ({subject}) says no kind; {HOW_TO_ISSUE}"
    allowed = ALLOWED.get(rpc, ())
    if caller.kind not in allowed:
        needs = " or ".join(allowed) or "no caller"
        return f"{rpc} refused: it needs a {needs} certificate, and the caller is {caller}"
    if rpc == "CoordinatorService.Report" and node is not None and caller.name != node:
        return f"{rpc} refused: the caller is {caller}, which may report only for node {caller.name}, not {node[:63]!r}"
    return None


def enforce(context: grpc.ServicerContext, rpc: str, log: logging.Logger, node: str | None = None) -> Caller:
    """The caller of this call, or PERMISSION_DENIED with the one-line refusal, logged with the caller."""
    caller = caller_from(context.auth_context())
    why = refusal(rpc, caller, node)
    if why is not None:
        log.warning("refused %s from %s at %s: %s", rpc, caller, context.peer(), why)
        context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
    return caller
