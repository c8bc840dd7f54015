"""The agent says why it waits: once when a wait begins, once more when its reason changes, never every cycle;
its Status RPC and `jfs-milvus-agent status` show the current one, since when. A mount that changes state is
said once too, with why (agent.saywhy: the rules; a real daemon: the log, the RPC and the CLI)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.saywhy import Doing, daemon_status, gist, mount_news, next_doing, now_file_text, render_daemon_line
from tests.bare_agent import BareAgent, leader_and_agent
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess, ctl

DOCKER_WAIT = "wait: Docker is unreachable"


# -- the rules ----------------------------------------------------------------------------------------------
def test_durations_and_timestamps_do_not_make_a_new_sentence() -> None:
    assert gist("ro container starting for 3s (limit 600s)") == gist("ro container starting for 41s (limit 600s)")
    assert gist("write probe took 2100 ms") == gist("write probe took 2512.5 ms")
    assert gist("/mnt/jfs hung since 2026-12-01T10:00:00+00:00") == gist("/mnt/jfs hung since 2026-12-01T10:00:07Z")
    assert gist("switch to ro (epoch 3)") != gist("switch to ro (epoch 4)")  # an epoch is news
    # The Mishards keeper says a hold once, not every second of it.
    hold = "holding the Mishards restart: 10.0.0.1:19530 does not answer ({}s of 60s)"
    assert gist(hold.format(12)) == gist(hold.format(13))


def test_a_wait_is_news_once_keeps_its_start_and_takes_the_latest_sentence() -> None:
    first, news = next_doing(None, "wait", "ro container starting for 0s (limit 600s)", False, 100.0)
    assert news and first == Doing("wait", "ro container starting for 0s (limit 600s)", 100.0)
    later = first
    for second in range(1, 30):
        later, news = next_doing(
            later, "wait", f"ro container starting for {second}s (limit 600s)", False, 100 + second
        )
        assert not news
    assert later.since_unix == 100.0 and later.reason == "ro container starting for 29s (limit 600s)"
    changed, news = next_doing(later, "wait", "JuiceFS mount is failed; not starting ro: ENOTCONN", False, 130.0)
    assert news and changed.since_unix == 130.0
    again, news = next_doing(changed, "wait", "JuiceFS mount is failed; not starting ro: ENOTCONN", False, 131.0)
    assert not news and again.since_unix == 130.0


def test_a_step_that_acted_is_always_news() -> None:
    mounting, _ = next_doing(None, "mount", "mounting JuiceFS ro", True, 1.0)
    assert next_doing(mounting, "mount", "mounting JuiceFS ro", True, 2.0)[1]
    # ... and the wait after it is said again: the situation changed.
    waiting, _ = next_doing(None, "wait", "mount failed: busy", False, 1.0)
    acted, _ = next_doing(waiting, "mount", "mounting JuiceFS ro", True, 2.0)
    assert next_doing(acted, "wait", "mount failed: busy", False, 3.0)[1]


def test_a_mount_is_said_when_its_state_mode_or_reasons_change() -> None:
    reasons = ("/mnt/jfs: transport endpoint is not connected (juicefs process gone: ENOTCONN/ECONNABORTED)",)
    key, line = mount_news(None, "milvus", "/mnt/jfs", "healthy", "ro", ())
    assert line == "mount /mnt/jfs (volume milvus): healthy (ro)"
    assert mount_news(key, "milvus", "/mnt/jfs", "healthy", "ro", ()) == (key, None)
    key, line = mount_news(key, "milvus", "/mnt/jfs", "failed", None, reasons)
    assert line == f"mount /mnt/jfs (volume milvus): healthy -> failed: {reasons[0]}"
    assert mount_news(key, "milvus", "/mnt/jfs", "failed", None, reasons)[1] is None
    slow = ("write probe took 2500 ms, over the 2000 ms limit",)
    key, line = mount_news(key, "milvus", "/mnt/jfs", "degraded", "rw", slow)
    assert line is not None and "failed -> degraded (rw)" in line
    assert (
        mount_news(key, "milvus", "/mnt/jfs", "degraded", "rw", ("write probe took 2900 ms, over the 2000 ms limit",))[
            1
        ]
        is None
    )


def test_status_says_what_the_daemon_does_or_why_it_cannot() -> None:
    doing = Doing("wait", "Docker is unreachable, retrying: refused", 1000.0)
    text = now_file_text(doing, 4242, "node-a")
    running = daemon_status("/s/agent-now.json", text, None, True, 1075.0)
    assert running["running"] and running["for_s"] == 75.0 and running["reason"] == doing.reason
    assert render_daemon_line(running).startswith("Agent: waiting since ")
    assert "(1m 15s): Docker is unreachable, retrying: refused" in render_daemon_line(running)
    gone = daemon_status("/s/agent-now.json", text, None, False, 1075.0)
    assert "pid 4242) is not running" in render_daemon_line(gone)
    absent = daemon_status("/s/agent-now.json", None, None, False, 1075.0)
    assert (
        render_daemon_line(absent) == "Agent: the agent daemon is not running here (/s/agent-now.json does not exist)"
    )
    garbage = daemon_status("/s/agent-now.json", "{", None, False, 1075.0)
    assert render_daemon_line(garbage) == "Agent: /s/agent-now.json: not what the agent writes"


# -- a real daemon ----------------------------------------------------------------------------------------------
def lines_with(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if text in line]


def test_the_daemon_says_each_wait_once_and_status_shows_the_current_one(tmp_path: Path) -> None:
    node = BareAgent(tmp_path)
    node.start()
    try:
        observation = wait_until(lambda: (o := node.status()).waiting_for and o, 20, "a wait in the status")
        assert observation.waiting_for.startswith("Docker is unreachable")
        assert 0 < observation.waiting_since_unix <= time.time()
        assert observation.container.error == observation.waiting_for  # where the coordinator reads it
        time.sleep(4)  # four more cycles of the same wait
        assert len(lines_with(node.log(), DOCKER_WAIT)) == 1, node.log()
        shown = json.loads(node.cli("status", "--json").stdout)["daemon"]
        assert shown["running"] and shown["action"] == "wait" and shown["reason"].startswith("Docker is unreachable")
        assert shown["since_unix"] == observation.waiting_since_unix
        table = node.cli("status").stdout
        assert "Agent: waiting since " in table and "Docker is unreachable" in table, table

        # The reason changes: a role to run, and a base config it cannot read.
        node.base_config.write_bytes(b"version: 0.5\n\xff\n")
        assigned = node.cli("assign", "ro", "--epoch", "1")
        assert assigned.returncode == 0, assigned.stderr
        unreadable = f"cannot run Milvus: milvus.base_config {node.base_config}: cannot be read: not UTF-8 text"
        wait_until(lambda: node.status().waiting_for.startswith(unreadable), 20, "the new wait in the status")
        assert node.cli("assign", "none", "--epoch", "1").returncode == 0
        wait_until(lambda: node.status().waiting_for.startswith("Docker is unreachable"), 20, "the Docker wait again")
        time.sleep(3)
        log = node.log()
        assert len(lines_with(log, f"wait: {unreadable}")) == 1, log
        assert len(lines_with(log, DOCKER_WAIT)) == 2, log  # before, and again after the other wait
        assert "Traceback" not in log
    finally:
        node.stop()
    stopped = json.loads(node.cli("status", "--json").stdout)["daemon"]
    assert stopped["running"] is False and "is not running" in stopped["note"]


@pytest.mark.slow
def test_coordinatorctl_status_shows_what_each_agent_waits_for(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    c, node = leader_and_agent(coordinator_factory, tmp_path)

    def shown() -> dict | None:
        run = ctl(c.address, "status", "-o", "json")
        nodes = [n for n in json.loads(run.stdout)["nodes"] if n["name"] == node.name and n["waiting_for"]]
        return nodes[0] if nodes else None

    try:
        row = wait_until(shown, 30, "the agent's wait in coordinatorctl status")
        # Docker's wait, until the coordinator makes it the writer: then it cannot run Milvus without a volume.
        waits = ("Docker is unreachable", "cannot run Milvus: milvus.volume names no JuiceFS volume")
        assert row["waiting_for"].startswith(waits) and row["waiting_since"] > 0, row
        table = ctl(c.address, "status").stdout
        (line,) = [line for line in table.splitlines() if line.startswith(f"Waiting: {node.name} since ")]
        assert line.split(": ", 2)[2].startswith(waits), table
    finally:
        node.stop()
