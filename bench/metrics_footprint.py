"""What prometheus_client costs the agent: resident memory and start time with and without it.

Each variant runs in a fresh process, --runs times, alternated (the JSON gives medians and the spread):

- `without`: imports every module `jfs-milvus-agent run` imports (agent.runner's imports) except agent.metrics,
  with prometheus_client made unimportable, so that nothing else brings it in;
- `with`: the same, then agent.metrics (the /metrics exposition, which imports prometheus_client), and renders
  the page of an --gpus node (tests/obsdata.py: GPUs with XIDs, a rw mount, a lease, Milvus, Mishards) --renders
  times, with the process_* metrics, as the agent serves it.

Reported: resident memory (VmRSS) after the agent's imports and after the exposition, the import time of each,
the time per render, the page's size; `prometheus_client_adds` is the difference of the medians. Before the
agent used prometheus_client its hand-written text took 0.5 ms a render (README, "Dashboards and alerts").
The agent's whole footprint (threads, Docker, gRPC, NVML: 55.6-56.9 MiB against a 60 MiB target) is
bench/agent_footprint.py.

    .venv/bin/python bench/metrics_footprint.py [--runs 7] [--gpus 8] [--renders 300]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# What agent.runner imports, but agent.metrics.
AGENT_MODULES = (
    "agent.api",
    "agent.config",
    "jfsmilvus.common.configschema",
    "agent.coordination",
    "agent.daemon",
    "jfsmilvus.common.logsetup",
    "jfsmilvus.common.sdnotify",
)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(variant: str, gpus: int, renders: int) -> dict[str, float]:
    import importlib

    sys.modules["prometheus_client"] = None  # type: ignore[assignment]  # an import of it fails from here
    started = time.perf_counter()
    for name in AGENT_MODULES:
        importlib.import_module(name)
    agent_s = time.perf_counter() - started
    rss_agent = rss_mib()
    out = {"import_agent_ms": agent_s * 1000, "rss_after_agent_mib": rss_agent}
    if variant == "without":
        return {**out, "import_exposition_ms": 0.0, "rss_after_exposition_mib": rss_agent}
    del sys.modules["prometheus_client"]
    started = time.perf_counter()
    from agent.metrics import render_metrics

    out["import_exposition_ms"] = (time.perf_counter() - started) * 1000
    from tests.obsdata import agent_status  # a few dataclasses the agent has imported already

    status = agent_status(gpus=gpus)
    render_metrics(status, process=True)
    started = time.perf_counter()
    for _ in range(renders):
        text = render_metrics(status, process=True)
    out["render_ms"] = (time.perf_counter() - started) / renders * 1000
    out["page_bytes"] = float(len(text.encode()))
    out["rss_after_exposition_mib"] = rss_mib()
    assert "DCGM_FI_DEV_GPU_UTIL" in text and "process_resident_memory_bytes" in text
    return out


def summarize(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        key: {
            "median": round(statistics.median(r[key] for r in runs), 3),
            "min": round(min(r[key] for r in runs), 3),
            "max": round(max(r[key] for r in runs), 3),
        }
        for key in runs[0]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per variant (default 7)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs on the node (default 8)")
    parser.add_argument("--renders", type=int, default=300, help="renders per process (default 300)")
    parser.add_argument("--child", choices=("without", "with"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.gpus, args.renders)))
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "proto"), str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    results: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    for _ in range(args.runs):
        for variant in results:  # alternated, so that the machine's load falls on both alike
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    variant,
                    "--gpus",
                    str(args.gpus),
                    "--renders",
                    str(args.renders),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            results[variant].append(json.loads(out.stdout))
    import importlib.metadata

    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    report = {
        "python": platform.python_version(),
        "prometheus_client": importlib.metadata.version("prometheus_client"),
        "gpus": args.gpus,
        "runs": args.runs,
        "renders": args.renders,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "variants": {v: summarize(r) for v, r in results.items()},
        "prometheus_client_adds": {
            "rss_mib": round(
                median("with", "rss_after_exposition_mib") - median("without", "rss_after_exposition_mib"), 2
            ),
            "import_ms": round(median("with", "import_exposition_ms"), 1),
            "render_ms": round(median("with", "render_ms"), 3),
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
