"""A failover's phases: the coordinator's event, Docker's start of the new writer's container, the first answer
of its /state, and the client's first acknowledged write.

The time from the power-off to the new writer's first write splits in two: the control plane's share (detect,
decide, fence, and the agent's work up to `docker start`: from the power-off to the rw container's StartedAt)
and Milvus's own start (from StartedAt to the first answered /state, polled here every 50 ms); then the
client's first insert is acknowledged. A client going through Mishards (the cluster's) gets it once the
Mishards node's agent has restarted Mishards on the new writer: the `mishards` phase runs from `healthy` to
that first write acknowledged through Mishards by the new writer (the coordinator's own `mishards` mark is
only when every Mishards node reported its container started with the new writer).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker

from agent.milvus.container import LABEL_NODE, LABEL_ROLE
from tests.localcluster import faults
from tests.localcluster.cluster import ClusterNode, Say, WriteClient
from tests.localcluster.up import RunningCluster
from tests.plugin_agent import wait_until

# The coordinator's phase names, then what the client saw. Each phase ends where the next begins.
PHASES = ("detect", "decide", "fence", "promote", "healthy", "mishards")


def phase_times(event: Any, fault_unix: float) -> dict[str, float]:
    """Seconds from the fault to the start of each phase the event records."""
    return {p.name: round(p.at_unix - fault_unix, 3) for p in event.phases}


def phase_durations(at: dict[str, float], mishards_write_s: float | None = None) -> dict[str, float]:
    """How long each step took: detect from the fault, then each phase until the next one began; `mishards`
    until `mishards_write_s` (the first write through Mishards by the new writer) when given."""
    if mishards_write_s is not None:
        at = {**at, "mishards": mishards_write_s}
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


def start_split(at: dict[str, float], container_started_s: float, first_state_s: float) -> dict[str, float]:
    """The control plane's steps up to `docker start`, then Milvus's own start, in seconds (all from `at`, the
    phase starts after the fault, and the two times Docker and the /state poll gave)."""
    split = {
        "detect": at.get("detect", 0.0),
        "decide": at.get("fence", 0.0) - at.get("detect", 0.0),
        "fence": at.get("promote", 0.0) - at.get("fence", 0.0),
        "agent_to_docker_start": container_started_s - at.get("promote", 0.0),
    }
    split["control_plane"] = container_started_s
    split["milvus_start"] = first_state_s - container_started_s
    return {k: round(v, 3) for k, v in split.items()}


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


def docker_unix(stamp: str) -> float:
    """Docker's RFC 3339 time (nanoseconds, Z) as a unix time."""
    return datetime.fromisoformat(stamp).timestamp()


def rw_container_started_unix(node: ClusterNode) -> float | None:
    """When the node's running rw container started (Docker's StartedAt), or None."""
    client = docker.from_env()
    try:
        running = client.containers.list(filters={"label": f"{LABEL_NODE}={node.name}", "status": "running"})
    finally:
        client.close()
    started = [docker_unix(c.attrs["State"]["StartedAt"]) for c in running if c.labels.get(LABEL_ROLE) == "rw"]
    return max(started) if started else None


class StateProbe:
    """Polls `GET /state` of some nodes every 50 ms and remembers when each answered (unix time)."""

    def __init__(self, nodes: list[ClusterNode], period_s: float = 0.05) -> None:
        self.nodes = nodes
        self.period_s = period_s
        self.answers: dict[str, list[float]] = {n.name: [] for n in nodes}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _answers(self, node: ClusterNode) -> bool:
        conn = http.client.HTTPConnection(node.address, node.http_port, timeout=0.5)
        try:
            conn.request("GET", "/state")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for node in self.nodes:
                if self._answers(node):
                    self.answers[node.name].append(time.time())
            self._stop.wait(self.period_s)

    def __enter__(self) -> StateProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def first_after(self, name: str, unix: float) -> float | None:
        return next((t for t in list(self.answers[name]) if t >= unix), None)


@dataclass
class FailoverFigures:
    old_writer: str
    new_writer: str
    epoch: int
    phases_at_s: dict[str, float]  # from the power-off to the start of each phase
    phase_durations_s: dict[str, float]
    container_started_s: float  # from the power-off to the new writer's rw container's StartedAt
    first_state_s: float  # from the power-off to the first /state that container answered
    split_s: dict[str, float]  # the control plane's steps up to docker start, then Milvus's own start
    via: str  # how the client wrote: "mishards" (through the cluster's first Mishards) or "writer" (directly)
    # From the power-off to the start of the Mishards container given the new writer, per Mishards node.
    mishards_started_s: dict[str, float]
    first_write_s: float  # from the power-off to the first write the new writer acknowledged (through `via`)
    writes_unavailable_s: float  # last write the old writer acknowledged to the first the new one did


def mishards_following(rc: RunningCluster, woserver: str, fault_unix: float) -> dict[str, float]:
    """Wait until every Mishards node runs a container given `woserver`; when each started, after the fault."""
    started: dict[str, float] = {}
    client = docker.from_env()
    try:
        for m in rc.mishards_hosts:
            run = wait_until(
                lambda m=m: (s := m.running_start(client)) is not None and s.writer == woserver and s,
                60,
                f"Mishards on {m.node.name} following {woserver}",
            )
            started[m.node.name] = round(run.started_unix - fault_unix, 3)
    finally:
        client.close()
    return started


def power_off_writer(rc: RunningCluster, client: WriteClient, say: Say) -> tuple[FailoverFigures, faults.Undo]:
    """Power the writer off, wait for the cluster to fail over by itself, and measure each phase."""
    cluster = rc.cluster
    old = cluster.wait_for_writer()
    last_event = max((e.id for e in cluster.events()), default=0)
    say(f"powering off {old.name}: its agent, its Milvus container and its JuiceFS mount die at once")
    with StateProbe([n for n in cluster.nodes.values() if n is not old]) as probe:
        fault_unix, fault_at = time.time(), time.monotonic()
        undo = faults.power_off(rc, old)
        new = cluster.wait_for_writer(120, other_than=old.name)
        started_unix = wait_until(lambda: rw_container_started_unix(new), 30, f"{new.name}'s rw container")
        first_state = wait_until(lambda: probe.first_after(new.name, started_unix), 30, f"{new.name}'s /state")
    first_ack = wait_until(
        lambda: client.first_ack_after(fault_at, by=new.name), 90, f"a write by the new writer via {client.via}"
    )
    mishards_started = mishards_following(rc, f"tcp://{new.address}:{new.milvus_port}", fault_unix)
    event = wait_until(lambda: failover_event(cluster.events(), last_event, new.name), 60, "the failover's event")
    last_ack = client.last_ack_before(first_ack, by=old.name) or fault_at
    at = phase_times(event, fault_unix)
    container_started_s, first_state_s = round(started_unix - fault_unix, 3), round(first_state - fault_unix, 3)
    first_write_s = round(first_ack - fault_at, 3)
    figures = FailoverFigures(
        old_writer=old.name,
        new_writer=new.name,
        epoch=event.epoch,
        phases_at_s=at,
        phase_durations_s=phase_durations(at, first_write_s if client.via == "mishards" else None),
        container_started_s=container_started_s,
        first_state_s=first_state_s,
        split_s=start_split(at, container_started_s, first_state_s),
        via=client.via,
        mishards_started_s=mishards_started,
        first_write_s=first_write_s,
        writes_unavailable_s=round(first_ack - last_ack, 3),
    )
    return figures, undo
