"""CoordinatorService.Rollout: start, resume, roll back or follow the rolling upgrade, streaming its steps.

The steps are followed in MySQL (the `rollout-step` events after the call began, and the rollout's row), so a
stream goes on while the leader changes, and ends when the rollout is no longer running.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc
from jfsmilvus.common.clusterconfig import IMAGE_PATTERN
from jfsmilvus.common.wirecheck import MAX_REASON, text_problem
from jfsmilvus.v1 import coordinator_pb2

from coordinator.rollout import DONE, RUNNING, Rollout
from coordinator.rolloutrun import STEP_EVENT, RolloutRefused
from coordinator.storeapi import StoreError

if TYPE_CHECKING:
    from coordinator.daemon import Coordinator

ACTIONS = ("start", "resume", "rollback", "status", "follow")
MAX_SETTLE_S = 3600.0
MAX_NODE_TIMEOUT_S = 86400.0
FOLLOW_POLL_S = 0.5


def request_problem(request: coordinator_pb2.RolloutRequest) -> str | None:
    """What is wrong with a RolloutRequest, in one line; None when nothing is."""
    if request.action not in ACTIONS:
        return f"action {request.action[:40]!r} is not one of {', '.join(ACTIONS)}"
    if request.action == "start" and request.image and not re.fullmatch(IMAGE_PATTERN, request.image):
        return f"image {request.image[:80]!r} is not a Docker image reference"
    if len(request.image) > 512:
        return f"image: {len(request.image)} characters, at most 512"
    for name, value, most in (
        ("settle_s", request.settle_s, MAX_SETTLE_S),
        ("node_timeout_s", request.node_timeout_s, MAX_NODE_TIMEOUT_S),
    ):
        if not 0 <= value <= most:
            return f"{name} = {value:g}: from 0 (the default) to {most:g}"
    return text_problem("reason", request.reason, MAX_REASON)


def state_pb(r: Rollout | None) -> coordinator_pb2.RolloutState:
    if r is None:
        return coordinator_pb2.RolloutState()
    return coordinator_pb2.RolloutState(
        id=r.id, kind=r.kind, status=r.status, from_version=r.from_version, to_version=r.to_version,
        image=r.image, done=list(r.done), current=r.current or "", current_since_unix=r.current_since or 0.0,
        switchover_to=r.switchover_to or "", halted_reason=r.halted_reason, started_unix=r.started_at,
        finished_unix=r.finished_at or 0.0,
        phases=[coordinator_pb2.Phase(name=n, at_unix=t) for n, t in r.phases],
    )  # fmt: skip


def _final(r: Rollout | None, message: str = "") -> coordinator_pb2.RolloutProgress:
    ok = r is not None and r.status == DONE
    if not message and r is not None:
        message = f"Rollout {r.id} is {r.status}" + (f": {r.halted_reason}" if r.halted_reason else ".")
    return coordinator_pb2.RolloutProgress(message=message, at_unix=time.time(), done=True, ok=ok, rollout=state_pb(r))


def rollout_progress(
    c: Coordinator, request: coordinator_pb2.RolloutRequest, context: grpc.ServicerContext, by: str
) -> Iterator[coordinator_pb2.RolloutProgress]:
    runner = c.rollouts
    try:
        if request.action == "status":
            latest = runner.latest()
            yield _final(latest, "" if latest else "no rollout yet")
            return
        after = _last_event_id(c)
        if request.action == "start":
            limits = {
                k: v for k, v in (("settle_s", request.settle_s), ("node_timeout_s", request.node_timeout_s)) if v
            }
            if request.image:
                started = runner.start(request.image, request.reason, by, request.dry_run, **limits)
            else:  # the current config version, to the nodes a config edit left pinned behind it
                started = runner.start_pending(request.reason, by, request.dry_run, **limits)
            if started.rollout is None:
                ok = not started.plan.problem
                yield coordinator_pb2.RolloutProgress(message=started.message, at_unix=time.time(), done=True, ok=ok)
                return
            rollout_id = started.rollout.id
        elif request.action == "resume":
            rollout_id = runner.resume(by).id
        elif request.action == "rollback":
            rollout_id = runner.rollback(by, request.reason).id
        else:
            latest = runner.latest()
            if latest is None:
                yield _final(None, "no rollout yet")
                return
            rollout_id = latest.id
            after = request.after_event_id or after  # a follow after a break: from the last step it saw
    except RolloutRefused as exc:
        yield coordinator_pb2.RolloutProgress(message=f"refused: {exc}", at_unix=time.time(), done=True, ok=False)
        return
    except StoreError as exc:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"MySQL: {exc}")
    yield from _follow(c, rollout_id, after, context)


def _last_event_id(c: Coordinator) -> int:
    last = c.store.events(limit=1)
    return last[-1].id if last else 0


def _follow(
    c: Coordinator, rollout_id: int, after: int, context: grpc.ServicerContext
) -> Iterator[coordinator_pb2.RolloutProgress]:
    """Every step of rollout `rollout_id` recorded after event `after`, then its end."""
    prefix = re.compile(rf"Rollout {rollout_id}\b")
    while context.is_active():
        try:
            r = c.store.get_rollout(rollout_id)  # first: every step before the state read is in `steps`
            steps = c.store.events(limit=1000, kinds=(STEP_EVENT,), after_id=after)
        except StoreError:
            time.sleep(FOLLOW_POLL_S)
            continue
        for e in steps:
            after = max(after, e.id)
            if prefix.match(e.reason):
                yield coordinator_pb2.RolloutProgress(
                    message=e.reason, at_unix=e.at_unix, rollout=state_pb(r), event_id=e.id
                )
        if r is None or r.status != RUNNING:
            yield _final(r)
            return
        time.sleep(FOLLOW_POLL_S)
