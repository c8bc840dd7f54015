"""Probes of a FUSE mount that may hang: each runs in a daemon thread, and the caller waits a bounded time.

A probe stuck in the kernel (a SIGSTOPped juicefs) cannot be cancelled. `BoundedProbe` remembers it
and, while it is still stuck, starts no other: it answers "hung since T" at once.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jfsmilvus.common.atomicfile import write_atomic

PROBE_DIR = ".jfs-milvus"
WORKER_IDLE_EXIT_S = 60.0
# A dead FUSE daemon: ENOTCONN for new requests, ECONNABORTED for one in flight when it died.
DEAD_FUSE_ERRNOS = frozenset({errno.ENOTCONN, errno.ECONNABORTED})


@dataclass
class Progress:
    """Filled in step by step by a probe, so a caller that stops waiting knows where it got stuck."""

    step: str = "starting"
    done: bool = False
    error: str | None = None
    values: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeOutcome:
    progress: Progress
    hung_since: str | None = None
    hung_for_s: float | None = None  # how long the stuck probe has run (wall clock)

    @property
    def finished(self) -> bool:
        return self.hung_since is None and self.progress.done


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Pending:
    def __init__(self, done: threading.Event | None, progress: Progress, started: float):
        self._done = done
        self.progress = progress
        self.started = started

    def wait(self, deadline: float) -> ProbeOutcome:
        if self._done is not None and self._done.wait(max(0.0, deadline - time.monotonic())):
            return ProbeOutcome(self.progress)
        return ProbeOutcome(
            self.progress, hung_since=_iso(self.started), hung_for_s=max(0.0, time.time() - self.started)
        )


class BoundedProbe:
    """One probe at a time, run by a worker thread of its own; one that outlives its wait is remembered as hung.

    The worker is started once and kept (a thread per probe would cost a thread start every cycle); a worker
    stuck in a hung filesystem stays stuck, and nothing new starts until it comes back."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self._job: tuple[Callable[[Progress], None], Progress, threading.Event] | None = None
        self._busy = False
        self._progress = Progress()
        self._started = 0.0

    def start(self, fn: Callable[[Progress], None]) -> Pending:
        with self._lock:
            if self._busy:
                # Still stuck from an earlier call: report it, start nothing.
                return Pending(None, self._progress, self._started)
            progress, done = Progress(), threading.Event()
            self._job, self._busy = (fn, progress, done), True
            self._progress, self._started = progress, time.time()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"probe-{self.name}", daemon=True)
                self._worker.start()
            else:
                self._wake.notify()
            return Pending(done, progress, self._started)

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._job is None:
                    if not self._wake.wait(WORKER_IDLE_EXIT_S) and self._job is None:
                        self._worker = None  # unused for a while (e.g. a volume dropped by a reload)
                        return
                fn, progress, done = self._job
                self._job = None
            try:
                fn(progress)
            except Exception as exc:  # a probe reports, it never raises into a thread's void
                progress.error = f"{progress.step}: {exc}"
            finally:
                progress.done = True
                with self._lock:
                    self._busy = False
                done.set()

    def stuck_since(self) -> str | None:
        with self._lock:
            return _iso(self._started) if self._busy else None


def read_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def parse_config(text: str) -> dict[str, object]:
    """The few fields of a mount's `.config` the agent reports (it also holds keys: never log it whole)."""
    data = json.loads(text)
    meta = data.get("Meta") or {}
    fmt = data.get("Format") or {}
    return {
        "read_only": bool(meta.get("ReadOnly", False)),
        "session_id": meta.get("Sid"),
        "volume_name": fmt.get("Name"),
    }


def fs_probe(mountpoint: str, probe_name: str | None) -> Callable[[Progress], None]:
    """stat the mount root, read `.config`, and (read-write mount, `probe_name` given) write + fsync + read back."""

    def probe(p: Progress) -> None:
        try:
            steps(p)
        except OSError as exc:
            # The kernel may answer the stat from its attribute cache; ENOTCONN can show up at any step.
            if exc.errno not in DEAD_FUSE_ERRNOS:
                raise
            p.values["not_connected"] = True

    def steps(p: Progress) -> None:
        p.step = f"stat {mountpoint}"
        os.stat(mountpoint)
        p.step = f"reading {mountpoint}/.config"
        with open(os.path.join(mountpoint, ".config"), encoding="utf-8") as f:
            p.values.update(parse_config(f.read()))
        p.values["config_read"] = True
        if probe_name is None or p.values.get("read_only"):
            return
        p.step = "write probe"
        directory = os.path.join(mountpoint, PROBE_DIR)
        path = os.path.join(directory, probe_name)
        payload = f"jfs-milvus write probe {time.time():.6f} {os.getpid()}\n"
        start = time.monotonic()
        try:
            os.makedirs(directory, exist_ok=True)
            write_atomic(path, payload, 0o644)
            with open(path, encoding="utf-8") as f:
                back = f.read()
        except OSError as exc:
            if exc.errno in DEAD_FUSE_ERRNOS:
                raise
            p.values["write_error"] = f"{path}: {exc.strerror or exc}"
            return
        p.values["write_ms"] = (time.monotonic() - start) * 1000.0
        if back != payload:
            p.values["write_error"] = f"{path}: read back {len(back)} bytes that differ from what was written"

    return probe
