"""What this node has been told to be: role, epoch, and for Mishards hosts the discovery config.

An assignment comes from the leading coordinator (the answer to a report), from an `Assign` call on the agent's
API, or, for a node run by hand, from the local file `<state_dir>/assignment.json` that `jfs-milvus-agent assign`
writes. With coordinators configured the local file is ignored: the coordinator outranks it. Whatever its
source, `judge_assignment` is the one rule that accepts or refuses it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from jfsmilvus.common.atomicfile import read_text, write_atomic
from jfsmilvus.common.milvus1 import MILVUS_PORT

from agent.mishards.envfile import MishardsDiscovery, MishardsEnvError, check_host, check_port

ROLES = ("rw", "ro", "none")
ASSIGNMENT_FILE = "assignment.json"


class AssignmentError(ValueError):
    """An assignment that cannot be used; the message names the source and the bad value."""


@dataclass(frozen=True)
class Assignment:
    role: str  # rw | ro | none (run no Milvus)
    epoch: int
    source: str
    reason: str = ""
    discovery: MishardsDiscovery | None = None
    # Deadline of a writer's lease on the lease clock (agent.lease.lease_now, CLOCK_BOOTTIME); None when the
    # source grants no lease (a local, manual assignment: the operator holds the one-writer rule, as in the
    # manual procedure this replaces).
    lease_deadline: float | None = None
    writer: str = ""  # the node that holds rw at this epoch (coordinator assignments)
    writer_address: str = ""  # where a reader witnesses the writer's health (GET /state)
    writer_http_port: int = 0
    lease_ms: int = 0
    row_lease_ms: int = 0  # what one MySQL cluster row read renews a writer's lease for (agent.lease)
    # A planned change of writer: stop the rw container gracefully (SIGINT: Milvus flushes) within
    # drain_timeout_ms while the lease is still renewed, then report how it ended. 0: no drain.
    drain_id: int = 0
    drain_timeout_ms: int = 0

    def lease_valid(self, now: float) -> bool:
        return self.lease_deadline is None or now < self.lease_deadline


UNASSIGNED = Assignment(role="none", epoch=0, source="none", reason="no assignment yet")


def judge_assignment(new: Assignment, highest_epoch: int) -> str | None:
    """Why `new` must be refused, or None to accept it."""
    if new.role not in ROLES:
        return f"role {new.role!r} is not one of {', '.join(ROLES)}"
    if new.epoch < highest_epoch:
        return (
            f"epoch {new.epoch} is older than epoch {highest_epoch} already seen (stale assignment from {new.source})"
        )
    return None


def assignment_from_json(data: object, source: str) -> Assignment:
    if not isinstance(data, dict):
        raise AssignmentError(f"{source}: must be a JSON object")
    role = data.get("role")
    epoch = data.get("epoch")
    if role not in ROLES:
        raise AssignmentError(f"{source}: role = {role!r}: must be one of {', '.join(ROLES)}")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise AssignmentError(f"{source}: epoch = {epoch!r}: must be an integer >= 0")
    discovery = None
    mishards = data.get("mishards")
    if mishards is not None:
        try:
            discovery = discovery_from_json(mishards)
        except MishardsEnvError as exc:
            raise AssignmentError(f"{source}: mishards: {exc}") from exc
    reason = data.get("reason") or f"assigned {role} by {source}"
    return Assignment(role=role, epoch=epoch, source=source, reason=str(reason), discovery=discovery)


def discovery_from_json(data: object) -> MishardsDiscovery:
    if not isinstance(data, dict):
        raise MishardsEnvError("must be an object with writer, hosts and discovery_port")
    writer = str(data.get("writer", ""))
    host, _, port = writer.rpartition(":")
    if not port.isdigit():
        raise MishardsEnvError(f"writer {writer!r} must be HOST:PORT")
    hosts = data.get("hosts")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise MishardsEnvError("hosts must be a list of host names or IPv4 addresses")
    discovery = MishardsDiscovery(
        writer_host=host,
        writer_port=int(port),
        hosts=tuple(hosts),
        discovery_port=int(data.get("discovery_port", MILVUS_PORT)),
    )
    check_host(discovery.writer_host, "writer address")
    check_port(discovery.writer_port, "writer port")
    return discovery


def discovery_to_json(discovery: MishardsDiscovery) -> dict[str, object]:
    return {
        "writer": f"{discovery.writer_host}:{discovery.writer_port}",
        "hosts": list(discovery.hosts),
        "discovery_port": discovery.discovery_port,
    }


class LocalAssignmentFile:
    """`<state_dir>/assignment.json`: the assignment of a node run without a coordinator."""

    def __init__(self, state_dir: str):
        self.path = os.path.join(state_dir, ASSIGNMENT_FILE)
        self._cache: tuple[float, Assignment | None] | None = None

    def read(self) -> Assignment | None:
        """The assignment in the file, None when there is no file; raises AssignmentError when it is bad."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return None
        if self._cache and self._cache[0] == mtime:
            return self._cache[1]
        try:
            text = read_text(self.path)
        except OSError as exc:
            raise AssignmentError(f"{self.path}: cannot be read: {exc.strerror or exc}") from None
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AssignmentError(f"{self.path}: not valid JSON: {exc}") from exc
        assignment = assignment_from_json(data, self.path)
        self._cache = (mtime, assignment)
        return assignment

    def write(self, assignment: Assignment) -> bool:
        data: dict[str, object] = {"role": assignment.role, "epoch": assignment.epoch, "reason": assignment.reason}
        if assignment.discovery is not None:
            data["mishards"] = discovery_to_json(assignment.discovery)
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        return write_atomic(self.path, json.dumps(data, indent=2) + "\n", mode=0o600)
