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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import yaml
from jfsmilvus.v1 import coordinator_pb2

from coordinator import __version__
from coordinator.config import DEFAULT_CONFIG_PATH
from coordinator.connection import ADDRESS_ENV, Connection, connect
from coordinator.ctlconfig import cmd_config, config_args
from coordinator.doctor import cmd_doctor
from coordinator.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CtlError, emit
from coordinator.rolloutctl import cmd_rollout, rollout_args
from coordinator.views import event_data, render_history, render_status, status_data


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


# -- completion ----------------------------------------------------------------------------------------------
def cmd_completion(conn: Connection | None, args: argparse.Namespace) -> int:
    """A completion script whose words are the registered commands and every option and choice they take."""
    commands = " ".join(name for c in COMMANDS for name in (c.name, *c.aliases))
    words = " ".join(completion_words(build_parser()))
    if args.shell == "bash":
        print(
            "_coordinatorctl() {\n"
            "  local cur=${COMP_WORDS[COMP_CWORD]}\n"
            f'  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=($(compgen -W "{commands}" -- "$cur")); '
            f'else COMPREPLY=($(compgen -W "{words}" -- "$cur")); fi\n'
            "}\ncomplete -F _coordinatorctl coordinatorctl"
        )
    else:
        print(f"#compdef coordinatorctl\n_arguments '1: :({commands})' '*: :_files'")
    return EXIT_OK


def completion_words(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string and choice of every command, from the parser itself."""
    words: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for a in sub._actions:
                    words.update(a.option_strings)
                    if a.choices and not isinstance(a, argparse._SubParsersAction):
                        words.update(str(c) for c in a.choices)
    return sorted(words)


# -- each command's arguments ------------------------------------------------------------------------------------
Arguments = Callable[[argparse.ArgumentParser], None]


def _reason(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", default="", help="recorded with the event")


def _yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS", help="refresh in place")


def _switchover_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", metavar="NODE", help="the new writer (default: the best candidate)")
    p.add_argument(
        "--on-drain-timeout",
        choices=("abandon", "force"),
        help="when the old writer's drain fails or runs out of time: abandon (it keeps writing) or force "
        "(go on; what it had not flushed is lost); default: the coordinator's timing.drain_timeout_action",
    )
    _yes(p)
    _reason(p)


def _failover_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", metavar="NODE", required=True)
    p.add_argument("--force", action="store_true", help="do not wait for proof that the old writer is fenced")
    _yes(p)
    _reason(p)


def _maintenance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("state", choices=("on", "off"))
    p.add_argument("node")
    _reason(p)
    _yes(p)


def _priority_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("node")
    p.add_argument("priority", type=int)


def _forget_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("node")
    _reason(p)
    _yes(p)


def _node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("node_action", metavar="ACTION", choices=("remove",), help="remove")
    _forget_args(p)


def _history_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=20)


def _events_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--follow", action="store_true", help="keep printing new events")


def _doctor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--milvus-db", default="milvus", help="Milvus' meta database on the same MySQL (default milvus)")
    p.add_argument("--max-clock-skew", type=float, default=1.0, metavar="SECONDS")


def _completion_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=("bash", "zsh"))


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


# -- the commands: one registration each (the parser, the help, the completion and main read this table) -----
@dataclass(frozen=True)
class Command:
    name: str
    help: str
    example: str
    handler: Callable[[Any, argparse.Namespace], int]
    arguments: Arguments = _no_args
    aliases: tuple[str, ...] = ()
    connects: bool = True  # False: it runs without asking a coordinator


COMMANDS: tuple[Command, ...] = (
    Command("status", "one row per node and the cluster's header", "coordinatorctl status --watch 2", cmd_status,
            _status_args, aliases=("list",)),
    Command("switchover", "planned move of the writer: the old one drains (stops gracefully, flushing) first",
            "coordinatorctl switchover --to node-b --yes", cmd_switchover, _switchover_args),
    Command("failover", "make NODE the writer when the old one is already gone",
            "coordinatorctl failover --to node-b --yes", cmd_failover, _failover_args),
    Command("pause", "stop automatic decisions (leases are still renewed)",
            "coordinatorctl pause --reason 'network work'", cmd_pause, _reason),
    Command("resume", "restart automatic decisions", "coordinatorctl resume --reason 'network work'", cmd_pause,
            _reason),
    Command("maintenance", "take a node out of service, or put it back",
            "coordinatorctl maintenance on node-c --reason 'GPU swap' --yes", cmd_maintenance, _maintenance_args),
    Command("priority", "set a node's priority (0: never the writer; higher first)",
            "coordinatorctl priority node-a 10", cmd_priority, _priority_args),
    Command("forget", "remove a node that is gone from the cluster's state (not the writer, nor a node that still "
            "reports)", "coordinatorctl forget node-d --reason 'decommissioned' --yes", cmd_forget, _forget_args),
    Command("node", "node remove NODE: the same as forget NODE",
            "coordinatorctl node remove node-d --reason 'decommissioned' --yes", cmd_forget, _node_args),
    Command("rollout", "rolling upgrade to a new milvus.image: readers one at a time, a switchover, the old writer",
            "coordinatorctl rollout --image milvusdb/milvus:1.1.1-gpu --yes", cmd_rollout, rollout_args),
    Command("history", "past role changes with their phase durations", "coordinatorctl history --limit 10",
            cmd_history, _history_args),
    Command("events", "every decision, newest last", "coordinatorctl events --follow", cmd_events, _events_args),
    Command("why", "one sentence on why the cluster is as it is", "coordinatorctl why", cmd_why),
    Command("doctor", "check the prerequisites and pitfalls of the seed guides",
            "coordinatorctl doctor --milvus-db milvus", cmd_doctor, _doctor_args),
    Command("config", "the cluster config: show, edit, history, rollback (validate FILE, show --local: this "
            "coordinator's own config)", "coordinatorctl config edit --file cluster.yaml --reason 'new image'",
            cmd_config, config_args, connects=False),
    Command("completion", "print a shell completion script",
            "coordinatorctl completion bash > /etc/bash_completion.d/coordinatorctl", cmd_completion,
            _completion_args, connects=False),
)  # fmt: skip
BY_NAME = {name: c for c in COMMANDS for name in (c.name, *c.aliases)}


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
    for c in COMMANDS:
        p = sub.add_parser(
            c.name, aliases=list(c.aliases), parents=[common], help=c.help, description=c.help,
            epilog=f"example: {c.example}",
        )  # fmt: skip
        c.arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    command = BY_NAME[args.command]
    try:
        return command.handler(connect(args) if command.connects else None, args)
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
