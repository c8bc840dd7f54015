"""A planned change of writer on the local cluster loses nothing: the old writer drains first.

The stand-in's base config turns Milvus's automatic flush off (`storage.auto_flush_interval: 0`), so the writes
the client acknowledged since its last Flush are only in the writer's local WAL when the switchover begins:
only a graceful stop (SIGINT: Milvus flushes) can carry them to the volume. Its stop takes longer than a lease
(`standin.stop_s` 5 s against the 3 s lease): the drain renews the lease while it runs, or the lease wrapper
would kill Milvus mid-stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from jfsmilvus.v1 import coordinator_pb2

from tests.localcluster.cluster import LocalCluster, WriteClient
from tests.localcluster.milvusmeta import BaseConfig
from tests.plugin_agent import wait_until
from tests.standin.milvusconf import StandinKnobs


def draining_cluster(
    local_cluster: Callable[..., LocalCluster], stop_s: float, **timing: object
) -> tuple[LocalCluster, WriteClient]:
    base = BaseConfig(auto_flush_interval_s=0, standin=StandinKnobs(stop_s=stop_s))
    cluster = local_cluster(3, base_config=base, **timing)
    cluster.start()
    cluster.wait_for_writer(90)
    for node in cluster.readers():
        node.wait_role("ro", timeout=60)
    wait_until(lambda: "and healthy" in cluster.coordinator.why(), 30, "the coordinator to call the cluster healthy")
    client = WriteClient(cluster, flush_every=1_000_000).start()  # never flushes by itself: all is in the WAL
    wait_until(lambda: len(client.acknowledged) > 30, 30, lambda: f"writes acknowledged: {client.last_error!r}")
    return cluster, client


def unflushed_now(client: WriteClient) -> int:
    acknowledged, flushed = client.written(time.monotonic())
    return len(acknowledged - flushed)


def events(cluster: LocalCluster, kind: str) -> list[coordinator_pb2.Event]:
    found = cluster.coordinator.stub().ListEvents(coordinator_pb2.ListEventsRequest(limit=20), timeout=5)
    return [e for e in found if e.kind == kind]


def complete_event(cluster: LocalCluster, kind: str) -> coordinator_pb2.Event | None:
    """The event of a role change once it is complete (its `healthy` phase recorded), else None."""
    found = events(cluster, kind)
    return found[0] if found and "healthy" in {p.name for p in found[0].phases} else None


def test_a_switchover_drains_the_old_writer_and_loses_no_acknowledged_write(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    cluster, client = draining_cluster(local_cluster, stop_s=5.0)
    old = cluster.wait_for_writer()
    target = next(iter(cluster.readers()))
    pending = unflushed_now(client)
    assert pending > 30, "the test needs acknowledged writes that only the old writer's WAL holds"
    began = time.monotonic()
    progress = list(
        cluster.coordinator.stub().Switchover(coordinator_pb2.SwitchoverRequest(to=target.name, reason="drain"))
    )
    took = time.monotonic() - began
    assert progress[-1].phase == "done" and progress[-1].ok, [(p.phase, p.message) for p in progress]
    drain_lines = [p.message for p in progress if p.phase == "drain"]
    assert any("draining" in m for m in drain_lines), drain_lines  # the drain's progress is streamed
    assert cluster.writer() == target.name and cluster.status().epoch == 2
    # The stream ends when the writer changed; the event is written by the leader's next tick.
    wait_until(lambda: events(cluster, "switchover"), 30, "the switchover event")
    (switch,) = events(cluster, "switchover")
    phases = {p.name: p.at_unix for p in switch.phases}
    drain_s = phases["decide"] - phases["drain"]
    assert drain_s >= 5.0, "the drain lasted the old writer's whole graceful stop, past its 3 s lease"
    assert f"{old.name} drained in" in switch.reason
    wait_until(lambda: client.acked_after(began + took) > 10, 30, "writes on the new writer")
    client.stop()
    cluster.check_history(client)
    verdict = cluster.verdict(client)
    assert not verdict.durability.unflushed_lost, sorted(verdict.durability.unflushed_lost)[:20]
    print(f"[drain] switchover: drain {drain_s:.1f}s, total {took:.1f}s, {pending} unflushed at the start, 0 lost")


def test_maintenance_of_the_writer_drains_it_first(local_cluster: Callable[..., LocalCluster]) -> None:
    cluster, client = draining_cluster(local_cluster, stop_s=5.0)
    old = cluster.wait_for_writer()
    pending = unflushed_now(client)
    began = time.monotonic()
    cluster.coordinator.stub().SetMaintenance(
        coordinator_pb2.SetMaintenanceRequest(node=old.name, on=True, reason="GPU swap"), timeout=5
    )
    new = cluster.wait_for_writer(90, other_than=old.name)
    took = time.monotonic() - began
    # The event is recorded while the change is in progress and completed at its end: wait for the end.
    wait_until(
        lambda: complete_event(cluster, "switchover"),
        30,
        lambda: f"the switchover event, complete: {events(cluster, 'switchover')}",
    )
    (switch,) = events(cluster, "switchover")
    phases = {p.name: p.at_unix for p in switch.phases}
    assert "drain" in phases and f"{old.name} drained in" in switch.reason
    wait_until(lambda: client.acked_after(began + took) > 10, 30, f"writes on {new.name}")
    client.stop()
    cluster.check_history(client)
    assert not cluster.verdict(client).durability.unflushed_lost
    print(f"[drain] maintenance: drain {phases['decide'] - phases['drain']:.1f}s, {pending} unflushed, 0 lost")


def test_a_drain_that_runs_out_of_time_is_abandoned_and_the_old_writer_keeps_writing(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    cluster, client = draining_cluster(local_cluster, stop_s=60.0, drain_timeout_s=4)
    old = cluster.wait_for_writer()
    target = next(iter(cluster.readers()))
    progress = list(
        cluster.coordinator.stub().Switchover(coordinator_pb2.SwitchoverRequest(to=target.name, reason="slow"))
    )
    assert not progress[-1].ok and "abandoned" in progress[-1].message, [(p.phase, p.message) for p in progress]
    abandoned_at = time.monotonic()
    assert events(cluster, "switchover-abandoned")
    again = cluster.wait_for_writer(60)
    assert again.name == old.name and cluster.status().epoch == 1  # restarted in place, on its own WAL
    wait_until(lambda: client.acked_after(abandoned_at) > 10, 60, f"writes on {old.name} again")
    client.stop()
    cluster.check_history(client)
    assert not cluster.verdict(client).durability.unflushed_lost


def test_a_forced_drain_timeout_moves_the_writer_anyway_and_no_two_writers_overlap(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    cluster, client = draining_cluster(local_cluster, stop_s=60.0, drain_timeout_s=4)
    old = cluster.wait_for_writer()
    target = next(iter(cluster.readers()))
    began = time.monotonic()
    request = coordinator_pb2.SwitchoverRequest(to=target.name, reason="forced", on_drain_timeout="force")
    progress = list(cluster.coordinator.stub().Switchover(request))
    took = time.monotonic() - began
    assert progress[-1].ok, [(p.phase, p.message) for p in progress]
    assert cluster.writer() == target.name and cluster.status().epoch == 2
    wait_until(lambda: events(cluster, "switchover"), 30, "the switchover event")
    (switch,) = events(cluster, "switchover")
    assert "drain forced" in switch.reason and old.name in switch.reason
    wait_until(lambda: client.acked_after(began + took) > 10, 30, "writes on the new writer")
    client.stop()
    cluster.check_history(client)  # no overlap, no flushed write lost
    lost = cluster.verdict(client).durability.unflushed_lost
    # The stand-in, like Milvus, flushes before it waits for its background threads: killed in that wait, it
    # has already written everything out.
    print(f"[drain] forced after {took:.1f}s: unflushed lost {len(lost)}")
