"""Keeps the agent's Mishards container in step with the coordinator's discovery config, off the main loop.

The loop hands over what it wants (`want`); this thread probes the writer and every listed host with
`Cmd version` (bounded), asks `plan` what to do, and replaces the container when the writer or the answering
hosts changed, when the container is gone or stopped, or when a left-out host answers again. Status (container,
writer, hosts, left out, hold, error, foreign containers that override the settings) is read by the API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.milvus.container import DockerUnavailable
from agent.mishards.container import MishardsContainer, MishardsDocker, MishardsStartError
from agent.mishards.plan import Plan, container_environment, environment_hash, overriding_keys, plan
from agent.saywhy import gist

log = logging.getLogger("jfs_milvus.agent")

Probe = Callable[[str, int, float], str | None]


@dataclass(frozen=True)
class MishardsWant:
    image: str
    name: str
    values: dict[str, str]  # owned_values: WOSERVER, DISCOVERY_STATIC_HOSTS, ...
    writer_host: str
    writer_port: int
    hosts: tuple[str, ...]
    host_port: int
    hold_s: float
    probe_timeout_s: float


class MishardsKeeper:
    def __init__(self, docker: MishardsDocker, probe: Probe, interval_s: float = 1.0) -> None:
        self._docker, self._probe, self._interval_s = docker, probe, interval_s
        self._want: MishardsWant | None = None
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._held_since: float | None = None
        self._last_reason = ""
        self._last_foreign_check = 0.0
        self.status: dict[str, Any] = {"container": None, "state": "not started", "error": ""}
        self.started_count = 0
        self.last_started_unix = 0.0

    def want(self, want: MishardsWant) -> None:
        with self._lock:
            changed = want != self._want
            self._want = want
        if changed:
            self._wake.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mishards-keeper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            with self._lock:
                want = self._want
            if want is None:
                continue
            try:
                self.step(want)
            except Exception as exc:  # the keeper must never die; the error is shown in status
                log.exception("Mishards keeper step failed")
                self._set(error=f"Mishards keeper: {exc}")

    def _set(self, **fields: Any) -> None:
        self.status = {**self.status, **fields}

    def step(self, want: MishardsWant) -> None:
        """One look: probe, plan, act. Called from the keeper thread (or a test)."""
        try:
            found = self._docker.find(want.name)
        except DockerUnavailable as exc:
            self._set(state="unknown", error=f"Mishards container {want.name} not found: {exc}")
            return
        self._check_foreign(want)
        if found is not None and found.ours and not found.running and time.time() - self.last_started_unix < 5:
            self._set(
                container=_describe(found),
                state="exited",
                error=f"Mishards container {want.name} exited (code {found.exit_code}); starting it again shortly",
            )
            return
        writer = f"{want.writer_host}:{want.writer_port}"
        writer_problem = self._probe(want.writer_host, want.writer_port, want.probe_timeout_s)
        problems = {h: self._probe(h, want.host_port, want.probe_timeout_s) for h in want.hosts}
        now = time.monotonic()
        if writer_problem is None:
            self._held_since = None
        elif self._held_since is None:
            self._held_since = now
        held_s = 0.0 if self._held_since is None else now - self._held_since
        running = found if found is not None and found.ours and found.running else None
        decision = plan(
            want.values["WOSERVER"],
            writer_problem,
            want.hosts,
            problems,
            held_s,
            want.hold_s,
            running.hosts if running and self._matches(want, running) else None,
            running.writer if running and self._matches(want, running) else None,
        )
        if gist(decision.reason) != gist(self._last_reason):  # a hold's "(12s of 60s)" is the same hold
            (log.warning if decision.action in ("hold", "refuse") else log.info)("Mishards: %s", decision.reason)
            self._last_reason = decision.reason
        self._set(
            writer=writer,
            listed_hosts=list(want.hosts),
            left_out=list(decision.left_out),
            held_s=round(held_s, 1),
            decision=decision.action,
            reason=decision.reason,
        )
        if decision.action == "keep":
            self._set(container=_describe(running), state="running", error="")
            return
        if decision.action in ("hold", "refuse"):
            stopped = found is not None and found.ours and not found.running
            error = decision.reason if decision.action == "refuse" or stopped else ""
            if found is None:
                error = f"no Mishards container {want.name} runs yet; {decision.reason}"
            self._set(container=_describe(found), state="held" if decision.action == "hold" else "refused", error=error)
            return
        self._replace(want, decision)

    def _replace(self, want: MishardsWant, decision: Plan) -> None:
        """Start the Mishards container the decision asks for, in place of the one there (if any)."""
        environment = container_environment(want.values, decision.hosts)
        began = time.monotonic()
        try:
            started = self._docker.replace(
                want.name,
                want.image,
                environment,
                want.values["WOSERVER"],
                decision.hosts,
                environment_hash(want.image, environment),
            )
        except (MishardsStartError, DockerUnavailable) as exc:
            self._set(container=None, state="not started", error=f"Mishards container {want.name} not started: {exc}")
            log.error("Mishards container %s not started: %s", want.name, exc)
            return
        self.started_count += 1
        self.last_started_unix = time.time()
        log.info("started Mishards container %s in %.2fs: %s", want.name, time.monotonic() - began, decision.reason)
        self._set(container=_describe(started), state="running", error="", started_unix=self.last_started_unix)

    @staticmethod
    def _matches(want: MishardsWant, running: MishardsContainer) -> bool:
        """The running container was started from this image with these settings (bar the narrowed host list)."""
        return running.env_hash == environment_hash(want.image, container_environment(want.values, running.hosts))

    def _check_foreign(self, want: MishardsWant) -> None:
        now = time.monotonic()
        if now - self._last_foreign_check < 30 and "foreign" in self.status:
            return
        self._last_foreign_check = now
        try:
            foreign = self._docker.foreign(want.name)
        except DockerUnavailable:
            return
        self._set(
            foreign=[
                {"name": f.name, "state": f.status, "overriding_keys": keys}
                for f in foreign
                if (keys := overriding_keys(f.environment))
            ]
        )


def _describe(found: MishardsContainer | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {
        "name": found.name,
        "id": found.id,
        "state": found.status,
        "ours": found.ours,
        "writer": found.writer,
        "hosts": list(found.hosts),
        "exit_code": found.exit_code,
    }
