"""Every read of coordinatorctl (status, why, history, events, doctor) answers from the leader, whichever
coordinator it asks first; a follower answers only when the leader does not, and says so on stderr. Two real
coordinator processes on one MariaDB."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.plugin_agent import free_port, wait_until
from tests.plugin_coordinator import CoordinatorProcess, ctl

pytestmark = pytest.mark.slow


def two(
    coordinator_factory: Callable[..., CoordinatorProcess], leader_advertise: str | None = None
) -> tuple[CoordinatorProcess, CoordinatorProcess]:
    a, b = coordinator_factory("coord-a"), coordinator_factory("coord-b")
    if leader_advertise:
        a.data["coordinator"]["advertise"] = leader_advertise
    a.start()
    wait_until(a.leads, 15, "coord-a leading")
    b.start()
    wait_until(lambda: b.why().startswith("This coordinator follows; coord-a at"), 15, "coord-b following coord-a")
    return a, b


def test_why_asked_of_a_follower_is_the_leaders_sentence(
    coordinator_factory: Callable[..., CoordinatorProcess],
) -> None:
    a, b = two(coordinator_factory)
    leader_says = wait_until(lambda: "no node can be one" in a.why() and a.why(), 15, "a settled leader")
    assert not leader_says.startswith("This coordinator follows")
    run = ctl(b.address, "why")
    assert run.returncode == 0 and run.stdout.strip() == leader_says and not run.stderr, run
    data = json.loads(ctl(b.address, "why", "-o", "json").stdout)
    assert data == {"why": leader_says, "answered_by": a.address, "leader_answered": True}
    for read in (("status", "-o", "json"), ("history",), ("events",)):
        run = ctl(b.address, *read)
        assert run.returncode == 0 and not run.stderr, (read, run)
    status = json.loads(ctl(b.address, "status", "-o", "json").stdout)
    assert status["leader"].startswith("coord-a") and "follows" not in status["why"]
    doctor = json.loads(ctl(b.address, "doctor", "-o", "json", "--config", str(a.config_path)).stdout)
    coordinator = [f for f in doctor if f["name"] == "coordinator"]
    assert coordinator and coordinator[0]["result"] == "PASS", coordinator


def test_a_follower_answers_when_the_leader_does_not_and_says_so(
    coordinator_factory: Callable[..., CoordinatorProcess],
) -> None:
    """The leader advertises an address nobody listens on: asked through the follower, it cannot be reached."""
    unreachable = f"127.0.0.1:{free_port()}"
    _, b = two(coordinator_factory, leader_advertise=unreachable)
    run = ctl(b.address, "why")
    assert run.returncode == 0, run
    assert run.stdout.strip() == f"This coordinator follows; coord-a at {unreachable} leads."
    note = f"coordinatorctl: note: answered by {b.address}, which follows: the leader at {unreachable} does not answer"
    assert run.stderr.startswith(note) and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert json.loads(ctl(b.address, "why", "-o", "json").stdout)["leader_answered"] is False
    status = ctl(b.address, "status", "-o", "json")
    assert (
        status.returncode == 0 and note in status.stderr and json.loads(status.stdout)["leader"].startswith("coord-a")
    )
    acting = ctl(b.address, "pause", "--reason", "test")
    assert acting.returncode == 1 and "no coordinator leads that answers" in acting.stderr, acting
    assert "does not answer (unavailable)" in acting.stderr
