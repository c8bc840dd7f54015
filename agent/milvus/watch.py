"""What the loop remembers about the running Milvus container between cycles: when it started, the mount device
its db bind mount shows, and when it last passed its health check; and the crash backoff of its restarts."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from agent.milvus.container import ContainerState, DockerUnavailable, MilvusDocker
from agent.milvus.server_config import CONTAINER_DB_DIR

BACKOFF_MAX_S = 60.0
HEALTHY_RESETS_BACKOFF_S = 60.0


@dataclass
class CrashBackoff:
    """Restart delay after crashes: 1, 2, 4 ... 60 s; forgotten after a minute of health."""

    crashes: int = 0
    restarts: int = 0
    not_before: float = 0.0

    def crashed(self, now: float) -> float:
        self.crashes += 1
        delay = min(BACKOFF_MAX_S, 2.0 ** (self.crashes - 1))
        self.not_before = now + delay
        return delay

    def healthy_for(self, seconds: float) -> None:
        if seconds >= HEALTHY_RESETS_BACKOFF_S:
            self.crashes = 0

    def left(self, now: float) -> float:
        return max(0.0, self.not_before - now)


def started_seconds_ago(started_at: str | None) -> float:
    """Seconds since Docker's StartedAt (RFC 3339, nanoseconds); 0 when it is unset or cannot be read."""
    if not started_at or started_at.startswith("0001-"):
        return 0.0
    text = started_at.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        started = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    except ValueError:
        return 0.0
    return max(0.0, (dt.datetime.now(dt.UTC) - started).total_seconds())


class ContainerWatch:
    """Per running container, what Docker is asked once and what the loop's health checks add up to."""

    def __init__(self, docker: MilvusDocker) -> None:
        self.docker = docker
        self._started: dict[str, float] = {}  # container id -> when it started (monotonic)
        self._devices: dict[str, str] = {}  # container id -> the mount device its db bind mount shows
        self._last_healthy: tuple[str, float] = ("", 0.0)  # (container id, when it last passed its health check)

    def running_for(self, container: ContainerState) -> float:
        """Seconds since the container started; asked of Docker once per container, then remembered."""
        if self._started.get(container.id) is None:
            try:
                started = self.docker.started_at(container.id)
            except DockerUnavailable:
                return 0.0
            self._started = {container.id: time.monotonic() - started_seconds_ago(started)}
        return time.monotonic() - self._started[container.id]

    def mount_device(self, container: ContainerState) -> str | None:
        """The device of the mount the container's db bind mount shows. A device read is remembered (it never
        changes while the container runs, and a restart is a new container); a read that found none (its /proc
        could not be read, Docker did not answer) is tried again next cycle, so rule 5d is never off for good."""
        device = self._devices.get(container.id)
        if device is not None:
            return device
        try:
            device = self.docker.device_inside(container.id, CONTAINER_DB_DIR)
        except DockerUnavailable:
            return None
        if device is not None:
            self._devices = {container.id: device}
        return device

    def unhealthy_for(self, container_id: str, healthy: bool) -> float | None:
        """Seconds since the running container last passed its health check; None when it has not answered yet
        (since it started, as far as this agent process has seen)."""
        now = time.monotonic()
        if healthy:
            self._last_healthy = (container_id, now)
            return 0.0
        return now - self._last_healthy[1] if self._last_healthy[0] == container_id else None
