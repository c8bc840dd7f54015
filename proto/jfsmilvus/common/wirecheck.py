"""Every field of an RPC checked where it enters, by the rules `check-config` applies to the same values.

Both daemons import this: the coordinator checks each Report and operator request, the agent each pushed or
answered Assignment. A check returns None, or one line that names the field, what it holds (clipped) and what
is allowed; the servers refuse with INVALID_ARGUMENT and that line, and store nothing.

Beyond the named rules, every message is walked whole (so a field added later is covered too): every text is
bounded, every repeated field and map has a bounded count, every double is finite, every enum a known value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from jfsmilvus.common.clusterconfig import MAX_BODY_BYTES, parse_cluster_config
from jfsmilvus.common.configschema import NAME_ALLOWED, NAME_PATTERN, ConfigError, check_ipv4

MAX_TEXT = 4096  # characters in any one text field (a reason, an error, an image name)
MAX_ITEMS = 256  # entries in any repeated field or map (GPUs, mounts, reasons, errors, XIDs)
MAX_REPORT_BYTES = 256 * 1024  # a whole ReportRequest; a real one is a few KiB
MAX_PORT = 65535
MAX_EPOCH = 2**53  # an epoch above this is a forgery or a bug; MySQL's BIGINT and JSON both hold it
MAX_LEASE_MS = 3_600_000  # no lease is an hour long
MAX_REASON = 1024  # an operator's reason
MAX_PRIORITY = 1_000_000
MAX_EVENTS_LIMIT = 100_000
MAX_RTT_S = 60.0  # a longer round trip says nothing useful about a clock (agent/clock.py)
MAX_CLOCK_OFFSET_S = 10 * 365 * 86_400.0  # a node's clock off by more than ten years is a forgery or a bug
MOUNT_STATES = ("healthy", "degraded", "failed", "unmounted", "hung")
_NAME = re.compile(NAME_PATTERN)


def _clip(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def name_problem(field: str, value: str, required: bool = True) -> str | None:
    """A node name as `node.name` of the agent config allows it; empty only when not required."""
    if not value and not required:
        return None
    if not _NAME.fullmatch(value):
        return f"{field} = {_clip(value)}: {NAME_ALLOWED}"
    return None


def ipv4_problem(field: str, value: str, required: bool = True) -> str | None:
    if not value and not required:
        return None
    why = check_ipv4(value)
    return f"{field} = {_clip(value)}: {why}" if why else None


def port_problem(field: str, value: int, required: bool = False) -> str | None:
    """A TCP port; 0 means the default where not required."""
    if value > MAX_PORT or (required and value == 0):
        return f"{field} = {value}: must be a port from {0 if not required else 1} to {MAX_PORT}"
    return None


def text_problem(field: str, value: str, limit: int = MAX_TEXT) -> str | None:
    if len(value) > limit:
        return f"{field}: {len(value)} characters, at most {limit} allowed"
    return None


def _walk(message: Message, path: str) -> Iterator[str]:
    """The generic bounds of every field set in `message`, depth first."""
    for field, value in message.ListFields():
        where = f"{path}.{field.name}" if path else field.name
        if field.is_repeated:
            if len(value) > MAX_ITEMS:
                yield f"{where}: {len(value)} entries, at most {MAX_ITEMS} allowed"
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                entry = field.message_type.fields_by_name
                key_field, value_field = entry["key"], entry["value"]
                for k, v in value.items():
                    yield from _scalar(key_field, k, f"{where}[key]")
                    if value_field.message_type is not None:
                        yield from _walk(v, f"{where}[{_clip(k)}]")
                    else:
                        yield from _scalar(value_field, v, f"{where}[{_clip(k)}]")
                continue
            items = list(value)
        else:
            items = [value]
        for index, item in enumerate(items):
            at = f"{where}[{index}]" if field.is_repeated else where
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                yield from _walk(item, at)
            else:
                yield from _scalar(field, item, at)


def _scalar(field: FieldDescriptor, value: object, where: str) -> Iterator[str]:
    if field.type == FieldDescriptor.TYPE_STRING:
        assert isinstance(value, str)
        if len(value) > MAX_TEXT:
            yield f"{where}: {len(value)} characters, at most {MAX_TEXT} allowed"
    elif field.type == FieldDescriptor.TYPE_BYTES:
        assert isinstance(value, bytes)
        if len(value) > MAX_TEXT:
            yield f"{where}: {len(value)} bytes, at most {MAX_TEXT} allowed"
    elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        assert isinstance(value, float)
        if not math.isfinite(value):
            yield f"{where} = {value}: must be a finite number"
    elif field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        if value not in field.enum_type.values_by_number:
            known = ", ".join(v.name for v in field.enum_type.values)
            yield f"{where} = {value}: not a known {field.enum_type.name} ({known})"


def first(problems: Iterator[str | None]) -> str | None:
    return next((p for p in problems if p), None)


def _nonnegative(field: str, value: float, limit: float) -> str | None:
    if not 0 <= value <= limit:
        return f"{field} = {value}: must be from 0 to {limit:g}"
    return None


def observation_problem(obs: Message) -> str | None:
    """What is wrong with a NodeObservation as a Report carries it (or as an agent's Status answers it)."""

    def named() -> Iterator[str | None]:
        yield name_problem("observation.node", obs.node)
        yield ipv4_problem("observation.address", obs.address)
        for port in ("milvus_port", "milvus_http_port", "agent_port"):
            yield port_problem(f"observation.{port}", getattr(obs, port))
        if obs.highest_epoch_seen > MAX_EPOCH:
            yield f"observation.highest_epoch_seen = {obs.highest_epoch_seen}: at most {MAX_EPOCH}"
        yield text_problem("observation.mishards_writer", obs.mishards_writer, 255)
        for i, mount in enumerate(obs.mounts):
            if mount.state not in MOUNT_STATES:
                yield f"observation.mounts[{i}].state = {_clip(mount.state)}: one of {', '.join(MOUNT_STATES)}"
        if obs.HasField("container") and obs.container.epoch > MAX_EPOCH:
            yield f"observation.container.epoch = {obs.container.epoch}: at most {MAX_EPOCH}"
        yield from _walk(obs, "observation")
        # Finite is checked by the walk; these must also be in range (a lease left cannot be negative).
        if math.isfinite(obs.lease_left_s):
            yield _nonnegative("observation.lease_left_s", obs.lease_left_s, MAX_LEASE_MS / 1000)
        if math.isfinite(obs.stopping_for_s):
            yield _nonnegative("observation.stopping_for_s", obs.stopping_for_s, 10 * 86_400)
        if math.isfinite(obs.clock_rtt_s):
            yield _nonnegative("observation.clock_rtt_s", obs.clock_rtt_s, MAX_RTT_S)
        if math.isfinite(obs.clock_offset_s) and abs(obs.clock_offset_s) > MAX_CLOCK_OFFSET_S:
            yield f"observation.clock_offset_s = {obs.clock_offset_s}: at most {MAX_CLOCK_OFFSET_S:g} either way"
        if obs.row_lease_ms > MAX_LEASE_MS:
            yield f"observation.row_lease_ms = {obs.row_lease_ms}: at most {MAX_LEASE_MS}"
        yield config_version_problem("observation.config_version", obs.config_version)

    return first(named())


def report_problem(request: Message) -> str | None:
    """What is wrong with a ReportRequest; None when every field is within the rules."""
    size = request.ByteSize()
    if size > MAX_REPORT_BYTES:
        return f"the report is {size} bytes, at most {MAX_REPORT_BYTES} allowed"
    if not request.HasField("observation"):
        return "the report carries no observation"
    return observation_problem(request.observation)


def assignment_problem(a: Message, path: str = "assignment") -> str | None:
    """What is wrong with an Assignment, as pushed to an agent or answered to its report."""

    def named() -> Iterator[str | None]:
        if a.epoch > MAX_EPOCH:
            yield f"{path}.epoch = {a.epoch}: at most {MAX_EPOCH}"
        yield name_problem(f"{path}.writer", a.writer, required=False)
        yield ipv4_problem(f"{path}.writer_address", a.writer_address, required=False)
        yield port_problem(f"{path}.writer_http_port", a.writer_http_port)
        for field in ("lease_ms", "row_lease_ms"):
            if getattr(a, field) > MAX_LEASE_MS:
                yield f"{path}.{field} = {getattr(a, field)}: at most {MAX_LEASE_MS}"
        if a.HasField("discovery"):
            d = a.discovery
            yield ipv4_problem(f"{path}.discovery.writer_address", d.writer_address, required=False)
            yield port_problem(f"{path}.discovery.writer_port", d.writer_port)
            yield port_problem(f"{path}.discovery.discovery_port", d.discovery_port)
            for i, host in enumerate(d.hosts):
                yield ipv4_problem(f"{path}.discovery.hosts[{i}]", host)
        yield from _walk(a, path)

    return first(named())


def assign_request_problem(request: Message) -> str | None:
    """What is wrong with an AssignRequest (AgentService.Assign)."""
    return first(
        iter(
            (
                text_problem("coordinator", request.coordinator, 255),
                assignment_problem(request.assignment),
            )
        )
    )


def operator_problem(request: Message) -> str | None:
    """What is wrong with an operator's request: a node named as the rules allow, a bounded reason."""

    def named() -> Iterator[str | None]:
        fields = request.DESCRIPTOR.fields_by_name
        if "to" in fields:
            yield name_problem("to", request.to, required=False)
        if "node" in fields:
            yield name_problem("node", request.node)
        if "reason" in fields:
            yield text_problem("reason", request.reason, MAX_REASON)
        if "priority" in fields and not 0 <= request.priority <= MAX_PRIORITY:
            yield f"priority = {request.priority}: must be from 0 (never a writer) to {MAX_PRIORITY}"
        if "limit" in fields and request.limit > MAX_EVENTS_LIMIT:
            yield f"limit = {request.limit}: at most {MAX_EVENTS_LIMIT}"
        yield from _walk(request, "")

    return first(named())


# -- the cluster config (jfsmilvus.common.clusterconfig) ---------------------------------------------------------
MAX_CONFIG_VERSION = MAX_EPOCH
MAX_CONFIG_HISTORY = 10_000


def config_version_problem(field: str, version: int) -> str | None:
    if version > MAX_CONFIG_VERSION:
        return f"{field} = {version}: at most {MAX_CONFIG_VERSION}"
    return None


def config_body_problem(field: str, body: str, source: str) -> str | None:
    """A cluster config text that is too long or does not parse: its first problem, as check-config says it."""
    size = len(body.encode("utf-8", errors="replace"))
    if size > MAX_BODY_BYTES:
        return f"{field}: {size} bytes, at most {MAX_BODY_BYTES} allowed"
    try:
        parse_cluster_config(body, source)
    except ConfigError as exc:
        return f"{field}: {exc.problems[0]}" + (f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else "")
    return None


def cluster_config_problem(cc: Message, path: str = "cluster_config") -> str | None:
    """What is wrong with the ClusterConfig a report's answer brings: a bounded version, a body that parses."""

    def named() -> Iterator[str | None]:
        yield config_version_problem(f"{path}.version", cc.version)
        if cc.version == 0 and cc.body:
            yield f"{path}: a body without a version"
        if cc.version:
            yield config_body_problem(f"{path}.body", cc.body, f"cluster config version {cc.version}")

    return first(named())


def config_commit_problem(request: Message) -> str | None:
    """What is wrong with a CommitClusterConfigRequest before its body is parsed (the server parses it and
    answers with every problem): bounded sizes, a bounded reason."""

    def named() -> Iterator[str | None]:
        size = len(request.body.encode("utf-8", errors="replace"))
        if size > MAX_BODY_BYTES:
            yield f"body: {size} bytes, at most {MAX_BODY_BYTES} allowed"
        yield text_problem("reason", request.reason, MAX_REASON)
        yield config_version_problem("expected_current", request.expected_current)
        yield config_version_problem("rollback_of", request.rollback_of)

    return first(named())


def config_request_problem(request: Message) -> str | None:
    """GetClusterConfig and ListClusterConfigs: a bounded version or limit."""
    fields = request.DESCRIPTOR.fields_by_name
    if "version" in fields:
        return config_version_problem("version", request.version)
    if request.limit > MAX_CONFIG_HISTORY:
        return f"limit = {request.limit}: at most {MAX_CONFIG_HISTORY}"
    return None
