"""Agent footprint: resident memory, CPU and loop period of `jfs-milvus-agent run` on a working node.

Sets up what a node has (a real Redis + `juicefs format` volume mounted by the agent, the stand-in Milvus
container in the rw role, a fake set of GPUs through the real pynvml and the test's fake libnvidia-ml.so.1),
runs the agent daemon for --seconds, samples it, and prints JSON. Needs root, Docker, FUSE, Redis (run
./scripts/setup-test-env once). Target: under 60 MiB resident and under 1% of one core at a 1 s loop.

    .venv/bin/python bench/agent_footprint.py --seconds 120 --gpus 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

from agent.config import JuicefsSettings, VolumeSettings  # noqa: E402
from agent.mount import MountManager  # noqa: E402
from agent.secrets import SecretRef  # noqa: E402
from tests.agentconf import write_agent_yaml  # noqa: E402
from tests.fakenvml.build import build_fake_nvml  # noqa: E402
from tests.plugin_agent import free_port, wait_until  # noqa: E402
from tests.plugin_gpu import FakeGpu, FakeNvmlConfig  # noqa: E402
from tests.plugin_juicefs import JfsTestVolume, RedisServer, cleanup_mounts_under, require_fuse_mounts  # noqa: E402
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
    parser.add_argument("--profile", metavar="FILE", help="run the agent under cProfile and write its stats to FILE")
    args = parser.parse_args()

    binary = require_fuse_mounts_or_exit()
    image = ensure_standin_image()
    lib_dir = build_fake_nvml()
    with tempfile.TemporaryDirectory(prefix="jfs-milvus-bench-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root / "redis")
        redis.start()
        agent = None
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
            metrics_port = free_port()
            http_port = free_port()
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
                },
            )
            env = dict(
                os.environ,
                LD_LIBRARY_PATH=str(lib_dir),
                FAKE_NVML_CONFIG=str(nvml_conf),
            )
            subprocess.run(
                [sys.executable, "-m", "agent.cli", "assign", "rw", "--epoch", "1", "--config", config],
                check=True,
                env=env,
                cwd=REPO,
                capture_output=True,
            )
            progress(f"running the agent with {args.gpus} fake GPUs, a rw mount and a rw stand-in container")
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
            loops1 = metric(scrape(), "jfs_milvus_agent_loops_total")
            cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            steady = rss[len(rss) // 2 :]
            result = {
                "benchmark": "agent_footprint",
                "seconds_measured": round(elapsed, 1),
                "gpus": args.gpus,
                "loop_interval_s": args.loop,
                "rss_mib_peak": round(max(rss) / 2**20, 1),
                "rss_mib_steady_median": round(statistics.median(steady) / 2**20, 1),
                "cpu_seconds_per_minute": round(cpu_s / elapsed * 60, 3),
                "cpu_percent_of_one_core": round(cpu_s / elapsed * 100, 2),
                "loops": int(loops1 - loops0),
                "loop_period_achieved_s": round(elapsed / max(1.0, loops1 - loops0), 3),
                "cycle_duration_ms_median": round(statistics.median(cycle) * 1000, 1),
                "cycle_duration_ms_max": round(max(cycle) * 1000, 1),
                "targets": {"rss_mib": 60, "cpu_percent_of_one_core": 1.0},
            }
            result["meets_targets"] = result["rss_mib_peak"] < 60 and result["cpu_percent_of_one_core"] < 1.0
            print(json.dumps(result, indent=2))
            return 0
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(15)
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
            cleanup_mounts_under(tmp)
            redis.stop()


def require_fuse_mounts_or_exit() -> str:
    try:
        return require_fuse_mounts()
    except BaseException as exc:  # pytest.skip raises a BaseException subclass outside pytest
        print(f"agent_footprint: cannot run here: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    raise SystemExit(main())
