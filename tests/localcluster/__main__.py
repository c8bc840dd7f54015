"""`scripts/cluster`: a whole jfs-milvus cluster on this machine.

up [--nodes N] [--coordinators N] [--mishards N] [--dir D]   start it (and leave it running; --standin-start-s S)
status [--dir D]                              coordinatorctl status against it
down [--dir D]                                stop it and leave nothing behind
demo [--json]                                 up, then the failover demo (the README's quickstart)
chaos [--ci] [--only NAME] [--json FILE]      the chaos suite on a cluster of its own, then its table
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tests.localcluster.milvusmeta import StandinKnobs
from tests.localcluster.up import DEFAULT_ROOT, MANIFEST, ClusterSpec


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_ROOT, help=f"where the cluster lives ({DEFAULT_ROOT})")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "demo", "chaos"):
        p = sub.add_parser(name)
        p.add_argument("--nodes", type=int, help="nodes (3, or 2 more than the Mishards nodes)")
        p.add_argument("--mishards", type=int, default=1, metavar="N", help="Mishards nodes, never writers (1)")
        p.add_argument("--coordinators", type=int, default=2)
        p.add_argument("--no-tls", action="store_true", help="plaintext on loopback instead of mutual TLS")
        p.add_argument(
            "--standin-start-s",
            type=float,
            default=StandinKnobs.start_s,
            metavar="S",
            help=f"the stand-in Milvus's time to serve after its start ({StandinKnobs.start_s:g}, a small real node)",
        )
    sub.choices["demo"].add_argument("--json", action="store_true", help="print the figures as JSON at the end")
    chaos = sub.choices["chaos"]
    chaos.add_argument("--ci", action="store_true", help="only the short selection CI runs")
    chaos.add_argument("--only", action="append", default=[], metavar="NAME", help="scenarios whose name has NAME")
    chaos.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    chaos.add_argument("--logs", type=Path, metavar="DIR", help="keep every agent's and coordinator's log here")
    sub.add_parser("status")
    sub.add_parser("down")
    args = parser.parse_args(argv)
    root = args.dir.resolve()

    if args.command == "down":
        from tests.localcluster.down import tear_down

        left = tear_down(root, say)
        for item in left:
            say(f"left behind: {item}")
        if not left:
            say(f"stopped; nothing of the cluster in {root} is left on this machine")
        return 1 if left else 0
    if args.command == "status":
        manifest = root / MANIFEST
        if not manifest.exists():
            say(f"no cluster is up in {root} (scripts/cluster up)")
            return 1
        env = dict(os.environ)
        for line in (root / "env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                env[key] = value
        from tests.localcluster.up import coordinatorctl_path

        ctl = coordinatorctl_path()
        os.execve(ctl, [ctl, "status"], env)

    timing = {"failover_window_s": 0} if args.command == "chaos" else {}
    nodes = args.nodes if args.nodes is not None else max(3, args.mishards + 2)
    spec = ClusterSpec(
        root, nodes, args.coordinators, tls=not args.no_tls, timing=timing, mishards=args.mishards,
        standin=StandinKnobs(start_s=args.standin_start_s),
    )  # fmt: skip
    if args.command == "up":
        from tests.localcluster.up import bring_up

        rc = bring_up(spec, say)
        say(f"up in {rc.started_in_s:.0f}s; {root / MANIFEST} says where everything is")
        print(json.dumps(rc.manifest(), indent=2))
        say(f"operate it: . {root}/env && coordinatorctl status; stop it: scripts/cluster down")
        return 0
    if args.command == "demo":
        from tests.localcluster.demo import print_json, run_demo

        result = run_demo(spec, say)
        if args.json:
            print_json(result)
        return 0 if not result["flushed_lost"] and not result["overlaps"] else 1
    return run_chaos(spec, args)


def run_chaos(spec: ClusterSpec, args: argparse.Namespace) -> int:
    from tests.localcluster.chaos import SCENARIOS, as_json, run_suite, table
    from tests.localcluster.down import keep_logs, tear_down
    from tests.localcluster.up import bring_up

    chosen = [s for s in SCENARIOS if (not args.ci or s.ci) and (not args.only or any(o in s.name for o in args.only))]
    say(f"chaos: {len(chosen)} scenarios on a cluster of {spec.nodes} nodes in {spec.root}")
    rc = bring_up(spec, say)
    try:
        results = run_suite(rc, chosen, say)
    finally:
        if args.logs:
            keep_logs(spec.root, args.logs, say)
        tear_down(spec.root, say)
    print(table(results), flush=True)
    if args.json:
        args.json.write_text(as_json(results) + "\n")
    return 0 if all(r.outcome == "ok" for r in results) else 1


def run() -> int:
    from tests.localcluster.cluster import ClusterSetupError

    try:
        return main()
    except (RuntimeError, ClusterSetupError, AssertionError) as exc:  # already up, a missing part, a timeout
        say(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        say("whatever came up is still there: scripts/cluster down removes it (logs are in its folder first)")
        return 2


if __name__ == "__main__":
    sys.exit(run())
