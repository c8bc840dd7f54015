"""A failover's phases, from the coordinator's event and the client's first acknowledged write."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.localcluster import faults
from tests.localcluster.cluster import Say, WriteClient
from tests.localcluster.up import RunningCluster
from tests.mishards_env import env_values
from tests.plugin_agent import wait_until

# The coordinator's phase names, then what the client saw. Each phase ends where the next begins.
PHASES = ("detect", "decide", "fence", "promote", "healthy", "mishards")


def phase_times(event: Any, fault_unix: float) -> dict[str, float]:
    """Seconds from the fault to the start of each phase the event records."""
    return {p.name: round(p.at_unix - fault_unix, 3) for p in event.phases}


def phase_durations(at: dict[str, float]) -> dict[str, float]:
    """How long each step took: detect from the fault, then each phase until the next one began."""
    durations = {}
    previous = 0.0
    for name, ends in (
        ("detect", "detect"),
        ("decide", "fence"),
        ("fence", "promote"),
        ("promote", "healthy"),
        ("mishards", "mishards"),
    ):
        if ends in at:
            durations[name] = round(at[ends] - previous, 3)
            previous = at[ends]
    return durations


def failover_event(events: list[Any], after_id: int, new_writer: str) -> Any | None:
    done = [
        e
        for e in events
        if e.id > after_id
        and e.kind == "failover"
        and e.node == new_writer
        and "mishards" in {p.name for p in e.phases}
    ]  # the event is written at the commit and updated as each phase begins: wait for the last one
    return done[-1] if done else None


@dataclass
class FailoverFigures:
    old_writer: str
    new_writer: str
    epoch: int
    phases_at_s: dict[str, float]  # from the power-off to the start of each phase
    phase_durations_s: dict[str, float]
    mishards_env_s: float  # from the power-off until the Mishards env file named the new writer
    first_write_s: float  # from the power-off to the first write the new writer acknowledged
    writes_unavailable_s: float  # last write the old writer acknowledged to the first the new one did


def power_off_writer(rc: RunningCluster, client: WriteClient, say: Say) -> tuple[FailoverFigures, faults.Undo]:
    """Power the writer off, wait for the cluster to fail over by itself, and measure each phase."""
    cluster = rc.cluster
    old = cluster.wait_for_writer()
    last_event = max((e.id for e in cluster.events()), default=0)
    say(f"powering off {old.name}: its agent, its Milvus container and its JuiceFS mount die at once")
    fault_unix, fault_at = time.time(), time.monotonic()
    undo = faults.power_off(rc, old)
    new = cluster.wait_for_writer(120, other_than=old.name)
    woserver = f"tcp://{new.address}:{new.milvus_port}"
    mishards_at = fault_at
    if rc.mishards is not None:
        wait_until(lambda: env_values(rc.mishards.env_file).get("WOSERVER") == woserver, 60, "the Mishards env")
        mishards_at = time.monotonic()
    event = wait_until(lambda: failover_event(cluster.events(), last_event, new.name), 60, "the failover's event")
    first_ack = wait_until(lambda: client.first_ack_after(fault_at, by=new.name), 60, "a write by the new writer")
    last_ack = client.last_ack_before(first_ack, by=old.name) or fault_at
    at = phase_times(event, fault_unix)
    figures = FailoverFigures(
        old_writer=old.name,
        new_writer=new.name,
        epoch=event.epoch,
        phases_at_s=at,
        phase_durations_s=phase_durations(at),
        mishards_env_s=round(mishards_at - fault_at, 3) if rc.mishards is not None else -1.0,
        first_write_s=round(first_ack - fault_at, 3),
        writes_unavailable_s=round(first_ack - last_ack, 3),
    )
    return figures, undo
