"""Run the agent's GPU monitor in this process, for tests that need a fresh LD_LIBRARY_PATH.

glibc reads LD_LIBRARY_PATH once, at process start, so a test starts this module as a child with the
fake library's directory first on it:

    python -m tests.fakenvml.drive_monitor [--settings JSON]    # monitor, driven by stdin
    python -m tests.fakenvml.drive_monitor --probe [--settings JSON]

Monitor mode prints one JSON object per line on stdout: {"event": "ready"} once started, then for each
stdin line "snapshot" a {"event": "snapshot", "report": {...}}, and for "stop" (or end of input)
{"event": "stopped", "stop_s": seconds} before exiting. Probe mode prints {"event": "probe", "report":
{...}} and exits. Logs go to stderr. --settings holds GpuSettings fields, e.g. {"xid_hold_s": 5}.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from agent.config import GpuSettings
from agent.gpu import GpuMonitor, probe_gpus


def settings_from_json(text: str | None) -> GpuSettings:
    fields: dict[str, Any] = json.loads(text) if text else {}
    if "fatal_xids" in fields:
        fields["fatal_xids"] = tuple(fields["fatal_xids"])
    return GpuSettings(**fields)


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def run_monitor(settings: GpuSettings) -> int:
    monitor = GpuMonitor(settings)
    monitor.start()
    emit({"event": "ready"})
    for line in sys.stdin:
        command = line.strip()
        if command == "snapshot":
            emit({"event": "snapshot", "report": monitor.snapshot().to_dict()})
        elif command == "stop":
            break
        elif command:
            emit({"event": "error", "message": f"unknown command {command!r}"})
    started = time.monotonic()
    monitor.stop()
    emit({"event": "stopped", "stop_s": time.monotonic() - started})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="one look (probe_gpus), then exit")
    parser.add_argument("--settings", help="GpuSettings fields as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    settings = settings_from_json(args.settings)
    if args.probe:
        emit({"event": "probe", "report": probe_gpus(settings).to_dict()})
        return 0
    return run_monitor(settings)


if __name__ == "__main__":
    sys.exit(main())
