"""A real cluster on this machine (coordinator, MariaDB, JuiceFS, 3 agents, stand-in Milvus): failures of the
writer, with a pymilvus 1.x client inserting and flushing all along, and a checker proving one writer at a time
and no flushed write lost (the stand-in takes its realistic 3 s to start, so every bound allows for a start)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from jfsmilvus.v1 import coordinator_pb2, node_pb2

from tests.plugin_agent import free_port, wait_until
from tests.plugin_cluster import LocalCluster, WriteClient
from tests.plugin_gpu import FakeXid, two_gpus

pytestmark = [pytest.mark.root, pytest.mark.slow]


def running_cluster(local_cluster: Callable[..., LocalCluster], **options: object) -> tuple[LocalCluster, WriteClient]:
    cluster = local_cluster(3, **options)
    cluster.start()
    cluster.wait_for_writer(90)
    for node in cluster.readers():
        node.wait_role("ro", timeout=60)
    wait_until(lambda: "and healthy" in cluster.coordinator.why(), 30, "the coordinator to call the cluster healthy")
    client = WriteClient(cluster).start()
    wait_until(
        lambda: len(client.acknowledged) > 5,
        30,
        lambda: f"writes acknowledged (last error: {client.last_error!r})\n{cluster.logs()}",
    )
    return cluster, client


def test_the_cluster_comes_up_with_one_writer_and_readers(local_cluster: Callable[..., LocalCluster]) -> None:
    cluster, client = running_cluster(local_cluster)
    want = [node_pb2.ROLE_RO, node_pb2.ROLE_RO, node_pb2.ROLE_RW]

    def seen_as_wanted() -> node_pb2.NodeObservation | None:
        s = cluster.status()
        return s if sorted(n.role_running for n in s.nodes) == want else None

    status = wait_until(seen_as_wanted, 10, "the coordinator to see one writer and two readers")
    assert status.epoch == 1 and "healthy" in status.why
    client.stop()
    cluster.check_history(client)


def test_writer_cut_off_from_the_coordinator_only_keeps_writing(local_cluster: Callable[..., LocalCluster]) -> None:
    cluster, client = running_cluster(local_cluster)
    writer = cluster.wait_for_writer()
    cluster.cut_from_coordinator(writer)
    cut_at = time.monotonic()
    time.sleep(12)
    assert cluster.writer() == writer.name and cluster.status().epoch == 1
    assert "cut off from the coordinator only" in cluster.coordinator.why()
    assert client.acked_after(cut_at + 8) > 20, "the writer stopped writing while MySQL renewed its lease"
    cluster.heal()
    client.stop()
    cluster.check_history(client)


def test_writer_cut_off_from_everything_fences_itself_and_a_reader_takes_over(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    cluster, client = running_cluster(local_cluster)
    old = cluster.wait_for_writer()
    cluster.cut_from_coordinator(old)
    cluster.cut_from_mysql(old)
    cluster.cut_from_peers(old)
    new = cluster.wait_for_writer(60, other_than=old.name)
    assert cluster.status().epoch == 2
    assert "lease expired" in old.log() or "lease" in old.log()
    wait_until(lambda: client.acked_after(time.monotonic() - 1) > 0, 20, "writes on the new writer")
    cluster.heal()
    old.wait_role("ro", timeout=60)  # the old writer rejoins as a reader
    client.stop()
    intervals = cluster.check_history(client)
    assert {i.node for i in intervals} >= {old.name, new.name}


def test_writer_agent_killed_fails_over_once_its_container_fences_itself(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    cluster, client = running_cluster(local_cluster)
    old = cluster.wait_for_writer()
    old.kill()  # kill -9: its container keeps running until its lease file runs out
    cluster.wait_for_writer(60, other_than=old.name)
    assert not [c for c in old.containers() if c.status == "running"]
    client.stop()
    cluster.check_history(client)


def test_writer_container_killed_is_restarted_in_place(local_cluster: Callable[..., LocalCluster]) -> None:
    # A generous grace, so that a slow machine's restart is not mistaken for a dead writer.
    cluster, client = running_cluster(local_cluster, recover_in_place_s=30)
    writer = cluster.wait_for_writer()
    (container,) = [c for c in writer.containers() if c.status == "running"]
    container.kill()
    killed_at = time.monotonic()
    again = cluster.wait_for_writer(60)
    assert again.name == writer.name and cluster.status().epoch == 1  # the agent restarted it, no failover
    wait_until(lambda: client.acked_after(killed_at) > 0, 20, "writes after the restart")
    client.stop()
    cluster.check_history(client)
    # Restarted on the same node, it replayed its local WAL: what it acknowledged and had not flushed is there.
    assert not cluster.verdict(client).durability.unflushed_lost


def test_a_gpu_failure_the_writers_milvus_does_not_use_keeps_the_writer(
    local_cluster: Callable[..., LocalCluster], fake_nvml_lib_dir: Path
) -> None:
    """The stand-in runs as a CPU image (no GPU here can be given to a container): a failed GPU is shown, and the
    writer keeps writing. A GPU image holding the failed GPU is restarted in place on the GPUs left, or failed
    over when none is left: `test_core_rules` (coordinator.faults.writer_faults and the report's GPU use)."""
    # A short in-place bound: a writer held for the GPU would be failed over well within the wait below.
    cluster, client = running_cluster(local_cluster, nvml_lib=fake_nvml_lib_dir, recover_in_place_s=3)
    old = cluster.wait_for_writer()
    gpus = two_gpus()
    gpus.xids.append(FakeXid(seq=1, gpu=0, xid=79))
    old.nvml_config.write_text(gpus.render())  # the GPU falls off the bus (fatal XID 79)
    wait_until(
        lambda: next(n for n in cluster.status().nodes if n.name == old.name).gpu_health == node_pb2.HEALTH_FAILED,
        30,
        "the writer's GPU reported failed",
    )
    failed_at = time.monotonic()
    time.sleep(8)  # past detection and fault_grace_s many times over
    assert cluster.writer() == old.name and cluster.status().epoch == 1
    assert not [e for e in cluster.events() if e.kind == "failover"]
    assert client.acked_after(failed_at) > 10, "the writer stopped acknowledging writes"
    client.stop()
    cluster.check_history(client)


def test_a_planned_switchover_moves_the_writer_and_everyone_follows(
    local_cluster: Callable[..., LocalCluster], tmp_path: Path, mishards_image: str
) -> None:
    cluster = local_cluster(3, publish=True)
    # Mishards' static discovery takes one port for every host (the writer's): every node listens on the same
    # ports, each on its own address, as in production.
    milvus_port, http_port = free_port(), free_port()
    for node in cluster.nodes.values():
        node.milvus_port, node.http_port = milvus_port, http_port
        node.milvus.update(port=milvus_port, http_port=http_port)
        node.write_config()
    host = next(iter(cluster.nodes.values()))
    env_file = tmp_path / "mishards.env"
    db_password = tmp_path / "mishards-db-password"
    db_password.write_text("pw\n")
    db_password.chmod(0o600)
    host.write_config(
        mishards={
            "enabled": True,
            "env_file": str(env_file),
            "container_name": f"mishards-{host.name}",
            "image": mishards_image,
            "server_port": free_port(),
            "database_uri": "mysql+pymysql://root@127.0.0.1:3306/milvus",
            "database_password_file": str(db_password),
        }
    )
    cluster.start()
    old = cluster.wait_for_writer(90)
    for node in cluster.readers():
        node.wait_role("ro", timeout=60)
    client = WriteClient(cluster).start()
    wait_until(
        lambda: (
            f"WOSERVER='tcp://{old.address}:{old.milvus_port}'" in (env_file.read_text() if env_file.exists() else "")
        ),
        30,
        "Mishards env naming the writer",
    )
    wait_until(lambda: "2 healthy readers" in cluster.coordinator.why(), 60, "the initial role change to finish")
    subscriber = redis.Redis(
        host="127.0.0.1", port=host.volume.redis.port, password=host.volume.redis.password
    ).pubsub()
    subscriber.subscribe("jfs-milvus:writer")
    target = next(n for n in cluster.readers())
    began = time.monotonic()
    progress = list(
        cluster.coordinator.stub().Switchover(
            coordinator_pb2.SwitchoverRequest(to=target.name, reason="test"), timeout=90
        )
    )
    phases = [p.phase for p in progress]
    took = time.monotonic() - began
    assert phases[-1] == "done", [(p.phase, p.message) for p in progress]
    assert took < 45, f"{took:.0f}s: the coordinator waited out promote_timeout_s for Mishards to follow"
    assert {"decide", "fence", "promote", "healthy"} <= set(phases), phases
    assert cluster.writer() == target.name and cluster.status().epoch == 2
    cluster.wait_for_writer(30)
    wait_until(
        lambda: f"WOSERVER='tcp://{target.address}:{target.milvus_port}'" in env_file.read_text(),
        30,
        "Mishards env following",
    )
    message = wait_until(
        lambda: subscriber.get_message(timeout=0.5, ignore_subscribe_messages=True), 10, "the Redis announcement"
    )
    announced = json.loads(message["data"])
    assert announced["old"] == old.name and announced["new"] == target.name and announced["epoch"] == 2
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{cluster.coordinator.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert 'jfs_milvus_cluster_epoch{cluster="test"} 2' in metrics and "jfs_milvus_switchovers_total" in metrics
    assert "pushed ro at epoch 2" in cluster.coordinator.log()
    wait_until(lambda: client.acked_after(began + took) > 0, 20, "writes on the new writer")
    client.stop()
    cluster.check_history(client)
    print(f"[timing] planned switchover {took:.1f}s")


def test_a_coordinator_restart_never_demotes_a_healthy_writer(local_cluster: Callable[..., LocalCluster]) -> None:
    cluster, client = running_cluster(local_cluster)
    writer = cluster.wait_for_writer()
    (container,) = [c for c in writer.containers() if c.status == "running"]
    for _ in range(2):
        cluster.coordinator.kill()
        time.sleep(1)
        restarted_at = time.monotonic()
        cluster.coordinator.start()
        wait_until(lambda: "and healthy" in cluster.coordinator.why(), 30, "the new leader settling")
        after = restarted_at + 2
        wait_until(lambda after=after: client.acked_after(after) > 0, 20, "writes after the takeover")
    status = cluster.status()
    assert status.writer == writer.name and status.epoch == 1
    (still,) = [c for c in writer.containers() if c.status == "running"]
    assert still.id == container.id, "the writer's container was restarted"
    assert "killed the rw container" not in writer.log() and "killing writer container" not in writer.log()
    client.stop()
    cluster.check_history(client)
