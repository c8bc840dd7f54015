"""The rolling upgrade as a pure state machine: the durable rollout, what the cluster shows, the clock in; the
next step out (the rollout as it is to be stored, what to do, one sentence, whether it is an event).

A rollout moves the cluster from config version `from_version` to `to_version` one node at a time, by moving
each node's pin (`nodes.config_version` in MySQL; the agent restarts a reader whose container is from another
version than the one it is told to run):

1. the readers, one at a time, in name order: pin one to `to_version`, wait until it reports a container of
   `to_version`, Milvus healthy in its role and in the Mishards hosts, for `settle_s` in a row; then the next;
2. when every reader is done and the writer still runs another version: ask the planned switchover (the old
   writer drains, so no acknowledged write is lost) to an upgraded reader;
3. the old writer, now a reader, as in 1; then every pin is released (each node follows the cluster's version).

It acts on nothing while another role change is in progress or the cluster is paused, never has two nodes in
progress, and never pins the writer to a new version. It halts at the first failure: the node in progress not
healthy on the new version within `node_timeout_s` (it is pinned back to `from_version`, so the cluster keeps
serving), a second node not serving, a switchover refused or not done; nothing else moves. Times are unix
seconds (the rollout is durable, and a coordinator that continues it after a restart has another monotonic
clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

RUNNING, HALTED, DONE, ROLLED_BACK = "running", "halted", "done", "rolled-back"
STATUSES = (RUNNING, HALTED, DONE, ROLLED_BACK)
ROLLOUT, ROLLBACK = "rollout", "rollback"
# A switchover asked for and not in progress after this long (the tick that takes it has come and gone) failed.
SWITCHOVER_GRACE_S = 5.0
DEFAULT_SETTLE_S = 10.0
DEFAULT_NODE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class NodeView:
    """One node as the rollout needs it, from its latest report and its MySQL row."""

    name: str
    config_version: int | None  # the version its running container was built from; None: not said
    pinned: int | None  # its pin in MySQL; None: it follows the cluster's current version
    serving: bool  # reporting, and Milvus healthy in its role
    in_hosts: bool = False  # a reader: in the Mishards hosts (the writer: always True)
    maintenance: bool = False
    priority: int = 1  # 0: never the writer


@dataclass(frozen=True)
class ClusterView:
    writer: str | None
    nodes: Mapping[str, NodeView]
    paused: bool = False
    role_change: str = ""  # the role change in progress, in words; "" when none
    refusal: str = ""  # why the coordinator last refused a switchover (for a switchover that did not happen)
    refused_at: float = 0.0  # when (unix): only a refusal after the rollout asked is its answer


@dataclass(frozen=True)
class Rollout:
    """The rollout as it is stored (MySQL table `rollouts`, one row per rollout)."""

    id: int
    from_version: int
    to_version: int
    started_at: float
    image: str = ""
    kind: str = ROLLOUT  # rollout | rollback (a rollout back to the version a rollout started from)
    status: str = RUNNING
    done: tuple[str, ...] = ()  # the nodes upgraded (or found on to_version already), in order
    current: str | None = None  # the node in progress
    current_since: float | None = None  # when it was pinned
    healthy_since: float | None = None  # since when it is healthy on to_version (settling)
    switchover_to: str | None = None  # the switchover asked for, until the writer is that node
    switchover_at: float | None = None
    halted_reason: str = ""
    finished_at: float | None = None
    reason: str = ""
    settle_s: float = DEFAULT_SETTLE_S
    node_timeout_s: float = DEFAULT_NODE_TIMEOUT_S
    phases: tuple[tuple[str, float], ...] = ()  # (what finished, unix time), for the history


@dataclass(frozen=True)
class Pin:
    node: str
    version: int | None  # None: release the pin (follow the cluster's version)


@dataclass(frozen=True)
class AskSwitchover:
    to: str
    reason: str


@dataclass(frozen=True)
class Finish:
    """Make `version` the cluster's current version (a rollback's) and release every pin."""

    version: int


Action = Pin | AskSwitchover | Finish


@dataclass(frozen=True)
class Step:
    rollout: Rollout
    actions: tuple[Action, ...] = ()
    sentence: str = ""
    event: bool = False  # a step of the rollout (recorded as an event), not a wait
    changed: bool = field(default=False)  # the rollout must be stored again


@dataclass(frozen=True)
class Plan:
    readers: tuple[str, ...]  # in the order they are upgraded
    writer: str | None
    switchover_to: str | None  # None: no switchover is needed (or none is possible: see problem)
    skipped: tuple[str, ...] = ()  # in maintenance: they follow the new version when they come back
    problem: str = ""  # why the rollout cannot start now; "" when it can


# -- what to do next ---------------------------------------------------------------------------------------
def remaining_readers(r: Rollout, view: ClusterView) -> list[str]:
    """The readers still to upgrade, in order: neither the writer, nor done, nor in maintenance."""
    return [
        name
        for name, node in sorted(view.nodes.items())
        if name != view.writer and name not in r.done and not node.maintenance
    ]


def healthy_on(node: NodeView | None, version: int, writer: str | None) -> bool:
    """Serving on `version`, and (a reader) in the Mishards hosts."""
    if node is None or not node.serving or node.config_version != version:
        return False
    return node.name == writer or node.in_hosts


def switchover_target(r: Rollout, view: ClusterView) -> str | None:
    """The upgraded reader to hand the writer role to: healthy on to_version, writable, highest priority first."""
    able = [
        n
        for n in view.nodes.values()
        if n.name != view.writer and not n.maintenance and n.priority > 0 and healthy_on(n, r.to_version, view.writer)
    ]
    return min(able, key=lambda n: (-n.priority, n.name)).name if able else None


def plan(view: ClusterView, from_version: int, to_version: int) -> Plan:
    """What a rollout started now would do (`--dry-run`), and why it cannot start, if it cannot."""
    draft = Rollout(id=0, from_version=from_version, to_version=to_version, started_at=0.0)
    readers = tuple(remaining_readers(draft, view))
    skipped = tuple(name for name, n in sorted(view.nodes.items()) if n.maintenance and name != view.writer)
    writer = view.nodes.get(view.writer) if view.writer else None
    needs_switchover = writer is not None and writer.config_version != to_version
    able = [
        view.nodes[n]
        for n in readers
        if view.nodes[n].priority > 0 and view.nodes[n].serving and not view.nodes[n].maintenance
    ]
    target = min(able, key=lambda n: (-n.priority, n.name)).name if able and needs_switchover else None
    problem = ""
    if view.writer is None:
        problem = "the cluster has no writer"
    elif view.paused:
        problem = "the cluster is paused"
    elif view.role_change:
        problem = f"a role change is in progress ({view.role_change})"
    elif needs_switchover and target is None:
        problem = "no reader could take the writer role (none serves with a priority above 0)"
    else:
        down = [n for n in readers if not view.nodes[n].serving]
        if down:
            problem = f"{', '.join(down)} {'is' if len(down) == 1 else 'are'} not serving"
    return Plan(readers, view.writer, target, skipped, problem)


def step(r: Rollout, view: ClusterView, now: float) -> Step:
    """The next step of a running rollout. Pure: the caller stores `rollout` when `changed`, then acts."""
    if r.status != RUNNING:
        return Step(r, sentence=f"Rollout {r.id} is {r.status}.")
    if view.paused:
        return Step(r, sentence=f"Rollout {r.id} waits: the cluster is paused.")
    if view.role_change:
        return Step(r, sentence=f"Rollout {r.id} waits: a role change is in progress ({view.role_change}).")
    if r.switchover_to is not None:
        return _after_switchover(r, view, now)
    if r.current is not None:
        return _watch_current(r, view, now)
    return _next(r, view, now)


def _others_down(r: Rollout, view: ClusterView, except_node: str | None) -> list[str]:
    """Readers not in maintenance that do not serve, besides `except_node`."""
    return [
        name
        for name, n in sorted(view.nodes.items())
        if name not in (except_node, view.writer) and not n.maintenance and not n.serving
    ]


def _watch_current(r: Rollout, view: ClusterView, now: float) -> Step:
    name = r.current
    assert name is not None
    node = view.nodes.get(name)
    if name == view.writer:
        return halt(r, f"{name} became the writer while it was being upgraded", now, pin_back=False)
    if node is None:
        return halt(r, f"{name} left the cluster while it was being upgraded", now, pin_back=False)
    actions: tuple[Action, ...] = ()
    if node.pinned != r.to_version:  # the pin was not written yet (a restart between storing and pinning)
        actions = (Pin(name, r.to_version),)
    down = _others_down(r, view, name)
    if healthy_on(node, r.to_version, view.writer):
        if down:
            return _two_down(r, down, now, extra_done=name)
        since = r.healthy_since if r.healthy_since is not None else now
        if now - since >= r.settle_s:
            took = now - (r.current_since if r.current_since is not None else now)
            done = replace(
                r,
                done=(*r.done, name),
                current=None,
                current_since=None,
                healthy_since=None,
                phases=(*r.phases, (name, now)),
            )
            sentence = f"Rollout {r.id}: {name} runs version {r.to_version} and is healthy (in {took:.1f}s)."
            return Step(done, actions, sentence, event=True, changed=True)
        settling = replace(r, healthy_since=since)
        left = r.settle_s - (now - since)
        sentence = f"Rollout {r.id}: {name} is healthy on version {r.to_version}; settling for {left:.1f}s."
        return Step(settling, actions, sentence, changed=since != r.healthy_since)
    waited = now - (r.current_since if r.current_since is not None else now)
    if waited >= r.node_timeout_s:
        seen = _node_state(node, r.to_version)
        return halt(r, f"{name} was not healthy on version {r.to_version} within {r.node_timeout_s:.0f}s ({seen})", now)
    if down:
        return _two_down(r, down, now)
    settling = replace(r, healthy_since=None)
    state = _node_state(node, r.to_version)
    sentence = (
        f"Rollout {r.id}: waiting for {name} on version {r.to_version} ({state}; "
        f"{waited:.0f}s of {r.node_timeout_s:.0f}s)."
    )
    return Step(settling, actions, sentence, changed=r.healthy_since is not None)


def _node_state(node: NodeView, version: int) -> str:
    if node.config_version != version:
        if node.config_version is None:
            return "no container of it runs"
        return f"its container is from version {node.config_version}"
    if not node.serving:
        return "Milvus not healthy"
    return "not yet in the Mishards hosts"


def _two_down(r: Rollout, down: list[str], now: float, extra_done: str | None = None) -> Step:
    if extra_done is not None:  # healthy on the new version already: it stays there, counted as done
        r = replace(
            r, done=(*r.done, extra_done), current=None, current_since=None, healthy_since=None,
            phases=(*r.phases, (extra_done, now)),
        )  # fmt: skip
    verb = "is" if len(down) == 1 else "are"
    return halt(r, f"{', '.join(down)} {verb} not serving as well, so the rollout goes no further", now)


def _next(r: Rollout, view: ClusterView, now: float) -> Step:
    readers = remaining_readers(r, view)
    if readers:
        name = readers[0]
        node = view.nodes[name]
        down = _others_down(r, view, name)
        if down:
            verb = "is" if len(down) == 1 else "are"
            return halt(r, f"{', '.join(down)} {verb} not serving, so upgrading {name} would leave two down", now)
        if node.pinned == r.to_version and healthy_on(node, r.to_version, view.writer):
            done = replace(r, done=(*r.done, name), phases=(*r.phases, (name, now)))
            return Step(done, (), f"Rollout {r.id}: {name} runs version {r.to_version} already.", True, True)
        started = replace(r, current=name, current_since=now, healthy_since=None)
        running = "no version" if node.config_version is None else node.config_version
        sentence = f"Rollout {r.id}: pinning {name} to version {r.to_version} (it runs {running})."
        return Step(started, (Pin(name, r.to_version),), sentence, event=True, changed=True)
    writer = view.nodes.get(view.writer) if view.writer else None
    if writer is None:
        return Step(r, sentence=f"Rollout {r.id} waits: the writer is not known.")
    if writer.config_version == r.to_version:
        finished = replace(r, status=DONE, finished_at=now, phases=(*r.phases, ("done", now)))
        took = now - r.started_at
        sentence = f"Rollout {r.id} done: every node runs version {r.to_version} ({took:.1f}s)."
        return Step(finished, (Finish(r.to_version),), sentence, event=True, changed=True)
    target = switchover_target(r, view)
    if target is None:
        return halt(r, f"no upgraded reader can take the writer role from {writer.name}", now, pin_back=False)
    asked = replace(r, switchover_to=target, switchover_at=now)
    reason = f"rollout {r.id} to version {r.to_version}: the writer {writer.name} is upgraded last"
    sentence = f"Rollout {r.id}: every reader runs version {r.to_version}; switching the writer over to {target}."
    return Step(asked, (AskSwitchover(target, reason),), sentence, event=True, changed=True)


def _after_switchover(r: Rollout, view: ClusterView, now: float) -> Step:
    target = r.switchover_to
    if view.writer == target:
        done = replace(r, switchover_to=None, switchover_at=None, phases=(*r.phases, ("switchover", now)))
        sentence = f"Rollout {r.id}: {target} is the writer; the old writer is next."
        return Step(done, (), sentence, event=True, changed=True)
    if now - (r.switchover_at if r.switchover_at is not None else now) < SWITCHOVER_GRACE_S:
        return Step(r, sentence=f"Rollout {r.id}: waiting for the switchover to {target} to begin.")
    asked = r.switchover_at if r.switchover_at is not None else now
    why = view.refusal if view.refusal and view.refused_at >= asked else f"the writer is still {view.writer}"
    return halt(r, f"the switchover to {target} did not happen: {why}", now, pin_back=False)


# -- the operator's changes ------------------------------------------------------------------------------------
def halt(r: Rollout, why: str, now: float, pin_back: bool = True) -> Step:
    """Stop here: the node in progress (when `pin_back`) back to from_version; nothing else moves."""
    actions: tuple[Action, ...] = ()
    node = r.current
    if pin_back and node is not None:
        actions = (Pin(node, r.from_version),)
    halted = replace(
        r, status=HALTED, halted_reason=why, current=None, current_since=None, healthy_since=None,
        switchover_to=None, switchover_at=None, phases=(*r.phases, ("halted", now)),
    )  # fmt: skip
    back = f"; {node} is pinned back to version {r.from_version}" if actions else ""
    return Step(halted, actions, f"Rollout {r.id} halted: {why}{back}.", event=True, changed=True)


def resumed(r: Rollout, now: float) -> Rollout:
    """A halted rollout running again from where it stopped (the node that failed is tried again first)."""
    if r.status != HALTED:
        raise ValueError(f"rollout {r.id} is {r.status}, not halted")
    return replace(r, status=RUNNING, halted_reason="", phases=(*r.phases, ("resumed", now)))


def rollback_of(r: Rollout, new_id: int, now: float, reason: str = "") -> tuple[Rollout, Rollout]:
    """(the rollout, now rolled-back; the rollout back to its from_version, the same safe way)."""
    if r.status == RUNNING:
        raise ValueError(f"rollout {r.id} is running: it halts by itself at a failure; roll back after that")
    if r.status == ROLLED_BACK:
        raise ValueError(f"rollout {r.id} is rolled back already")
    if r.kind == ROLLBACK:
        raise ValueError(f"rollout {r.id} is a rollback itself")
    back = Rollout(
        id=new_id, from_version=r.to_version, to_version=r.from_version, started_at=now, image="", kind=ROLLBACK,
        reason=reason or f"rollback of rollout {r.id}", settle_s=r.settle_s, node_timeout_s=r.node_timeout_s,
    )  # fmt: skip
    return replace(r, status=ROLLED_BACK, finished_at=now), back
