"""coordinatorctl: the operator's command line for a jfs-milvus cluster.

Output is for people by default (`-o table`) and for programs on request (`-o json|yaml`). Exit codes: 0 done,
1 refused or failed, 2 bad usage. Errors go to stderr in one line that says what to do. The coordinator is
chosen by --coordinator, $JFS_MILVUS_COORDINATOR or the coordinator config; reads and actions follow the leader
(a read is answered by a follower only when the leader does not answer, and stderr says so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
import yaml
from jfsmilvus.common.configschema import ConfigError
from jfsmilvus.v1 import coordinator_pb2, node_pb2

from coordinator import __version__
from coordinator.config import DEFAULT_CONFIG_PATH, load_coordinator_config
from coordinator.connection import ADDRESS_ENV, Connection, connect
from coordinator.core import epochs_ahead_sentence
from coordinator.doctor import cmd_doctor
from coordinator.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CtlError, emit, table, when

ROLE = {node_pb2.ROLE_RW: "rw", node_pb2.ROLE_RO: "ro", node_pb2.ROLE_STOPPED: "none", node_pb2.ROLE_UNSPECIFIED: "-"}
HEALTH = {
    node_pb2.HEALTH_HEALTHY: "healthy",
    node_pb2.HEALTH_DEGRADED: "degraded",
    node_pb2.HEALTH_FAILED: "failed",
    node_pb2.HEALTH_UNSPECIFIED: "-",
}
PHASES = ("detect", "decide", "fence", "promote", "healthy", "mishards")


# -- status ----------------------------------------------------------------------------------------------------
def status_data(status: coordinator_pb2.ClusterStatus) -> dict[str, Any]:
    d = status.discovery
    return {
        "cluster": status.cluster,
        "writer": status.writer or None,
        "epoch": status.epoch,
        "leader": status.leader or None,
        "leader_term": status.leader_term,
        "paused": status.paused,
        "paused_reason": status.paused_reason,
        "mishards": {
            "woserver": f"tcp://{d.writer_address}:{d.writer_port}" if d.writer_address else None,
            "hosts": list(d.hosts),
        },
        "why": status.why,
        "epochs_ahead": epochs_ahead_sentence({n.name: n.epoch for n in status.nodes}, status.epoch),
        "nodes": [
            {
                "name": n.name,
                "address": n.address,
                "role_assigned": ROLE[n.role_assigned],
                "role_running": ROLE[n.role_running],
                "epoch": n.epoch,
                "epoch_ahead": n.epoch > status.epoch,
                "gpu": HEALTH[n.gpu_health],
                "mount": HEALTH[n.mount_health],
                "container": n.container_state,
                "lag_s": round(n.seconds_since_report, 1) if n.seconds_since_report >= 0 else None,
                "priority": n.priority,
                "maintenance": n.maintenance,
                "maintenance_reason": n.maintenance_reason,
                "waiting_for": n.waiting_for or None,
                "waiting_since": n.waiting_since_unix or None,
            }
            for n in status.nodes
        ],
    }


def render_status(data: dict[str, Any]) -> str:
    paused = f"yes ({data['paused_reason'] or 'no reason given'})" if data["paused"] else "no"
    head = [
        f"Cluster: {data['cluster']}   Writer: {data['writer'] or '(none)'}   Epoch: {data['epoch']}   "
        f"Leader: {data['leader'] or '(none)'} term {data['leader_term']}   Paused: {paused}",
        f"Mishards: WOSERVER {data['mishards']['woserver'] or '-'}   "
        f"hosts {','.join(data['mishards']['hosts']) or '-'}",
    ]
    rows = [
        [
            n["name"] + (" *" if n["name"] == data["writer"] else ""),
            n["address"],
            n["role_assigned"],
            n["role_running"],
            f"{n['epoch']} (ahead)" if n["epoch_ahead"] else n["epoch"],
            n["gpu"],
            n["mount"],
            n["container"],
            "-" if n["lag_s"] is None else f"{n['lag_s']:.1f}s",
            n["priority"],
            ("yes: " + n["maintenance_reason"]) if n["maintenance"] else "no",
        ]
        for n in data["nodes"]
    ]
    body = table(
        [
            "NODE",
            "ADDRESS",
            "ASSIGNED",
            "RUNNING",
            "EPOCH",
            "GPU",
            "MOUNT",
            "CONTAINER",
            "LAG",
            "PRIORITY",
            "MAINTENANCE",
        ],
        rows,
    )
    ahead = [f"Epochs: {data['epochs_ahead']}"] if data["epochs_ahead"] else []
    waits = [
        f"Waiting: {n['name']} since {when(n['waiting_since'])}: {n['waiting_for']}"
        for n in data["nodes"]
        if n["waiting_for"]
    ]
    return "\n".join([*head, "", body, "", *ahead, *waits, f"Why: {data['why']}"])


def cmd_status(conn: Connection, args: argparse.Namespace) -> int:
    while True:
        data = status_data(conn.status())
        if args.watch is None:
            emit(data, args.output, render_status)
            return EXIT_OK
        sys.stdout.write("\033[H\033[J")
        emit(data, args.output, render_status)
        sys.stdout.flush()
        time.sleep(args.watch)


# -- actions ---------------------------------------------------------------------------------------------------
def confirm(args: argparse.Namespace, question: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CtlError(f"{question.rstrip('?')}: not on a terminal, so add --yes to confirm", EXIT_USAGE)
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CtlError("cancelled; nothing was changed")


def follow_progress(stream: Iterable[coordinator_pb2.Progress], output: str) -> int:
    began = time.monotonic()
    steps = []
    for p in stream:
        steps.append({"phase": p.phase, "message": p.message, "at": p.at_unix, "done": p.done, "ok": p.ok})
        if output == "table":
            print(f"{time.monotonic() - began:6.1f}s  {p.phase:<9} {p.message}", flush=True)
        if p.done:
            total = time.monotonic() - began
            if output != "table":
                emit({"steps": steps, "ok": p.ok, "seconds": round(total, 3)}, output, str)
            if not p.ok:
                raise CtlError(f"{p.phase}: {p.message}")
            if output == "table":
                print(f"done in {total:.1f}s")
            return EXIT_OK
    raise CtlError("the coordinator ended the stream without an outcome; check `coordinatorctl status`")


def cmd_switchover(conn: Connection, args: argparse.Namespace) -> int:
    confirm(args, f"Move the writer to {args.to or 'the best candidate'}?")
    stub = conn.leader()
    request = coordinator_pb2.SwitchoverRequest(
        to=args.to or "", reason=args.reason, on_drain_timeout=args.on_drain_timeout or ""
    )
    # No client deadline: the coordinator ends the stream (a drain may take up to its drain_timeout_s).
    return follow_progress(stub.Switchover(request), args.output)


def cmd_failover(conn: Connection, args: argparse.Namespace) -> int:
    if args.force:
        print(
            "warning: --force promotes without proof that the old writer stopped; if it is still running it "
            "may write at the same time and corrupt the volume until its own lease runs out",
            file=sys.stderr,
        )
    confirm(args, f"Fail over to {args.to}{' WITHOUT fencing the old writer' if args.force else ''}?")
    stub = conn.leader()
    request = coordinator_pb2.FailoverRequest(to=args.to, force=args.force, reason=args.reason)
    return follow_progress(stub.Failover(request, timeout=300), args.output)


def _call(conn: Connection, action: Callable[[Any], Any], done: str, output: str) -> int:
    stub = conn.leader()
    try:
        status = action(stub)
    except grpc.RpcError as exc:
        raise CtlError(f"refused: {exc.details()}") from exc
    data = status_data(status)
    emit(data, output, lambda d: f"{done}\n\n{render_status(d)}")
    return EXIT_OK


def cmd_pause(conn: Connection, args: argparse.Namespace) -> int:
    paused = args.command == "pause"
    request = coordinator_pb2.SetPausedRequest(paused=paused, reason=args.reason)
    done = "automatic failover paused" if paused else "automatic failover resumed"
    return _call(conn, lambda s: s.SetPaused(request, timeout=conn.timeout_s), done, args.output)


def cmd_maintenance(conn: Connection, args: argparse.Namespace) -> int:
    on = args.state == "on"
    if on:
        confirm(args, f"Put {args.node} in maintenance (it stops Milvus; a writer is switched over first)?")
    request = coordinator_pb2.SetMaintenanceRequest(node=args.node, on=on, reason=args.reason)
    done = f"{args.node} maintenance {args.state}"
    return _call(conn, lambda s: s.SetMaintenance(request, timeout=conn.timeout_s), done, args.output)


def cmd_priority(conn: Connection, args: argparse.Namespace) -> int:
    request = coordinator_pb2.SetPriorityRequest(node=args.node, priority=args.priority)
    done = f"{args.node} priority {args.priority}"
    return _call(conn, lambda s: s.SetPriority(request, timeout=conn.timeout_s), done, args.output)


def cmd_forget(conn: Connection, args: argparse.Namespace) -> int:
    confirm(args, f"Forget {args.node} (remove it from the cluster's state; it must be gone)?")
    stub = conn.leader()
    request = coordinator_pb2.ForgetNodeRequest(node=args.node, reason=args.reason)
    try:
        answer = stub.ForgetNode(request, timeout=conn.timeout_s)
    except grpc.RpcError as exc:
        raise CtlError(f"refused: {exc.details()}") from exc
    data = {"node": args.node, "forgotten": answer.forgotten, "message": answer.message}
    data["status"] = status_data(answer.status)
    emit(data, args.output, lambda d: f"{d['message']}\n\n{render_status(d['status'])}")
    return EXIT_OK


# -- history and events ----------------------------------------------------------------------------------------
def event_data(e: coordinator_pb2.Event) -> dict[str, Any]:
    phases = [(p.name, p.at_unix) for p in e.phases]
    durations = {name: round(at - phases[i - 1][1], 3) for i, (name, at) in enumerate(phases) if i > 0}
    return {
        "id": e.id,
        "at": e.at_unix,
        "time": when(e.at_unix),
        "kind": e.kind,
        "node": e.node or None,
        "epoch": e.epoch,
        "reason": e.reason,
        "phases": [{"name": n, "at": at} for n, at in phases],
        "phase_seconds": durations,
        "total_seconds": round(phases[-1][1] - phases[0][1], 3) if len(phases) > 1 else None,
    }


def render_history(data: list[dict[str, Any]]) -> str:
    def sec(e: dict[str, Any], phase: str) -> str:
        value = e["phase_seconds"].get(phase)
        return "-" if value is None else f"{value:.2f}s"

    rows = [
        [
            e["id"],
            e["time"],
            e["kind"],
            e["node"] or "-",
            e["epoch"],
            *(sec(e, p) for p in PHASES[1:]),
            "-" if e["total_seconds"] is None else f"{e['total_seconds']:.2f}s",
            e["reason"],
        ]
        for e in data
    ]
    return table(
        ["ID", "TIME", "KIND", "TO", "EPOCH", "DECIDE", "FENCE", "PROMOTE", "HEALTHY", "MISHARDS", "TOTAL", "REASON"],
        rows,
    )


def cmd_history(conn: Connection, args: argparse.Namespace) -> int:
    stub = conn.read().stub
    request = coordinator_pb2.ListEventsRequest(limit=args.limit, role_changes_only=True)
    data = [event_data(e) for e in stub.ListEvents(request, timeout=conn.timeout_s)]
    emit(data, args.output, lambda d: render_history(d) if d else "no role changes yet")
    return EXIT_OK


def cmd_events(conn: Connection, args: argparse.Namespace) -> int:
    stub = conn.read().stub
    request = coordinator_pb2.ListEventsRequest(limit=args.limit, follow=args.follow)
    try:
        for e in stub.ListEvents(request, timeout=None if args.follow else conn.timeout_s):
            data = event_data(e)
            if args.output == "table":
                print(
                    f"{data['time']}  {data['kind']:<13} {data['node'] or '-':<12} "
                    f"epoch {data['epoch']:<4} {data['reason']}",
                    flush=True,
                )
            else:
                print(
                    json.dumps(data) if args.output == "json" else yaml.safe_dump([data], sort_keys=False).rstrip(),
                    flush=True,
                )
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def cmd_why(conn: Connection, args: argparse.Namespace) -> int:
    answerer = conn.read()
    sentence = answerer.stub.Why(coordinator_pb2.WhyRequest(), timeout=conn.timeout_s).sentence
    data = {"why": sentence, "answered_by": answerer.address, "leader_answered": answerer.leading}
    emit(data, args.output, lambda d: d["why"])
    return EXIT_OK


# -- config --------------------------------------------------------------------------------------------------
def cmd_config(conn: Connection | None, args: argparse.Namespace) -> int:
    path = args.file or args.config or DEFAULT_CONFIG_PATH
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
    from dataclasses import fields, is_dataclass

    from jfsmilvus.common.secrets import SecretRef

    if isinstance(value, SecretRef):
        return {"file": value.file} if value.file else {"env": value.env}
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


# -- completion ----------------------------------------------------------------------------------------------
COMMANDS = [
    "status",
    "list",
    "switchover",
    "failover",
    "pause",
    "resume",
    "maintenance",
    "priority",
    "forget",
    "node",
    "history",
    "events",
    "why",
    "doctor",
    "config",
    "completion",
]


def cmd_completion(conn: Connection | None, args: argparse.Namespace) -> int:
    words = " ".join(COMMANDS)
    if args.shell == "bash":
        print(
            "_coordinatorctl() {\n"
            "  local cur=${COMP_WORDS[COMP_CWORD]}\n"
            f'  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=($(compgen -W "{words}" -- "$cur")); '
            'else COMPREPLY=($(compgen -W "-o --output --yes --to --force --reason --limit --follow --watch '
            '--coordinator --ca --cert --key --help on off show validate bash zsh" -- "$cur")); fi\n'
            "}\ncomplete -F _coordinatorctl coordinatorctl"
        )
    else:
        print(f"#compdef coordinatorctl\n_arguments '1: :({words})' '*: :_files'")
    return EXIT_OK


# -- the parser --------------------------------------------------------------------------------------------------
def common_options(suppress: bool) -> argparse.ArgumentParser:
    """Options allowed before and after the command; after it they only override what was given before."""
    common = argparse.ArgumentParser(add_help=False)

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    common.add_argument(
        "--coordinator",
        metavar="ADDR[,ADDR]",
        default=default(None),
        help=f"coordinator(s) to ask (default: ${ADDRESS_ENV}, else where the config's coordinator listens, "
        "else 127.0.0.1:19800)",
    )
    common.add_argument(
        "--config",
        metavar="FILE",
        default=default(None),
        help=f"config of the coordinator on this host, reached where it listens (default {DEFAULT_CONFIG_PATH})",
    )
    common.add_argument(
        "--ca", default=default(os.environ.get("JFS_MILVUS_TLS_CA")), help="CA certificate ($JFS_MILVUS_TLS_CA)"
    )
    common.add_argument(
        "--cert",
        default=default(os.environ.get("JFS_MILVUS_TLS_CERT")),
        help="client certificate ($JFS_MILVUS_TLS_CERT)",
    )
    common.add_argument(
        "--key", default=default(os.environ.get("JFS_MILVUS_TLS_KEY")), help="client key ($JFS_MILVUS_TLS_KEY)"
    )
    common.add_argument(
        "-o", "--output", choices=("table", "json", "yaml"), default=default("table"), help="output format"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    top, common = common_options(False), common_options(True)
    parser = argparse.ArgumentParser(prog="coordinatorctl", description="Operate a jfs-milvus cluster.", parents=[top])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_: str, example: str, aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, aliases=list(aliases), parents=[common], help=help_, description=help_, epilog=f"example: {example}"
        )

    status = command(
        "status", "one row per node and the cluster's header", "coordinatorctl status --watch 2", aliases=["list"]
    )
    status.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS", help="refresh in place")
    sw = command(
        "switchover",
        "planned move of the writer: the old one drains (stops gracefully, flushing) first",
        "coordinatorctl switchover --to node-b --yes",
    )
    sw.add_argument("--to", metavar="NODE", help="the new writer (default: the best candidate)")
    sw.add_argument(
        "--on-drain-timeout",
        choices=("abandon", "force"),
        help="when the old writer's drain fails or runs out of time: abandon (it keeps writing) or force "
        "(go on; what it had not flushed is lost); default: the coordinator's timing.drain_timeout_action",
    )
    sw.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sw.add_argument("--reason", default="", help="recorded with the event")
    fo = command(
        "failover", "make NODE the writer when the old one is already gone", "coordinatorctl failover --to node-b --yes"
    )
    fo.add_argument("--to", metavar="NODE", required=True)
    fo.add_argument("--force", action="store_true", help="do not wait for proof that the old writer is fenced")
    fo.add_argument("--yes", action="store_true")
    fo.add_argument("--reason", default="")
    for name, help_ in (
        ("pause", "stop automatic decisions (leases are still renewed)"),
        ("resume", "restart automatic decisions"),
    ):
        p = command(name, help_, f"coordinatorctl {name} --reason 'network work'")
        p.add_argument("--reason", default="")
    mt = command(
        "maintenance",
        "take a node out of service, or put it back",
        "coordinatorctl maintenance on node-c --reason 'GPU swap' --yes",
    )
    mt.add_argument("state", choices=("on", "off"))
    mt.add_argument("node")
    mt.add_argument("--reason", default="")
    mt.add_argument("--yes", action="store_true")
    pr = command(
        "priority", "set a node's priority (0: never the writer; higher first)", "coordinatorctl priority node-a 10"
    )
    pr.add_argument("node")
    pr.add_argument("priority", type=int)
    fg = command(
        "forget",
        "remove a node that is gone from the cluster's state (not the writer, nor a node that still reports)",
        "coordinatorctl forget node-d --reason 'decommissioned' --yes",
    )
    fg.add_argument("node")
    fg.add_argument("--reason", default="", help="recorded with the event")
    fg.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    nd = command(
        "node",
        "node remove NODE: the same as forget NODE",
        "coordinatorctl node remove node-d --reason 'decommissioned' --yes",
    )
    nd.add_argument("node_action", metavar="ACTION", choices=("remove",), help="remove")
    nd.add_argument("node")
    nd.add_argument("--reason", default="", help="recorded with the event")
    nd.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    hist = command("history", "past role changes with their phase durations", "coordinatorctl history --limit 10")
    hist.add_argument("--limit", type=int, default=20)
    ev = command("events", "every decision, newest last", "coordinatorctl events --follow")
    ev.add_argument("--limit", type=int, default=50)
    ev.add_argument("--follow", action="store_true", help="keep printing new events")
    command("why", "one sentence on why the cluster is as it is", "coordinatorctl why")
    doc = command(
        "doctor", "check the prerequisites and pitfalls of the seed guides", "coordinatorctl doctor --milvus-db milvus"
    )
    doc.add_argument("--milvus-db", default="milvus", help="Milvus' meta database on the same MySQL (default milvus)")
    doc.add_argument("--max-clock-skew", type=float, default=1.0, metavar="SECONDS")
    cfg = command(
        "config",
        "show or validate the coordinator config",
        "coordinatorctl config validate /etc/jfs-milvus/coordinator.yaml",
    )
    cfg.add_argument("action", choices=("show", "validate"))
    cfg.add_argument("file", nargs="?")
    comp = command(
        "completion",
        "print a shell completion script",
        "coordinatorctl completion bash > /etc/bash_completion.d/coordinatorctl",
    )
    comp.add_argument("shell", choices=("bash", "zsh"))
    return parser


HANDLERS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "status": cmd_status,
    "list": cmd_status,
    "switchover": cmd_switchover,
    "failover": cmd_failover,
    "pause": cmd_pause,
    "resume": cmd_pause,
    "maintenance": cmd_maintenance,
    "priority": cmd_priority,
    "forget": cmd_forget,
    "node": cmd_forget,  # its one action, remove, is forget
    "history": cmd_history,
    "events": cmd_events,
    "why": cmd_why,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "config":
            return cmd_config(None, args)
        if args.command == "completion":
            return cmd_completion(None, args)
        conn = connect(args)
        if args.command == "doctor":
            return cmd_doctor(conn, args)
        return HANDLERS[args.command](conn, args)
    except CtlError as exc:
        print(f"coordinatorctl {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except grpc.RpcError as exc:
        print(f"coordinatorctl {args.command}: {exc.code().name.lower()}: {exc.details()}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
