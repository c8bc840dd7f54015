"""Failover benchmark: power the writer off N times on a local cluster and time every phase.

    sudo .venv/bin/python bench/failover.py --runs 10 [--nodes 3] [--dir DIR] [--logs DIR]

Each run powers the current writer off (agent, Milvus container and JuiceFS mount killed at once) while a
pymilvus 1.x client inserts every 20 ms through the stand-in Mishards (flushing every 20 acknowledged
inserts), as a production client does, waits for the cluster to
fail over by itself, powers the node back on and waits for it to rejoin as a healthy reader. The stand-in
Milvus takes its realistic time to start (3 s to its first /state; --standin-start-s changes it). Settings are
the product's defaults, except failover_window_s=0 (the anti-flapping window would otherwise hold back every
run after the first for a minute). Prints JSON: per phase, the median and p99 of the time from the power-off
to the phase's start and of its duration; apart, the control plane's share (detect, decide, fence, the
agent's work up to `docker start`: the power-off to the rw container's StartedAt) and Milvus's own start
(StartedAt to its first answered /state); the `mishards` phase (healthy to the first write acknowledged
through Mishards by the new writer) and the first write through Mishards; the total unavailability for
writes; the acknowledged writes no
Flush had covered that each power-off lost (Milvus acknowledges into its local WAL); what the checker found
(flushed writes lost, overlapping writers).
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
from tests.localcluster.chaos import Losses, wait_healthy
from tests.localcluster.down import keep_logs, tear_down
from tests.localcluster.milvusmeta import StandinKnobs
from tests.localcluster.phases import FailoverFigures, power_off_writer
from tests.localcluster.up import ClusterSpec, bring_up
from tests.plugin_agent import wait_until

TARGET_S = 5.0  # writes back after a power-off (median)
CONTROL_PLANE_TARGET_S = 2.5  # the control plane's share (p99)
FLUSH_EVERY = 20
T = Timing()  # the product's defaults
CONTROL_PLANE_STEPS = ("detect", "decide", "fence", "agent_to_docker_start")
# What bounds each step at the defaults, and what would shorten it.
SHORTEN = {
    "detect": (
        f"detect_after_s ({T.detect_after_s:g} s) after the writer's last report (one every "
        f"{T.report_interval_s:g} s); detecting sooner does not shorten the failover by itself: promotion waits "
        "for the old writer's lease anyway (lease_wait), and the fence grows by what detection saves"
    ),
    "decide": "one tick and the MySQL commit of epoch+1",
    "fence": (
        f"what is left of the old writer's leases after the commit, plus fence_margin_s ({T.fence_margin_s:g} s): "
        f"its last grant ends at its last report + lease_s ({T.lease_s:g} s), its last MySQL row renewal at the "
        f"commit + row_lease_s ({T.row_lease_s:g} s); at detect_after_s {T.detect_after_s:g} s both end about 1 s "
        "after the commit"
    ),
    "agent_to_docker_start": (
        "the designate's work after the rw push: docker create and start (about 0.3 s); it stops its ro Milvus "
        "(quick: a reader has no WAL, merge or index thread to join) and remounts rw during the fence"
    ),
}
LEASE_WAIT = (
    f"detect + decide + fence = the old writer's last report + lease_s ({T.lease_s:g} s) + fence_margin_s "
    f"({T.fence_margin_s:g} s) - the power-off, so {T.lease_s + T.fence_margin_s:g} s minus 0 to "
    f"{T.report_interval_s:g} s: only a shorter lease shortens it. 2.5 s p99 for the control plane needs "
    "lease_s + fence_margin_s + the agent's work <= 2.5 s: with the agent's 0.3-0.4 s, lease_s 1.8 s, "
    "renewed every 0.5 s by the writer alone (readers need no lease) to keep the slack "
    "of two missed renewals: that tolerates a stall of 1.3 s in the writer's renewals, where today it is 2 s"
)


def say(line: str) -> None:
    print(f"[failover-bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "p99": round(percentile(values, 99), 3)}


def report(
    runs: list[FailoverFigures], unflushed_lost: list[int], flushed_lost: int, overlaps: int, spec: ClusterSpec
) -> dict[str, Any]:
    names = list(dict.fromkeys(k for r in runs for k in r.phase_durations_s))
    durations = {k: [r.phase_durations_s[k] for r in runs if k in r.phase_durations_s] for k in names}
    starts = list(dict.fromkeys(k for r in runs for k in r.phases_at_s))
    at = {k: [r.phases_at_s[k] for r in runs if k in r.phases_at_s] for k in starts}
    steps = {k: [r.split_s[k] for r in runs] for k in CONTROL_PLANE_STEPS}
    step_medians = {k: statistics.median(v) for k, v in steps.items()}
    dominant = max(step_medians, key=lambda k: step_medians[k])
    control_plane = [r.split_s["control_plane"] for r in runs]
    return {
        "runs": len(runs),
        "nodes": spec.nodes,
        "settings": (
            f"product defaults (report {T.report_interval_s:g} s, detect_after {T.detect_after_s:g} s, "
            f"lease {T.lease_s:g} s, row lease {T.row_lease_s:g} s + {T.fence_margin_s:g} s margin), "
            f"failover_window_s=0; stand-in start {spec.standin.start_s:g} s, auto_flush_interval "
            f"{spec.auto_flush_interval_s} s; client: through Mishards ({runs[0].via if runs else '-'}), an insert "
            f"every 20 ms, a Flush every {FLUSH_EVERY}"
        ),
        "load_average": os.getloadavg()[0],
        "phase_starts_s_after_power_off": {k: summary(v) for k, v in at.items()},
        "phase_durations_s": {k: summary(v) for k, v in durations.items()},
        "control_plane_s": {
            "total": summary(control_plane),
            "steps": {k: summary(v) for k, v in steps.items()},
            "target_p99_s": CONTROL_PLANE_TARGET_S,
            "target_met": percentile(control_plane, 99) <= CONTROL_PLANE_TARGET_S,
            "dominant_step": dominant,
            "lease_wait_s": summary([r.phases_at_s["promote"] for r in runs if "promote" in r.phases_at_s]),
            "lease_wait": LEASE_WAIT,
            "what_bounds_each_step": SHORTEN,
        },
        "milvus_start_s": summary([r.split_s["milvus_start"] for r in runs]),
        "writes_via": sorted({r.via for r in runs}),
        "mishards_restarted_s": summary([min(r.mishards_started_s.values()) for r in runs if r.mishards_started_s]),
        "first_write_acknowledged_s": summary([r.first_write_s for r in runs]),
        "writes_unavailable_s": summary([r.writes_unavailable_s for r in runs]),
        "writes_back_target_s": TARGET_S,
        "writes_back_target_met": statistics.median([r.first_write_s for r in runs]) <= TARGET_S,
        "unflushed_writes_lost_per_power_off": {
            "runs": unflushed_lost,
            **summary([float(n) for n in unflushed_lost]),
            "max": max(unflushed_lost, default=0),
        },
        "flushed_writes_lost": flushed_lost,
        "overlapping_writers": overlaps,
        "per_run": [asdict(r) | {"unflushed_lost": n} for r, n in zip(runs, unflushed_lost, strict=True)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--standin-start-s", type=float, default=StandinKnobs.start_s, metavar="S")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/jfs-milvus-failover-bench"))
    parser.add_argument("--logs", type=Path, metavar="DIR", help="keep every agent's and coordinator's log here")
    args = parser.parse_args()
    spec = ClusterSpec(
        args.dir.resolve(), args.nodes, timing={"failover_window_s": 0}, subnet=12,
        standin=StandinKnobs(start_s=args.standin_start_s),
    )  # fmt: skip
    runs: list[FailoverFigures] = []
    unflushed_lost: list[int] = []
    losses = Losses()
    try:
        rc = bring_up(spec, say)
        client = rc.write_client(period_s=0.02, lookup_s=0.1, flush_every=FLUSH_EVERY, collection="bench")
        client.start()
        try:
            wait_until(lambda: len(client.acknowledged) > 20, 60, "first writes")
            for i in range(args.runs):
                wait_healthy(rc, 180)
                time.sleep(6)  # the last node powered on settles as a healthy reader (settle_s 5 s)
                figures, undo = power_off_writer(rc, client, say)
                time.sleep(rc.cluster.settle_s)  # the new writer's first writes are on the volume by then
                found = rc.cluster.verdict(client, until=time.monotonic() - rc.cluster.settle_s)
                new = losses.add(found.durability, client.search_misses)
                say(
                    f"run {i + 1}/{args.runs}: {figures.old_writer} -> {figures.new_writer} "
                    f"first write through {figures.via} after {figures.first_write_s:.2f}s; control plane "
                    f"{figures.split_s['control_plane']:.2f}s + Milvus start {figures.split_s['milvus_start']:.2f}s; "
                    f"{len(new.unflushed_lost)} unflushed writes lost; phases {figures.phase_durations_s}"
                )
                runs.append(figures)
                unflushed_lost.append(len(new.unflushed_lost))
                undo()
        finally:
            client.stop()
        wait_healthy(rc, 180)
        verdict = rc.cluster.verdict(client)
    finally:
        if args.logs:
            keep_logs(spec.root, args.logs, say)
        tear_down(spec.root, say)
    flushed_lost = len(verdict.durability.flushed_lost)
    print(json.dumps(report(runs, unflushed_lost, flushed_lost, len(verdict.overlaps), spec), indent=2))
    return 0 if not flushed_lost and not verdict.overlaps else 1


if __name__ == "__main__":
    sys.exit(main())
