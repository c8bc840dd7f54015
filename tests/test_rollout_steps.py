"""The rolling upgrade's state machine (coordinator.rollout), step by step and against a simulated cluster."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.rollout import (
    DONE,
    HALTED,
    ROLLBACK,
    ROLLED_BACK,
    RUNNING,
    SWITCHOVER_GRACE_S,
    AskSwitchover,
    ClusterView,
    Finish,
    NodeView,
    Pin,
    Rollout,
    plan,
    resumed,
    rollback_of,
    step,
)


def node(name: str, version: int | None = 1, pinned: int | None = 1, serving: bool = True, **kw) -> NodeView:
    return NodeView(name=name, config_version=version, pinned=pinned, serving=serving, in_hosts=serving, **kw)


def cluster(writer: str = "a", **overrides: NodeView) -> ClusterView:
    nodes = {n: node(n) for n in "abc"}
    nodes.update(overrides)
    return ClusterView(writer=writer, nodes=nodes)


def rollout(**kw) -> Rollout:
    base = dict(id=7, from_version=1, to_version=2, started_at=0.0, settle_s=10.0, node_timeout_s=60.0)
    base.update(kw)
    return Rollout(**base)


# -- one step at a time --------------------------------------------------------------------------------------
def test_the_first_reader_in_name_order_is_pinned_first_and_is_the_only_one_in_progress() -> None:
    s = step(rollout(), cluster(), 100.0)
    assert s.actions == (Pin("b", 2),) and s.event and s.changed
    assert s.rollout.current == "b" and s.rollout.current_since == 100.0
    again = step(s.rollout, cluster(b=node("b", 1, 2, serving=False)), 101.0)
    assert again.actions == () and again.rollout.current == "b" and "waiting for b" in again.sentence


def test_a_reader_is_done_only_after_it_has_been_healthy_on_the_new_version_for_the_settle_time() -> None:
    r = replace(rollout(), current="b", current_since=100.0)
    upgraded = cluster(b=node("b", 2, 2))
    s = step(r, upgraded, 110.0)
    assert s.rollout.current == "b" and s.rollout.healthy_since == 110.0 and "settling" in s.sentence
    assert step(s.rollout, upgraded, 119.0).rollout.current == "b"
    done = step(s.rollout, upgraded, 120.0)
    assert done.rollout.current is None and done.rollout.done == ("b",) and done.event
    assert "is healthy (in 20.0s)" in done.sentence


def test_settling_starts_again_when_the_node_is_unhealthy_meanwhile() -> None:
    r = replace(rollout(), current="b", current_since=100.0, healthy_since=105.0)
    s = step(r, cluster(b=node("b", 2, 2, serving=False)), 110.0)
    assert s.rollout.healthy_since is None and s.changed
    assert step(s.rollout, cluster(b=node("b", 2, 2)), 112.0).rollout.healthy_since == 112.0


def test_a_reader_healthy_but_not_yet_in_the_mishards_hosts_is_not_settling() -> None:
    r = replace(rollout(), current="b", current_since=100.0)
    s = step(r, cluster(b=replace(node("b", 2, 2), in_hosts=False)), 110.0)
    assert s.rollout.healthy_since is None and "not yet in the Mishards hosts" in s.sentence


def test_a_reader_not_healthy_on_the_new_version_in_time_halts_and_is_pinned_back() -> None:
    r = replace(rollout(), current="b", current_since=100.0)
    s = step(r, cluster(b=node("b", None, 2, serving=False)), 160.0)
    assert s.rollout.status == HALTED and s.actions == (Pin("b", 1),)
    assert "b was not healthy on version 2 within 60s" in s.rollout.halted_reason
    assert "pinned back to version 1" in s.sentence and s.rollout.current is None
    assert step(s.rollout, cluster(), 161.0).actions == ()  # a halted rollout does nothing


def test_a_second_node_down_halts_and_the_node_in_progress_is_pinned_back() -> None:
    r = replace(rollout(), current="b", current_since=100.0)
    s = step(r, cluster(b=node("b", 1, 2, serving=False), c=node("c", serving=False)), 101.0)
    assert s.rollout.status == HALTED and s.actions == (Pin("b", 1),) and "c is not serving" in s.rollout.halted_reason


def test_a_second_node_down_while_the_first_is_healthy_on_the_new_version_keeps_it_there() -> None:
    r = replace(rollout(), current="b", current_since=100.0)
    s = step(r, cluster(b=node("b", 2, 2), c=node("c", serving=False)), 101.0)
    assert s.rollout.status == HALTED and s.actions == () and s.rollout.done == ("b",)


def test_a_reader_down_before_the_next_is_pinned_halts_without_moving_anything() -> None:
    s = step(rollout(), cluster(c=node("c", serving=False)), 100.0)
    assert s.rollout.status == HALTED and s.actions == () and "would leave two down" in s.rollout.halted_reason


def test_nothing_moves_while_paused_or_during_a_role_change() -> None:
    r = replace(rollout(), current="b", current_since=100.0)
    paused = replace(cluster(b=node("b", None, 2, serving=False)), paused=True)
    assert step(r, paused, 1000.0) == step(r, paused, 1000.0)
    assert step(r, paused, 1000.0).rollout == r and step(r, paused, 1000.0).actions == ()
    changing = replace(cluster(), role_change="a failover to c (phase fence)")
    s = step(rollout(), changing, 100.0)
    assert s.actions == () and not s.changed and "role change" in s.sentence


def test_when_every_reader_is_done_the_writer_is_switched_over_to_an_upgraded_reader() -> None:
    r = rollout(done=("b", "c"))
    view = cluster(b=node("b", 2, 2), c=replace(node("c", 2, 2), priority=5))
    s = step(r, view, 200.0)
    assert s.actions == (AskSwitchover("c", s.actions[0].reason),) and s.rollout.switchover_to == "c"
    assert not any(isinstance(a, Pin) for a in s.actions)
    # the switchover done: the old writer is the next reader
    after = step(s.rollout, replace(view, writer="c"), 210.0)
    assert after.rollout.switchover_to is None and after.event
    nxt = step(after.rollout, replace(view, writer="c"), 211.0)
    assert nxt.actions == (Pin("a", 2),)


def test_a_reader_with_priority_zero_is_never_the_switchover_target() -> None:
    r = rollout(done=("b", "c"))
    view = cluster(b=replace(node("b", 2, 2), priority=0), c=replace(node("c", 2, 2), priority=0))
    s = step(r, view, 200.0)
    assert s.rollout.status == HALTED and "no upgraded reader can take the writer role" in s.rollout.halted_reason


def test_a_switchover_that_does_not_happen_halts_with_the_coordinators_refusal() -> None:
    r = rollout(done=("b", "c"), switchover_to="b", switchover_at=200.0)
    view = replace(
        cluster(b=node("b", 2, 2), c=node("c", 2, 2)), refusal="the drain of a ran out of time", refused_at=201.0
    )
    assert step(r, view, 200.0 + SWITCHOVER_GRACE_S - 0.1).rollout.status == RUNNING
    s = step(r, view, 200.0 + SWITCHOVER_GRACE_S)
    assert s.rollout.status == HALTED and "the drain of a ran out of time" in s.rollout.halted_reason
    assert s.actions == ()
    older = step(r, replace(view, refused_at=150.0), 200.0 + SWITCHOVER_GRACE_S)  # an earlier refusal is not it
    assert "the writer is still a" in older.rollout.halted_reason


def test_when_the_writer_runs_the_new_version_the_rollout_is_done_and_releases_every_pin() -> None:
    r = rollout(done=("b", "c", "a"), started_at=100.0)
    view = cluster(writer="c", a=node("a", 2, 2), b=node("b", 2, 2), c=node("c", 2, 2))
    s = step(r, view, 400.0)
    assert s.rollout.status == DONE and s.actions == (Finish(2),) and "(300.0s)" in s.sentence


def test_a_node_in_maintenance_is_skipped_and_the_plan_says_so() -> None:
    view = cluster(c=node("c", maintenance=True, serving=False))
    p = plan(view, 1, 2)
    assert p.readers == ("b",) and p.skipped == ("c",) and p.switchover_to == "b" and p.problem == ""
    assert step(rollout(), view, 100.0).actions == (Pin("b", 2),)


def test_the_plan_says_why_it_cannot_start() -> None:
    assert "paused" in plan(replace(cluster(), paused=True), 1, 2).problem
    assert "c is not serving" in plan(cluster(c=node("c", serving=False)), 1, 2).problem
    assert plan(ClusterView(writer="a", nodes={"a": node("a")}), 1, 2).problem.startswith("no reader")


def test_the_node_in_progress_becoming_the_writer_halts_without_pinning_it() -> None:
    r = replace(rollout(), current="b", current_since=100.0)
    s = step(r, cluster(writer="b"), 101.0)
    assert s.rollout.status == HALTED and s.actions == ()


def test_resume_runs_a_halted_rollout_again_from_the_failed_node() -> None:
    halted = step(replace(rollout(), current="b", current_since=0.0), cluster(b=node("b", 1, 2, False)), 60.0).rollout
    again = resumed(halted, 70.0)
    assert again.status == RUNNING and again.halted_reason == ""
    assert step(again, cluster(), 71.0).actions == (Pin("b", 2),)


def test_rollback_is_a_rollout_back_and_skips_nodes_still_on_the_old_version() -> None:
    r = rollout(status=HALTED, done=("b",))
    old, back = rollback_of(r, 8, 100.0)
    assert old.status == ROLLED_BACK and back.kind == ROLLBACK and (back.from_version, back.to_version) == (2, 1)
    view = cluster(b=node("b", 2, 2))
    s = step(back, view, 101.0)
    assert s.actions == (Pin("b", 1),)
    s = step(s.rollout, cluster(), 102.0)
    s = step(s.rollout, cluster(), 112.0)
    assert s.rollout.done == ("b",)
    s = step(s.rollout, cluster(), 113.0)
    assert s.rollout.done == ("b", "c") and s.actions == ()  # c never left version 1
    s = step(s.rollout, cluster(), 114.0)
    assert s.rollout.status == DONE and s.actions == (Finish(1),)  # the writer a never left it either


# -- a simulated cluster ---------------------------------------------------------------------------------------
@dataclass
class SimNode:
    version: int = 1
    pinned: int | None = 1
    restart_left: int = 0  # ticks until its restarted container serves
    broken_on: frozenset[int] = frozenset()  # versions it never becomes healthy on


@dataclass
class Sim:
    """Nodes that restart for a pin (as the agent restarts a reader from another version) and a writer role
    that moves some ticks after a switchover is asked for (or never, when refused)."""

    nodes: dict[str, SimNode]
    writer: str
    restart_ticks: int
    switchover_ticks: int
    refuse: bool = False
    switchover_left: int | None = None
    switchover_to: str = ""
    pinned_writer_to_new: list[str] = field(default_factory=list)

    def view(self) -> ClusterView:
        role_change = "a switchover" if self.switchover_left is not None else ""
        nodes = {
            name: NodeView(
                name=name,
                config_version=n.version,
                pinned=n.pinned,
                serving=n.restart_left == 0 and n.version not in n.broken_on,
                in_hosts=n.restart_left == 0 and n.version not in n.broken_on,
            )
            for name, n in self.nodes.items()
        }
        return ClusterView(self.writer, nodes, role_change=role_change, refusal="refused" if self.refuse else "")

    def apply(self, actions: tuple, to_version: int) -> None:
        for a in actions:
            if isinstance(a, Pin):
                if a.node == self.writer and a.version == to_version:
                    self.pinned_writer_to_new.append(a.node)
                n = self.nodes[a.node]
                n.pinned = a.version
                if a.node != self.writer and a.version is not None and a.version != n.version:
                    n.version, n.restart_left = a.version, self.restart_ticks
            elif isinstance(a, AskSwitchover) and not self.refuse:
                self.switchover_left, self.switchover_to = self.switchover_ticks, a.to
            elif isinstance(a, Finish):
                for n in self.nodes.values():
                    n.pinned = None

    def advance(self) -> None:
        for n in self.nodes.values():
            n.restart_left = max(0, n.restart_left - 1)
        if self.switchover_left is not None:
            self.switchover_left -= 1
            if self.switchover_left <= 0:
                old, self.writer = self.writer, self.switchover_to
                self.switchover_left = None
                self.nodes[old].restart_left = self.restart_ticks  # it restarts as a reader


def run(r: Rollout, sim: Sim, ticks: int = 2000) -> tuple[Rollout, list[str]]:
    sentences = []
    now = 1000.0
    for _ in range(ticks):
        s = step(r, sim.view(), now)
        r = s.rollout
        in_progress = [r.current] if r.current else []
        assert len(in_progress) <= 1
        # never two nodes that do not serve after a pin of this rollout
        sim.apply(s.actions, r.to_version)
        if s.event:
            sentences.append(s.sentence)
        if r.status != RUNNING:
            break
        sim.advance()
        now += 1.0
    return r, sentences


def sim_nodes(names: str, broken: dict[str, frozenset[int]] | None = None) -> dict[str, SimNode]:
    return {n: SimNode(broken_on=(broken or {}).get(n, frozenset())) for n in names}


def test_a_simulated_rollout_upgrades_every_node_and_switches_over_once() -> None:
    sim = Sim(sim_nodes("abcd"), writer="a", restart_ticks=3, switchover_ticks=4)
    r, sentences = run(rollout(settle_s=2.0), sim)
    assert r.status == DONE and set(r.done) == set("abcd") and r.done[-1] == "a"
    assert all(n.version == 2 and n.pinned is None for n in sim.nodes.values())
    assert sim.writer != "a" and sum("switching the writer over" in s for s in sentences) == 1
    assert sim.pinned_writer_to_new == []


@settings(max_examples=150, deadline=None)
@given(
    names=st.sampled_from(["ab", "abc", "abcd", "abcde"]),
    restart_ticks=st.integers(0, 8),
    switchover_ticks=st.integers(1, 8),
    settle=st.sampled_from([0.0, 1.0, 5.0]),
    broken=st.lists(st.sampled_from("abcde"), max_size=2),
    refuse=st.booleans(),
    writer=st.sampled_from("ab"),
)
def test_any_simulated_rollout_ends_done_or_halted_safely(
    names: str, restart_ticks: int, switchover_ticks: int, settle: float, broken: list[str], refuse: bool, writer: str
) -> None:
    broken_on = {n: frozenset({2}) for n in broken if n in names}
    sim = Sim(sim_nodes(names, broken_on), writer, restart_ticks, switchover_ticks, refuse)
    r, _ = run(rollout(settle_s=settle, node_timeout_s=20.0), sim)
    assert r.status in (DONE, HALTED)
    assert sim.pinned_writer_to_new == []  # the writer is never pinned to the new version while it writes
    serving = [n for n, v in sim.view().nodes.items() if not v.serving]
    if r.status == HALTED:
        assert r.halted_reason
        # what the rollout halted on is back on the old version (or was never moved): at most one node down,
        # and a node that is broken on the new version is pinned back to the old one
        for name, n in sim.nodes.items():
            if name in broken_on and name != sim.writer:
                assert n.pinned == 1
        assert len(serving) <= 1 + sum(1 for n in sim.nodes.values() if n.restart_left > 0)
    else:
        assert not broken_on or all(n not in names for n in broken_on)
        assert all(n.version == 2 for n in sim.nodes.values()) and not refuse


def test_a_broken_new_version_halts_on_the_first_reader_and_leaves_it_on_the_old_version() -> None:
    sim = Sim(sim_nodes("abc", {n: frozenset({2}) for n in "abc"}), "a", restart_ticks=2, switchover_ticks=2)
    r, _ = run(rollout(settle_s=1.0, node_timeout_s=10.0), sim)
    assert r.status == HALTED and r.done == () and "b was not healthy on version 2" in r.halted_reason
    assert sim.nodes["b"].pinned == 1 and sim.nodes["c"].pinned == 1
    sim.advance(), sim.advance(), sim.advance()
    assert sim.nodes["b"].version == 1 and sim.view().nodes["b"].serving


def test_after_a_halt_a_resume_completes_once_the_cause_is_gone() -> None:
    sim = Sim(sim_nodes("abc", {"b": frozenset({2})}), "a", restart_ticks=2, switchover_ticks=2)
    r, _ = run(rollout(settle_s=1.0, node_timeout_s=10.0), sim)
    assert r.status == HALTED
    sim.nodes["b"].broken_on = frozenset()  # the image is fixed
    for _ in range(5):
        sim.advance()
    r, _ = run(resumed(r, 2000.0), sim)
    assert r.status == DONE and all(n.version == 2 for n in sim.nodes.values())
