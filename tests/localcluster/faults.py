"""The faults the chaos suite injects into a running local cluster. Each returns how to undo it.

A fault acts the way the real one would: a power-off kills the agent, the container and the mount at once;
a hung mount is a SIGSTOPped juicefs; a partition is an iptables rule on the node's cgroup; a clock step is
libfaketime moving the wall clock of that node's agent only (CLOCK_MONOTONIC and CLOCK_BOOTTIME, which
never step on a real machine, are left alone).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from jfsmilvus.v1 import coordinator_pb2

from tests.localcluster.cluster import ClusterNode
from tests.localcluster.up import RunningCluster
from tests.plugin_gpu import FakeXid, two_gpus
from tests.plugin_juicefs import juicefs_pids, signal_all

Undo = Callable[[], None]
FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
)


def _nothing() -> None:
    pass


def _docker_kill(node: ClusterNode) -> None:
    subprocess.run(["docker", "kill", node.container_name], capture_output=True, timeout=30)


def power_on(rc: RunningCluster, node: ClusterNode) -> None:
    """The node boots again: its dead mount goes, its agent starts and mounts the volume anew."""
    subprocess.run(["umount", "-l", node.volume.mountpoint], capture_output=True, timeout=30)
    node.start()  # on a Mishards node, the agent starts its Mishards container again itself


def power_off(rc: RunningCluster, node: ClusterNode) -> Undo:
    """Agent, containers and mount killed at once; the node stays silent until the undo powers it on."""
    pids = juicefs_pids(node.volume.mountpoint)
    node.kill()
    _docker_kill(node)
    for m in rc.mishards_hosts:
        if m.node is node:
            subprocess.run(["docker", "kill", m.container], capture_output=True, timeout=30)
    signal_all(pids, signal.SIGKILL)
    return lambda: power_on(rc, node)


def kill_agent(rc: RunningCluster, node: ClusterNode) -> Undo:
    """kill -9 of the agent; its container keeps running (the lease watch inside it fences a lapsed rw)."""
    node.kill()
    return node.start


def kill_container(rc: RunningCluster, node: ClusterNode) -> Undo:
    _docker_kill(node)
    return _nothing


def kill_juicefs(rc: RunningCluster, node: ClusterNode) -> Undo:
    signal_all(juicefs_pids(node.volume.mountpoint), signal.SIGKILL)
    return _nothing


def hang_mount(rc: RunningCluster, node: ClusterNode) -> Undo:
    pids = juicefs_pids(node.volume.mountpoint)
    signal_all(pids, signal.SIGSTOP)
    return lambda: signal_all(pids, signal.SIGCONT)


def freeze_agent(rc: RunningCluster, node: ClusterNode) -> Undo:
    """The agent stops dead (SIGSTOP: a stuck process, a VM paused) while its containers run on; the lease watch
    inside a rw container fences it when its lease lapses. The undo lets the agent run again."""
    node.signal(signal.SIGSTOP)
    return lambda: node.signal(signal.SIGCONT)


def flap_mount(rc: RunningCluster, node: ClusterNode, hung_s: float = 1.0, live_s: float = 1.0) -> Undo:
    """The mount hangs for `hung_s`, answers for `live_s`, and again, until the undo (a flaky network to the
    metadata engine or object store, seen from one client)."""
    pids = juicefs_pids(node.volume.mountpoint)
    stop = threading.Event()

    def flap() -> None:
        while not stop.is_set():
            signal_all(pids, signal.SIGSTOP)
            stop.wait(hung_s)
            signal_all(pids, signal.SIGCONT)
            stop.wait(live_s)

    thread = threading.Thread(target=flap, name="flap-mount", daemon=True)
    thread.start()

    def undo() -> None:
        stop.set()
        thread.join(timeout=10)
        signal_all(pids, signal.SIGCONT)

    return undo


def switchover_then_power_off(rc: RunningCluster, node: ClusterNode, after_s: float = 0.5) -> Undo:
    """An operator's switchover to `node`, which is powered off `after_s` into it (while the old writer drains).
    The undo waits for the switchover's answer and powers the node on."""
    answers: list[object] = []

    def ask() -> None:
        leader = rc.cluster.leader() or rc.cluster.coordinator
        request = coordinator_pb2.SwitchoverRequest(to=node.name, reason="chaos: its target dies")
        try:
            answers.extend(leader.stub().Switchover(request, timeout=300))
        except grpc.RpcError as exc:
            answers.append(exc)

    thread = threading.Thread(target=ask, name="switchover", daemon=True)
    thread.start()
    time.sleep(after_s)
    undo_power = power_off(rc, node)

    def undo() -> None:
        thread.join(timeout=300)
        undo_power()

    return undo


def cut_from_coordinators(rc: RunningCluster, node: ClusterNode) -> Undo:
    rc.cluster.cut_from_coordinator(node)
    return rc.cluster.heal


def cut_off(rc: RunningCluster, node: ClusterNode) -> Undo:
    rc.cluster.cut_off(node)
    return rc.cluster.heal


def kill_leader(rc: RunningCluster, node: ClusterNode) -> Undo:
    leader = rc.cluster.leader()
    assert leader is not None, "no coordinator leads"
    leader.kill()
    return leader.start


def stop_coordinators(rc: RunningCluster, node: ClusterNode, for_s: float = 60.0) -> Undo:
    """Every coordinator down for a minute (the undo waits out the rest of the minute, then starts them)."""
    stopped = [c for c in rc.cluster.coordinators if c.running()]
    for c in stopped:
        c.kill()
    began = time.monotonic()

    def undo() -> None:
        time.sleep(max(0.0, for_s - (time.monotonic() - began)))
        for c in stopped:
            c.start()

    return undo


def restart_mysql(rc: RunningCluster, node: ClusterNode) -> Undo:
    rc.mariadb.restart()
    return _nothing


def restart_redis(rc: RunningCluster, node: ClusterNode) -> Undo:
    """Redis (the JuiceFS metadata engine and the announcement channel) stops, saving, and starts again."""
    rc.redis.restart()
    return _nothing


def faketime_library() -> str | None:
    return next((lib for lib in FAKETIME_LIBS if os.path.exists(lib)), None)


def step_clock(rc: RunningCluster, node: ClusterNode, step_s: int = 600) -> Undo:
    """The node's wall clock jumps `step_s` ahead (as an NTP step would) and, at the undo, back again.

    The agent is restarted under libfaketime first (a restart is itself harmless: it adopts its container).
    """
    library = faketime_library()
    if library is None:
        raise RuntimeError("libfaketime is not installed (apt install libfaketime)")
    offset = node.root / "faketime-offset"
    offset.write_text("+0\n")
    node.env.update(
        LD_PRELOAD=library,
        FAKETIME_TIMESTAMP_FILE=str(offset),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    node.stop()
    node.start()
    time.sleep(3)
    offset.write_text(f"+{step_s}\n")

    def undo() -> None:
        offset.write_text("+0\n")
        time.sleep(3)
        for key in ("LD_PRELOAD", "FAKETIME_TIMESTAMP_FILE", "FAKETIME_NO_CACHE", "FAKETIME_DONT_FAKE_MONOTONIC"):
            node.env.pop(key, None)
        node.stop()
        node.start()

    return undo


def fail_gpu(rc: RunningCluster, node: ClusterNode) -> Undo:
    """GPU 0 falls off the bus (fatal XID 79) through the fake NVML library; the undo replaces the card."""
    gpus = two_gpus()
    gpus.xids.append(FakeXid(seq=1, gpu=0, xid=79))
    Path(node.nvml_config).write_text(gpus.render())

    def undo() -> None:
        Path(node.nvml_config).write_text(two_gpus().render())
        with contextlib.suppress(Exception):
            node.stop()
        node.start()  # a replaced card: the agent starts afresh and sees two healthy GPUs

    return undo
