"""coordinatorctl rollout: the rolling upgrade from the command line.

`rollout --image IMAGE [--dry-run]` starts one (a new cluster config version with that milvus.image) and follows
it, one line per step; `rollout status | resume | rollback`. Exit 0 when the rollout is done, 1 when it halted
(the line says why) or was refused.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import grpc
from jfsmilvus.v1 import coordinator_pb2

from coordinator.connection import Connection
from coordinator.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CtlError, emit, when

ACTIONS = ("status", "resume", "rollback")
LOST = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN)
FOLLOW_RETRIES = 30
FOLLOW_RETRY_S = 2.0


def rollout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=ACTIONS, help="status, resume (a halted one), rollback; none: start")
    p.add_argument(
        "--image",
        help="start: the new milvus.image for every node; none: roll out the config version a config edit left pending",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan (the order of nodes, the switchover)")
    p.add_argument("--settle", type=float, default=0.0, metavar="SECONDS", help="healthy this long before the next")
    p.add_argument(
        "--node-timeout", type=float, default=0.0, metavar="SECONDS", help="a node not healthy on it by then halts"
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--reason", default="", help="recorded with the events")


def state_data(s: coordinator_pb2.RolloutState) -> dict[str, Any]:
    return {
        "id": s.id, "kind": s.kind, "status": s.status, "from_version": s.from_version, "to_version": s.to_version,
        "image": s.image, "done": list(s.done), "current": s.current or None,
        "current_since": s.current_since_unix or None, "switchover_to": s.switchover_to or None,
        "halted_reason": s.halted_reason, "started": s.started_unix, "finished": s.finished_unix or None,
        "phases": [{"name": p.name, "at": p.at_unix} for p in s.phases],
    }  # fmt: skip


def render_state(d: dict[str, Any]) -> str:
    if not d["id"]:
        return "no rollout yet"
    lines = [
        f"{d['kind']} {d['id']}: {d['status']}, config version {d['from_version']} -> {d['to_version']}"
        + (f" ({d['image']})" if d["image"] else ""),
        f"started {when(d['started'])}" + (f", finished {when(d['finished'])}" if d["finished"] else ""),
        f"done: {', '.join(d['done']) or '-'}",
    ]
    if d["current"]:
        lines.append(f"in progress: {d['current']} since {when(d['current_since'])}")
    if d["switchover_to"]:
        lines.append(f"switchover asked to {d['switchover_to']}")
    if d["halted_reason"]:
        lines.append(f"halted: {d['halted_reason']}")
    before = d["started"]
    for p in d["phases"]:
        lines.append(f"  {p['name']:<12} {when(p['at'])}  +{p['at'] - before:.1f}s")
        before = p["at"]
    return "\n".join(lines)


def cmd_rollout(conn: Connection, args: argparse.Namespace) -> int:
    action = args.action or "start"
    if action != "start" and (args.image or args.dry_run):
        raise CtlError(f"rollout {action} takes no --image or --dry-run", EXIT_USAGE)
    if action in ("start", "resume", "rollback") and not args.dry_run:
        question = {
            "start": f"Roll {args.image or 'the pending config version'} out to every node, one at a time (the writer"
            " switched over last)?",
            "resume": "Resume the halted rollout?",
            "rollback": "Roll the last rollout back, one node at a time?",
        }[action]
        _confirm(args, question)
    request = coordinator_pb2.RolloutRequest(
        action=action, image=args.image or "", dry_run=args.dry_run, reason=args.reason,
        settle_s=args.settle, node_timeout_s=args.node_timeout,
    )  # fmt: skip
    stub = conn.leader() if action != "status" else conn.read().stub
    seen = Followed()
    for attempt in range(FOLLOW_RETRIES + 1):
        try:
            return follow(stub.Rollout(request), args.output, status_only=action == "status", seen=seen)
        except grpc.RpcError as exc:
            started = action != "status" and not args.dry_run
            if not started or exc.code() not in LOST or attempt == FOLLOW_RETRIES:
                raise CtlError(f"{exc.code().name.lower()}: {exc.details()}") from exc
        # The coordinator went away mid-stream (a restart, a change of leader): the rollout goes on in MySQL,
        # so follow it again from whichever coordinator answers.
        print("coordinatorctl rollout: the coordinator stopped answering; following the rollout again", file=sys.stderr)
        time.sleep(FOLLOW_RETRY_S)
        # From the last step printed: the steps recorded while no coordinator answered are printed too.
        request = coordinator_pb2.RolloutRequest(action="follow", after_event_id=seen.last_event_id)
        try:
            stub = conn.read().stub
        except CtlError:
            continue
    raise CtlError("lost the coordinator; check `coordinatorctl rollout status`")


def _confirm(args: argparse.Namespace, question: str) -> None:
    from coordinator.ctl import confirm

    confirm(args, question)


class Followed:
    """What a `coordinatorctl rollout` has printed so far, across the streams of a coordinator's restart."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.steps: list[dict[str, Any]] = []
        self.last_event_id = 0


def follow(stream: Any, output: str, status_only: bool = False, seen: Followed | None = None) -> int:
    """Print each step as it comes (table), or all of them at the end (json, yaml); the exit code."""
    seen = seen or Followed()
    began, steps = seen.began, seen.steps
    for p in stream:
        seen.last_event_id = max(seen.last_event_id, p.event_id)
        steps.append({"message": p.message, "at": p.at_unix})
        if output == "table" and not (status_only and p.done):
            print(f"{time.monotonic() - began:7.1f}s  {p.message}", flush=True)
        if not p.done:
            continue
        data = state_data(p.rollout)
        if status_only:
            emit(data, output, render_state if p.rollout.id else lambda _, said=p.message: said)
            return EXIT_OK
        if output != "table":
            emit({"steps": steps, "ok": p.ok, "rollout": data}, output, str)
        if not p.ok:
            print(f"coordinatorctl rollout: {p.message}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    raise CtlError("the coordinator ended the stream without an outcome; check `coordinatorctl rollout status`")
