"""coordinatorctl against a real coordinator with real agents: output in each format, actions that move
the writer, doctor's findings, and usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
import yaml

from tests.plugin_agent import wait_until
from tests.plugin_cluster import LocalCluster

pytestmark = [pytest.mark.root, pytest.mark.slow]


def ctl(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.ctl", "--coordinator", cluster.coordinator.address, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_usage_errors_exit_2_with_a_helpful_line() -> None:
    run = subprocess.run([sys.executable, "-m", "coordinator.ctl", "swtichover"], capture_output=True, text=True)
    assert run.returncode == 2 and "invalid choice: 'swtichover'" in run.stderr
    run = subprocess.run([sys.executable, "-m", "coordinator.ctl", "failover"], capture_output=True, text=True)
    assert run.returncode == 2 and "--to" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "coordinator.ctl", "switchover", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0 and "example: coordinatorctl switchover" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "coordinator.ctl", "completion", "bash"], capture_output=True, text=True
    )
    assert run.returncode == 0 and "complete -F _coordinatorctl coordinatorctl" in run.stdout
    # One registration per command: the completion offers every command and alias, and every option and choice
    # the parser has (none kept by hand).
    from coordinator.ctl import COMMANDS

    for command in COMMANDS:
        assert all(f" {name} " in f" {run.stdout.replace(chr(34), ' ')} " for name in (command.name, *command.aliases))
    assert "--on-drain-timeout" in run.stdout and " remove " in run.stdout and " abandon " in run.stdout


def test_every_command_against_a_running_cluster(local_cluster: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster(3)
    cluster.start()
    writer = cluster.wait_for_writer(90)
    for node in cluster.readers():
        node.wait_role("ro", timeout=60)
    a, b = sorted(n.name for n in cluster.readers())
    wait_until(
        lambda: ctl(cluster, "status", "-o", "json").stdout.count('"role_running": "ro"') == 2, 20, "readers seen"
    )

    table = ctl(cluster, "status")
    assert table.returncode == 0, table.stderr
    assert "Cluster: test" in table.stdout and f"Writer: {writer.name}" in table.stdout
    assert f"{writer.name} *" in table.stdout and "NODE" in table.stdout and "Why:" in table.stdout
    print("\n" + table.stdout)
    data = json.loads(ctl(cluster, "status", "-o", "json").stdout)
    assert data["writer"] == writer.name and len(data["nodes"]) == 3
    assert {n["role_running"] for n in data["nodes"]} == {"rw", "ro"}
    assert yaml.safe_load(ctl(cluster, "list", "-o", "yaml").stdout)["epoch"] == data["epoch"]
    assert "writer at epoch" in ctl(cluster, "why").stdout

    assert ctl(cluster, "priority", b, "5").returncode == 0
    assert {n["name"]: n["priority"] for n in json.loads(ctl(cluster, "status", "-o", "json").stdout)["nodes"]}[b] == 5
    paused = ctl(cluster, "pause", "--reason", "network work")
    assert paused.returncode == 0 and "Paused: yes (network work)" in paused.stdout
    assert "Paused: no" in ctl(cluster, "resume").stdout

    no_tty = ctl(cluster, "switchover", "--to", a)
    assert no_tty.returncode == 2 and "add --yes" in no_tty.stderr
    assert ctl(cluster, "maintenance", "on", a, "--reason", "GPU swap", "--yes").returncode == 0
    refused = ctl(cluster, "switchover", "--to", a, "--yes")
    assert refused.returncode == 1 and "in maintenance" in refused.stderr
    assert ctl(cluster, "maintenance", "off", a).returncode == 0

    wait_until(lambda: "2 healthy readers" in ctl(cluster, "why").stdout, 60, "both readers settled")
    moved = ctl(cluster, "switchover", "--to", b, "--yes", "--reason", "planned")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "fence" in moved.stdout and "promote" in moved.stdout and "done in" in moved.stdout
    assert json.loads(ctl(cluster, "status", "-o", "json").stdout)["writer"] == b
    cluster.wait_for_writer(30)

    forced = ctl(cluster, "failover", "--to", writer.name, "--force", "--yes")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "may write at the same time" in forced.stderr
    assert json.loads(ctl(cluster, "status", "-o", "json").stdout)["writer"] == writer.name

    history = ctl(cluster, "history")
    assert history.returncode == 0 and "switchover" in history.stdout and "failover" in history.stdout
    rows = json.loads(ctl(cluster, "history", "-o", "json").stdout)
    switch = next(r for r in rows if r["kind"] == "switchover")
    assert (
        switch["node"] == b
        and switch["reason"].startswith("planned (")
        and "drained in" in switch["reason"]
        and switch["total_seconds"] > 0
    )
    assert {"fence", "promote", "healthy"} <= set(switch["phase_seconds"])
    print(history.stdout)
    events = ctl(cluster, "events", "--limit", "20")
    assert "maintenance" in events.stdout and "paused" in events.stdout


def test_doctor_warns_about_eviction_and_fails_without_mysql(local_cluster: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster(2)
    cluster.start()
    writer = cluster.wait_for_writer(90)
    for reader in cluster.nodes.values():
        if reader is not writer:
            reader.wait_role("ro")
    # Set only once every node has mounted: `juicefs mount` (1.4.2) sets maxmemory-policy back to noeviction.
    config = str(cluster.coordinator.config_path)
    cluster.volume.redis.client().config_set("maxmemory-policy", "allkeys-lru")

    def every_node_warns() -> bool:
        findings = json.loads(ctl(cluster, "doctor", "--config", config, "-o", "json").stdout)
        policy = [f for f in findings if f["name"] == "Redis maxmemory-policy"]
        return len(policy) == 2 and all(f["result"] == "WARN" for f in policy)

    wait_until(every_node_warns, 40, "the eviction warning from both nodes (they re-read it every 10 s)")
    doctor = ctl(cluster, "doctor", "--config", config, "-o", "json")
    findings = json.loads(doctor.stdout)
    policy = [f for f in findings if f["name"] == "Redis maxmemory-policy"]
    assert policy and all(f["result"] == "WARN" and "noeviction" in f["fix"] for f in policy)
    assert any(f["name"] == "MySQL reachable" and f["result"] == "PASS" for f in findings)
    assert any(f["name"] == "Milvus meta database" and f["result"] == "FAIL" for f in findings)
    by_name = {(f["name"], f["result"]) for f in findings}
    assert ("JuiceFS cache dir", "PASS") in by_name and ("JuiceFS volume", "PASS") in by_name
    # These nodes run the cpu-flavour image: neither NVML nor the NVIDIA container hook is needed there.
    assert ("Docker GPU hook", "PASS") in by_name and ("NVIDIA driver", "PASS") in by_name
    assert any(name == "clock" for name, _ in by_name)
    assert doctor.returncode == 1
    cluster.volume.redis.client().config_set("maxmemory-policy", "noeviction")
    cluster.db.server.stop()
    try:
        down = ctl(cluster, "doctor", "--config", config, "-o", "json")
        findings = json.loads(down.stdout)
        assert any(f["name"] == "MySQL reachable" and f["result"] == "FAIL" for f in findings)
        assert down.returncode == 1
    finally:
        cluster.db.server.start()
