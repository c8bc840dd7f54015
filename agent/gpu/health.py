"""The GPU health rules, all in one place: pure functions, no NVML, no clock, no I/O.

`judge_gpu_health(readings, xids, settings, now)` turns one reading of a GPU's health counters, plus the
XIDs seen on it, into ("healthy" | "degraded" | "failed", reasons). A GPU is as bad as its worst rule.

| rule                                   | verdict  | why                                                     |
| -------------------------------------- | -------- | ------------------------------------------------------- |
| an NVML call answered GPU_IS_LOST      | failed   | the GPU fell off the bus; only a reset or reboot helps  |
| a fatal XID (settings.fatal_xids)      | failed   | until xid_hold_s after the last one, or for ever (None) |
| uncorrected volatile ECC errors > 0    | failed   | memory returned bad data since the driver loaded        |
| row remapping failed                   | failed   | no spare rows left: the memory cannot be repaired       |
| remapped rows pending                  | degraded | works, but a GPU reset is needed to apply the remap     |
| retired pages pending                  | degraded | works, but a reset is needed to retire the pages        |
| clocks slowed (thermal, HW power brake)| degraded | runs, slower (the SW power cap alone is normal load)     |
| any other NVML error from a call       | degraded | that reading is unknown; the GPU may still be fine      |

A non-fatal XID (63, 92, 94, ...) is kept in the XID history but changes nothing. A check whose call
answered NOT_SUPPORTED has a reading of None: it does not apply to this GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agent.config import GpuSettings

Health = Literal["healthy", "degraded", "failed"]
HEALTHY: Health = "healthy"
DEGRADED: Health = "degraded"
FAILED: Health = "failed"
_SEVERITY: dict[Health, int] = {HEALTHY: 0, DEGRADED: 1, FAILED: 2}

# nvmlClocksEventReason* bits that mean the GPU is slowed by heat or power (names as in NVML, short).
CLOCKS_EVENT_SLOWDOWNS: tuple[tuple[int, str], ...] = (
    (0x0000000000000008, "hw_slowdown"),
    (0x0000000000000040, "hw_thermal_slowdown"),
    (0x0000000000000020, "sw_thermal_slowdown"),
    (0x0000000000000080, "hw_power_brake_slowdown"),
)
# Not a slowdown: sw_power_cap (0x4) is the driver holding the board at its power limit, which every busy
# GPU does; counting it would mark healthy GPUs degraded under load and steer failovers away from them.


@dataclass(frozen=True)
class XidRecord:
    """One XID code seen on one GPU: how often, first and last time (Unix seconds)."""

    xid: int
    count: int
    first_seen: float
    last_seen: float
    fatal: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "xid": self.xid,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "fatal": self.fatal,
        }


@dataclass(frozen=True)
class NvmlCallError:
    """An NVML call on this GPU that failed with an error other than NOT_SUPPORTED or GPU_IS_LOST."""

    call: str
    message: str


@dataclass(frozen=True)
class HealthReadings:
    """One reading of a GPU's health counters. None: the check does not apply or could not be read."""

    lost_in: str | None = None  # the NVML call that answered GPU_IS_LOST
    ecc_uncorrected_volatile: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failure: bool | None = None
    retired_pages_pending: bool | None = None
    clocks_event_reasons: int | None = None
    call_errors: tuple[NvmlCallError, ...] = ()


def is_fatal_xid(xid: int, settings: GpuSettings) -> bool:
    return xid in settings.fatal_xids


def record_xid(history: Sequence[XidRecord], xid: int, at: float, settings: GpuSettings) -> tuple[XidRecord, ...]:
    """The XID history of one GPU with one more event of `xid` at time `at`."""
    records = list(history)
    for i, record in enumerate(records):
        if record.xid == xid:
            records[i] = XidRecord(
                xid=xid,
                count=record.count + 1,
                first_seen=min(record.first_seen, at),
                last_seen=max(record.last_seen, at),
                fatal=is_fatal_xid(xid, settings),
            )
            return tuple(records)
    records.append(XidRecord(xid=xid, count=1, first_seen=at, last_seen=at, fatal=is_fatal_xid(xid, settings)))
    return tuple(records)


def format_time(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


Verdict = tuple[Health, str]
Rule = Callable[[HealthReadings, Sequence[XidRecord], GpuSettings, float], Iterable[Verdict]]


def _lost_rule(r: HealthReadings, xids: Sequence[XidRecord], s: GpuSettings, now: float) -> Iterable[Verdict]:
    if r.lost_in is not None:
        yield FAILED, f"lost from the bus (GPU is lost, reported by {r.lost_in})"


def _fatal_xid_rule(r: HealthReadings, xids: Sequence[XidRecord], s: GpuSettings, now: float) -> Iterable[Verdict]:
    for record in xids:
        if not is_fatal_xid(record.xid, s):
            continue
        if s.xid_hold_s is not None and now - record.last_seen > s.xid_hold_s:
            continue
        times = "once" if record.count == 1 else f"{record.count} times"
        yield FAILED, f"fatal XID {record.xid} seen {times}, last at {format_time(record.last_seen)}"


def _ecc_rule(r: HealthReadings, xids: Sequence[XidRecord], s: GpuSettings, now: float) -> Iterable[Verdict]:
    if r.ecc_uncorrected_volatile:
        yield FAILED, f"{r.ecc_uncorrected_volatile} uncorrected volatile ECC errors"


def _remapped_rows_rule(r: HealthReadings, xids: Sequence[XidRecord], s: GpuSettings, now: float) -> Iterable[Verdict]:
    if r.remapped_rows_failure:
        yield FAILED, "row remapping failed: GPU memory cannot be repaired"
    if r.remapped_rows_pending:
        yield DEGRADED, "remapped rows pending: reset needed"


def _retired_pages_rule(r: HealthReadings, xids: Sequence[XidRecord], s: GpuSettings, now: float) -> Iterable[Verdict]:
    if r.retired_pages_pending:
        yield DEGRADED, "retired pages pending: reset needed"


def _clocks_rule(r: HealthReadings, xids: Sequence[XidRecord], s: GpuSettings, now: float) -> Iterable[Verdict]:
    if not r.clocks_event_reasons:
        return
    slowdowns = [name for bit, name in CLOCKS_EVENT_SLOWDOWNS if r.clocks_event_reasons & bit]
    if slowdowns:
        yield DEGRADED, f"clocks slowed: {', '.join(slowdowns)}"


def _call_error_rule(r: HealthReadings, xids: Sequence[XidRecord], s: GpuSettings, now: float) -> Iterable[Verdict]:
    for error in r.call_errors:
        yield DEGRADED, f"nvml error in {error.call}: {error.message}"


HEALTH_RULES: tuple[Rule, ...] = (
    _lost_rule,
    _fatal_xid_rule,
    _ecc_rule,
    _remapped_rows_rule,
    _retired_pages_rule,
    _clocks_rule,
    _call_error_rule,
)


def judge_gpu_health(
    readings: HealthReadings, xids: Sequence[XidRecord], settings: GpuSettings, now: float
) -> tuple[Health, list[str]]:
    """The GPU's health (the worst verdict of any rule) and the reasons for it, in rule order."""
    health: Health = HEALTHY
    reasons: list[str] = []
    for rule in HEALTH_RULES:
        for verdict, reason in rule(readings, xids, settings, now):
            if _SEVERITY[verdict] > _SEVERITY[health]:
                health = verdict
            reasons.append(reason)
    return health, reasons
