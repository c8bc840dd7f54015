"""Agent footprint: resident memory, CPU and loop period of `jfs-milvus-agent run` on a working node.

Sets up what a node has (a real Redis + `juicefs format` volume mounted by the agent, the stand-in Milvus
container in the rw role, a fake set of GPUs through the real pynvml and the test's fake libnvidia-ml.so.1),
runs the agent daemon for --seconds, samples it, and prints JSON. Needs root, Docker, FUSE, Redis (run
./scripts/setup-test-env once). Target: under 60 MiB resident and under 1% of one core at a 1 s loop.

With --coordinator the agent runs as in a coordinated cluster: it reports every second to a scripted coordinator
(tests.fake_coordinator, in this process) that leads and grants it rw with a 3 s lease, so the report (a full
NodeObservation over gRPC) and the lease file renewal are part of the load. The JSON splits the CPU seconds by
thread (names from `py-spy dump` when py-spy is installed). --profile FILE samples the agent with py-spy (the
thread holding the GIL: Python at work) during the measured time and writes collapsed stacks to FILE, with a
summary on stderr; CPU figures of a profiled run are not comparable.

    .venv/bin/python bench/agent_footprint.py --seconds 120 --gpus 8
    .venv/bin/python bench/agent_footprint.py --seconds 120 --gpus 8 --coordinator
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jfsmilvus.common.secrets import SecretRef  # noqa: E402

from agent.config import JuicefsSettings, VolumeSettings  # noqa: E402
from agent.mount import MountManager  # noqa: E402
from tests.agentconf import write_agent_yaml  # noqa: E402
from tests.fake_coordinator import FakeCoordinator, rw  # noqa: E402
from tests.fakenvml.build import build_fake_nvml  # noqa: E402
from tests.localcluster.milvusmeta import BridgedMariaDB, bridge_gateway, grant_milvus_meta  # noqa: E402
from tests.plugin_agent import free_port, wait_until  # noqa: E402
from tests.plugin_gpu import FakeGpu, FakeNvmlConfig  # noqa: E402
from tests.plugin_juicefs import JfsTestVolume, RedisServer, cleanup_mounts_under, require_fuse_mounts  # noqa: E402
from tests.plugin_mysql import mariadbd_binary  # noqa: E402
from tests.standin.build import ensure_standin_image  # noqa: E402


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    if not match:
        raise KeyError(name)
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time after warm-up (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds ignored at the start (default 10)")
    parser.add_argument("--gpus", type=int, default=8, help="fake GPUs on the node (default 8)")
    parser.add_argument("--loop", type=float, default=1.0, help="agent loop interval in seconds (default 1)")
    parser.add_argument(
        "--coordinator", action="store_true", help="report every second to a fake coordinator that grants rw"
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="sample the agent with py-spy while measuring; collapsed stacks to FILE"
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if args.profile and py_spy is None:
        print("agent_footprint: --profile needs py-spy (pip install py-spy)", file=sys.stderr)
        return 2

    binary = require_fuse_mounts_or_exit()
    image = ensure_standin_image()
    lib_dir = build_fake_nvml()
    with tempfile.TemporaryDirectory(prefix="jfs-milvus-bench-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root / "redis")
        redis.start()
        mariadbd = mariadbd_binary()
        if mariadbd is None:
            print("agent_footprint: mariadbd is not installed (apt-get install mariadb-server)", file=sys.stderr)
            return 2
        mysql = BridgedMariaDB(root / "mariadb", mariadbd, bridge_gateway())  # Milvus's meta, as in a cluster
        mysql.install()
        mysql.start()
        agent = None
        coordinator: FakeCoordinator | None = None
        container = f"milvus-bench-{os.getpid()}"
        try:
            progress("formatting a JuiceFS volume")
            pw = root / "meta.password"
            pw.write_text((redis.password or "") + "\n")
            pw.chmod(0o600)
            subprocess.run(
                [binary, "format", "--storage", "file", "--bucket", str(root / "bucket"), redis.url(1), "benchvol"],
                env=dict(os.environ, META_PASSWORD=redis.password or ""),
                check=True,
                capture_output=True,
            )
            volume = VolumeSettings(
                name="benchvol",
                meta_url=redis.url(1),
                mountpoint=str(root / "mnt"),
                password=SecretRef(file=str(pw)),
                cache_dir=str(root / "cache"),
                cache_size_mib=100,
            )
            settings = JuicefsSettings(
                binary=binary,
                fstab=str(root / "fstab"),
                systemd_dir=str(root / "systemd"),
                secrets_dir=str(root / "secrets"),
                volumes=(volume,),
            )
            test_volume = JfsTestVolume(volume=volume, settings=settings, redis=redis, db=1, root=root)
            MountManager(volume, settings, "bench").ensure("rw")
            (root / "mnt" / "milvus" / "db").mkdir(parents=True)

            nvml_conf = root / "fake-nvml.conf"
            nvml_conf.write_text(
                FakeNvmlConfig(
                    gpus=[
                        FakeGpu(uuid=f"GPU-{i:08d}-0000-0000-0000-000000000000", utilization=10 * i)
                        for i in range(args.gpus)
                    ]
                ).render()
            )
            base = root / "server_config.yaml"
            base.write_text("version: 0.5\n")
            meta = grant_milvus_meta(mysql, "milvus", mysql.bridge)
            meta_password = meta.write_password(root / "milvus-mysql-password")
            metrics_port = free_port()
            http_port = free_port()
            coordination: dict[str, object] = {}
            if args.coordinator:
                coordinator = FakeCoordinator()
                coordinator.lead(rw(epoch=1, lease_ms=3000, writer="bench", reason="the bench grants rw"))
                coordination = {"coordinators": [coordinator.start()]}
            config = write_agent_yaml(
                root / "agent.yaml",
                "bench",
                "127.0.0.1",
                test_volume,
                node={"name": "bench", "address": "127.0.0.1", "agent_port": free_port(), "metrics_port": metrics_port},
                state_dir=str(root / "state"),
                loop_interval_s=args.loop,
                gpu={"enabled": True},  # the default poll (5 s); XIDs are read as they happen
                milvus={
                    "image": image,
                    "container_name": container,
                    "base_config": str(base),
                    "data_dir": str(root / "milvus"),
                    "port": free_port(),
                    "http_port": http_port,
                    "gpus": "none",
                    "flavor": "cpu",
                    "meta_uri": meta.uri(),
                    "meta_password_file": str(meta_password),
                },
                **coordination,
            )
            env = dict(
                os.environ,
                LD_LIBRARY_PATH=str(lib_dir),
                FAKE_NVML_CONFIG=str(nvml_conf),
            )
            if coordinator is None:  # with a coordinator, its answer is the assignment
                subprocess.run(
                    [sys.executable, "-m", "agent.cli", "assign", "rw", "--epoch", "1", "--config", config],
                    check=True,
                    env=env,
                    cwd=REPO,
                    capture_output=True,
                )
            with_coordinator = ", reporting to a fake coordinator" if args.coordinator else ""
            progress(
                f"running the agent with {args.gpus} fake GPUs, a rw mount and a rw stand-in container"
                f"{with_coordinator}"
            )
            log = open(root / "agent.log", "wb")  # noqa: SIM115
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "run", "--config", config],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=log,
            )

            def scrape() -> str:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                    return r.read().decode()

            def running_rw() -> bool:
                try:
                    return 'role="rw"} 2' in scrape()
                except OSError:
                    return False

            wait_until(running_rw, 90, "the agent to run Milvus as rw")
            proc = psutil.Process(agent.pid)
            progress(f"warm-up {args.warmup:.0f}s")
            time.sleep(args.warmup)
            profiler = None
            if args.profile:
                profiler = subprocess.Popen(
                    [py_spy, "record", "--pid", str(agent.pid), "--duration", str(int(args.seconds)), "--rate", "250",
                     "--gil", "--threads", "--format", "raw", "--output", args.profile],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            reports0 = coordinator.count() if coordinator else 0
            names = thread_names(py_spy, agent.pid)
            threads0 = {t.id: t.user_time + t.system_time for t in proc.threads()}
            rss: list[int] = []
            cpu0 = proc.cpu_times()
            loops0 = metric(scrape(), "jfs_milvus_agent_loops_total")
            t0 = time.monotonic()
            cycle: list[float] = []
            next_report = t0 + 15
            last_scrape = 0.0
            while (now := time.monotonic()) - t0 < args.seconds:
                rss.append(proc.memory_info().rss)
                if now - last_scrape >= 15:  # as often as Prometheus would, so scraping costs little
                    cycle.append(metric(scrape(), "jfs_milvus_agent_loop_seconds"))
                    last_scrape = now
                if now >= next_report:
                    progress(f"{now - t0:.0f}/{args.seconds:.0f}s, rss {rss[-1] / 2**20:.1f} MiB")
                    next_report += 15
                time.sleep(0.5)
            elapsed = time.monotonic() - t0
            cpu1 = proc.cpu_times()
            threads1 = {t.id: t.user_time + t.system_time for t in proc.threads()}
            loops1 = metric(scrape(), "jfs_milvus_agent_loops_total")
            cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            reports = (coordinator.count() - reports0) if coordinator else 0
            steady = rss[len(rss) // 2 :]
            result = {
                "benchmark": "agent_footprint",
                "seconds_measured": round(elapsed, 1),
                "gpus": args.gpus,
                "loop_interval_s": args.loop,
                "coordinator": args.coordinator,
                "rss_mib_peak": round(max(rss) / 2**20, 1),
                "rss_mib_steady_median": round(statistics.median(steady) / 2**20, 1),
                "cpu_seconds_per_minute": round(cpu_s / elapsed * 60, 3),
                "cpu_percent_of_one_core": round(cpu_s / elapsed * 100, 2),
                "loops": int(loops1 - loops0),
                "loop_period_achieved_s": round(elapsed / max(1.0, loops1 - loops0), 3),
                "cycle_duration_ms_median": round(statistics.median(cycle) * 1000, 1),
                "cycle_duration_ms_max": round(max(cycle) * 1000, 1),
                "reports_per_second": round(reports / elapsed, 2),
                "cpu_seconds": {"user": round(cpu1.user - cpu0.user, 2), "system": round(cpu1.system - cpu0.system, 2)},
                "cpu_seconds_by_thread": cpu_by_thread(threads0, threads1, names, cpu_s),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "profiled": bool(args.profile),
                "targets": {"rss_mib": 60, "cpu_percent_of_one_core": 1.0},
            }
            result["meets_targets"] = result["rss_mib_peak"] < 60 and result["cpu_percent_of_one_core"] < 1.0
            print(json.dumps(result, indent=2))
            if profiler is not None:
                profiler.wait(60)
                summarize_profile(Path(args.profile))
            return 0
        finally:
            if coordinator is not None:
                coordinator.stop()
            if agent is not None:
                agent.terminate()
                agent.wait(15)
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
            cleanup_mounts_under(tmp)
            redis.stop()
            mysql.stop()


def thread_names(py_spy: str | None, pid: int) -> dict[int, str]:
    """Python's thread names by native thread id, from `py-spy dump` (empty without py-spy)."""
    if py_spy is None:
        return {}
    dump = subprocess.run([py_spy, "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True)
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'^Thread (\d+) \([a-z]+\): "([^"]*)"', dump.stdout, re.M)}


def cpu_by_thread(before: dict[int, float], after: dict[int, float], names: dict[int, str], total: float) -> dict:
    """CPU seconds of each thread alive at the end; threads that came and went (probes) as the remainder."""
    spent: collections.Counter[str] = collections.Counter()
    for tid, cpu in after.items():
        spent[names.get(tid, f"thread {tid}")] += cpu - before.get(tid, 0.0)
    spent["short-lived threads (probes, API calls)"] = total - sum(spent.values())
    return {name: round(cpu, 2) for name, cpu in spent.most_common()}


def summarize_profile(path: Path, top: int = 25) -> None:
    """Print the functions the agent spent its samples in: self (the frame itself) and total (on the stack)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        threads[frames[0]] += count
        own[frames[-1]] += count
        for frame in set(frames[1:]):
            total[frame] += count
    progress(f"profile: {samples} samples in {path}")
    for title, counter in (("threads", threads), ("self", own), ("total", total)):
        progress(f"-- {title}")
        for frame, count in counter.most_common(top):
            progress(f"{count:6d} {100 * count / max(1, samples):5.1f}%  {frame}")


def require_fuse_mounts_or_exit() -> str:
    try:
        return require_fuse_mounts()
    except BaseException as exc:  # pytest.skip raises a BaseException subclass outside pytest
        print(f"agent_footprint: cannot run here: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    raise SystemExit(main())
