"""Coordinator scale: Report latency, CPU, memory and decision time with N agents reporting at 1 Hz.

Starts a private MariaDB (tests.plugin_mysql.MariaDB in a temp dir) and, for each size N, a fresh database and
one real coordinator daemon (`python -m coordinator.cli run`, production tick and timing defaults). N
simulated agents report to it over gRPC at 1 Hz each from one or more load-generator processes (grpc.aio, one
connection per agent as in a real cluster), each agent at its own offset in the second, so the reports are
spread evenly. Each report is a realistic NodeObservation (8 GPUs, one JuiceFS mount, the container) and each
agent follows its assignment as a real one does: it stops at once when its role changes and starts the new role
after --role-delay, runs rw only under a valid lease (and fences itself when the lease runs out), refuses older
epochs. The cluster settles with one writer; then --seconds are measured.

Per N, the JSON on stdout has: the client-side latency of each Report RPC (p50/p99/max ms), reports/s achieved,
the coordinator's CPU (percent of one core) and RSS, the decision time per tick from the coordinator's /metrics
(the jfs_milvus_decide_seconds gauge sampled, and the jfs_milvus_decide_duration_seconds summary), and whether
exactly one node was the writer at the end (as assigned, as running, as the coordinator's status says). Send
lateness and the load generator's CPU show whether the client kept up. Progress goes to stderr.

    .venv/bin/python bench/coordinator_scale.py --nodes 10,100,1000 --seconds 30

Target: 1000 agents on a 2-core machine with p99 Report latency under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STEADY = re.compile(r" is the writer at epoch \d+ and healthy")


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


# ---------------------------------------------------------------------------------------------------------
# The load generator: simulated agents in a child process (spawned; grpc must not be forked).
# ---------------------------------------------------------------------------------------------------------


class SimAgent:
    """One node's agent, as far as the coordinator can tell: what it reports and how it follows assignments."""

    def __init__(self, index: int, role_delay_s: float, loop: asyncio.AbstractEventLoop):
        from jfsmilvus.v1 import coordinator_pb2, node_pb2

        self.pb = node_pb2
        self.loop = loop
        self.role_delay_s = role_delay_s
        self.name = f"gpu-{index:04d}"
        self.address = f"10.{20 + (index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
        self.target = "none"  # the role it was told
        self.running = "none"  # the role its container runs healthy
        self.highest = 0
        self.lease_until = 0.0  # monotonic
        self.writer_address = ""
        self.pending: asyncio.TimerHandle | None = None
        self.self_fences = 0
        self.refused = 0
        self.request = coordinator_pb2.ReportRequest(hosts_mishards=False)
        obs = self.request.observation
        obs.node = self.name
        obs.address = self.address
        obs.agent_version = "0.1.0"
        obs.milvus_port = 19530
        obs.milvus_http_port = 19121
        obs.gpus.available = True
        obs.gpus.driver_version = "535.161.08"
        for g in range(8):
            obs.gpus.gpus.add(
                index=g,
                uuid=f"GPU-{index:08x}-{g:04x}-4a1b-9c2d-{index * 8 + g:012x}",
                name="NVIDIA A100-SXM4-80GB",
                memory_total_bytes=85899345920,
                memory_used_bytes=2147483648 + g * 1048576,
                utilization_pct=12.0 + g,
                temperature_c=41.0 + g % 3,
                power_w=88.5,
                health=node_pb2.HEALTH_HEALTHY,
            )
        obs.mounts.add(
            volume="milvus",
            mountpoint="/var/lib/milvus",
            configured_in_fstab=True,
            mounted=True,
            read_only=True,
            health=node_pb2.HEALTH_HEALTHY,
            state="healthy",
            session_id=str(1000 + index),
            meta_engine=node_pb2.MetaEngineStatus(scheme="redis", checked=True, reachable=True, latency_ms=0.4),
        )
        obs.container.name = "milvus"
        obs.container.image = "milvusdb/milvus:1.1.1-gpu-d061621-330cc6"

    # -- what it does -------------------------------------------------------------------------------------
    def _start(self) -> None:
        self.pending = None
        if self.target == "rw" and time.monotonic() >= self.lease_until:
            self.pending = self.loop.call_later(0.2, self._start)  # no lease: no rw
            return
        self.running = self.target

    def _stop_and_start(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        self.running = "none"  # stopped at once: this is what fences a demoted writer
        if self.target != "none":
            self.pending = self.loop.call_later(self.role_delay_s, self._start)

    def follow(self, answer: Any, sent_at: float) -> None:
        if not answer.leader or not answer.HasField("assignment"):
            return
        a = answer.assignment
        if a.epoch < self.highest:
            self.refused += 1
            return
        self.highest = a.epoch
        self.writer_address = a.writer_address
        role = {self.pb.ROLE_RW: "rw", self.pb.ROLE_RO: "ro"}.get(a.role, "none")
        if role == "rw" and a.lease_ms > 0:
            self.lease_until = max(self.lease_until, sent_at + a.lease_ms / 1000)  # valid from the send
        if role != self.target:
            self.target = role
            self._stop_and_start()

    def report(self) -> Any:
        now = time.monotonic()
        if self.running == "rw" and now >= self.lease_until:
            self.self_fences += 1
            self._stop_and_start()
        pb = self.pb
        obs = self.request.observation
        role_pb = {"rw": pb.ROLE_RW, "ro": pb.ROLE_RO}
        obs.role_running = role_pb.get(self.running, pb.ROLE_STOPPED)
        obs.highest_epoch_seen = self.highest
        obs.observed_at_unix = time.time()
        obs.lease_left_s = max(0.0, self.lease_until - now) if self.running == "rw" else 0.0
        obs.writer_seen_healthy_age_s = 0.4 if self.writer_address and self.running == "ro" else -1.0
        if self.running == "none":
            obs.container.state = "absent"
            obs.container.role = pb.ROLE_UNSPECIFIED
            obs.container.healthy = False
        else:
            obs.container.state = "running"
            obs.container.role = role_pb[self.running]
            obs.container.epoch = self.highest
            obs.container.healthy = True
        mount = obs.mounts[0]
        mount.read_only = self.target != "rw"
        mount.write_probe_ms = 0.0 if mount.read_only else 4.2
        return self.request


async def _run_agents(conn: Any, address: str, indices: list[int], n_total: int, options: dict[str, Any]) -> None:
    import grpc
    from jfsmilvus.v1 import coordinator_pb2_grpc

    loop = asyncio.get_running_loop()
    agents = [SimAgent(i, options["role_delay_s"], loop) for i in indices]
    if options.get("connections") == "shared":
        # One HTTP/2 connection for all of this process's agents: a cheaper client, an easier server.
        channels = [grpc.aio.insecure_channel(address)]
        stubs = [coordinator_pb2_grpc.CoordinatorServiceStub(channels[0])] * len(agents)
    else:
        channel_options = [("grpc.use_local_subchannel_pool", 1)]  # one connection per agent, like real nodes
        channels = [grpc.aio.insecure_channel(address, options=channel_options) for _ in agents]
        stubs = [coordinator_pb2_grpc.CoordinatorServiceStub(c) for c in channels]
    sent_at = array("d")  # monotonic send time of each report
    latency = array("d")  # seconds, client side
    late = array("d")  # how late the send was against its slot in the second
    failed: dict[str, int] = {}
    skipped = [0]
    stop = asyncio.Event()
    timeout_s = options["timeout_s"]

    async def one(agent: SimAgent, stub: Any, offset: float, start_at: float) -> None:
        slot = start_at + offset
        while not stop.is_set():
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                if stop.is_set():
                    return
            began = time.monotonic()
            late.append(began - slot)
            request = agent.report()
            try:
                answer = await stub.Report(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
                failed[code] = failed.get(code, 0) + 1
            else:
                took = time.monotonic() - began
                sent_at.append(began)
                latency.append(took)
                agent.follow(answer, began)
            slot += 1.0
            now = time.monotonic()
            if slot < now:  # more than a second behind: skip the missed slots, as a real agent's loop does
                missed = int(now - slot) + 1
                skipped[0] += missed
                slot += missed

    conn.send(("ready", os.getpid()))
    start_at = conn.recv()[1]
    tasks = [
        asyncio.create_task(one(agent, stub, (i % n_total) / n_total, start_at))
        for agent, stub, i in zip(agents, stubs, indices, strict=True)
    ]
    message = await loop.run_in_executor(None, conn.recv)
    _, t0, t1 = message
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout_s + 2)
    for c in channels:
        await c.close()
    in_window = [lat for s, lat in zip(sent_at, latency, strict=True) if t0 <= s < t1]
    series = [(s - t0, lat) for s, lat in zip(sent_at, latency, strict=True) if t0 <= s < t1]
    lateness = [lt for s, lt in zip(sent_at, late, strict=False) if t0 <= s < t1]
    conn.send(
        {
            "latency_s": in_window,
            "series": series,
            "late_s": lateness,
            "failed": failed,
            "skipped": skipped[0],
            "running": {a.name: a.running for a in agents},
            "told": {a.name: a.target for a in agents},
            "self_fences": sum(a.self_fences for a in agents),
            "refused": sum(a.refused for a in agents),
        }
    )


def loadgen_main(conn: Any, address: str, indices: list[int], n_total: int, options: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends it
    sys.path.insert(0, str(REPO))
    asyncio.run(_run_agents(conn, address, indices, n_total, options))


# ---------------------------------------------------------------------------------------------------------
# The coordinator's side: /metrics sampling, CPU and RSS.
# ---------------------------------------------------------------------------------------------------------


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return r.read().decode()


def metric_values(text: str, name: str) -> dict[str, float]:
    """{labels text: value} for each sample of `name` (exact name, any labels)."""
    out = {}
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.eE+-]+|NaN)$", text, re.MULTILINE):
        out[m.group(1) or ""] = float(m.group(2))
    return out


class MetricsSampler(threading.Thread):
    """Samples the decide gauge every `interval_s` (the coordinator ticks every tick_s)."""

    def __init__(self, port: int, interval_s: float):
        super().__init__(daemon=True)
        self.port = port
        self.interval_s = interval_s
        self.samples: list[float] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval_s):
            try:
                values = metric_values(scrape(self.port), "jfs_milvus_decide_seconds")
            except OSError:
                self.errors += 1
                continue
            if values:
                self.samples.append(next(iter(values.values())))


class ProcessSampler(threading.Thread):
    """RSS of a process every second (max is reported); CPU comes from cpu_times over the window."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.rss: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            with contextlib.suppress(psutil.Error):
                self.rss.append(self.proc.memory_info().rss)


def runqueue_seconds(pid: int) -> float:
    """Time the process's threads were ready to run but waited for a CPU (/proc/PID/task/*/schedstat)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[1])
    return total / 1e9


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


# ---------------------------------------------------------------------------------------------------------
# One size.
# ---------------------------------------------------------------------------------------------------------


def run_size(
    n: int, server: Any, root: Path, args: argparse.Namespace, cleanup: contextlib.ExitStack
) -> dict[str, Any]:
    from jfsmilvus.v1 import coordinator_pb2, node_pb2

    from tests.plugin_coordinator import CoordinatorProcess

    db = server.grant_database(f"jfs_milvus_bench_{n}")
    coordinator = CoordinatorProcess(root, db, f"coord-n{n}", cluster="bench")
    coordinator.data["log_level"] = "info"
    coordinator.data["coordinator"]["tick_s"] = args.tick
    coordinator.data["coordinator"]["leader_lease_s"] = 5.0
    coordinator.data["timing"] = {}  # production defaults
    progress(f"N={n}: starting the coordinator on {coordinator.address} (tick {args.tick}s)")
    coordinator.start()
    cleanup.callback(coordinator.kill)
    assert coordinator.process is not None
    cpid = coordinator.process.pid

    procs = max(1, min(args.procs, n))
    ctx = multiprocessing.get_context("spawn")
    workers = []
    options = {"role_delay_s": args.role_delay, "timeout_s": args.rpc_timeout, "connections": args.connections}
    for k in range(procs):
        parent, child = ctx.Pipe()
        indices = list(range(k, n, procs))
        p = ctx.Process(target=loadgen_main, args=(child, coordinator.address, indices, n, options), daemon=True)
        p.start()
        cleanup.callback(_end_process, p)
        workers.append((p, parent))
    for p, parent in workers:
        if not parent.poll(60):
            raise RuntimeError(f"load generator {p.pid} did not start")
        parent.recv()
    start_at = time.monotonic() + 0.5
    for _, parent in workers:
        parent.send(("start", start_at))
    progress(
        f"N={n}: {n} agents reporting at 1 Hz from {procs} load-generator process(es) "
        f"(pids {' '.join(str(p.pid) for p, _ in workers)}; coordinator pid {cpid}); waiting for a writer"
    )

    settle_deadline = time.monotonic() + args.settle_timeout
    why = ""
    while time.monotonic() < settle_deadline:
        time.sleep(0.5)
        with contextlib.suppress(Exception):
            why = coordinator.why()
        if STEADY.search(why):
            break
        if coordinator.process.poll() is not None:
            raise RuntimeError(f"the coordinator exited:\n{coordinator.log()[-4000:]}")
    else:
        progress(f"N={n}: not settled after {args.settle_timeout:.0f}s: {why}")
    settled_after = time.monotonic() - start_at
    progress(f"N={n}: settled after {settled_after:.1f}s: {why[:160]}; warming up {args.warmup:.0f}s")
    time.sleep(args.warmup)

    metrics = MetricsSampler(coordinator.metrics_port, args.sample_interval)
    rss = ProcessSampler(cpid)
    text0 = scrape(coordinator.metrics_port)
    loadgen_pids = [p.pid for p, _ in workers if p.pid is not None]
    mariadb_pids = [server.proc.pid] if server.proc is not None else []
    t0 = time.monotonic()
    cpu0 = cpu_seconds([cpid]), cpu_seconds(loadgen_pids), cpu_seconds(mariadb_pids), cpu_seconds([os.getpid()])
    waited0 = runqueue_seconds(cpid)
    host0 = psutil.cpu_times()
    metrics.start()
    rss.start()
    progress(f"N={n}: measuring for {args.seconds:.0f}s")
    time.sleep(args.seconds)
    t1 = time.monotonic()
    cpu1 = cpu_seconds([cpid]), cpu_seconds(loadgen_pids), cpu_seconds(mariadb_pids), cpu_seconds([os.getpid()])
    waited1 = runqueue_seconds(cpid)
    host1 = psutil.cpu_times()
    load_average = os.getloadavg()[0]
    metrics.halt.set()
    rss.halt.set()
    text1 = scrape(coordinator.metrics_port)
    status = coordinator.stub().GetClusterStatus(coordinator_pb2.ClusterStatusRequest(), timeout=10)
    why_end = coordinator.why()

    results = []
    for _, parent in workers:
        parent.send(("stop", t0, t1))
    for p, parent in workers:
        if not parent.poll(60):
            raise RuntimeError(f"load generator {p.pid} did not report")
        results.append(parent.recv())
        p.join(10)
    wall = t1 - t0
    latencies = sorted(lat * 1000 for r in results for lat in r["latency_s"])
    late = sorted(lt * 1000 for r in results for lt in r["late_s"])
    failed: dict[str, int] = {}
    for r in results:
        for code, count in r["failed"].items():
            failed[code] = failed.get(code, 0) + count
    running = {name: role for r in results for name, role in r["running"].items()}
    told = {name: role for r in results for name, role in r["told"].items()}
    running_rw = sorted(name for name, role in running.items() if role == "rw")
    told_rw = sorted(name for name, role in told.items() if role == "rw")
    assigned_rw = sorted(row.name for row in status.nodes if row.role_assigned == node_pb2.ROLE_RW)
    one_writer = len(running_rw) == 1 and running_rw == told_rw == assigned_rw and status.writer == running_rw[0]

    decide_gauge = sorted(s * 1000 for s in metrics.samples)
    summary0 = metric_values(text0, "jfs_milvus_decide_duration_seconds_count")
    summary1 = metric_values(text1, "jfs_milvus_decide_duration_seconds_count")
    sums0 = metric_values(text0, "jfs_milvus_decide_duration_seconds_sum")
    sums1 = metric_values(text1, "jfs_milvus_decide_duration_seconds_sum")
    quantiles = metric_values(text1, "jfs_milvus_decide_duration_seconds")
    decide: dict[str, Any] = {
        "gauge_samples": len(decide_gauge),
        "p50_ms": round(percentile(decide_gauge, 50), 3),
        "p99_ms": round(percentile(decide_gauge, 99), 3),
        "max_ms": round(decide_gauge[-1], 3) if decide_gauge else 0.0,
    }
    if summary0 and summary1:
        ticks = sum(summary1.values()) - sum(summary0.values())
        spent = sum(sums1.values()) - sum(sums0.values())
        decide["ticks_per_s"] = round(ticks / wall, 2)
        decide["mean_ms_window"] = round(spent / ticks * 1000, 3) if ticks else 0.0
        for labels, value in quantiles.items():
            q = re.search(r'quantile="([0-9.]+)"', labels)
            if q:
                decide[f"summary_q{q.group(1)}_ms"] = round(value * 1000, 3)

    host_busy = sum(host1) - sum(host0) - (host1.idle - host0.idle) - (host1.iowait - host0.iowait)
    ours = sum(b - a for a, b in zip(cpu0, cpu1, strict=True))
    rss_mib = [b / 2**20 for b in rss.rss] or [psutil.Process(cpid).memory_info().rss / 2**20]
    out = {
        "nodes": n,
        "seconds": round(wall, 1),
        "settled_after_s": round(settled_after, 1),
        "report_latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(latencies[-1], 2) if latencies else 0.0,
            "count": len(latencies),
        },
        "reports_per_s": round(len(latencies) / wall, 1),
        "failed_rpcs": failed,
        "coordinator_cpu_pct": round((cpu1[0] - cpu0[0]) / wall * 100, 1),
        # CPU time per report answered: what the coordinator costs, less swayed by other work on the host.
        "coordinator_cpu_ms_per_report": round((cpu1[0] - cpu0[0]) / max(1, len(latencies)) * 1000, 3),
        # Time its threads were ready but waited for a CPU (other work on the host), percent of the window.
        "coordinator_cpu_wait_pct": round((waited1 - waited0) / wall * 100, 1),
        "coordinator_rss_mib": {"end": round(rss_mib[-1], 1), "max": round(max(rss_mib), 1)},
        "decide_ms": decide,
        "one_writer_at_end": one_writer,
        "writer": status.writer,
        "writers_running": running_rw[:5],
        "writers_assigned": assigned_rw[:5],
        "why_at_end": why_end,
        "agents_self_fenced": sum(r["self_fences"] for r in results),
        "loadgen": {
            "processes": procs,
            "connections": args.connections,
            "cpu_pct": round((cpu1[1] - cpu0[1]) / wall * 100, 1),
            "send_late_ms_p99": round(percentile(late, 99), 2),
            "send_late_ms_max": round(late[-1], 2) if late else 0.0,
            "slots_skipped": sum(r["skipped"] for r in results),
        },
        "mariadb_cpu_pct": round((cpu1[2] - cpu0[2]) / wall * 100, 1),
        # Everything else on the host in the window (other work on a shared machine skews the figures).
        "host": {
            "busy_pct": round(host_busy / wall * 100, 1),
            "others_cpu_pct": round(max(0.0, host_busy - ours) / wall * 100, 1),
            # CPU the hypervisor gave to other guests (counted in busy and others above).
            "steal_pct": round((getattr(host1, "steal", 0.0) - getattr(host0, "steal", 0.0)) / wall * 100, 1),
            "load_average_1m": round(load_average, 2),
        },
    }
    progress(
        f"N={n}: p50 {out['report_latency_ms']['p50']} ms, p99 {out['report_latency_ms']['p99']} ms, "
        f"{out['reports_per_s']} reports/s, coordinator {out['coordinator_cpu_pct']}% CPU, "
        f"decide p50 {decide['p50_ms']} ms, one writer: {one_writer}"
    )
    code = coordinator.stop()
    if code != 0:
        progress(f"N={n}: the coordinator exited {code}")
    if args.keep_logs:
        shutil.copy(coordinator.log_path, Path(args.keep_logs) / coordinator.log_path.name)
        series = sorted(point for r in results for point in r["series"])
        lines = "".join(f"{at:.4f} {lat * 1000:.2f}\n" for at, lat in series)
        (Path(args.keep_logs) / f"latency-n{n}.txt").write_text("# seconds into the window, latency ms\n" + lines)
    conn = server.admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db.name}`")
    finally:
        conn.close()
    return out


def _end_process(p: Any) -> None:
    if p.is_alive():
        p.terminate()
        p.join(5)
    if p.is_alive():
        p.kill()
        p.join(5)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="10,100,1000", help="comma-separated sizes (default 10,100,1000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per size (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the cluster settles (default 5)")
    parser.add_argument("--settle-timeout", type=float, default=90.0, help="limit for one writer to emerge")
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes (default 1)")
    parser.add_argument(
        "--connections",
        choices=("per-agent", "shared"),
        default="per-agent",
        help="one HTTP/2 connection per simulated agent, as real nodes have (default), or one per process",
    )
    parser.add_argument("--tick", type=float, default=0.2, help="coordinator tick_s (default 0.2, as shipped)")
    parser.add_argument("--role-delay", type=float, default=1.0, help="an agent's time to start a role (s)")
    parser.add_argument("--rpc-timeout", type=float, default=2.0, help="Report deadline (s)")
    parser.add_argument("--sample-interval", type=float, default=0.25, help="/metrics sampling period (s)")
    parser.add_argument(
        "--keep-logs", metavar="DIR", help="copy each coordinator's log, and every report's latency, into DIR"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.nodes.split(",") if s.strip()]

    from tests.plugin_mysql import MariaDB, mariadbd_binary

    binary = mariadbd_binary()
    if binary is None:
        progress("mariadbd is not installed")
        return 2
    # SIGTERM ends the run through the same cleanup as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    results = []
    tmp = tempfile.mkdtemp(prefix="jfs-milvus-coordscale-")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, tmp, True)
        root = Path(tmp)
        server = MariaDB(root / "mariadb", binary)
        progress(f"starting a private MariaDB in {root / 'mariadb'}")
        cleanup.callback(server.stop)
        server.install()
        server.start()
        server.ensure_accounts()
        for n in sizes:
            with contextlib.ExitStack() as per_size:
                results.append(run_size(n, server, root, args, per_size))
    measured = (
        "report latency: client side, from just before each Report RPC is sent to its answer, in the load"
        f" generator's grpc.aio event loop ({args.procs} process(es), {args.connections} connection(s));"
        " coordinator CPU: user+system time of its process over the window, percent of one core;"
        " decide: the coordinator's own timing of each tick's decision, from /metrics"
    )
    print(
        json.dumps(
            {"host": {"cpus": os.cpu_count()}, "tick_s": args.tick, "measured": measured, "sizes": results}, indent=2
        )
    )
    return 0 if all(r["one_writer_at_end"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
