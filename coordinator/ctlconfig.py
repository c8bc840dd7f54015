"""`coordinatorctl config ...`: the cluster config (show, edit, history, rollback) and the coordinator's own
config file (validate, show --local).

An edit or a rollback shows the diff against the current version, asks y/N (or takes --yes), and commits on
the leader against the version it showed: one committed meanwhile is refused, nothing changes. A config that
does not parse is refused here with every problem, as `check-config` says them, before anything is sent (and
the leader checks it again). A config that means the same as the current one is no change (exit 0).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import fields, is_dataclass
from typing import Any

import grpc
import yaml
from jfsmilvus.common.atomicfile import read_utf8
from jfsmilvus.common.clusterconfig import ClusterConfig, config_diff, parse_cluster_config, restart_needed
from jfsmilvus.common.configschema import ConfigError
from jfsmilvus.common.secrets import SecretRef
from jfsmilvus.v1 import coordinator_pb2

from coordinator.config import DEFAULT_CONFIG_PATH, load_coordinator_config
from coordinator.connection import connect
from coordinator.output import EXIT_OK, EXIT_USAGE, CtlError, emit, table

ACTIONS = ("show", "edit", "history", "rollback", "validate")


def config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="show|edit|history|rollback: the cluster config; validate: a file")
    p.add_argument(
        "target",
        nargs="?",
        metavar="N|FILE",
        help="rollback: the version to go back to; validate, show --local: the coordinator config file",
    )
    p.add_argument("--version", dest="config_version", type=int, metavar="N", help="show: this version")
    p.add_argument("--file", metavar="FILE", help="edit: the new config from FILE (default: $EDITOR)")
    p.add_argument("--local", action="store_true", help="show: the coordinator config on this host instead")
    p.add_argument("--limit", type=int, default=50, help="history: this many versions, newest last")
    p.add_argument("--reason", default="", help="recorded with the version")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def cmd_config(_conn: object, args: argparse.Namespace) -> int:
    if args.action == "validate" or (args.action == "show" and args.local):
        return _local(args)
    conn = connect(args)
    stub = conn.leader()
    try:
        if args.action == "show":
            return _show(stub, conn.timeout_s, args)
        if args.action == "history":
            return _history(stub, conn.timeout_s, args)
        if args.action == "edit":
            current = _get(stub, conn.timeout_s, 0)
            new_text = _read_file(args.file) if args.file else _edit_in_editor(current.body)
            return _change(stub, conn.timeout_s, args, current, new_text, rollback_of=0)
        if args.target is None or not args.target.isdigit() or int(args.target) < 1:
            raise CtlError("rollback needs the version to go back to: config rollback N (see config history)", 2)
        target = _get(stub, conn.timeout_s, int(args.target))
        current = _get(stub, conn.timeout_s, 0)
        return _change(stub, conn.timeout_s, args, current, target.body, rollback_of=target.version)
    except grpc.RpcError as exc:
        raise CtlError(f"refused: {exc.details()}") from exc


# -- the cluster config --------------------------------------------------------------------------------------
def _get(stub: Any, timeout_s: float, version: int) -> coordinator_pb2.ClusterConfigVersion:
    return stub.GetClusterConfig(coordinator_pb2.GetClusterConfigRequest(version=version), timeout=timeout_s)


def _when(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix)) if unix else "-"


def version_data(v: coordinator_pb2.ClusterConfigVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "current": v.current,
        "created": _when(v.created_unix),
        "author": v.author,
        "reason": v.reason,
        "restart_needed": v.restart_needed,
        "body": v.body,
    }


def _show(stub: Any, timeout_s: float, args: argparse.Namespace) -> int:
    found = _get(stub, timeout_s, args.config_version or 0)
    data = version_data(found)

    def render(d: dict[str, Any]) -> str:
        if d["version"] == 0:
            return d["body"].rstrip("\n")
        head = f"# cluster config version {d['version']} (current: {d['current']}), {d['created']} by {d['author']}" + (
            f": {d['reason']}" if d["reason"] else ""
        )
        return f"{head}\n{d['body'].rstrip(chr(10))}"

    emit(data, args.output, render)
    return EXIT_OK


def _history(stub: Any, timeout_s: float, args: argparse.Namespace) -> int:
    answer = stub.ListClusterConfigs(coordinator_pb2.ListClusterConfigsRequest(limit=args.limit), timeout=timeout_s)
    data = [{k: v for k, v in version_data(v).items() if k not in ("body", "current")} for v in answer.versions]
    for row in data:
        row["current"] = row["version"] == answer.current

    def render(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no cluster config version yet (config show proposes one; config edit --file commits one)"
        return table(
            ["VERSION", "WHEN", "WHO", "RESTART", "REASON"],
            [
                [
                    f"{r['version']}{' *' if r['current'] else ''}",
                    r["created"],
                    r["author"],
                    "yes" if r["restart_needed"] else "no",
                    r["reason"] or "-",
                ]
                for r in rows
            ],
        )

    emit(data, args.output, render)
    return EXIT_OK


def _parse_or_refuse(text: str, source: str) -> ClusterConfig:
    try:
        return parse_cluster_config(text, source)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise CtlError(f"refused: {source} is not a valid cluster config; nothing was changed") from None


def _change(
    stub: Any,
    timeout_s: float,
    args: argparse.Namespace,
    current: coordinator_pb2.ClusterConfigVersion,
    new_text: str,
    rollback_of: int,
) -> int:
    source = args.file if args.file and not rollback_of else f"cluster config version {rollback_of or 'new'}"
    new = _parse_or_refuse(new_text, source)
    old_text = current.body if current.version else ""
    old = None
    if current.version:
        try:
            old = parse_cluster_config(old_text, f"cluster config version {current.version}")
        except ConfigError:
            old = None
    if old is not None and old == new:
        print(f"no change: the config means the same as version {current.version}, which stays current")
        return EXIT_OK
    old_name = f"version {current.version}" if current.version else "no version yet"
    new_name = f"version {rollback_of} (as a new version)" if rollback_of else (args.file or "edited")
    print(config_diff(old_text, new_text, old_name, new_name), end="")
    restart = restart_needed(old, new)
    print(
        "This change needs a Milvus restart: no node restarts now; each stays pinned to the version it runs "
        "until a rollout moves it (readers one by one, the writer by a planned switchover)."
        if restart
        else "This change needs no restart: every node applies it at once."
    )
    what = f"Roll back to version {rollback_of} as a new version" if rollback_of else "Commit this as a new version"
    _confirm(args, f"{what}?")
    request = coordinator_pb2.CommitClusterConfigRequest(
        body=new_text, reason=args.reason, expected_current=current.version, rollback_of=rollback_of
    )
    answer = stub.CommitClusterConfig(request, timeout=timeout_s)
    data = {
        "committed": answer.committed,
        "version": answer.version,
        "restart_needed": answer.restart_needed,
        "nodes_pinned": answer.nodes_pinned,
        "message": answer.message,
    }
    emit(data, args.output, lambda d: d["message"])
    return EXIT_OK


def _confirm(args: argparse.Namespace, question: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CtlError(f"{question.rstrip('?')}: not on a terminal, so add --yes to confirm; nothing was changed", 2)
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CtlError("cancelled; nothing was changed")


def _read_file(path: str) -> str:
    try:
        return read_utf8(path)
    except OSError as exc:
        raise CtlError(f"{path}: cannot be read: {exc.strerror or exc}", EXIT_USAGE) from None
    except UnicodeDecodeError as exc:
        raise CtlError(f"{path}: not UTF-8 text (byte {exc.start})", EXIT_USAGE) from None


def _edit_in_editor(body: str) -> str:
    """`body` in $VISUAL or $EDITOR (else vi), in a private temporary file; the text saved."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="coordinatorctl-config-") as folder:
        path = os.path.join(folder, "cluster-config.yaml")
        with open(path, "w", encoding="utf-8") as f:  # a private folder of this run; read back below
            f.write(body)
        try:
            done = subprocess.run([*shlex.split(editor), path], check=False)
        except OSError as exc:
            raise CtlError(f"cannot run the editor {editor!r}: {exc}; use --file", EXIT_USAGE) from None
        if done.returncode != 0:
            raise CtlError(f"the editor {editor!r} exited with {done.returncode}; nothing was changed")
        return _read_file(path)


# -- the coordinator's own config file (what `config show|validate [FILE]` did before the cluster config) ----
def _local(args: argparse.Namespace) -> int:
    path = args.target or args.file or args.config or DEFAULT_CONFIG_PATH
    try:
        config = load_coordinator_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    if args.action == "validate":
        print(f"{path}: OK (cluster {config.cluster}, coordinator {config.coordinator_id})")
        return EXIT_OK
    data = _plain(config)
    emit(data, "yaml" if args.output == "table" else args.output, lambda d: yaml.safe_dump(d, sort_keys=False))
    return EXIT_OK


def _plain(value: Any) -> Any:
    """A config as plain data; secrets appear as where they are read from, never their value."""
    if isinstance(value, SecretRef):
        return {"file": value.file} if value.file else {"env": value.env}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
