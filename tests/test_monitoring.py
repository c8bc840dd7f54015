"""The shipped alert rules and Grafana dashboard (monitoring/), checked with Debian's real promtool, and the
metrics they read: every name they use is one the daemons export, and the new families say what they should.

promtool comes with Debian's `prometheus` package (scripts/setup-test-env installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from jfsmilvus.v1 import node_pb2

from agent.metrics import render_metrics
from coordinator.metrics import render_coordinator_metrics
from tests.obsdata import agent_status, exported_names, leading_coordinator, value_of

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "monitoring"
RULES = MONITORING / "jfs-milvus.rules.yml"
DASHBOARD = MONITORING / "jfs-milvus-dashboard.json"
UNIT_TESTS = sorted((MONITORING / "tests").glob("*.test.yml"))
# Series Prometheus makes itself: the scrape's `up`, the rules' `ALERTS`.
PROMETHEUS_OWN = {"up", "ALERTS"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
PROMQL_WORDS |= {"inf", "nan", "Inf", "NaN"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; scripts/setup-test-env does)")
    return found


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_targets(board: dict) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of the dashboard, its annotations' too."""
    found = [("annotation " + a["name"], a["expr"]) for a in board["annotations"]["list"] if "expr" in a]
    for panel in board["panels"]:
        found += [(panel["title"], t["expr"]) for t in panel.get("targets", [])]
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, label matchers, grouping lists, ranges, numbers,
    functions and keywords taken out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?\b", " ", expr)
    functions = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", expr))
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr)) - functions - PROMQL_WORDS


def test_metric_names_are_read_out_of_promql() -> None:
    assert metric_names(
        'sum by (node, via) (rate(jfs_milvus_lease_renewals_total{node=~"$node"}[$__rate_interval]))'
    ) == {"jfs_milvus_lease_renewals_total"}
    assert metric_names("changes(max by (cluster) (jfs_milvus_cluster_epoch)[10m:15s]) > 0") == {
        "jfs_milvus_cluster_epoch"
    }
    assert metric_names("a / on (x) group_left b * 1e3 or vector(0)") == {"a", "b"}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name the agent (with Mishards, GPUs and XIDs) and the leading coordinator export, with
    prometheus_client's process_* metrics, as their /metrics serve them."""
    names = exported_names(render_metrics(agent_status(), process=True))
    names |= exported_names(render_coordinator_metrics(leading_coordinator(), process=True))
    return names | PROMETHEUS_OWN


# -- the exposition --------------------------------------------------------------------------------------------


def test_both_expositions_pass_promtool_check_metrics() -> None:
    tool = promtool()
    pages = {
        "agent": render_metrics(agent_status(), process=True),
        "coordinator": render_coordinator_metrics(leading_coordinator(), process=True),
    }
    for daemon, page in pages.items():
        result = subprocess.run([tool, "check", "metrics"], input=page, capture_output=True, text=True)
        findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        # The one lint promtool has: dcgm-exporter's own label names (UUID, modelName, Hostname), kept so that
        # NVIDIA's dashboards and ours join on them.
        others = [
            f for f in findings if not f.endswith("label names should be written in 'snake_case' not 'camelCase'")
        ]
        assert not others, f"{daemon}: {others}"
        camel = {f.split()[0] for f in findings} - set(others)
        assert all(n.startswith("DCGM_FI_") or n.startswith("jfs_milvus_gpu") for n in camel), camel


def test_the_coordinator_exports_the_leaders_view() -> None:
    c = leading_coordinator()
    text = render_coordinator_metrics(c)
    assert value_of(text, "jfs_milvus_coordinator_leader", coordinator="c1") == 1
    assert value_of(text, "jfs_milvus_cluster_writer_serving") == 1
    assert 0 <= value_of(text, "jfs_milvus_coordinator_decision_age_seconds") < 5  # type: ignore[operator]
    assert value_of(text, "jfs_milvus_reader_in_discovery", node="b", address="10.0.0.2") == 1
    assert value_of(text, "jfs_milvus_reader_in_discovery", node="c") == 0  # reported after the hosts settled
    assert value_of(text, "jfs_milvus_reader_in_discovery", node="a") is None  # the writer is no reader
    assert value_of(text, "jfs_milvus_discovery_hosts") == 1
    ages = {n: value_of(text, "jfs_milvus_node_report_age_seconds", node=n) for n in "abcd"}
    assert all(age is not None and age >= 0 for age in ages.values())
    assert ages["d"] > ages["c"]  # type: ignore[operator]  # never reported: counted from when c1 began to lead
    assert value_of(text, "jfs_milvus_role_change_phase_seconds_count", phase="detect") == 2
    assert value_of(text, "jfs_milvus_role_change_phase_seconds_bucket", phase="detect", le="2") == 2
    assert value_of(text, "jfs_milvus_failovers_total") == 1

    # The writer stops reporting: serving while a reader saw its Milvus healthy lately (cut off from the
    # coordinators only), not once no one has.
    c.reports["a"] = replace(c.reports["a"], received_at=time.monotonic() - 60)
    c.reports["b"] = replace(c.reports["b"], received_at=time.monotonic(), writer_seen_healthy_age_s=0.5)
    text = render_coordinator_metrics(c)
    assert value_of(text, "jfs_milvus_cluster_writer_serving") == 1
    assert value_of(text, "jfs_milvus_node_report_age_seconds", node="a") >= 60  # type: ignore[operator]
    c.reports["b"] = replace(c.reports["b"], writer_seen_healthy_age_s=None)
    assert value_of(render_coordinator_metrics(c), "jfs_milvus_cluster_writer_serving") == 0
    c.reports["a"] = replace(c.reports["a"], received_at=time.monotonic(), role_running="none")
    assert value_of(render_coordinator_metrics(c), "jfs_milvus_cluster_writer_serving") == 0

    follower = render_coordinator_metrics(type(c)(c.config, store=c.store))
    assert value_of(follower, "jfs_milvus_coordinator_leader") == 0
    assert "jfs_milvus_cluster_writer_serving" not in follower and "jfs_milvus_node_report_age_seconds" not in follower


def test_the_agent_exports_mounts_xids_mishards_hosts_and_leases() -> None:
    text = render_metrics(agent_status())
    gpu0 = {"gpu": "0", "Hostname": "gpu-node-1"}
    assert value_of(text, "jfs_milvus_gpu_xid_events_total", **gpu0, xid="63", fatal="false") == 3
    assert value_of(text, "jfs_milvus_gpu_xid_last_seen_timestamp_seconds", **gpu0, xid="79", fatal="true") > 1.7e9  # type: ignore[operator]
    assert value_of(text, "jfs_milvus_mount_health", mountpoint="/mnt/jfs") == 0
    assert value_of(text, "jfs_milvus_mishards_hosts") == 1 and value_of(text, "jfs_milvus_mishards_hosts_listed") == 2
    assert value_of(text, "jfs_milvus_mishards_host", host="10.0.0.12") == 1
    assert value_of(text, "jfs_milvus_lease_renewals_total", via="mysql") == 4
    assert value_of(text, "jfs_milvus_lease_renewal_failures_total") == 1
    assert value_of(text, "jfs_milvus_agent_info", address="10.0.0.11", version="0.1.0") == 1
    status = agent_status(mishards=False)
    hung = replace(status.seen.mounts[0], state="hung")
    text = render_metrics(replace(status, seen=replace(status.seen, mounts=(hung,))))
    assert value_of(text, "jfs_milvus_mount_health") == 4 and value_of(text, "jfs_milvus_mount_healthy") == 0
    assert "jfs_milvus_mishards" not in text


def test_the_agent_counts_lease_renewals_by_source_and_the_failures(tmp_path: Path) -> None:
    """The real Agent (no daemon, no Docker): a leader's rw answer, a MySQL row read, a renewal that failed."""
    from agent.config import load_agent_config
    from agent.coordination import LeaderAnswer
    from agent.daemon import Agent
    from agent.lease import lease_now
    from tests.agentconf import write_agent_yaml

    path = tmp_path / "agent.yaml"
    write_agent_yaml(
        path,
        "n1",
        "127.0.0.1",
        None,
        state_dir=str(tmp_path / "state"),
        coordinators=["127.0.0.1:1"],
        gpu={"enabled": False},
        milvus={"data_dir": str(tmp_path / "milvus")},
    )
    agent = Agent(load_agent_config(str(path)))
    grant = node_pb2.Assignment(role=node_pb2.ROLE_RW, epoch=1, lease_ms=3000, writer="n1", row_lease_ms=1000)
    assert agent.authority.take_coordinator_answer(LeaderAnswer("127.0.0.1:1", grant, lease_now() - 2.5, 1)) is None
    agent.authority.renew_lease_from_row("n1", 1, lease_now(), 1.5)  # past the grant: renews
    agent.authority.renew_lease_from_row("n1", 1, lease_now() - 5, 1.5)  # shorter than what it holds: no renewal
    agent.authority.renew_lease_from_row("someone-else", 2, lease_now(), 2.5)  # the row names another writer
    text = render_metrics(agent.status())
    assert value_of(text, "jfs_milvus_lease_renewals_total", node="n1", via="coordinator") == 1
    assert value_of(text, "jfs_milvus_lease_renewals_total", node="n1", via="mysql") == 1
    assert value_of(text, "jfs_milvus_lease_renewal_failures_total", node="n1") == 1
    assert 0 < value_of(text, "jfs_milvus_lease_left_seconds", node="n1") <= 1  # type: ignore[operator]


# -- the rules -------------------------------------------------------------------------------------------------


def test_promtool_check_rules_passes_on_the_shipped_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_the_alerts_the_issue_asks_for_are_there_with_a_severity_and_a_summary() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert {
        "JfsMilvusNoWriter",
        "JfsMilvusWriterChanged",
        "JfsMilvusLeaderNotDeciding",
        "JfsMilvusNoLeader",
        "JfsMilvusCoordinatorsDown",
        "JfsMilvusMountUnhealthy",
        "JfsMilvusWriteProbeSlow",
        "JfsMilvusGpuFailed",
        "JfsMilvusGpuXid",
        "JfsMilvusReaderNotInMishardsHosts",
        "JfsMilvusMishardsHostsMissing",
        "JfsMilvusAgentNotReporting",
        "JfsMilvusAgentDown",
        "JfsMilvusLeaseRenewalsFailing",
    } <= names
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning", "info") or "{{" in rule["labels"]["severity"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_rules_read_only_metrics_the_daemons_export(exported: set[str]) -> None:
    for rule in alerts():
        unknown = metric_names(rule["expr"]) - exported
        assert not unknown, f"{rule['alert']}: {sorted(unknown)} are exported by no daemon"


def test_promtool_unit_tests_pass_and_cover_every_alert_firing_and_quiet() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, UNIT_TESTS)], capture_output=True, text=True, cwd=MONITORING / "tests"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS) == 2
    fired: set[str] = set()
    quiet_when_healthy: set[str] = set()
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test["alert_rule_test"]:
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
                elif path.name == "healthy.test.yml":
                    quiet_when_healthy.add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "alerts no fault test makes fire"
    assert names - quiet_when_healthy == set(), "alerts the healthy cluster's test does not check"


def test_the_scrape_example_passes_promtool_check_config(tmp_path: Path) -> None:
    config = (MONITORING / "prometheus.example.yml").read_text()
    assert "/usr/share/jfs-milvus-coordinator/prometheus/jfs-milvus.rules.yml" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/usr/share/jfs-milvus-coordinator/prometheus/jfs-milvus.rules.yml", str(RULES))
    )
    result = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"] for job in yaml.safe_load(config)["scrape_configs"]}
    assert jobs == {"jfs-milvus-agent", "jfs-milvus-coordinator"}
    for rule in alerts():  # the rules name no other job
        assert set(re.findall(r'job="([^"]+)"', rule["expr"])) <= jobs


# -- the dashboard ---------------------------------------------------------------------------------------------


def test_the_dashboard_is_valid_and_reads_only_exported_metrics(exported: set[str]) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "jfs-milvus" and board["title"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in board["templating"]["list"]}
    for panel in board["panels"]:
        assert panel["type"] in ("row", "stat", "timeseries", "state-timeline", "table", "bargauge"), panel["type"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
    targets = dashboard_targets(board)
    used: set[str] = set()
    for title, expr in targets:
        unknown = metric_names(expr) - exported
        assert not unknown, f"panel {title!r}: {sorted(unknown)} are exported by no daemon"
        used |= metric_names(expr)
        undefined = set(re.findall(r"\$\{?(\w+)", expr)) - variables - GRAFANA_VARIABLES
        assert not undefined, f"panel {title!r} uses undefined variables {undefined}"
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            assert metric_names(v["definition"].removeprefix("label_values(").split(",")[0]) <= exported
    # The panels the issue asks for.
    for needed in (
        "jfs_milvus_role_change_phase_seconds_sum",
        "jfs_milvus_cluster_writer_serving",
        "jfs_milvus_lease_renewals_total",
        "jfs_milvus_reader_in_discovery",
        "jfs_milvus_mishards_hosts",
        "jfs_milvus_mount_health",
        "jfs_milvus_mount_write_probe_seconds",
        "jfs_milvus_gpu_health",
        "jfs_milvus_gpu_xid_events_total",
        "DCGM_FI_DEV_XID_ERRORS",
    ):
        assert needed in used, f"no panel shows {needed}"


def test_the_coordinator_package_ships_the_rules_and_the_dashboard() -> None:
    sys.path.insert(0, str(REPO / "packaging"))
    try:
        from specs import COORDINATOR, SHARE_DIR
    finally:
        sys.path.remove(str(REPO / "packaging"))
    shipped = dict(COORDINATOR.data_files)
    assert shipped == {
        "monitoring/jfs-milvus.rules.yml": f"{SHARE_DIR}/prometheus/jfs-milvus.rules.yml",
        "monitoring/prometheus.example.yml": f"{SHARE_DIR}/prometheus/prometheus.example.yml",
        "monitoring/jfs-milvus-dashboard.json": f"{SHARE_DIR}/grafana/jfs-milvus.json",
    }
    assert all((REPO / source).is_file() for source in shipped)
    assert SHARE_DIR == "/usr/share/jfs-milvus-coordinator"
