"""What a JuiceFS mount is, as `MountManager.observe()` sees it: state, mode, reasons, probes, its device."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.mount.health import MetaObservation, State

Mode = Literal["ro", "rw"]


@dataclass(frozen=True)
class MountStatus:
    volume: str
    mountpoint: str
    configured_in_fstab: bool
    mounted: bool
    mode: Mode | None
    state: State
    reasons: tuple[str, ...] = ()
    write_probe_ms: float | None = None
    session_id: int | None = None
    hung_since: str | None = None
    hung_for_s: float | None = None
    not_connected: bool = False
    meta_engine: MetaObservation = field(default_factory=MetaObservation)
    cache_dir_writable: bool | None = None  # JuiceFS' local cache directory (on local disk, never hangs)
    # The mount's device (mountinfo's major:minor, one per FUSE connection): a container started on this mount
    # sees the same one at its bind mount; one that differs was started on a mount since replaced.
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "volume": self.volume,
            "mountpoint": self.mountpoint,
            "configured_in_fstab": self.configured_in_fstab,
            "mounted": self.mounted,
            "mode": self.mode,
            "state": self.state,
            "reasons": list(self.reasons),
            "write_probe_ms": None if self.write_probe_ms is None else round(self.write_probe_ms, 3),
            "session_id": self.session_id,
            "hung_since": self.hung_since,
            "hung_for_s": None if self.hung_for_s is None else round(self.hung_for_s, 1),
            "cache_dir_writable": self.cache_dir_writable,
            "device": self.device,
            "meta_engine": {
                "reachable": self.meta_engine.reachable,
                "latency_ms": self.meta_engine.latency_ms,
                "error": self.meta_engine.error,
                "maxmemory_policy": self.meta_engine.maxmemory_policy,
                "warnings": list(self.meta_engine.warnings),
            },
        }


def cache_dir_writable(path: str) -> bool:
    """The cache directory is writable, or can be created (JuiceFS makes it at mount)."""
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return False
        probe = parent
    return os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK)
