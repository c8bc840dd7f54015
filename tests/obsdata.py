"""What the daemons export, for the observability tests and the exposition benchmark.

`agent_status` is an agent's observation (as `Agent.status()` returns it) with every metric family filled in:
GPUs (one with XIDs), a read-write mount with its write probe, a writer lease renewed both ways, the Milvus
container, and Mishards. `leading_coordinator` is a real `Coordinator` that leads (its MySQL in memory) and has
decided on the reports of a writer, a reader in the Mishards hosts and a reader not yet there.
`exported_names` lists the sample names of an exposition, `parse_samples` and `value_of` read it.
"""

from __future__ import annotations

import re
import time
from typing import Any

from agent.assignment import Assignment
from agent.gpu.health import XidRecord
from agent.gpu.report import GpuReport, GpuStatus
from agent.milvus.container import ContainerState
from agent.mount import MountStatus
from agent.observation import AgentObservation, MishardsView, WriterLease
from agent.snapshot import NodeSnapshot

NODE = "gpu-node-1"
XID_AT = 1_790_000_000.0


def agent_status(gpus: int = 2, xids: bool = True, mishards: bool = True) -> AgentObservation:
    report = GpuReport(
        available=True,
        reason=None,
        driver_version="550.54.15",
        gpus=[
            GpuStatus(
                index=i,
                uuid=f"GPU-{i:08d}-2222-3333-4444-555555555555",
                name="NVIDIA A100-SXM4-80GB",
                memory_total_bytes=80 * 2**30,
                memory_used_bytes=10 * 2**30,
                utilization_pct=37,
                temperature_c=40,
                power_w=60.5,
                health="failed" if xids and i == 0 else "healthy",
                xids=[
                    XidRecord(xid=79, count=1, first_seen=XID_AT, last_seen=XID_AT, fatal=True),
                    XidRecord(xid=63, count=3, first_seen=XID_AT - 60, last_seen=XID_AT - 10, fatal=False),
                ]
                if xids and i == 0
                else [],
            )
            for i in range(gpus)
        ],
        collected_at=time.time(),
    )
    mount = MountStatus(
        volume="milvus",
        mountpoint="/mnt/jfs",
        configured_in_fstab=True,
        mounted=True,
        mode="rw",
        state="healthy",
        write_probe_ms=25.4,
    )
    mishards_view = MishardsView(
        name="jfs-milvus-mishards",
        image="mishards",
        state="running",
        listed_hosts=("10.0.0.12", "10.0.0.13"),
        left_out=("10.0.0.13",),
        container_hosts=("10.0.0.12",),
    )
    container = ContainerState(
        id="c1", name="milvus", image="milvus", status="running", role="rw", epoch=3, config_sha256="x",
        exit_code=None, started_at=None, error=None,
    )  # fmt: skip
    return AgentObservation(
        node=NODE,
        address="10.0.0.11",
        agent_version="0.1.0",
        seen=NodeSnapshot(
            gpus=report,
            mounts=(mount,),
            container=container,
            container_healthy=True,
            role_running="rw",
            assignment=Assignment(role="rw", epoch=3, source="coordinator", reason="test"),
            highest_epoch=3,
            loop_seconds=0.012,
            loops=1234,
        ),
        restarts=1,
        lease=WriterLease(left_s=2.4, renewals={"coordinator": 120, "mysql": 4}, renewal_failures=1),
        mishards=mishards_view if mishards else None,
    )


def gpu_report_from_dict(found: dict[str, Any]) -> GpuReport:
    """A GPU report as `GpuReport.to_dict()` writes it (what the fake NVML's probe prints), read back."""
    return GpuReport(
        available=found["available"],
        reason=found.get("reason"),
        driver_version=found.get("driver_version"),
        gpus=[
            GpuStatus(
                **{k: g.get(k) for k in GPU_FIELDS},
                health=g["health"],
                reasons=list(g.get("reasons") or []),
                xids=[XidRecord(**x) for x in g.get("xids") or []],
                compute_capability=tuple(g["compute_capability"]) if g.get("compute_capability") else None,  # type: ignore[arg-type]
            )
            for g in found.get("gpus") or []
        ],
        collected_at=found.get("collected_at") or 0.0,
    )


GPU_FIELDS = (
    "index",
    "uuid",
    "name",
    "memory_total_bytes",
    "memory_used_bytes",
    "utilization_pct",
    "temperature_c",
    "power_w",
)


def exported_names(text: str) -> set[str]:
    """The name of every sample in a text exposition (a histogram's `_bucket`, `_sum`, `_count`; a counter's
    `_total`): the names a query can select."""
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE)}


def leading_coordinator(settle_s: float = 0.3) -> Any:
    """A leader over writer a (rw), reader b (healthy for settle_s: in the Mishards hosts) and reader c, which
    reported only after that (not in them yet); node d is in MySQL and never reported. Phases and decisions are
    counted, as after a failover."""
    from dataclasses import replace

    from coordinator.core import Timing
    from coordinator.daemon import Coordinator
    from coordinator.model import ClusterRow, Durable, NodeRecord
    from tests.test_coordinator_answers import HeldStore, config, report  # MySQL in memory, reports

    nodes = {name: NodeRecord(name, f"10.0.0.{i + 1}") for i, name in enumerate("abcd")}
    coordinator_config = replace(config(), timing=Timing(startup_wait_s=0.1, settle_s=settle_s, detect_after_s=30.0))
    c = Coordinator(coordinator_config, store=HeldStore(Durable(ClusterRow("test", "a", 1), nodes)))  # type: ignore[arg-type]
    c.tick()  # leads
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        c.receive(report("a", "rw", 1))
        c.receive(report("b", "ro", 1))
        c.tick()
        discovery = c.published.discovery
        if discovery is not None and "10.0.0.2" in discovery.hosts:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the leader never listed reader b in the Mishards hosts: {c.published.why}")
    c.receive(report("c", "ro", 1))
    c.tick()
    c.counters.phase_seconds = {"detect": [1.4, 2.0], "fence": [1.3], "promote": [0.3]}
    c.counters.failovers = 1
    return c


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a text exposition as (name, labels, value), read by prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def value_of(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample of `name` whose labels include `labels`; None when there is none."""
    found = [v for n, ls, v in parse_samples(text) if n == name and labels.items() <= ls.items()]
    assert len(found) <= 1, f"{len(found)} samples of {name} match {labels}"
    return found[0] if found else None
