"""A Mishards node of the local cluster: the Mishards container its agent runs, and which writer it routed to
when (so that a write acknowledged through Mishards can be said to be the new writer's).

Mishards does not say which Milvus acknowledged a write. The agent replaces its container on every change of
writer (the old one is removed before the new one is created, under the same name), and labels it with the
writer it was given, so the container running at an acknowledgement's time is the one that served it: the
latest one started before it. `RouteTimeline` polls the container and keeps (start, writer) of each.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from agent.mishards.container import LABEL_HOSTS, LABEL_WRITER
from agent.mishards.probe import milvus_answers
from tests.localcluster.cluster import ClusterNode
from tests.standin.container import docker as docker_cli


@dataclass(frozen=True)
class MishardsStart:
    """One container the agent started: its Docker id, when (unix), and the writer it was given."""

    id: str
    started_unix: float
    writer: str  # WOSERVER, tcp://host:port


@dataclass
class MishardsHost:
    node: ClusterNode
    env_file: Path
    container: str
    port: int

    @property
    def address(self) -> str:
        """Where a client reaches this Mishards (it binds every address of the host: the node's is one)."""
        return f"{self.node.address}:{self.port}"

    def routes(self) -> dict[str, Any] | None:
        """What the Mishards container the agent runs routes to (its labels), None while it does not serve."""
        done = docker_cli("inspect", "-f", "{{json .Config.Labels}}", self.container, check=False)
        if done.returncode != 0 or milvus_answers(self.node.address, self.port, 1.0) is not None:
            return None
        labels = json.loads(done.stdout)
        hosts = [h for h in labels.get(LABEL_HOSTS, "").split(",") if h]
        return {"writer": labels.get(LABEL_WRITER, ""), "readers": hosts, "port": self.port}

    def running_start(self, client: docker.DockerClient) -> MishardsStart | None:
        """The container running now under this name, or None."""
        try:
            c = client.containers.get(self.container)
        except docker.errors.NotFound:
            return None
        state = c.attrs.get("State", {})
        if state.get("Status") != "running":
            return None
        started = datetime.fromisoformat(state["StartedAt"]).timestamp()
        return MishardsStart(c.id, started, (c.labels or {}).get(LABEL_WRITER, ""))


@dataclass
class RouteTimeline:
    """Every Mishards container seen running on one host, in order of start, polled every `period_s`."""

    host: MishardsHost
    period_s: float = 0.1
    starts: list[MishardsStart] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RouteTimeline:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        client = docker.from_env()
        try:
            while not self._stop.is_set():
                try:
                    seen = self.host.running_start(client)
                except docker.errors.DockerException:
                    seen = None
                if seen is not None:
                    self._add(seen)
                self._stop.wait(self.period_s)
        finally:
            client.close()

    def _add(self, seen: MishardsStart) -> None:
        with self._lock:
            if any(s.id == seen.id for s in self.starts):
                return
            self.starts.append(seen)
            self.starts.sort(key=lambda s: s.started_unix)

    def writer_at(self, monotonic: float) -> str | None:
        """WOSERVER of the container that ran at `monotonic` (the latest started before it), None if none yet."""
        unix = monotonic + (time.time() - time.monotonic())
        with self._lock:
            times = [s.started_unix for s in self.starts]
            i = bisect.bisect_right(times, unix)
            return self.starts[i - 1].writer if i else None

    def first_start_with(self, writer: str, after_unix: float) -> float | None:
        """When (unix) the first container given `writer` started after `after_unix`."""
        with self._lock:
            return next(
                (s.started_unix for s in self.starts if s.writer == writer and s.started_unix > after_unix), None
            )
