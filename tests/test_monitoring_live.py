"""A real Prometheus (Debian's `prometheus`, its own port and data directory) scrapes a real local cluster (a
coordinator and three agents with the stand-in Milvus and fake GPUs) with the shipped rules, their `for:`
durations divided by ten: the query API shows one writer and the series the dashboard reads, every dashboard
query runs, and killing a reader's agent and failing another reader's GPU turn the matching alerts to firing
(in 13 s on this machine)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.plugin_agent import free_port, wait_until
from tests.plugin_cluster import LocalCluster
from tests.plugin_gpu import FakeXid, two_gpus
from tests.test_monitoring import DASHBOARD, RULES, dashboard_targets

pytestmark = [pytest.mark.root, pytest.mark.slow]
FOR_DIVIDED_BY = 10


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def fast_rules(path: Path) -> Path:
    """The shipped rules with every `for:` divided by FOR_DIVIDED_BY (at least 1s)."""
    data = yaml.safe_load(RULES.read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{max(1, round(seconds(rule['for']) / FOR_DIVIDED_BY))}s"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Prometheus:
    def __init__(self, root: Path, coordinator: str, agents: list[str]):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus is not installed (apt-get install prometheus; scripts/setup-test-env does)")
        self.port = free_port()
        self.root = root
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(fast_rules(root / "rules.yml"))],
            "scrape_configs": [
                {"job_name": "jfs-milvus-coordinator", "static_configs": [{"targets": [coordinator]}]},
                {"job_name": "jfs-milvus-agent", "static_configs": [{"targets": agents}]},
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = root / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_until(self._ready, 30, lambda: f"prometheus ready on {self.port}:\n{self.log.read_text()[-2000:]}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {result}"
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> list[dict[str, str]]:
        return [a["labels"] for a in self.api("alerts")["alerts"] if a["state"] == "firing"]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[LocalCluster], Prometheus]]:
    started: list[Prometheus] = []

    def start(cluster: LocalCluster) -> Prometheus:
        root = tmp_path / "prometheus"
        root.mkdir()
        agents = [f"{n.address}:{n.metrics_port}" for n in cluster.nodes.values()]
        p = Prometheus(root, f"127.0.0.1:{cluster.coordinator.metrics_port}", agents)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def test_prometheus_scrapes_a_cluster_sees_one_writer_and_fires_on_faults(
    local_cluster: Callable[..., LocalCluster],
    fake_nvml_lib_dir: Path,
    prometheus_for: Callable[[LocalCluster], Prometheus],
) -> None:
    cluster = local_cluster(3, nvml_lib=fake_nvml_lib_dir)
    cluster.start()
    writer = cluster.wait_for_writer(90)
    for node in cluster.readers():
        node.wait_role("ro", timeout=60)
    wait_until(lambda: "and healthy" in cluster.coordinator.why(), 30, "the coordinator to call the cluster healthy")
    prom = prometheus_for(cluster)
    wait_until(lambda: prom.value("count(up == 1)") == 4, 30, lambda: f"4 targets up: {prom.query('up')}")
    wait_until(
        lambda: prom.value("count(jfs_milvus_reader_in_discovery == 1)") == 2,
        30,
        lambda: f"both readers in the Mishards hosts: {prom.query('jfs_milvus_reader_in_discovery')}",
    )

    # One writer, as the agents and the leader see it; the series the dashboard's panels read.
    (rw,) = prom.query("jfs_milvus_role == 2")
    assert rw["metric"]["node"] == writer.name and rw["metric"]["job"] == "jfs-milvus-agent"
    assert prom.value("count(jfs_milvus_role == 1)") == 2
    (named,) = prom.query("jfs_milvus_cluster_writer")
    assert named["metric"]["node"] == writer.name
    assert prom.value("jfs_milvus_cluster_writer_serving") == 1
    assert prom.value("max(jfs_milvus_coordinator_leader)") == 1
    assert prom.value("jfs_milvus_coordinator_decision_age_seconds") < 5  # type: ignore[operator]
    assert prom.value("count(jfs_milvus_mount_health == 0)") == 3
    probes = prom.query("jfs_milvus_mount_write_probe_seconds")
    assert [p["metric"]["node"] for p in probes] == [writer.name]  # only a read-write mount is write-probed
    assert prom.value(f'jfs_milvus_lease_renewals_total{{node="{writer.name}",via="coordinator"}}') > 0  # type: ignore[operator]
    assert prom.value("count(DCGM_FI_DEV_GPU_UTIL)") == 6 and prom.value("count(jfs_milvus_gpu_health == 0)") == 6
    assert prom.value('count(process_resident_memory_bytes{job="jfs-milvus-agent"})') == 3
    assert prom.value("max(jfs_milvus_node_report_age_seconds)") < 5  # type: ignore[operator]

    # A rate needs two samples in its window: wait for a few scrapes of every target.
    wait_until(lambda: prom.value("count(rate(process_cpu_seconds_total[1m]))") == 4, 30, "rates of every target")
    board = json.loads(DASHBOARD.read_text())
    empty = []
    for title, expr in dashboard_targets(board):
        concrete = expr.replace("$cluster", "test").replace("$node", ".*").replace("$__rate_interval", "1m")
        if not prom.query(concrete):  # a failing query raises: status is not success
            empty.append(title)
    # Nothing here runs Mishards, has failed over yet, or has seen an XID or a failed lease renewal.
    assert set(empty) <= {
        "Hosts: listed and searched",
        "Hosts each Mishards searches",
        "Mishards container",
        "XIDs seen",
        "Last XID (DCGM_FI_DEV_XID_ERRORS)",
        "Mean duration of each phase",
        "Phase duration p99 (1h windows)",
        "Failover paused",
        "annotation Writer changes",
    }, empty
    healthy_firing = {a["alertname"] for a in prom.firing()}
    assert healthy_firing <= {"JfsMilvusWriterChanged"}, prom.firing()  # the first writer: epoch 0 -> 1

    # Faults: one reader's agent is killed, the other reader's GPU 0 falls off the bus (XID 79).
    quiet, broken = cluster.readers()
    quiet.kill()
    gpus = two_gpus()
    gpus.xids.append(FakeXid(seq=1, gpu=0, xid=79))
    assert broken.nvml_config is not None
    broken.nvml_config.write_text(gpus.render())
    faulted_at = time.monotonic()
    wanted = {
        ("JfsMilvusAgentNotReporting", "node", quiet.name),
        ("JfsMilvusAgentDown", "instance", f"{quiet.address}:{quiet.metrics_port}"),
        ("JfsMilvusGpuFailed", "Hostname", broken.name),
        ("JfsMilvusGpuXid", "Hostname", broken.name),
        # A node with a failed GPU is no candidate and leaves the Mishards hosts, though its (CPU) Milvus serves.
        ("JfsMilvusReaderNotInMishardsHosts", "node", broken.name),
    }

    def all_firing() -> list[dict[str, str]] | None:
        firing = prom.firing()
        seen = {(a["alertname"], key, a.get(key)) for a in firing for _, key, _ in wanted}
        return firing if wanted <= seen else None

    firing = wait_until(all_firing, 60, lambda: f"alerts firing: {prom.firing()}")
    took = time.monotonic() - faulted_at
    xid = next(a for a in firing if a["alertname"] == "JfsMilvusGpuXid")
    assert xid["xid"] == "79" and xid["fatal"] == "true" and xid["severity"] == "critical"
    # The writer was not touched: it still serves, and nothing says otherwise.
    assert not {"JfsMilvusNoWriter", "JfsMilvusTwoWritersRunning"} & {a["alertname"] for a in firing}
    assert prom.value("jfs_milvus_cluster_writer_serving") == 1 and prom.value("count(jfs_milvus_role == 2)") == 1
    print(f"alerts firing {took:.1f}s after the faults: {sorted({a['alertname'] for a in firing})}")
