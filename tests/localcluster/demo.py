"""The quickstart: a cluster comes up, takes writes, loses its writer to a power-off, and fails over alone.

It prints each step as it happens, then the failover's phases and the total time writes were unavailable,
and leaves the cluster running for the newcomer to explore (`scripts/cluster status`, `scripts/cluster down`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.localcluster import faults
from tests.localcluster.chaos import wait_healthy
from tests.localcluster.cluster import WriteClient
from tests.localcluster.phases import failover_event, phase_durations, phase_times
from tests.localcluster.up import ClusterSpec, RunningCluster, bring_up
from tests.mishards_env import env_values
from tests.plugin_agent import wait_until

Say = Callable[[str], None]


def run_demo(spec: ClusterSpec, say: Say) -> dict[str, Any]:
    say(f"bringing up {spec.nodes} nodes and {spec.coordinators} coordinators in {spec.root}")
    rc = bring_up(spec, lambda line: say(f"  {line}"))
    say(f"the cluster is up in {rc.started_in_s:.0f}s. `coordinatorctl status` says:")
    say(rc.coordinatorctl("status").stdout.rstrip())
    return failover_demo(rc, say)


def failover_demo(rc: RunningCluster, say: Say) -> dict[str, Any]:
    cluster = rc.cluster
    client = WriteClient(cluster, lookup_s=0.2).start()
    try:
        wait_until(lambda: len(client.acknowledged) >= 40, 60, lambda: f"first writes ({client.last_error})")
        old = cluster.wait_for_writer()
        say(f"a client writes to the writer {old.name} ({old.address}): {len(client.acknowledged)} acknowledged")
        last_event = max((e.id for e in cluster.events()), default=0)
        epoch = cluster.status().epoch
        say(f"powering off {old.name}: its agent, its Milvus container and its JuiceFS mount die at once")
        fault_unix, fault_at = time.time(), time.monotonic()
        undo = faults.power_off(rc, old)
        new = cluster.wait_for_writer(120, other_than=old.name)
        say(f"{new.name} is the writer now (epoch {cluster.status().epoch}, was {epoch}), with no operator")
        event = wait_until(
            lambda: failover_event(cluster.events(), last_event, new.name), 60, "the failover's event"
        )
        first_ack = wait_until(
            lambda: client.first_ack_after(fault_at, by=new.name), 60, "a write acknowledged by the new writer"
        )
        last_ack = client.last_ack_before(first_ack, by=old.name) or fault_at
        at = phase_times(event, fault_unix)
        at["first write acknowledged"] = round(first_ack - fault_at, 3)
        woserver = f"tcp://{new.address}:{new.milvus_port}"
        if rc.mishards is not None:
            wait_until(lambda: env_values(rc.mishards.env_file).get("WOSERVER") == woserver, 60, "Mishards env")
            routes = wait_until(
                lambda: (r := rc.mishards.routes()) and r["writer"] == woserver and r, 60, "Mishards routes"
            )
            say(f"the Mishards env file names {woserver}; the stand-in Mishards routes writes there and reads to "
                f"{', '.join(routes['readers'])}")
        say("the failover, in seconds from the power-off:")
        for name, t in at.items():
            say(f"  {t:6.2f}  {name}")
        unavailable = round(first_ack - last_ack, 3)
        say(f"writes were unavailable for {unavailable:.2f}s (from the last write {old.name} acknowledged to the "
            f"first one {new.name} did)")
        time.sleep(2)
        say(f"powering {old.name} on again: it rejoins as a reader")
        undo()
        wait_healthy(rc, 120)
    finally:
        client.stop()
    verdict = cluster.verdict(set(client.acknowledged))
    say(f"the checker read the write log: {len(client.acknowledged)} writes acknowledged, {len(verdict.missing)} "
        f"lost, {'no' if not verdict.overlaps else len(verdict.overlaps)} overlapping writers")
    say(rc.coordinatorctl("status").stdout.rstrip())
    say(f"the cluster keeps running. Try: . {rc.root}/env && coordinatorctl history; stop it: scripts/cluster down")
    return {
        "old_writer": old.name,
        "new_writer": new.name,
        "phases_at_s": at,
        "phase_durations_s": phase_durations(at),
        "writes_unavailable_s": unavailable,
        "writes_acknowledged": len(client.acknowledged),
        "writes_lost": len(verdict.missing),
        "overlaps": len(verdict.overlaps),
        "cluster_up_s": round(rc.started_in_s, 1),
    }


def print_json(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))
