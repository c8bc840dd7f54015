"""What the agent reports about its GPUs: plain dataclasses with `to_dict()` for JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.gpu.health import Health, XidRecord


@dataclass(frozen=True)
class GpuStatus:
    index: int
    uuid: str | None
    name: str | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    utilization_pct: int | None
    temperature_c: int | None
    power_w: float | None
    health: Health
    reasons: list[str] = field(default_factory=list)
    xids: list[XidRecord] = field(default_factory=list)
    compute_capability: tuple[int, int] | None = None  # CUDA (major, minor); None: NVML could not say

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "memory_total_bytes": self.memory_total_bytes,
            "memory_used_bytes": self.memory_used_bytes,
            "utilization_pct": self.utilization_pct,
            "temperature_c": self.temperature_c,
            "power_w": self.power_w,
            "health": self.health,
            "reasons": list(self.reasons),
            "xids": [x.to_dict() for x in self.xids],
            "compute_capability": None if self.compute_capability is None else list(self.compute_capability),
        }


@dataclass(frozen=True)
class GpuReport:
    """All GPUs of this node at `collected_at` (Unix seconds). available=False: see `reason`."""

    available: bool
    reason: str | None
    driver_version: str | None
    gpus: list[GpuStatus]
    collected_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "reason": self.reason,
            "driver_version": self.driver_version,
            "gpus": [g.to_dict() for g in self.gpus],
            "collected_at": self.collected_at,
        }
