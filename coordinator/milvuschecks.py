"""The doctor's checks of what the real Milvus 1.x image needs of MySQL, of its version and of its WAL config.

Each reads what agents report in NodeObservation (milvus_image, milvus_meta, milvus_wal), bounded on entry by
`bound_milvus_facts`, and gives one Check naming the node and the fix:
- the account's CREATE right in the meta database (every Milvus start, a reader's too, runs CREATE TABLE IF
  NOT EXISTS; agent/milvus/metaright.py);
- every node's meta_uri naming one database (host, port, database; never the password);
- the image's version: v1.0.x readers run a merge at start (DBImpl.cpp:117-125), fixed in 1.1 (`c20e0bfd4f`);
- wal.recovery_error_ignore of the writer's rendered config (MILVUS1.md item 4).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jfsmilvus.common.milvus1 import (
    FAILED,
    GRANTED,
    LOGIN_REFUSED,
    META_PROBE_INTERVAL_S,
    META_RIGHT_STATES,
    RECOVERY_ERROR_IGNORE_DEFAULT,
    REFUSED,
    UNREACHABLE,
    WAL_ENABLE_DEFAULT,
    milvus_bool,
)
from jfsmilvus.v1 import node_pb2

from coordinator.checks import Check

# Bounds on what an agent may send (MySQL's own limits where it has one).
HOST_MAX, DATABASE_MAX, USER_MAX, DETAIL_MAX, SCALAR_MAX = 255, 64, 80, 300, 32
ACCOUNT_MAX = USER_MAX + 1 + HOST_MAX
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _clip(text: str, limit: int) -> str:
    text = _CONTROL.sub(" ", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bound_milvus_facts(observation: node_pb2.NodeObservation) -> None:
    """Bound the Milvus facts of an observation as it enters the coordinator (in place): lengths, ports, states."""
    meta = observation.milvus_meta
    for name, limit in (
        ("host", HOST_MAX),
        ("database", DATABASE_MAX),
        ("user", USER_MAX),
        ("account", ACCOUNT_MAX),
        ("create_detail", DETAIL_MAX),
    ):
        setattr(meta, name, _clip(getattr(meta, name), limit))
    if meta.port > 65535:
        meta.port = 0
    if meta.create_right and meta.create_right not in META_RIGHT_STATES:
        meta.create_detail = _clip(f"the agent sent an unknown state {meta.create_right!r}", DETAIL_MAX)
        meta.create_right = FAILED
    mishards = observation.mishards
    for name in ("state", "error", "container", "reason"):
        setattr(mishards, name, _clip(getattr(mishards, name), DETAIL_MAX))
    for name in ("hosts", "left_out", "foreign_overrides"):
        kept = [_clip(v, DETAIL_MAX) for v in list(getattr(mishards, name))[:64]]
        del getattr(mishards, name)[:]
        getattr(mishards, name).extend(kept)
    wal = observation.milvus_wal
    wal.render_error = _clip(wal.render_error, DETAIL_MAX)
    for name in ("rw_enable", "rw_recovery_error_ignore", "base_recovery_error_ignore"):
        setattr(wal, name, _clip(getattr(wal, name), SCALAR_MAX))


# -- the CREATE right --------------------------------------------------------------------------------------
def _quoted_account(meta: node_pb2.MilvusMetaStatus) -> str:
    user, _, host = meta.account.rpartition("@") if "@" in meta.account else (meta.user, "", "%")
    return f"'{user}'@'{host}'"


# Up to 1.1.1 every start runs CREATE TABLE IF NOT EXISTS; milvus#6651/#6670 (July 2021, after 1.1.1) looks first
# with SHOW TABLES LIKE and creates only a missing table, so a later image needs the right on a first start only.
LAST_ALWAYS_CREATING = (1, 1, 1)


def judge_create_right(node: str, meta: node_pb2.MilvusMetaStatus, version: tuple[int, int, int] | None) -> Check:
    """`version`: the image's (None: unknown, judged as the images that always create)."""
    name = "Milvus MySQL CREATE right"
    if not meta.configured:
        detail = "the agent reports no Milvus meta database (an agent older than this check, or no usable meta_uri)"
        return Check(name, node, "WARN", detail, "upgrade jfs-milvus-agent; `jfs-milvus-agent check-config`")
    where = f"`{meta.database}` at {meta.host}:{meta.port}"
    user = f"MySQL user '{meta.user}'"
    if meta.create_right == GRANTED:
        return Check(name, node, "PASS", f"{user} ({meta.account or '?'}) may CREATE TABLE in {where}")
    if meta.create_right == REFUSED:
        detail = (
            f"{user} may not CREATE TABLE in {where} ({meta.create_detail}): every Milvus 1.x start up to 1.1.1, a"
            " reader's too, runs CREATE TABLE IF NOT EXISTS for its meta tables and MySQL checks the right first, so"
            " Milvus exits at start"
        )
        fix = f"GRANT CREATE ON `{meta.database}`.* TO {_quoted_account(meta)}"
        if version is not None and version > LAST_ALWAYS_CREATING:
            detail = (
                f"{user} may not CREATE TABLE in {where} ({meta.create_detail}): Milvus after 1.1.1 (milvus#6670)"
                " creates only missing meta tables, so a start in a database without them exits"
            )
            return Check(name, node, "WARN", detail, fix)
        return Check(name, node, "FAIL", detail, fix)
    if meta.create_right == LOGIN_REFUSED:
        detail = f"MySQL at {meta.host}:{meta.port} refuses the login of {user} ({meta.create_detail}): Milvus cannot"
        detail += " log in either"
        fix = "check milvus.meta_password_file and that the account exists for this node's address"
        return Check(name, node, "FAIL", detail, fix)
    if meta.create_right == UNREACHABLE:
        detail = f"cannot tell: MySQL at {meta.host}:{meta.port} does not answer this node ({meta.create_detail})"
        return Check(name, node, "WARN", detail, "start MySQL, or open the way from this node (firewall, bind-address)")
    if not meta.create_right:
        every = f"{META_PROBE_INTERVAL_S / 60:.0f} minutes"
        detail = f"not checked yet: the agent probes it in the background, at its start and every {every}"
        return Check(name, node, "WARN", detail, "run the doctor again in a minute")
    return Check(name, node, "WARN", f"cannot tell: {meta.create_detail or meta.create_right}", "see MySQL's answer")


# -- one meta database -------------------------------------------------------------------------------------
_LOOPBACK = ("localhost", "127.", "::1")


def judge_meta_databases(metas: Sequence[tuple[str, node_pb2.MilvusMetaStatus]]) -> Check | None:
    """Every node's general.meta_uri names one database; None when no node reports at all."""
    name = "Milvus meta_uri"
    if not metas:
        return None
    named: dict[str, list[str]] = {}
    for node, meta in metas:
        if meta.configured:
            named.setdefault(f"{meta.host}:{meta.port}/{meta.database}", []).append(node)
    silent = [node for node, meta in metas if not meta.configured]
    fix = "set the same milvus.meta_uri host, port and database in every node's agent config"
    if len(named) > 1:
        listed = "; ".join(f"{', '.join(nodes)} name {where}" for where, nodes in sorted(named.items()))
        note = " (a loopback host is each node's own MySQL)" if any(w.startswith(_LOOPBACK) for w in named) else ""
        detail = f"the nodes keep Milvus metadata in different databases: {listed}{note}; a reader then sees none of"
        detail += " the writer's segments, and a promoted writer none of the data"
        return Check(name, "cluster", "FAIL", detail, fix)
    if not named:
        return Check(name, "cluster", "WARN", "no node reports its meta database", "upgrade jfs-milvus-agent")
    where, nodes = next(iter(named.items()))
    if silent:
        detail = f"{', '.join(nodes)} name {where}; {', '.join(silent)} report none (an older agent)"
        return Check(name, "cluster", "WARN", detail, f"upgrade jfs-milvus-agent there; {fix}")
    return Check(name, "cluster", "PASS", f"all {len(nodes)} nodes name {where}")


# -- the image's version -----------------------------------------------------------------------------------
_VERSION_TAG = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?=$|[-_+.])")


def milvus_version(image: str) -> tuple[int, int, int] | None:
    """The Milvus version in an image reference's tag (milvusdb/milvus:1.0.0-gpu-d030521-1ea92e); None when the
    reference has no tag (or only a digest) or the tag does not start with one."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    match = _VERSION_TAG.match(last.rsplit(":", 1)[1])
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def judge_milvus_version(node: str, image: str) -> Check:
    name = "Milvus version"
    version = milvus_version(image)
    if version is None:
        detail = f"cannot tell the version from {image}: its tag does not start with one (1.1.1-gpu-...)"
        return Check(name, node, "WARN", detail, "name the image by its version tag in milvus.image")
    text = ".".join(map(str, version))
    if version[0] != 1:
        detail = f"{image} is Milvus {text}: jfs-milvus renders config for and drives Milvus 1.x only"
        return Check(name, node, "WARN", detail, "run a Milvus 1.1 image (milvus.image)")
    if version[1] == 0:
        detail = (
            f"{image} is Milvus {text}: its readers run a merge at every start (DBImpl.cpp:117-125), which leaves"
            " an orphan NEW_MERGE row per mergeable collection in MySQL; fixed in 1.1 (c20e0bfd4f)"
        )
        return Check(name, node, "WARN", detail, "run a Milvus 1.1 image (milvus.image: milvusdb/milvus:1.1.1-...)")
    return Check(name, node, "PASS", f"{image} is Milvus {text}")


# -- the writer's WAL recovery -----------------------------------------------------------------------------
def _read(is_set: bool, text: str, default: bool) -> bool | None:
    return milvus_bool(text if is_set else None, default)


def _shown(is_set: bool, text: str) -> str:
    return repr(text) if is_set else "unset (Milvus's default true)"


def judge_wal_recovery(node: str, wal: node_pb2.MilvusWalStatus) -> Check:
    name = "WAL recovery_error_ignore"
    exits = (
        "a newly promoted writer whose local WAL does not match the LSNs another node wrote to MySQL exits at start"
        " (Wal init error!, DBImpl.cpp:128-135)"
    )
    base_fix = "set wal.recovery_error_ignore: true in the base server_config.yaml (milvus.base_config)"
    if wal.render_error:
        detail = f"the agent cannot render the writer's config: {wal.render_error}"
        return Check(name, node, "WARN", detail, "fix the agent config (`jfs-milvus-agent check-config`)")
    if not wal.checked:
        detail = "the agent does not report its rendered writer config (an older agent, which keeps the base's value;"
        detail += f" with the template's false {exits})"
        return Check(name, node, "WARN", detail, f"upgrade jfs-milvus-agent; {base_fix}")
    enable = _read(wal.rw_enable_set, wal.rw_enable, WAL_ENABLE_DEFAULT)
    if enable is None:
        detail = f"the writer's rendered wal.enable {wal.rw_enable!r} is no boolean Milvus reads: its config check"
        return Check(name, node, "FAIL", detail + " stops the start", "write true or false for wal.enable in the base")
    if not enable:
        return Check(name, node, "PASS", f"the writer's WAL is off (wal.enable {wal.rw_enable!r}): no recovery runs")
    ignore = _read(wal.rw_recovery_error_ignore_set, wal.rw_recovery_error_ignore, RECOVERY_ERROR_IGNORE_DEFAULT)
    rendered = _shown(wal.rw_recovery_error_ignore_set, wal.rw_recovery_error_ignore)
    if ignore is None:
        detail = f"the writer's rendered wal.recovery_error_ignore {rendered} is no boolean Milvus reads: its config"
        return Check(name, node, "FAIL", detail + " check stops the start", base_fix)
    if not ignore:
        detail = f"the writer's rendered config has wal.recovery_error_ignore {rendered}: {exits}"
        return Check(name, node, "FAIL", detail, f"upgrade jfs-milvus-agent (it renders true for a writer); {base_fix}")
    base = _read(wal.base_recovery_error_ignore_set, wal.base_recovery_error_ignore, RECOVERY_ERROR_IGNORE_DEFAULT)
    if base is not True:
        detail = (
            f"the base server_config.yaml says wal.recovery_error_ignore {wal.base_recovery_error_ignore!r}; the agent"
            f" overrides it and renders {rendered} for the writer, since with false {exits}"
        )
        return Check(name, node, "WARN", detail, f"{base_fix}, so that it says what runs")
    return Check(name, node, "PASS", f"the writer's rendered config has wal.recovery_error_ignore {rendered}")


def milvus_node_checks(observation: Any, image: str) -> list[Check]:
    """The per-node checks of this module for one (bounded) NodeObservation."""
    node = observation.node
    return [
        judge_milvus_version(node, image),
        judge_create_right(node, observation.milvus_meta, milvus_version(image)),
        judge_wal_recovery(node, observation.milvus_wal),
    ]
