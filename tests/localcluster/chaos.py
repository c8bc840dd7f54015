"""The chaos suite: faults injected into a running local cluster while a client writes and reads back.

After each scenario the checker proves, from the stand-in's write log, what a reader sees on the volume and
the coordinator's events: at no instant did two nodes run rw; every write a Flush covered (one that returned
OK) is there; epochs only grew; the cluster came back to exactly one healthy writer and every Mishards node
runs Mishards on it. The client writes and searches through the first Mishards, as a production client does;
a failover's `writes_back_s` is the time from the fault to its first write acknowledged through Mishards by
the new writer. Writes acknowledged but never covered by a Flush may be lost (Milvus acknowledges into its local
WAL): those lost are counted per scenario, the cluster's recovery point, not a failure.

    python -m tests.localcluster chaos            # every scenario, then the table (and --json FILE)
    python -m tests.localcluster chaos --ci       # the short selection CI runs
"""

from __future__ import annotations

import datetime
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import docker
import docker.errors

from coordinator.model import ROLE_CHANGES
from tests.localcluster import faults
from tests.localcluster.cluster import ClusterNode, Say, WriteClient
from tests.localcluster.up import RunningCluster
from tests.milvusclient.ledger import Durability
from tests.mishards_env import env_values
from tests.plugin_agent import wait_until

Fault = Callable[[RunningCluster, ClusterNode], faults.Undo]


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: tuple[Fault, ...]
    expect: str  # failover: the writer must change | stay: it must not | any: either is right
    target: str = "writer"  # writer | reader
    hold_s: float = 15.0  # the fault lasts this long at least (longer when a failover is awaited)
    ci: bool = False
    # The target heals by itself while the fault stands: a reader back in every Mishards' hosts, on a new
    # container, with no operator and no undo (target: under HEAL_TARGET_S; a FAIL past HEAL_LIMIT_S).
    heals: bool = False


SCENARIOS = (
    Scenario("writer power-off", (faults.power_off,), "failover", ci=True),
    Scenario("writer agent kill -9", (faults.kill_agent,), "any"),
    Scenario("writer container killed", (faults.kill_container,), "stay"),
    Scenario("writer juicefs killed", (faults.kill_juicefs,), "stay"),
    Scenario("writer mount hung", (faults.hang_mount,), "stay"),
    Scenario("writer cut from coordinators", (faults.cut_from_coordinators,), "stay", ci=True),
    Scenario("writer cut from everything", (faults.cut_off,), "failover", ci=True),
    Scenario("a reader cut off", (faults.cut_off,), "stay", target="reader"),
    Scenario("a reader's juicefs killed", (faults.kill_juicefs,), "stay", target="reader", heals=True),
    Scenario("a reader's mount hung", (faults.hang_mount,), "stay", target="reader", heals=True),
    Scenario("writer agent frozen (SIGSTOP)", (faults.freeze_agent,), "failover"),
    Scenario("writer mount flapping", (faults.flap_mount,), "stay", hold_s=20.0),
    Scenario("switchover whose target dies", (faults.switchover_then_power_off,), "any", target="reader"),
    Scenario("leading coordinator killed", (faults.kill_leader,), "stay", ci=True),
    Scenario("all coordinators down 60 s", (faults.stop_coordinators,), "stay", hold_s=0),
    Scenario("MySQL restarted", (faults.restart_mysql,), "any"),
    Scenario("Redis restarted", (faults.restart_redis,), "stay"),
    Scenario("writer clock stepped +10 min", (faults.step_clock,), "stay"),
    # The stand-in is a CPU image: a GPU it does not use fails, and the writer stays (coordinator.core.writer_faults).
    Scenario("writer GPU failed (XID 79)", (faults.fail_gpu,), "stay"),
    Scenario("power-off + leader killed", (faults.power_off, faults.kill_leader), "failover"),
)


@dataclass
class ScenarioResult:
    scenario: str
    outcome: str = "ok"
    problems: list[str] = field(default_factory=list)
    writer_before: str = ""
    writer_after: str = ""
    epoch_before: int = 0
    epoch_after: int = 0
    failover_s: float | None = None  # fault to the new writer running rw healthy
    healed_s: float | None = None  # fault to the target back in every Mishards' hosts on a new container
    writes_back_s: float | None = None  # fault to the first write the new writer acknowledged (through Mishards)
    write_gap_s: float = 0.0  # the longest time without an acknowledged write, from the fault to recovery
    # The writes this scenario judged: those acknowledged since the last scenario's were judged (up to the
    # recovery; the rest are judged by the next scenario), and of them, those an OK Flush covered.
    writes_acknowledged: int = 0
    writes_flushed: int = 0
    flushed_lost: int = 0  # flushed writes found lost in this scenario: must be 0
    unflushed_lost: int = 0  # acknowledged, never flushed, found lost in this scenario (the RPO)
    unflushed_lost_ids: list[int] = field(default_factory=list)  # the first few
    search_misses: int = 0  # searches for a flushed write's vector that did not find it, in this scenario
    overlap: str = "none"
    took_s: float = 0.0


@dataclass(frozen=True)
class NewLosses:
    writes_judged: int
    writes_flushed: int
    flushed_lost: set[int]
    unflushed_lost: set[int]
    search_misses: int


@dataclass
class Losses:
    """The writes found lost so far in a suite, so that each scenario reports those it added."""

    flushed: set[int] = field(default_factory=set)
    unflushed: set[int] = field(default_factory=set)
    judged: int = 0
    flushed_judged: int = 0
    search_misses: int = 0

    def add(self, found: Durability, search_misses: int) -> NewLosses:
        new = NewLosses(
            writes_judged=found.judged - self.judged,
            writes_flushed=found.flushed - self.flushed_judged,
            flushed_lost=set(found.flushed_lost) - self.flushed,
            unflushed_lost=set(found.unflushed_lost) - self.unflushed,
            search_misses=search_misses - self.search_misses,
        )
        self.flushed |= new.flushed_lost
        self.unflushed |= new.unflushed_lost
        self.judged, self.flushed_judged, self.search_misses = found.judged, found.flushed, search_misses
        return new


def healthy(rc: RunningCluster) -> str | None:
    """None when the cluster has one healthy writer, every other node runs ro, and Mishards names the writer;
    otherwise what is not yet so."""
    try:
        s = rc.cluster.status()
    except Exception as exc:
        return f"no status: {exc}"
    if not s.writer:
        return "no writer"
    roles = {n.name: n.role_running for n in s.nodes}
    rw = [name for name, role in roles.items() if role == 2]
    if rw != [s.writer]:
        return f"running rw: {rw}, writer {s.writer}"
    not_ro = [name for name, role in roles.items() if name != s.writer and role != 1]
    if not_ro:
        return f"not running ro: {not_ro}"
    node = rc.cluster.nodes[s.writer]
    if node.http("GET", "/state")[0] != 200:
        return f"{s.writer} does not answer /state"
    want = f"tcp://{node.address}:{node.milvus_port}"
    for m in rc.mishards_hosts:
        got = env_values(m.env_file).get("WOSERVER")
        if got != want:
            return f"the Mishards env of {m.node.name} names {got}, not {want}"
        routes = m.routes()
        if routes is None or routes["writer"] != want:
            return f"Mishards on {m.node.name} routes writes to {routes and routes['writer']}, not {want}"
    return None


HEAL_TARGET_S = 30.0
HEAL_LIMIT_S = 90.0


def healed(rc: RunningCluster, node: ClusterNode, since_unix: float) -> str | None:
    """None once `node` runs ro, healthy, in a container started after `since_unix`, and every Mishards lists it
    among its hosts; otherwise what is not yet so."""
    try:
        s = rc.cluster.status()
    except Exception as exc:
        return f"no status: {exc}"
    mine = next((n for n in s.nodes if n.name == node.name), None)
    if mine is None or mine.role_running != 1:
        return f"{node.name} does not run ro"
    try:
        started = docker.from_env().api.inspect_container(node.container_name)["State"]["StartedAt"]
    except docker.errors.DockerException as exc:
        return f"no container: {exc}"
    if started_unix(started) <= since_unix:
        return f"{node.name} still runs the container it ran at the fault"
    for m in rc.mishards_hosts:
        routes = m.routes()
        if routes is None or not any(h.split(":")[0] == node.address for h in routes["readers"]):
            return f"Mishards on {m.node.name} does not list {node.name} ({routes and routes['readers']})"
    return None


def started_unix(docker_time: str) -> float:
    """Docker's RFC 3339 time with nanoseconds, as Unix seconds."""
    head, _, frac = docker_time.rstrip("Z").partition(".")
    whole = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
    return whole.timestamp() + (float("0." + frac[:6]) if frac else 0.0)


def wait_healthy(rc: RunningCluster, timeout_s: float) -> None:
    wait_until(lambda: healthy(rc) is None, timeout_s, lambda: f"a healthy cluster: {healthy(rc)}")


def longest_gap(times: list[float], start: float, end: float) -> float:
    inside = [start, *[t for t in times if start < t < end], end]
    return max(b - a for a, b in itertools.pairwise(inside))


def epochs_grew(rc: RunningCluster) -> str | None:
    events = sorted(rc.cluster.events(), key=lambda e: e.id)
    epochs = [e.epoch for e in events if e.kind in ROLE_CHANGES]
    bad = [(a, b) for a, b in itertools.pairwise(epochs) if b < a]
    return f"epoch went back: {bad}" if bad else None


def run_scenario(
    rc: RunningCluster, client: WriteClient, scenario: Scenario, progress: Say, losses: Losses
) -> ScenarioResult:
    result = ScenarioResult(scenario.name)
    began = time.monotonic()
    wait_healthy(rc, 180)
    status = rc.cluster.status()
    result.writer_before, result.epoch_before = status.writer, status.epoch
    writer = rc.cluster.nodes[status.writer]
    target = writer if scenario.target == "writer" else next(n for n in rc.cluster.nodes.values() if n is not writer)
    progress(f"{scenario.name}: on {target.name} (writer {writer.name}, epoch {status.epoch})")
    fault_at, fault_unix = time.monotonic(), time.time()
    undos = [fault(rc, target) for fault in scenario.faults]
    try:
        if scenario.expect == "failover":
            new = rc.cluster.wait_for_writer(120, other_than=writer.name)
            result.failover_s = round(time.monotonic() - fault_at, 2)
            progress(f"{scenario.name}: {new.name} took over in {result.failover_s:.1f}s")
            first = wait_until(lambda: client.first_ack_after(fault_at, by=new.name), 90, "a write by the new writer")
            result.writes_back_s = round(first - fault_at, 2)
            progress(f"{scenario.name}: writes back through {client.via} after {result.writes_back_s:.1f}s")
        if scenario.heals:
            try:
                wait_until(lambda: healed(rc, target, fault_unix) is None, HEAL_LIMIT_S,
                           lambda: f"{target.name} to heal by itself: {healed(rc, target, fault_unix)}")  # fmt: skip
            except AssertionError as exc:
                result.problems.append(str(exc).splitlines()[0])
            else:
                result.healed_s = round(time.monotonic() - fault_at, 2)
                progress(f"{scenario.name}: {target.name} healed by itself in {result.healed_s:.1f}s")
        time.sleep(max(0.0, scenario.hold_s - (time.monotonic() - fault_at)))
    finally:
        for undo in reversed(undos):
            undo()
    try:
        wait_healthy(rc, 180)
    except AssertionError as exc:
        result.problems.append(str(exc).splitlines()[0])
    recovered_at = time.monotonic()
    status = rc.cluster.status()
    result.writer_after, result.epoch_after = status.writer, status.epoch
    if result.failover_s is None and result.writer_after != result.writer_before:
        result.failover_s = round(recovered_at - fault_at, 2)  # an upper bound: it happened while we waited
    if scenario.expect == "stay" and result.writer_after != result.writer_before:
        result.problems.append(f"the writer moved to {result.writer_after}, though it should have stayed")
    if result.epoch_after < result.epoch_before:
        result.problems.append(f"epoch went from {result.epoch_before} back to {result.epoch_after}")
    result.write_gap_s = round(longest_gap(list(client.ack_times), fault_at, recovered_at), 2)
    wait_until(lambda: client.acked_after(recovered_at) > 0, 30, "writes after the recovery")
    # Every write acknowledged before the recovery is judged: a live writer has flushed it by itself by now.
    time.sleep(max(0.0, recovered_at + rc.cluster.settle_s - time.monotonic()))
    verdict = rc.cluster.verdict(client, until=time.monotonic() - rc.cluster.settle_s)
    new = losses.add(verdict.durability, client.search_misses)
    result.writes_acknowledged, result.writes_flushed = new.writes_judged, new.writes_flushed
    result.flushed_lost = len(new.flushed_lost)
    result.unflushed_lost = len(new.unflushed_lost)
    result.unflushed_lost_ids = sorted(new.unflushed_lost)[:10]
    result.search_misses = new.search_misses
    result.overlap = "none" if not verdict.overlaps else str(verdict.overlaps[:3])
    for problem in (epochs_grew(rc),):
        if problem:
            result.problems.append(problem)
    if new.flushed_lost:
        result.problems.append(f"{len(new.flushed_lost)} flushed writes lost: {sorted(new.flushed_lost)[:5]}")
    if new.search_misses:
        result.problems.append(f"{new.search_misses} searches missed a flushed write")
    if verdict.overlaps:
        result.problems.append(f"two writers at once: {verdict.overlaps[:3]}")
    result.outcome = "ok" if not result.problems else "FAIL"
    result.took_s = round(time.monotonic() - began, 1)
    progress(f"{scenario.name}: {result.outcome} {'; '.join(result.problems)}")
    return result


def table(results: list[ScenarioResult]) -> str:
    head = (
        "scenario", "outcome", "writer", "failover", "writes back", "healed", "longest write gap", "acked", "flushed",
        "flushed lost", "unflushed lost", "overlap",
    )  # fmt: skip
    rows = [head]
    for r in results:
        move = r.writer_before if r.writer_after == r.writer_before else f"{r.writer_before} -> {r.writer_after}"
        rows.append(
            (
                r.scenario,
                r.outcome,
                f"{move} (epoch {r.epoch_after})",
                "-" if r.failover_s is None else f"{r.failover_s:.1f}s",
                "-" if r.writes_back_s is None else f"{r.writes_back_s:.1f}s",
                "-" if r.healed_s is None else f"{r.healed_s:.1f}s",
                f"{r.write_gap_s:.1f}s",
                str(r.writes_acknowledged),
                str(r.writes_flushed),
                str(r.flushed_lost),
                str(r.unflushed_lost),
                r.overlap,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def run_suite(rc: RunningCluster, scenarios: list[Scenario], progress: Say) -> list[ScenarioResult]:
    client = rc.write_client(lookup_s=0.2, collection="chaos").start()
    losses = Losses()
    try:
        wait_until(lambda: len(client.acknowledged) > 5, 60, lambda: f"first writes ({client.last_error})")
        results = []
        for scenario in scenarios:
            try:
                results.append(run_scenario(rc, client, scenario, progress, losses))
            except Exception as exc:  # one broken scenario must not hide the others' results
                results.append(ScenarioResult(scenario.name, "FAIL", [f"{type(exc).__name__}: {exc}"[:300]]))
                progress(f"{scenario.name}: FAIL {exc!r}"[:400])
        return results
    finally:
        client.stop()


def as_json(results: list[ScenarioResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)
