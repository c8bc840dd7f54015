"""The rolling upgrade on the local cluster: `coordinatorctl rollout` from one stand-in version to another while
the pymilvus client writes throughout.

The stand-in version images (tests/standin/build.py `ensure_version_images`): 1.0.0, a rebuild of 1.0.0 (the
upgrade the client writes through: pymilvus 1.0.1 accepts only a 1.0.x server), 1.1.1, and a broken one that
exits at every start. Milvus's automatic flush is off (as in test_cluster_drain.py): the
writes acknowledged since the client's last Flush are only in the writer's WAL when the switchover begins, so
only the planned switchover's drain carries them to the volume. Each test prints its figures as one JSON line
(`[rollout figures] {...}`): the rollout's duration, each node's time, the client's errors and longest pause.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jfsmilvus.common.clusterconfig import ClusterConfig, parse_cluster_config, render_cluster_config
from jfsmilvus.v1 import coordinator_pb2

from tests.localcluster.cluster import ClusterNode, LocalCluster, WriteClient
from tests.localcluster.milvusmeta import BaseConfig
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import REPO
from tests.standin.build import VERSION_REPO, VersionImages, ensure_version_images
from tests.standin.milvusconf import StandinKnobs

ROLLOUT_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def images() -> VersionImages:
    return ensure_version_images("cpu")


def serving_cluster(
    local_cluster: Callable[..., LocalCluster], images: VersionImages
) -> tuple[LocalCluster, WriteClient]:
    """Three nodes on the old version (cluster config version 1, committed before any node registers, so every
    node follows it), a healthy cluster, and the client writing."""
    base = BaseConfig(auto_flush_interval_s=0, standin=StandinKnobs(stop_s=2.0))
    cluster = local_cluster(3, base_config=base, image=images.old)
    for c in cluster.coordinators:
        c.start()
    wait_until(cluster.coordinator.leads, 30, "the coordinator to lead")
    body = render_cluster_config(ClusterConfig(image=images.old, flavor="cpu"))
    request = coordinator_pb2.CommitClusterConfigRequest(body=body, reason="1.0.0")
    assert cluster.coordinator.stub().CommitClusterConfig(request, timeout=10).version == 1
    for node in cluster.nodes.values():
        node.start()
    cluster.wait_for_writer(90)
    for node in cluster.readers():
        node.wait_role("ro", timeout=60)
    wait_until(lambda: "and healthy" in cluster.coordinator.why(), 60, "the coordinator to call the cluster healthy")
    client = WriteClient(cluster, flush_every=50).start()
    wait_until(lambda: len(client.acknowledged) > 30, 30, lambda: f"writes acknowledged: {client.last_error!r}")
    return cluster, client


def rollout(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`coordinatorctl rollout ARGS` as an operator runs it; it streams until the rollout ends."""
    done = subprocess.run(
        [sys.executable, "-m", "coordinator.ctl", "--coordinator", cluster.coordinator.address, "rollout", *args],
        capture_output=True, text=True, timeout=ROLLOUT_TIMEOUT_S, stdin=subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    print(done.stdout, done.stderr, sep="\n")
    return done


def rollout_status(cluster: LocalCluster) -> dict[str, Any]:
    done = rollout(cluster, "status", "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def running_image(node: ClusterNode) -> str:
    running = [c for c in node.containers() if c.status == "running"]
    return running[0].attrs["Config"]["Image"] if len(running) == 1 else ""


def answers_version(node: ClusterNode) -> str:
    """What the node's Milvus answers to `Cmd version` (pymilvus server_version), or its error."""
    answer = node.milvus_calls([["server_version"]])[0]
    return str(answer.get("value", answer))


def figures(status: dict[str, Any], client: WriteClient, began: float, ended: float, errors: int) -> dict[str, Any]:
    """The rollout's figures: its duration, each step's time (a node's from the step before it), the client's."""
    steps, before = {}, status["started"]
    for phase in status["phases"]:
        steps[phase["name"]] = round(phase["at"] - before, 1)
        before = phase["at"]
    with client._lock:
        acks = [t for t in client.ledger.ack_times if began <= t <= ended]
        errors_now = client.ledger.errors
    gaps = [b - a for a, b in itertools.pairwise(acks)]
    return {
        "rollout_s": round((status["finished"] or before) - status["started"], 1),
        "steps_s": steps,
        "writes_acknowledged_during": len(acks),
        "write_errors_during": errors_now - errors,
        "longest_write_pause_s": round(max(gaps, default=0.0), 2),
    }


def writer_changes(cluster: LocalCluster) -> list[Any]:
    return [e for e in cluster.coordinator.events() if e.kind in ("switchover", "failover")]


@pytest.fixture
def broken_tag(images: VersionImages) -> Iterator[str]:
    """A tag of this test's own on the broken image, which the test may point at the good one ("fixed")."""
    tag = f"{VERSION_REPO}:halt-{os.getpid()}-{int(time.time())}"
    subprocess.run(["docker", "tag", images.broken, tag], check=True)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_a_failing_image_halts_on_the_first_reader_which_goes_back_and_resume_completes_once_it_is_fixed(
    local_cluster: Callable[..., LocalCluster], images: VersionImages, broken_tag: str
) -> None:
    """Halt, resume and success in one cluster: the resumed rollout is a whole one (readers, switchover, old
    writer) with the client writing throughout."""
    cluster, client = serving_cluster(local_cluster, images)
    writer = cluster.writer()
    first = sorted(n for n in cluster.nodes if n != writer)[0]
    dry = rollout(cluster, "--image", broken_tag, "--dry-run")
    assert dry.returncode == 0 and f"switchover: {writer} -> " in dry.stdout, dry.stdout
    errors, began = client.ledger.errors, time.monotonic()
    done = rollout(cluster, "--image", broken_tag, "--yes", "--settle", "3", "--node-timeout", "20")
    halted_at = time.monotonic()
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"{first} was not healthy on version 2 within 20s" in done.stderr, done.stderr
    node = cluster.nodes[first]
    wait_until(lambda: running_image(node) == images.old, 60, f"{first} back on {images.old}")
    node.wait_role("ro", timeout=60)
    assert answers_version(node) == "1.0.0" and cluster.writer() == writer
    assert all(running_image(n) == images.old for n in cluster.nodes.values())  # nothing else moved
    wait_until(lambda: client.acked_after(halted_at) > 10, 30, "writes while halted")  # the cluster serves
    halted = rollout_status(cluster)
    assert halted["status"] == "halted" and halted["done"] == []
    halt_figures = figures(halted, client, began, halted_at, errors)

    subprocess.run(["docker", "tag", images.rebuilt, broken_tag], check=True)  # the image is fixed
    errors, began = client.ledger.errors, time.monotonic()
    done = rollout(cluster, "resume", "--yes")
    ended = time.monotonic()
    assert done.returncode == 0, (done.stdout, done.stderr, cluster.logs()[-4000:])
    for n in cluster.nodes.values():
        assert running_image(n) == broken_tag and answers_version(n) == "1.0.0", n.name
    assert cluster.writer() != writer and len(writer_changes(cluster)) == 1
    wait_until(lambda: client.acked_after(ended) > 10, 60, "writes after the rollout")
    client.stop()
    cluster.check_history(client)
    assert not cluster.verdict(client).durability.unflushed_lost  # the drain flushed what only the WAL held
    status = rollout_status(cluster)
    assert status["status"] == "done" and status["done"][-1] == writer  # the old writer last
    history = cluster.coordinator.stub().ListEvents(coordinator_pb2.ListEventsRequest(role_changes_only=True))
    assert any(e.kind == "rollout" and "done" in e.reason for e in history)
    resumed = figures(status, client, began, ended, errors)
    print("[rollout figures]", json.dumps({"test": "halt+resume", "halt": halt_figures, "resume": resumed}))


def test_a_halted_rollout_rolls_back_and_the_cluster_runs_the_old_version_as_its_current_one(
    local_cluster: Callable[..., LocalCluster], images: VersionImages
) -> None:
    cluster, client = serving_cluster(local_cluster, images)
    writer = cluster.writer()
    assert rollout(cluster, "--image", images.broken, "--yes", "--node-timeout", "15").returncode == 1
    done = rollout(cluster, "rollback", "--yes", "--reason", "the new image does not start")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert cluster.writer() == writer and all(running_image(n) == images.old for n in cluster.nodes.values())
    current = cluster.coordinator.stub().GetClusterConfig(coordinator_pb2.GetClusterConfigRequest(), timeout=5)
    assert current.current == 3 and parse_cluster_config(current.body, "v3").image == images.old
    client.stop()
    cluster.check_history(client)
