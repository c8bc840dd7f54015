"""Failover benchmark: power the writer off N times on a local cluster and time every phase.

    sudo .venv/bin/python bench/failover.py --runs 10 [--nodes 3] [--dir DIR] [--logs DIR]

Each run powers the current writer off (agent, Milvus container and JuiceFS mount killed at once) while a
client writes every 20 ms, waits for the cluster to fail over by itself, powers the node back on and waits
for it to rejoin as a healthy reader. Settings are the product's defaults, except failover_window_s=0 (the
anti-flapping window would otherwise hold back every run after the first for a minute). Prints JSON: per
phase, the median and p99 of the time from the power-off to the phase's start and of its duration; the
total unavailability for writes; what the checker found (lost writes, overlapping writers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordinator.core import Timing
from tests.localcluster.chaos import wait_healthy
from tests.localcluster.cluster import WriteClient
from tests.localcluster.down import keep_logs, tear_down
from tests.localcluster.phases import FailoverFigures, power_off_writer
from tests.localcluster.up import ClusterSpec, bring_up
from tests.plugin_agent import wait_until

TARGET_S = 5.0
T = Timing()  # the product's defaults


def say(line: str) -> None:
    print(f"[failover-bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "p99": round(percentile(values, 99), 3)}


def report(runs: list[FailoverFigures], lost: int, overlaps: int, nodes: int) -> dict[str, Any]:
    names = list(dict.fromkeys(k for r in runs for k in r.phase_durations_s))
    durations = {k: [r.phase_durations_s[k] for r in runs if k in r.phase_durations_s] for k in names}
    starts = list(dict.fromkeys(k for r in runs for k in r.phases_at_s))
    at = {k: [r.phases_at_s[k] for r in runs if k in r.phases_at_s] for k in starts}
    medians = {k: statistics.median(v) for k, v in durations.items()}
    dominant = max(medians, key=lambda k: medians[k])
    unavailable = [r.writes_unavailable_s for r in runs]
    return {
        "runs": len(runs),
        "nodes": nodes,
        "settings": (
            f"product defaults (report {T.report_interval_s:g} s, detect_after {T.detect_after_s:g} s, "
            f"lease {T.lease_s:g} s, row lease {T.row_lease_s:g} s + {T.fence_margin_s:g} s margin), "
            "failover_window_s=0"
        ),
        "load_average": os.getloadavg()[0],
        "phase_starts_s_after_power_off": {k: summary(v) for k, v in at.items()},
        "phase_durations_s": {k: summary(v) for k, v in durations.items()},
        "mishards_env_updated_s": summary([r.mishards_env_s for r in runs]),
        "first_write_acknowledged_s": summary([r.first_write_s for r in runs]),
        "writes_unavailable_s": summary(unavailable),
        "dominant_phase": dominant,
        "target_s": TARGET_S,
        "target_met": statistics.median([r.first_write_s for r in runs]) <= TARGET_S,
        "writes_lost": lost,
        "overlapping_writers": overlaps,
        "per_run": [asdict(r) for r in runs],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/jfs-milvus-failover-bench"))
    parser.add_argument("--logs", type=Path, metavar="DIR", help="keep every agent's and coordinator's log here")
    args = parser.parse_args()
    spec = ClusterSpec(args.dir.resolve(), args.nodes, timing={"failover_window_s": 0}, subnet=12)
    runs: list[FailoverFigures] = []
    try:
        rc = bring_up(spec, say)
        client = WriteClient(rc.cluster, period_s=0.02, lookup_s=0.1).start()
        try:
            wait_until(lambda: len(client.acknowledged) > 20, 60, "first writes")
            for i in range(args.runs):
                wait_healthy(rc, 180)
                time.sleep(6)  # the last node powered on settles as a healthy reader (settle_s 5 s)
                figures, undo = power_off_writer(rc, client, say)
                say(
                    f"run {i + 1}/{args.runs}: {figures.old_writer} -> {figures.new_writer} "
                    f"first write after {figures.first_write_s:.2f}s; phases {figures.phase_durations_s}"
                )
                runs.append(figures)
                undo()
        finally:
            client.stop()
        wait_healthy(rc, 180)
        verdict = rc.cluster.verdict(set(client.acknowledged))
    finally:
        if args.logs:
            keep_logs(spec.root, args.logs, say)
        tear_down(spec.root, say)
    print(json.dumps(report(runs, len(verdict.missing), len(verdict.overlaps), args.nodes), indent=2))
    return 0 if not verdict.missing and not verdict.overlaps else 1


if __name__ == "__main__":
    sys.exit(main())
