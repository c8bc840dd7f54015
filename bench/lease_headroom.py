"""Lease headroom benchmark: how close a healthy writer comes to fencing itself, idle and under CPU load.

    sudo .venv/bin/python bench/lease_headroom.py [--seconds 60] [--lease-s 3] [--burners N] [--dir DIR]

A local cluster (coordinator, agents, stand-in Milvus, JuiceFS) runs with the given `timing.lease_s`; the
writer's agent is asked for its lease left (`Status`, `lease_left_s`) every 50 ms, first on an idle machine,
then while N processes spin on the CPU (default: 4 per core) and one more writes and fsyncs a local file in a
loop. The lease wrapper kills Milvus `WRAPPER_EARLY_S` before the lease ends, so the headroom is the least
lease left minus that; the longest time between renewals is lease_s minus the least lease left. Prints JSON
per phase: samples, least and 1st-percentile lease left, headroom, the longest renewal gap, and whether the
writer ever stopped running rw (a self-fence) or the epoch moved. A lease is safe under load when the
headroom stays well above 0 with every core oversubscribed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jfsmilvus.v1 import node_pb2

from agent.milvus.leasewatch import WRAPPER_EARLY_S
from tests.localcluster.down import tear_down
from tests.localcluster.up import ClusterSpec, bring_up

SAMPLE_S = 0.05


def spin(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        sum(i * i for i in range(10_000))


def fsync_loop(stop_at: float) -> None:
    with tempfile.NamedTemporaryFile(dir="/var/tmp") as f:
        while time.monotonic() < stop_at:
            f.write(os.urandom(1 << 20))
            f.flush()
            os.fsync(f.fileno())
            f.seek(0)


def sample(rc: Any, seconds: float) -> dict[str, Any]:
    status = rc.cluster.status()
    writer = rc.cluster.nodes[status.writer]
    epoch = status.epoch
    left: list[float] = []
    not_rw = 0
    errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            obs = writer.status()
        except Exception:
            errors += 1
        else:
            left.append(obs.lease_left_s)
            not_rw += obs.role_running != node_pb2.ROLE_RW
        time.sleep(SAMPLE_S)
    left.sort()
    least = left[0] if left else 0.0
    return {
        "samples": len(left),
        "status_errors": errors,
        "lease_left_min_s": round(least, 3),
        "lease_left_p1_s": round(left[len(left) // 100] if left else 0.0, 3),
        "headroom_min_s": round(least - WRAPPER_EARLY_S, 3),
        "samples_not_running_rw": not_rw,
        "epoch_moved": rc.cluster.status().epoch != epoch,
        "writer": writer.name,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--lease-s", type=float, default=None, help="timing.lease_s (default: the product's)")
    parser.add_argument("--burners", type=int, default=4 * (os.cpu_count() or 1))
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/jfs-milvus-lease-bench"))
    args = parser.parse_args()
    timing: dict[str, Any] = {"failover_window_s": 0}
    if args.lease_s is not None:
        timing.update(lease_s=args.lease_s, row_lease_s=min(1.0, args.lease_s))
    spec = ClusterSpec(args.dir.resolve(), 2, mishards=0, timing=timing, subnet=14)

    def say(text: str) -> None:
        print(f"[lease-bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    try:
        rc = bring_up(spec, say)
        rc.cluster.wait_for_writer(90)
        time.sleep(5)
        say(f"idle: sampling the writer's lease for {args.seconds:.0f}s")
        idle = sample(rc, args.seconds)
        say(f"loaded: {args.burners} CPU spinners and an fsync loop for {args.seconds:.0f}s")
        stop_at = time.monotonic() + args.seconds + 2
        load = [multiprocessing.Process(target=spin, args=(stop_at,)) for _ in range(args.burners)]
        load.append(multiprocessing.Process(target=fsync_loop, args=(stop_at,)))
        for p in load:
            p.start()
        try:
            time.sleep(1)
            loaded = sample(rc, args.seconds)
            load_average = os.getloadavg()[0]
        finally:
            for p in load:
                p.join(10)
                if p.is_alive():
                    p.kill()
    finally:
        tear_down(spec.root, say)
    lease_s = timing.get("lease_s", "default")
    for phase in (idle, loaded):
        if isinstance(lease_s, float):
            phase["renewal_gap_max_s"] = round(lease_s - phase["lease_left_min_s"], 3)
    print(
        json.dumps(
            {
                "lease_s": lease_s,
                "wrapper_early_s": WRAPPER_EARLY_S,
                "cpus": os.cpu_count(),
                "burners": args.burners,
                "load_average_loaded": load_average,
                "idle": idle,
                "loaded": loaded,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
