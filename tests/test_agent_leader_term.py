"""The agent refuses a push from a leader term older than the last it heard (issue 15): a deposed leader's late
`Assign` must not undo what the current leader said, whether the agent heard the newer term in a push or in a
report's answer (ReportResponse.leader_term)."""

from __future__ import annotations

from agent.assignment import Assignment
from agent.daemon import Agent
from tests.fake_coordinator import ro
from tests.test_agent_observation import answer, docker, node  # noqa: F401  (fixtures)


def push(role: str, epoch: int) -> Assignment:
    return Assignment(role=role, epoch=epoch, source="Assign from a coordinator", writer="node-b")


def test_a_push_from_an_older_term_than_a_push_is_refused(node: Agent) -> None:  # noqa: F811
    held = node.authority
    assert held.push_assignment(push("ro", 3), leader_term=7) is None
    refusal = held.push_assignment(push("ro", 4), leader_term=6)
    assert refusal == "it comes from leader term 6, older than term 7 already heard"
    assert held.pushed is not None and held.pushed.epoch == 3 and held.state.highest_epoch == 3
    assert held.leader_term_seen == 7
    assert held.push_assignment(push("none", 4), leader_term=7) is None  # the same term still may
    assert held.push_assignment(push("ro", 5), leader_term=8) is None and held.leader_term_seen == 8


def test_a_push_from_an_older_term_than_a_report_answer_is_refused(node: Agent) -> None:  # noqa: F811
    taken = answer(ro(2, writer="node-b"))
    held = node.authority
    assert held.take_coordinator_answer(taken) is None and held.leader_term_seen == taken.leader_term == 1
    refusal = held.push_assignment(push("ro", 9), leader_term=0)
    assert refusal is not None and "older than term 1" in refusal
    assert held.pushed is not None and held.pushed.epoch == 2 and held.state.highest_epoch == 2
