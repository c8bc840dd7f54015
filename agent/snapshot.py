"""One agent cycle's observation, as the loop publishes it (`Agent.snapshot`)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.assignment import UNASSIGNED, Assignment
from agent.gpu import GpuReport
from agent.milvus.container import ContainerState
from agent.milvus.situation import Step
from agent.mount import MountStatus


@dataclass(frozen=True)
class NodeSnapshot:
    """One cycle's observation, served by the API, the reports, the metrics and the load balancer's checks.

    Frozen and replaced whole (one assignment of `Agent.snapshot`), so a reader in another thread (the
    reporter) gets one cycle's observation, never parts of two. `highest_epoch` is the one read before the
    cycle observed anything: a report that says "no container at epoch E", which the coordinator's fence takes
    as an old writer's acknowledgement of E, is then true of a moment when this agent already knew E, so no
    step of an older epoch (a rw container being started) can follow it."""

    gpus: GpuReport | None = None
    mounts: tuple[MountStatus, ...] = ()
    container: ContainerState | None = None
    container_healthy: bool = False
    role_running: str = "none"
    assignment: Assignment = UNASSIGNED
    highest_epoch: int = 0
    last_step: Step | None = None
    observed_at: float = 0.0
    loop_seconds: float = 0.0  # duration of the cycle that observed this
    loops: int = 0
    write_probe_ms: float | None = None
