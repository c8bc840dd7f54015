"""`status`, `why` and `coordinatorctl doctor` say when a node reports an epoch above the committed one (issue 15):
such a node refuses every assignment below it and is no candidate until the leader commits an epoch above it."""

from __future__ import annotations

from types import SimpleNamespace

from jfsmilvus.v1 import coordinator_pb2

from coordinator.coordstate import Published
from coordinator.doctor import judge_epochs
from coordinator.faults import epochs_ahead_sentence
from coordinator.model import ClusterRow, Durable, Report
from coordinator.server import why
from coordinator.views import render_status, status_data

AHEAD = (
    "node-b reports epoch 9, above the committed epoch 5: no candidate, and refusing every assignment below it, "
    "until the leader commits an epoch above it."
)


def report(name: str, epoch: int) -> Report:
    return Report(name, "10.0.0.2", 0.0, "ro", "ro", epoch, "healthy")


def test_the_sentence_names_each_node_ahead_and_nothing_when_none_is() -> None:
    assert epochs_ahead_sentence({"node-a": 5, "node-b": 9, "node-c": 4}, 5) == AHEAD
    two = epochs_ahead_sentence({"node-c": 7, "node-b": 9}, 5)
    assert two.startswith("node-b reports epoch 9, node-c reports epoch 7, above the committed epoch 5")
    assert epochs_ahead_sentence({"node-a": 5}, 5) == ""


def test_status_marks_the_node_and_says_why() -> None:
    status = coordinator_pb2.ClusterStatus(cluster="c", writer="node-a", epoch=5, why="node-a is the writer.")
    status.nodes.add(name="node-a", epoch=5)
    status.nodes.add(name="node-b", epoch=9)
    data = status_data(status)
    assert [n["epoch_ahead"] for n in data["nodes"]] == [False, True] and data["epochs_ahead"] == AHEAD
    text = render_status(data)
    assert "9 (ahead)" in text and f"Epochs: {AHEAD}" in text
    status.nodes[1].epoch = 5
    assert "Epochs:" not in render_status(status_data(status)) and "(ahead)" not in render_status(status_data(status))


def test_why_adds_it_to_the_leaders_sentence() -> None:
    durable = Durable(ClusterRow(name="c", writer="node-a", epoch=5), {})
    leader = SimpleNamespace(
        leadership=object(),
        published=Published(durable=durable, why="node-a is the writer at epoch 5 and healthy."),
        snapshot_reports=lambda: {"node-a": report("node-a", 5), "node-b": report("node-b", 9)},
    )
    assert why(leader) == f"node-a is the writer at epoch 5 and healthy. {AHEAD}"  # type: ignore[arg-type]
    leader.snapshot_reports = lambda: {"node-a": report("node-a", 5)}
    assert why(leader) == "node-a is the writer at epoch 5 and healthy."  # type: ignore[arg-type]


def test_the_doctor_fails_a_node_ahead() -> None:
    check = judge_epochs({"node-a": 5, "node-b": 9}, 5)
    assert check.result == "FAIL" and check.detail == AHEAD and "coordinatorctl why" in check.fix
    assert judge_epochs({"node-a": 5, "node-b": 3}, 5).result == "PASS"
