"""From what the probes saw to one state and its reasons (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

State = Literal["healthy", "degraded", "failed", "unmounted"]


@dataclass(frozen=True)
class MetaObservation:
    """What the metadata engine check saw; `reachable` None means it was not checked."""

    reachable: bool | None = None
    latency_ms: float | None = None
    error: str | None = None
    maxmemory_policy: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observations:
    mountpoint: str
    volume_name: str
    mounted: bool = False
    fstype: str | None = None
    source: str | None = None
    not_connected: bool = False
    hung_since: str | None = None
    hung_during: str | None = None
    probe_error: str | None = None
    config_read: bool = False
    read_only: bool | None = None
    write_probe_ms: float | None = None
    write_probe_error: str | None = None
    write_limit_ms: float = 2000.0
    meta: MetaObservation = field(default_factory=MetaObservation)


@dataclass(frozen=True)
class WriteProbeResult:
    """The last write probe that finished on a mount, kept until the next one is due."""

    mount_id: int  # /proc/self/mountinfo's id: a new mount (remount, recovery) is probed afresh
    at: float  # monotonic
    write_ms: float | None
    write_error: str | None


def write_probe_due(
    last: WriteProbeResult | None, mount_id: int, now: float, interval_s: float, limit_ms: float
) -> bool:
    """Write at this observation? Yes for a new mount, after a problem (so recovery shows at once), and every
    `interval_s`; in between, the last result stands. A mount whose writes hang is seen within interval_s plus
    the probe timeout; one that hangs entirely is seen at every observation, by the stat and `.config` read."""
    if interval_s <= 0 or last is None or last.mount_id != mount_id:
        return True
    if last.write_error is not None or last.write_ms is None or last.write_ms > limit_ms:
        return True
    return now - last.at >= interval_s


def classify(o: Observations) -> tuple[State, list[str]]:
    """The state of one mount: unmounted, failed, degraded or healthy, each with its reasons."""
    reasons: list[str] = []
    meta_down = o.meta.reachable is False
    if meta_down:
        reasons.append(f"metadata engine unreachable: {o.meta.error or 'no answer'}")
    if not o.mounted:
        return "unmounted", [f"nothing is mounted at {o.mountpoint}", *reasons]
    expected = f"JuiceFS:{o.volume_name}"
    if o.fstype != "fuse.juicefs" or o.source != expected:
        return "failed", [
            f"{o.mountpoint} holds {o.fstype} from {o.source}, not fuse.juicefs from {expected}",
            *reasons,
        ]
    if o.not_connected:
        return "failed", [
            f"{o.mountpoint}: transport endpoint is not connected (juicefs process gone: ENOTCONN/ECONNABORTED)",
            *reasons,
        ]
    if o.hung_since is not None:
        during = f" ({o.hung_during})" if o.hung_during else ""
        return "failed", [f"{o.mountpoint} hung since {o.hung_since}{during}", *reasons]
    if o.probe_error is not None:
        return "failed", [f"{o.mountpoint}: {o.probe_error}", *reasons]
    if not o.config_read:
        return "failed", [f"{o.mountpoint}/.config did not answer", *reasons]
    if o.write_probe_error is not None:
        return "failed", [f"write probe failed: {o.write_probe_error}", *reasons]
    if meta_down:
        return "failed", reasons
    if o.write_probe_ms is not None and o.write_probe_ms > o.write_limit_ms:
        return "degraded", [
            f"write probe took {o.write_probe_ms:.0f} ms, over the {o.write_limit_ms:.0f} ms limit",
        ]
    return "healthy", []
