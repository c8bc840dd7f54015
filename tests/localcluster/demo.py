"""The quickstart: a cluster comes up, takes writes, loses its writer to a power-off, and fails over alone.

It prints each step as it happens, then the failover's phases and the total time writes were unavailable,
and leaves the cluster running for the newcomer to explore (`scripts/cluster status`, `scripts/cluster down`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from tests.localcluster.chaos import wait_healthy
from tests.localcluster.cluster import Say
from tests.localcluster.phases import power_off_writer
from tests.localcluster.up import ClusterSpec, RunningCluster, bring_up
from tests.plugin_agent import wait_until


def run_demo(spec: ClusterSpec, say: Say) -> dict[str, Any]:
    say(f"bringing up {spec.nodes} nodes and {spec.coordinators} coordinators in {spec.root}")
    rc = bring_up(spec, lambda line: say(f"  {line}"))
    say(f"the cluster is up in {rc.started_in_s:.0f}s. `coordinatorctl status` says:")
    say(rc.coordinatorctl("status").stdout.rstrip())
    return failover_demo(rc, say)


def failover_demo(rc: RunningCluster, say: Say) -> dict[str, Any]:
    cluster = rc.cluster
    client = rc.write_client(lookup_s=0.1, collection="demo").start()
    try:
        wait_until(lambda: len(client.acknowledged) >= 40, 60, lambda: f"first writes ({client.last_error})")
        old = cluster.wait_for_writer()
        way = f"through Mishards on {rc.mishards.address}, " if rc.mishards is not None else ""
        say(f"a client writes {way}to the writer {old.name} ({old.address}): {len(client.acknowledged)} acknowledged")
        epoch = cluster.status().epoch
        figures, undo = power_off_writer(rc, client, say)
        say(f"{figures.new_writer} is the writer now (epoch {figures.epoch}, was {epoch}), with no operator")
        for m in rc.mishards_hosts:
            routes = m.routes() or {}
            readers = ", ".join(routes.get("readers", []))
            say(
                f"the agent on {m.node.name} restarted its Mishards {figures.mishards_started_s[m.node.name]:.2f}s "
                f"after the power-off: writes to {routes.get('writer')}, searches to {readers}"
            )
        say("the failover, in seconds from the power-off:")
        names = {"mishards": "mishards (every Mishards node reported it follows)"}
        moments = [(names.get(k, k), t) for k, t in figures.phases_at_s.items()]
        moments.append(("rw container started (docker)", figures.container_started_s))
        moments.append(("first /state answered by the new writer", figures.first_state_s))
        for name, t in sorted(moments, key=lambda m: m[1]):
            say(f"  {t:6.2f}  {name}")
        via = " through Mishards" if figures.via == "mishards" else ""
        say(f"  {figures.first_write_s:6.2f}  first write acknowledged by {figures.new_writer}{via}")
        if figures.via == "mishards":
            say(
                f"the mishards phase (healthy to that first write through Mishards) took "
                f"{figures.phase_durations_s['mishards']:.2f}s"
            )
        say(
            f"the control plane's share (detect, decide, fence, the agent up to docker start) was "
            f"{figures.split_s['control_plane']:.2f}s, Milvus's own start {figures.split_s['milvus_start']:.2f}s"
        )
        say(
            f"writes were unavailable for {figures.writes_unavailable_s:.2f}s (from the last write "
            f"{figures.old_writer} acknowledged to the first one {figures.new_writer} did)"
        )
        time.sleep(2)
        say(f"powering {figures.old_writer} on again: it rejoins as a reader")
        undo()
        wait_healthy(rc, 120)
    finally:
        client.stop()
    verdict = cluster.verdict(client)
    d = verdict.durability
    say(
        f"the checker read the volume and the write log: {d.judged} writes acknowledged, {d.flushed} of them "
        f"covered by a Flush; flushed writes lost: {len(d.flushed_lost)}; acknowledged but not yet flushed when "
        f"{figures.old_writer} lost power, and lost with its local WAL: {len(d.unflushed_lost)}; "
        f"{'no' if not verdict.overlaps else len(verdict.overlaps)} overlapping writers"
    )
    say(rc.coordinatorctl("status").stdout.rstrip())
    say(f"the cluster keeps running. Try: . {rc.root}/env && coordinatorctl history; stop it: scripts/cluster down")
    return {
        **asdict(figures),
        "writes_acknowledged": d.judged,
        "writes_flushed": d.flushed,
        "flushed_lost": len(d.flushed_lost),
        "unflushed_lost": len(d.unflushed_lost),
        "overlaps": len(verdict.overlaps),
        "cluster_up_s": round(rc.started_in_s, 1),
    }


def print_json(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))
