"""A writer whose node is alive is recovered where it is, on its own WAL: the same node, the same epoch, and
nothing it acknowledged lost (the local cluster, the pymilvus client writing throughout)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tests.localcluster.cluster import LocalCluster, WriteClient
from tests.plugin_agent import wait_until
from tests.plugin_juicefs import juicefs_pids, signal_all
from tests.test_cluster_failover import running_cluster


def recovered_in_place(cluster: LocalCluster, client: WriteClient, writer: str, since: float) -> None:
    again = cluster.wait_for_writer(60)
    assert again.name == writer and cluster.status().epoch == 1, "the writer moved"
    wait_until(lambda: client.acked_after(since + 1) > 10, 60, f"writes on {writer} after the fault")
    client.stop()
    cluster.check_history(client)  # no overlap, no flushed write lost
    lost = cluster.verdict(client).durability.unflushed_lost
    assert not lost, f"acknowledged writes lost though the writer replayed its own WAL: {sorted(lost)[:20]}"


def test_a_writer_whose_juicefs_dies_is_remounted_and_restarted_in_place(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    cluster, client = running_cluster(local_cluster)
    writer = cluster.wait_for_writer()
    killed_at = time.monotonic()
    signal_all(juicefs_pids(writer.volume.mountpoint), signal.SIGKILL)
    wait_until(lambda: "ENOTCONN" in writer.log(), 20, "the agent to see its mount dead")
    recovered_in_place(cluster, client, writer.name, killed_at)


def test_a_writer_whose_mount_hangs_has_its_juicefs_killed_and_is_restarted_in_place(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    cluster, client = running_cluster(local_cluster)
    writer = cluster.wait_for_writer()
    pids = juicefs_pids(writer.volume.mountpoint)
    hung_at = time.monotonic()
    signal_all(pids, signal.SIGSTOP)
    try:
        wait_until(lambda: "killed juicefs process" in writer.log(), 40, "the agent to kill the hung juicefs")
        recovered_in_place(cluster, client, writer.name, hung_at)
    finally:
        signal_all(pids, signal.SIGCONT)


def test_a_writer_is_stopped_while_its_mysql_is_down_and_replays_what_a_failed_flush_dropped(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    """A flush that fails on MySQL drops the rows from Milvus's memory (they stay in its WAL) and the next one
    that succeeds moves flush_lsn past them: without the stop they would be lost, Flush-acknowledged or not."""
    cluster, client = running_cluster(local_cluster)
    writer = cluster.wait_for_writer()
    server = cluster.milvus_meta.server
    down_at = time.monotonic()
    server.stop()
    try:
        wait_until(lambda: "its MySQL does not answer" in writer.log(), 20, "the agent to stop the writer")
        time.sleep(3)  # the client's Flush fails meanwhile; its inserts still go to the WAL until the stop
    finally:
        server.start()
    recovered_in_place(cluster, client, writer.name, down_at)
