"""A reader heals its own mount (issue 16): the agent on a real JuiceFS mount and the real Docker engine with the
stand-in Milvus image. A container never runs on a mount other than the one at the mountpoint: when its juicefs
dies, or the mount is replaced under it, the container is stopped, the mount recovered, and it starts again."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import docker
import pytest

from agent.milvus.server_config import CONTAINER_DB_DIR
from agent.mount import MountManager, mountinfo
from tests.plugin_agent import AgentNode, wait_until
from tests.plugin_juicefs import juicefs_pids, signal_all
from tests.test_agent_daemon import prepared

pytestmark = [pytest.mark.root, pytest.mark.slow]


def host_device(node: AgentNode) -> str | None:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return mountinfo.device_at(f.read(), node.volume.mountpoint)


def device_inside(container_id: str) -> str | None:
    """What the container's own mount namespace shows at its db directory (read from its init process)."""
    pid = docker.from_env().api.inspect_container(container_id)["State"]["Pid"]
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as f:
        return mountinfo.device_at(f.read(), CONTAINER_DB_DIR)


def running_reader(agent_node: Callable[..., AgentNode]) -> tuple[AgentNode, str]:
    node = prepared(agent_node)
    node.assign("ro", 1)
    node.start()
    first = node.wait_role("ro").container.id
    (container,) = node.containers()
    assert device_inside(container.id) == host_device(node) is not None
    return node, first


def back_on_the_mount_there_now(node: AgentNode, first: str, since: float) -> float:
    """Waits for a new healthy ro container on the mount at the mountpoint; returns how long it took."""
    status = wait_until(
        lambda: (s := node.status()).container.id not in ("", first) and s.role_running == 1 and s,
        60,
        lambda: f"a new ro container\n--- agent log ---\n{node.log()[-3000:]}",
    )
    took = time.monotonic() - since
    (container,) = node.containers()
    assert container.id.startswith(status.container.id)
    assert device_inside(container.id) == host_device(node) is not None
    assert status.highest_epoch_seen == 1 and status.container.restarts == 0  # not counted as a crash
    assert node.standin()["writable"] is False
    return took


def test_a_reader_whose_juicefs_is_killed_stops_remounts_and_starts_again_by_itself(
    agent_node: Callable[..., AgentNode],
) -> None:
    node, first = running_reader(agent_node)
    killed_at = time.monotonic()
    signal_all(juicefs_pids(node.volume.mountpoint), signal.SIGKILL)
    took = back_on_the_mount_there_now(node, first, killed_at)
    log = node.log()
    assert "stopping ro container: its JuiceFS mount died under it (ENOTCONN)" in log
    assert "lazily unmounted" in log and "mounted volume" in log
    assert took < 30, f"the reader took {took:.1f} s to come back"


def test_a_mount_replaced_under_a_running_reader_restarts_it_on_the_new_mount(
    agent_node: Callable[..., AgentNode],
) -> None:
    node, first = running_reader(agent_node)
    old = host_device(node)
    # Someone (an operator, a package's postinst) lazily unmounts the volume and mounts it again, as `mount -a`
    # would: the old juicefs keeps serving the container's bind mount, and the new mount is another device.
    replaced_at = time.monotonic()
    subprocess.run(["umount", "-l", node.volume.mountpoint], check=True, timeout=30)
    MountManager(node.volume.volume, node.volume.settings, node.name).ensure("ro")
    new = host_device(node)
    assert new is not None and new != old
    took = back_on_the_mount_there_now(node, first, replaced_at)
    assert f"the JuiceFS mount it started on (device {old}) was replaced by another (device {new})" in node.log()
    assert took < 30, f"the reader took {took:.1f} s to come back"
    # The old mount is gone with the container that held it: its juicefs has exited.
    wait_until(lambda: len(juicefs_pids(node.volume.mountpoint)) <= 2, 20, "the old juicefs to exit")
