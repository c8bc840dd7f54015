"""`coordinatorctl config show|edit|history|rollback` (issue 18, "one cluster config") against a real
coordinator process on a real MariaDB: the first show proposes a config from the nodes' reports, an edit shows
the diff and commits a new version, a bad config is refused with check-config's errors and changes nothing, an
unchanged one is a no-op, a rollback is a new version with an old body, and each report's answer carries the
version its node is to run (pinned while a restart must be rolled out)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from jfsmilvus.common.clusterconfig import config_diff, parse_cluster_config, render_cluster_config
from jfsmilvus.common.configschema import ConfigError

from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess, ctl, report

CONFIG_V1 = """\
milvus:
  image: milvusdb/milvus:1.1.1-gpu
  flavor: gpu
  server_config:
    version: 0.5
    cache:
      cache_size: 4GB
timing:
  start_timeout_s: 900
"""


def test_parse_refuses_each_bad_value_naming_file_key_value_and_allowed() -> None:
    bad = "milvus:\n  flavor: tpu\n  imagee: x\n  server_config: {version: 0.4}\ngpu: {fatal_xids: [0]}\n"
    with pytest.raises(ConfigError) as refused:
        parse_cluster_config(bad, "cluster.yaml")
    lines = str(refused.value).splitlines()
    assert "cluster.yaml: milvus.flavor = 'tpu': must be one of: gpu, cpu; did you mean 'gpu'?" in lines
    unknown = "cluster.yaml: milvus.imagee = 'x': unknown key; did you mean 'image'?"
    assert any(line.startswith(unknown) for line in lines)
    assert any("milvus.server_config.version = 0.4: Milvus 1.x reads only config version 0.5" in x for x in lines)
    assert "cluster.yaml: gpu.fatal_xids = [0]: must be a list of integers >= 1" in lines
    cfg = parse_cluster_config(CONFIG_V1, "v1")
    assert parse_cluster_config(render_cluster_config(cfg), "again") == cfg
    assert config_diff(CONFIG_V1, CONFIG_V1) == ""


def commit_file(c: CoordinatorProcess, tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return ctl(c.address, "config", "edit", "--file", str(path), *args)


def test_edit_diff_refusal_noop_history_rollback(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    c = coordinator_factory("coord-1", report_interval_s=0.2, detect_after_s=0.5)
    c.start()
    wait_until(c.leads, 15, "leadership")
    for node in ("node-a", "node-b"):
        report(c, node)
    wait_until(lambda: len(c.status().nodes) == 2, 10, "both nodes registered")

    # No version yet: show proposes one (not committed), and the answers carry none.
    shown = ctl(c.address, "config", "show")
    assert shown.returncode == 0, shown.stderr
    assert "No cluster config version exists yet" in shown.stdout and "config edit --file" in shown.stdout
    parse_cluster_config(shown.stdout, "the proposal")  # it is a config that would be accepted
    assert report(c, "node-a").cluster_config.version == 0  # none: each node runs its agent.yaml alone
    assert "no cluster config version yet" in ctl(c.address, "config", "history").stdout

    # Without --yes and without a terminal nothing is committed.
    asked = commit_file(c, tmp_path, CONFIG_V1)
    assert asked.returncode == 2 and "add --yes" in asked.stderr and "nothing was changed" in asked.stderr
    assert "no cluster config version yet" in ctl(c.address, "config", "history").stdout

    first = commit_file(c, tmp_path, CONFIG_V1, "--yes", "--reason", "first version")
    assert first.returncode == 0, first.stderr
    assert "+  image: milvusdb/milvus:1.1.1-gpu" in first.stdout  # the diff, against nothing
    assert "needs a Milvus restart" in first.stdout and "version 1 committed" in first.stdout
    # A first version needs a restart: every node stays pinned to what it runs (no version: agent.yaml alone),
    # so the answers still carry none until the rollout moves a pin.
    assert report(c, "node-a").cluster_config.version == 0

    # A bad config is refused with every problem, and nothing changes.
    bad = commit_file(c, tmp_path, CONFIG_V1.replace("flavor: gpu", "flavor: tpu") + "extra: 1\n", "--yes")
    assert bad.returncode == 1, bad.stdout
    assert "milvus.flavor = 'tpu': must be one of: gpu, cpu" in bad.stderr
    assert "extra = 1: unknown key" in bad.stderr and "nothing was changed" in bad.stderr
    history = json.loads(ctl(c.address, "config", "history", "-o", "json").stdout)
    assert [v["version"] for v in history] == [1]

    # The same config again (even written differently) is no change.
    same = commit_file(c, tmp_path, render_cluster_config(parse_cluster_config(CONFIG_V1, "v1")), "--yes")
    assert same.returncode == 0 and "no change" in same.stdout
    assert len(json.loads(ctl(c.address, "config", "history", "-o", "json").stdout)) == 1

    # A change that needs no restart (a timing) applies to every node at once.
    v2_text = CONFIG_V1.replace("start_timeout_s: 900", "start_timeout_s: 1200")
    v2 = commit_file(c, tmp_path, v2_text, "--yes", "--reason", "slow preload")
    assert v2.returncode == 0, v2.stderr
    assert "-  start_timeout_s: 900\n+  start_timeout_s: 1200" in v2.stdout
    assert "needs no restart" in v2.stdout and "version 2 committed" in v2.stdout

    # A change of image needs a restart: each node stays pinned to the version it runs.
    v3 = commit_file(c, tmp_path, v2_text.replace("1.1.1-gpu", "1.1.2-gpu"), "--yes", "--reason", "new image")
    assert v3.returncode == 0 and "version 3 committed" in v3.stdout and "needs a Milvus restart" in v3.stdout

    # Rollback: a new version whose body is version 2's; the diff is shown first.
    back = ctl(c.address, "config", "rollback", "2", "--yes", "--reason", "image is bad")
    assert back.returncode == 0, back.stderr
    assert "-  image: milvusdb/milvus:1.1.2-gpu\n+  image: milvusdb/milvus:1.1.1-gpu" in back.stdout
    assert "version 4 committed" in back.stdout
    shown = ctl(c.address, "config", "show", "-o", "yaml")
    data = yaml.safe_load(shown.stdout)
    assert data["version"] == 4 and data["body"] == v2_text and data["author"]
    assert "1.1.2-gpu" in ctl(c.address, "config", "show", "--version", "3").stdout
    missing = ctl(c.address, "config", "show", "--version", "9")
    assert missing.returncode == 1 and "no cluster config version 9" in missing.stderr

    table = ctl(c.address, "config", "history")
    assert table.returncode == 0 and "VERSION" in table.stdout and "RESTART" in table.stdout
    rows = json.loads(ctl(c.address, "config", "history", "-o", "json").stdout)
    assert [(r["version"], r["restart_needed"], r["reason"]) for r in rows] == [
        (1, True, "first version"),
        (2, False, "slow preload"),
        (3, True, "new image"),
        (4, True, "image is bad"),
    ]
    assert rows[-1]["current"] and rows[0]["author"]
    events = ctl(c.address, "events", "-o", "json").stdout
    assert "cluster config version 4 (rollback to version 2, restart needed" in events

    # The answers carry each node's pin: both nodes were pinned to 0 at version 1 and stay there; a node that
    # registers now follows the current version.
    assert report(c, "node-a").cluster_config.version == 0
    answer = report(c, "node-c")
    wait_until(lambda: report(c, "node-c").cluster_config.version == 4, 10, "node-c follows the current version")
    answer = report(c, "node-c")
    assert parse_cluster_config(answer.cluster_config.body, "answer").timing.start_timeout_s == 1200


def test_conflicts_show_in_status_and_doctor_and_a_bad_body_is_refused_at_the_door() -> None:
    from jfsmilvus.common.wirecheck import cluster_config_problem
    from jfsmilvus.v1 import coordinator_pb2, node_pb2

    from coordinator.configviews import judge_config_conflicts
    from coordinator.views import render_status, status_data

    conflict = "/etc/jfs-milvus/agent.yaml: milvus.image = 'a:1' is overridden by cluster config version 3 ('b:2')"
    status = coordinator_pb2.ClusterStatus(cluster="test", writer="node-a", epoch=2, config_version=3)
    status.nodes.add(name="node-a", seconds_since_report=0.5, config_version=2, config_wanted=2)
    status.nodes.add(
        name="node-b", seconds_since_report=0.5, config_version=3, config_wanted=3, config_conflicts=[conflict]
    )
    text = render_status(status_data(status))
    assert "Config: version 3" in text
    assert "Config: node-a runs version 2" not in text  # pinned to 2 and running it: not behind
    assert f"Config conflict: node-b: {conflict}" in text
    status.nodes[0].config_wanted = 3
    assert "Config: node-a runs version 2, is to run version 3" in render_status(status_data(status))

    observation = node_pb2.NodeObservation(node="node-b", config_version=3, config_conflicts=[conflict])
    check = judge_config_conflicts(observation)
    assert check.result == "WARN" and conflict in check.detail and "remove these keys" in check.fix
    assert judge_config_conflicts(node_pb2.NodeObservation(node="node-a")).result == "PASS"

    bad = coordinator_pb2.ClusterConfig(version=4, body="milvus: {flavor: tpu}\n")
    assert "cluster_config.body: cluster config version 4: milvus.flavor = 'tpu'" in (cluster_config_problem(bad) or "")
    assert cluster_config_problem(coordinator_pb2.ClusterConfig(version=0)) is None
    assert "a body without a version" in (cluster_config_problem(coordinator_pb2.ClusterConfig(body="x")) or "")


def test_the_config_rpcs_are_for_operator_certificates_only() -> None:
    from jfsmilvus.common.authz import Caller, refusal

    for rpc in ("GetClusterConfig", "ListClusterConfigs", "CommitClusterConfig"):
        name = f"CoordinatorService.{rpc}"
        assert refusal(name, Caller(tls=True, kind="operator", name="alice")) is None
        for kind in ("viewer", "agent", "coordinator"):
            assert "it needs a operator certificate" in (refusal(name, Caller(tls=True, kind=kind, name="x")) or "")
