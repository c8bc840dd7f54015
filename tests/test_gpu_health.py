"""Table tests of the pure GPU health rules (agent/gpu/health.py): no NVML, no fake library."""

from __future__ import annotations

import json

import pytest

from agent.config import GpuSettings
from agent.gpu import GpuReport, GpuStatus
from agent.gpu.health import (
    HealthReadings,
    NvmlCallError,
    XidRecord,
    judge_gpu_health,
    record_xid,
)

NOW = 1_700_000_000.0
SETTINGS = GpuSettings()
HOLD_60 = GpuSettings(xid_hold_s=60)


def xid(code: int, count: int = 1, last_seen: float = NOW - 10) -> XidRecord:
    return XidRecord(xid=code, count=count, first_seen=last_seen - 100, last_seen=last_seen, fatal=code in (79, 48))


HEALTH_TABLE = [
    # (case, readings, xids, settings, health, reason fragments)
    ("all clear", HealthReadings(), (), SETTINGS, "healthy", []),
    (
        "zeros read",
        HealthReadings(
            ecc_uncorrected_volatile=0,
            remapped_rows_pending=False,
            remapped_rows_failure=False,
            retired_pages_pending=False,
            clocks_event_reasons=0,
        ),
        (),
        SETTINGS,
        "healthy",
        [],
    ),
    (
        "lost",
        HealthReadings(lost_in="nvmlDeviceGetMemoryInfo"),
        (),
        SETTINGS,
        "failed",
        ["lost from the bus", "nvmlDeviceGetMemoryInfo"],
    ),
    ("fatal xid 79", HealthReadings(), (xid(79),), SETTINGS, "failed", ["fatal XID 79 seen once"]),
    ("fatal xid 48 twice", HealthReadings(), (xid(48, count=2),), SETTINGS, "failed", ["fatal XID 48 seen 2 times"]),
    ("xid 63 not fatal", HealthReadings(), (xid(63, count=5),), SETTINGS, "healthy", []),
    ("xid 92 not fatal", HealthReadings(), (xid(92),), SETTINGS, "healthy", []),
    ("xid 94 not fatal", HealthReadings(), (xid(94),), SETTINGS, "healthy", []),
    (
        "fatal set from settings",
        HealthReadings(),
        (xid(13),),
        GpuSettings(fatal_xids=(13,)),
        "failed",
        ["fatal XID 13"],
    ),
    ("79 not in a custom fatal set", HealthReadings(), (xid(79),), GpuSettings(fatal_xids=(13,)), "healthy", []),
    (
        "fatal xid within hold",
        HealthReadings(),
        (xid(79, last_seen=NOW - 30),),
        GpuSettings(xid_hold_s=60),
        "failed",
        ["fatal XID 79"],
    ),
    ("fatal xid past hold", HealthReadings(), (xid(79, last_seen=NOW - 61),), HOLD_60, "healthy", []),
    ("uncorrected ecc", HealthReadings(ecc_uncorrected_volatile=3), (), SETTINGS, "failed", ["3 uncorrected volatile"]),
    (
        "remapped rows pending",
        HealthReadings(remapped_rows_pending=True, remapped_rows_failure=False),
        (),
        SETTINGS,
        "degraded",
        ["remapped rows pending: reset needed"],
    ),
    (
        "row remapping failed",
        HealthReadings(remapped_rows_pending=False, remapped_rows_failure=True),
        (),
        SETTINGS,
        "failed",
        ["row remapping failed"],
    ),
    (
        "retired pages pending",
        HealthReadings(retired_pages_pending=True),
        (),
        SETTINGS,
        "degraded",
        ["retired pages pending"],
    ),
    ("hw slowdown", HealthReadings(clocks_event_reasons=0x8), (), SETTINGS, "degraded", ["hw_slowdown"]),
    ("hw thermal", HealthReadings(clocks_event_reasons=0x40), (), SETTINGS, "degraded", ["hw_thermal_slowdown"]),
    ("sw thermal", HealthReadings(clocks_event_reasons=0x20), (), SETTINGS, "degraded", ["sw_thermal_slowdown"]),
    ("power brake", HealthReadings(clocks_event_reasons=0x80), (), SETTINGS, "degraded", ["hw_power_brake"]),
    ("sw power cap is normal load", HealthReadings(clocks_event_reasons=0x4), (), SETTINGS, "healthy", []),
    ("idle clocks are fine", HealthReadings(clocks_event_reasons=0x1), (), SETTINGS, "healthy", []),
    ("sync boost is fine", HealthReadings(clocks_event_reasons=0x10 | 0x2 | 0x100), (), SETTINGS, "healthy", []),
    (
        "two slowdowns, one reason",
        HealthReadings(clocks_event_reasons=0x40 | 0x4 | 0x1),
        (),
        SETTINGS,
        "degraded",
        ["clocks slowed: hw_thermal_slowdown"],
    ),
    (
        "unexpected call error",
        HealthReadings(call_errors=(NvmlCallError("nvmlDeviceGetPowerUsage", "Unknown Error"),)),
        (),
        SETTINGS,
        "degraded",
        ["nvml error in nvmlDeviceGetPowerUsage: Unknown Error"],
    ),
    (
        "failed wins over degraded",
        HealthReadings(ecc_uncorrected_volatile=1, retired_pages_pending=True, clocks_event_reasons=0x40),
        (),
        SETTINGS,
        "failed",
        ["ECC", "retired pages pending", "hw_thermal_slowdown"],
    ),
    (
        "lost and fatal xid both said",
        HealthReadings(lost_in="nvmlDeviceGetUUID"),
        (xid(79), xid(63)),
        SETTINGS,
        "failed",
        ["lost from the bus", "fatal XID 79"],
    ),
]


@pytest.mark.parametrize(
    ("readings", "xids", "settings", "health", "fragments"),
    [case[1:] for case in HEALTH_TABLE],
    ids=[case[0] for case in HEALTH_TABLE],
)
def test_health_rules(
    readings: HealthReadings,
    xids: tuple[XidRecord, ...],
    settings: GpuSettings,
    health: str,
    fragments: list[str],
) -> None:
    got_health, reasons = judge_gpu_health(readings, xids, settings, NOW)
    assert got_health == health
    text = " | ".join(reasons)
    for fragment in fragments:
        assert fragment in text
    if health == "healthy":
        assert reasons == []
    else:
        assert reasons, "a GPU that is not healthy must say why"


def test_reasons_follow_rule_order() -> None:
    readings = HealthReadings(lost_in="nvmlDeviceGetName", retired_pages_pending=True)
    _, reasons = judge_gpu_health(readings, (xid(79),), SETTINGS, NOW)
    assert [r.split(" ")[0] for r in reasons] == ["lost", "fatal", "retired"]


def test_record_xid_counts_and_keeps_first_and_last_time() -> None:
    history = record_xid((), 79, 100.0, SETTINGS)
    history = record_xid(history, 63, 150.0, SETTINGS)
    history = record_xid(history, 79, 200.0, SETTINGS)
    by_code = {r.xid: r for r in history}
    assert by_code[79] == XidRecord(xid=79, count=2, first_seen=100.0, last_seen=200.0, fatal=True)
    assert by_code[63] == XidRecord(xid=63, count=1, first_seen=150.0, last_seen=150.0, fatal=False)


def test_record_xid_does_not_change_the_history_it_was_given() -> None:
    history = record_xid((), 48, 1.0, SETTINGS)
    record_xid(history, 48, 2.0, SETTINGS)
    assert history[0].count == 1


def test_report_to_dict_is_plain_json() -> None:
    status = GpuStatus(
        index=0,
        uuid="GPU-1",
        name="A100",
        memory_total_bytes=1,
        memory_used_bytes=0,
        utilization_pct=5,
        temperature_c=40,
        power_w=60.5,
        health="failed",
        reasons=["fatal XID 79 seen once"],
        xids=[XidRecord(79, 1, 1.0, 1.0, True)],
    )
    report = GpuReport(available=True, reason=None, driver_version="550", gpus=[status], collected_at=2.0)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["gpus"][0]["xids"] == [{"xid": 79, "count": 1, "first_seen": 1.0, "last_seen": 1.0, "fatal": True}]
    assert data["gpus"][0]["health"] == "failed"
    assert data["available"] is True and data["driver_version"] == "550"
