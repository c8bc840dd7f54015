"""The agent daemon on a real JuiceFS mount and the real Docker engine, with the stand-in Milvus image."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import pytest
from jfsmilvus.v1 import node_pb2

from agent.mount import MountManager
from tests.plugin_agent import AgentNode, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]


def prepared(agent_node: Callable[..., AgentNode]) -> AgentNode:
    """A node whose volume already holds the Milvus db directory, as in a running cluster."""
    node = agent_node()
    MountManager(node.volume.volume, node.volume.settings, node.name).ensure("rw")
    (node.volume.root / "mnt point" / "milvus" / "db").mkdir(parents=True, exist_ok=True)
    return node


def wal_mounts(node: AgentNode) -> list[str]:
    (container,) = node.containers()
    return [m["Source"] for m in container.attrs["Mounts"] if m["Destination"] == "/var/lib/milvus/wal"]


def test_ro_then_rw_then_ro(agent_node: Callable[..., AgentNode]) -> None:
    node = prepared(agent_node)
    assert node.assign("ro", 1).returncode == 0
    node.start()
    status = node.wait_role("ro")
    assert status.container.role == node_pb2.ROLE_RO and status.container.epoch == 1
    assert node.mount_mode() == "ro" and node.config_role() == "ro"
    assert node.standin()["writable"] is False
    assert wal_mounts(node) == []  # a reader runs with wal.enable: false and gets no WAL

    assert node.assign("rw", 2).returncode == 0
    status = node.wait_role("rw")
    assert status.container.epoch == 2 and status.highest_epoch_seen == 2
    assert node.mount_mode() == "rw" and node.config_role() == "rw"
    info = node.standin()
    assert info["writable"] is True and info["epoch"] == 2, info
    assert wal_mounts(node) == [str(node.data_dir / "wal")]  # the writer's WAL of this stint
    assert json.loads((node.data_dir / "wal.stint").read_text()) == {"epoch": 2, "role": "rw"}
    assert node.write(1)
    assert len(node.containers()) == 1

    assert node.assign("ro", 3).returncode == 0
    node.wait_role("ro")
    assert node.mount_mode() == "ro" and node.config_role() == "ro"
    assert node.standin()["writable"] is False
    assert node.has_row(1)  # the flushed write survived the switches: the reader reads it from the volume
    assert len(node.containers()) == 1
    log = node.log()
    assert "stopping rw container to switch to ro (epoch 3)" in log
    assert "starting Milvus as ro at epoch 3" in log


def test_a_killed_container_is_restarted_and_counted(agent_node: Callable[..., AgentNode]) -> None:
    node = prepared(agent_node)
    node.assign("rw", 1)
    node.start()
    first = node.wait_role("rw")
    (container,) = node.containers()
    container.kill()
    wait_until(lambda: node.status().container.id not in ("", first.container.id), 60, "a new container")
    status = node.wait_role("rw")
    assert status.container.restarts >= 1
    assert "after a crash" in node.log()
    assert node.write(2)


def test_an_agent_restart_adopts_the_running_container(agent_node: Callable[..., AgentNode]) -> None:
    node = prepared(agent_node)
    node.assign("ro", 1)
    node.start()
    before = node.wait_role("ro").container.id
    node.kill()  # kill -9: no goodbye
    node.start()
    after = node.wait_role("ro").container.id
    assert after == before
    assert "starting Milvus" not in node.log().split("agent API listening")[-1]


def test_an_agent_killed_mid_switch_converges_after_restart(agent_node: Callable[..., AgentNode]) -> None:
    node = prepared(agent_node)
    node.assign("ro", 1)
    node.start()
    node.wait_role("ro")
    node.assign("rw", 2)
    wait_until(lambda: "stopping ro container to switch to rw" in node.log(), 30, "the switch to begin")
    node.kill()
    node.start()
    node.wait_role("rw")
    assert len(node.containers()) == 1
    assert node.mount_mode() == "rw"
    assert node.write(3)


def test_a_stale_epoch_is_refused(agent_node: Callable[..., AgentNode]) -> None:
    node = prepared(agent_node)
    node.assign("ro", 5)
    node.start()
    node.wait_role("ro")
    refused = node.assign("rw", 4)
    assert refused.returncode == 1 and "epoch 4 is older than epoch 5" in refused.stderr
    answer = node.push(node_pb2.Assignment(role=node_pb2.ROLE_RW, epoch=3))
    assert not answer.accepted and "older than epoch 5" in answer.reason
    time.sleep(2)
    assert node.status().role_running == node_pb2.ROLE_RO


def test_sigterm_stops_the_agent_and_leaves_milvus_running(agent_node: Callable[..., AgentNode]) -> None:
    node = prepared(agent_node)
    node.assign("ro", 1)
    node.start()
    node.wait_role("ro")
    assert node.stop() == 0
    (container,) = node.containers()
    assert container.status == "running"
    assert "stopping on signal" in node.log()


def test_sighup_reloads_and_refuses_a_bad_config(agent_node: Callable[..., AgentNode]) -> None:
    node = prepared(agent_node)
    node.assign("ro", 1)
    node.start()
    node.wait_role("ro")
    good = node.config_path.read_text()
    node.config_path.write_text(good.replace("loop_interval_s: 0.5", "loop_interval_s: -1"))
    node.signal(signal.SIGHUP)
    wait_until(lambda: "new config refused, keeping the old one" in node.log(), 10, "the refusal")
    assert node.process is not None and node.process.poll() is None
    node.config_path.write_text(good.replace("cache_size: 1GB", "cache_size: 1GB"))
    node.base_config.write_text(node.base_config.read_text() + "metric:\n  enable: false\n")
    node.config_path.write_text(good)
    node.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded config" in node.log(), 10, "the reload")
    # The base config changed: the reader restarts with it.
    wait_until(lambda: "restarting ro container: its server_config.yaml changed" in node.log(), 30, "restart")
    node.wait_role("ro")
