"""The GPU monitor through real pynvml against the fake libnvidia-ml.so.1 (tests/fakenvml), in a child process."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.plugin_gpu import FakeGpu, FakeNvml, FakeNvmlConfig, FakeXid, two_gpus

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_UNKNOWN = 999


def gpu(report: dict[str, Any], index: int) -> dict[str, Any]:
    return report["gpus"][index]


def xids_of(report: dict[str, Any], index: int) -> dict[int, dict[str, Any]]:
    return {x["xid"]: x for x in gpu(report, index)["xids"]}


# -- inventory -------------------------------------------------------------------------------------


def test_inventory_of_two_gpus_comes_through(fake_nvml: FakeNvml) -> None:
    fake_nvml.write(
        FakeNvmlConfig(
            driver_version="535.161.08",
            gpus=[
                FakeGpu(
                    uuid="GPU-aaaaaaaa-0000-0000-0000-000000000001",
                    name="NVIDIA A100-SXM4-80GB",
                    memory_total=85_899_345_920,
                    memory_used=12_345_678_901,
                    utilization=87,
                    temperature=71,
                    power_mw=312_456,
                ),
                FakeGpu(
                    uuid="GPU-bbbbbbbb-0000-0000-0000-000000000002",
                    name="Tesla V100-SXM2-32GB",
                    memory_total=34_359_738_368,
                    memory_used=1_048_576,
                    utilization=3,
                    temperature=35,
                    power_mw=41_000,
                ),
            ],
        )
    )
    monitor = fake_nvml.start_monitor()
    before = time.time()
    report = monitor.snapshot()
    assert report["available"] is True and report["reason"] is None
    assert report["driver_version"] == "535.161.08"
    assert before - 1 <= report["collected_at"] <= time.time() + 1
    assert [g["index"] for g in report["gpus"]] == [0, 1]
    first, second = gpu(report, 0), gpu(report, 1)
    assert first["uuid"] == "GPU-aaaaaaaa-0000-0000-0000-000000000001"
    assert first["name"] == "NVIDIA A100-SXM4-80GB"
    assert first["memory_total_bytes"] == 85_899_345_920
    assert first["memory_used_bytes"] == 12_345_678_901
    assert first["utilization_pct"] == 87
    assert first["temperature_c"] == 71
    assert first["power_w"] == pytest.approx(312.456)
    assert (first["health"], first["reasons"], first["xids"]) == ("healthy", [], [])
    assert second["uuid"] == "GPU-bbbbbbbb-0000-0000-0000-000000000002"
    assert second["name"] == "Tesla V100-SXM2-32GB"
    assert (second["memory_total_bytes"], second["memory_used_bytes"]) == (34_359_738_368, 1_048_576)
    assert (second["utilization_pct"], second["temperature_c"]) == (3, 35)
    assert second["power_w"] == pytest.approx(41.0)
    assert second["health"] == "healthy"
    # Load changes are seen on the next snapshot: the library is polled each time.
    fake_nvml.write(
        FakeNvmlConfig(
            driver_version="535.161.08",
            gpus=[
                FakeGpu(uuid="GPU-aaaaaaaa-0000-0000-0000-000000000001", utilization=12, temperature=55),
                FakeGpu(uuid="GPU-bbbbbbbb-0000-0000-0000-000000000002"),
            ],
        )
    )
    later = monitor.snapshot()
    assert (gpu(later, 0)["utilization_pct"], gpu(later, 0)["temperature_c"]) == (12, 55)
    monitor.stop()


def test_probe_gpus_reports_inventory_once(fake_nvml: FakeNvml) -> None:
    report = fake_nvml.probe()
    assert report["available"] is True
    assert report["driver_version"] == "550.54.15"
    assert [g["uuid"] for g in report["gpus"]] == [g.uuid for g in two_gpus().gpus]
    assert gpu(report, 0)["memory_used_bytes"] == 10 * 2**30
    assert gpu(report, 0)["utilization_pct"] == 37


def test_not_supported_values_are_none_and_not_a_fault(fake_nvml: FakeNvml) -> None:
    config = two_gpus()
    for call in (
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetTotalEccErrors",
        "nvmlDeviceGetRemappedRows",
        "nvmlDeviceGetRetiredPagesPendingStatus",
        "nvmlDeviceGetCurrentClocksEventReasons",
    ):
        config.gpus[0].errors[call] = NVML_ERROR_NOT_SUPPORTED
    config.gpus[0].ecc_uncorrected_volatile = 5  # unreadable, so not judged
    fake_nvml.write(config)
    report = fake_nvml.probe()
    assert gpu(report, 0)["power_w"] is None
    assert gpu(report, 0)["health"] == "healthy", gpu(report, 0)["reasons"]
    assert gpu(report, 0)["temperature_c"] == 40


# -- compute capability ----------------------------------------------------------------------------


def test_compute_capability_of_each_gpu_comes_through(fake_nvml: FakeNvml) -> None:
    config = two_gpus()
    config.gpus[0].compute_capability = "8.0"  # an A100
    config.gpus[1].compute_capability = "7.5"  # a T4
    fake_nvml.write(config)
    report = fake_nvml.probe()
    assert [g["compute_capability"] for g in report["gpus"]] == [[8, 0], [7, 5]]


@pytest.mark.parametrize("code", [NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND, NVML_ERROR_UNKNOWN])
def test_a_driver_without_compute_capability_reports_it_unknown(fake_nvml: FakeNvml, code: int) -> None:
    config = two_gpus()
    config.gpus[0].errors["nvmlDeviceGetCudaComputeCapability"] = code
    fake_nvml.write(config)
    report = fake_nvml.probe()
    assert report["available"] is True
    first, second = gpu(report, 0), gpu(report, 1)
    assert first["compute_capability"] is None
    assert first["health"] == "healthy", first["reasons"]  # not knowing it is no fault of the GPU
    assert first["uuid"] == config.gpus[0].uuid and first["utilization_pct"] == 37
    assert second["compute_capability"] == [7, 0]


def test_compute_capability_read_later_once_the_driver_answers(fake_nvml: FakeNvml) -> None:
    config = two_gpus()
    config.gpus[0].errors["nvmlDeviceGetCudaComputeCapability"] = NVML_ERROR_UNKNOWN
    fake_nvml.write(config)
    monitor = fake_nvml.start_monitor()
    assert gpu(monitor.snapshot(), 0)["compute_capability"] is None
    config.gpus[0].errors.clear()
    config.gpus[0].compute_capability = "9.0"
    fake_nvml.write(config)
    assert gpu(monitor.snapshot(), 0)["compute_capability"] == [9, 0]
    monitor.stop()


# -- health from counters --------------------------------------------------------------------------

COUNTER_FAULTS = [
    ("uncorrected ECC", {"ecc_uncorrected_volatile": 2}, "failed", "2 uncorrected volatile ECC errors"),
    ("remapped rows pending", {"remapped_pending": 1}, "degraded", "remapped rows pending: reset needed"),
    ("row remapping failed", {"remapped_failure": 1}, "failed", "row remapping failed: GPU memory cannot be repaired"),
    ("retired pages pending", {"retired_pages_pending": 1}, "degraded", "retired pages pending: reset needed"),
    ("hw thermal slowdown", {"clocks_event_reasons": 0x40}, "degraded", "clocks slowed: hw_thermal_slowdown"),
    ("sw thermal slowdown", {"clocks_event_reasons": 0x20}, "degraded", "clocks slowed: sw_thermal_slowdown"),
    ("hw power brake", {"clocks_event_reasons": 0x80}, "degraded", "clocks slowed: hw_power_brake_slowdown"),
    ("idle is not a slowdown", {"clocks_event_reasons": 0x1}, "healthy", None),
]


@pytest.mark.parametrize(
    ("fault", "health", "reason"), [c[1:] for c in COUNTER_FAULTS], ids=[c[0] for c in COUNTER_FAULTS]
)
def test_health_counter_faults(fake_nvml: FakeNvml, fault: dict[str, int], health: str, reason: str | None) -> None:
    config = two_gpus()
    for key, value in fault.items():
        setattr(config.gpus[1], key, value)
    fake_nvml.write(config)
    report = fake_nvml.probe()
    assert gpu(report, 0)["health"] == "healthy"
    assert gpu(report, 1)["health"] == health
    assert gpu(report, 1)["reasons"] == ([reason] if reason else [])


def test_unexpected_error_marks_only_that_gpu(fake_nvml: FakeNvml) -> None:
    config = two_gpus()
    config.gpus[0].errors["nvmlDeviceGetPowerUsage"] = NVML_ERROR_UNKNOWN
    fake_nvml.write(config)
    monitor = fake_nvml.start_monitor()
    report = monitor.snapshot()
    assert gpu(report, 0)["health"] == "degraded"
    assert gpu(report, 0)["reasons"] == ["nvml error in nvmlDeviceGetPowerUsage: Unknown Error"]
    assert gpu(report, 0)["power_w"] is None
    assert gpu(report, 0)["utilization_pct"] == 37  # the other readings still come through
    assert gpu(report, 1)["health"] == "healthy"
    assert gpu(report, 1)["power_w"] == pytest.approx(60.0)
    # The error clears: so does the mark.
    fake_nvml.write(two_gpus())
    assert gpu(monitor.snapshot(), 0)["health"] == "healthy"
    monitor.stop()


# -- XIDs ------------------------------------------------------------------------------------------

XID_CASES = [(79, "failed", True), (48, "failed", True), (63, "healthy", False), (94, "healthy", False)]


@pytest.mark.parametrize(("code", "health", "fatal"), XID_CASES, ids=[f"xid{c[0]}" for c in XID_CASES])
def test_xid_event(fake_nvml: FakeNvml, code: int, health: str, fatal: bool) -> None:
    monitor = fake_nvml.start_monitor()
    assert gpu(monitor.snapshot(), 0)["health"] == "healthy"
    config = two_gpus()
    before = time.time()
    config.xids = [FakeXid(seq=1, gpu=0, xid=code)]
    fake_nvml.write(config)
    report = monitor.wait_for(lambda r: bool(gpu(r, 0)["xids"]))
    record = xids_of(report, 0)[code]
    assert record["count"] == 1 and record["fatal"] is fatal
    assert before - 1 <= record["first_seen"] == record["last_seen"] <= time.time() + 1
    assert gpu(report, 0)["health"] == health
    if fatal:
        seen_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record["last_seen"]))
        assert gpu(report, 0)["reasons"] == [f"fatal XID {code} seen once, last at {seen_at}"]
    else:
        assert gpu(report, 0)["reasons"] == []
    assert (gpu(report, 1)["health"], gpu(report, 1)["xids"]) == ("healthy", [])
    monitor.stop()
    assert f"xid {code} seen ({'fatal' if fatal else 'not fatal'}), count 1" in monitor.stderr()


def test_xid_between_polls_is_not_missed(fake_nvml: FakeNvml) -> None:
    """The event is in the library only between two snapshots; the waiter thread still catches it."""
    monitor = fake_nvml.start_monitor()
    assert gpu(monitor.snapshot(), 1)["xids"] == []
    config = two_gpus()
    config.xids = [FakeXid(seq=7, gpu=1, xid=79)]
    fake_nvml.write(config)
    time.sleep(0.5)
    fake_nvml.write(two_gpus())  # gone again, before any snapshot could have looked
    report = monitor.snapshot()
    assert xids_of(report, 1)[79]["count"] == 1
    assert gpu(report, 1)["health"] == "failed"
    assert gpu(report, 0)["health"] == "healthy"
    monitor.stop()


def test_each_xid_event_is_counted_once(fake_nvml: FakeNvml) -> None:
    monitor = fake_nvml.start_monitor()
    config = two_gpus()
    config.xids = [FakeXid(1, 0, 79)]
    fake_nvml.write(config)
    monitor.wait_for(lambda r: 79 in xids_of(r, 0))
    time.sleep(1.2)  # the event stays in the file across several waits
    assert xids_of(monitor.snapshot(), 0)[79]["count"] == 1
    config.xids += [FakeXid(2, 0, 79), FakeXid(3, 0, 63)]
    fake_nvml.write(config)
    report = monitor.wait_for(lambda r: xids_of(r, 0).get(79, {}).get("count") == 2 and 63 in xids_of(r, 0))
    first, second = xids_of(report, 0)[79]["first_seen"], xids_of(report, 0)[79]["last_seen"]
    assert first < second
    assert xids_of(report, 0)[63]["count"] == 1
    monitor.stop()


def test_fatal_xid_hold_expires(fake_nvml: FakeNvml) -> None:
    monitor = fake_nvml.start_monitor(settings={"xid_hold_s": 1.0})
    config = two_gpus()
    config.xids = [FakeXid(1, 0, 48)]
    fake_nvml.write(config)
    monitor.wait_for(lambda r: gpu(r, 0)["health"] == "failed")
    report = monitor.wait_for(lambda r: gpu(r, 0)["health"] == "healthy", timeout=5)
    assert xids_of(report, 0)[48]["count"] == 1  # still in the history
    monitor.stop()


def test_xid_waiter_survives_errors(fake_nvml: FakeNvml) -> None:
    config = two_gpus()
    config.errors["nvmlEventSetWait_v2"] = NVML_ERROR_UNKNOWN
    fake_nvml.write(config)
    monitor = fake_nvml.start_monitor()
    deadline = time.monotonic() + 10
    while "gpu xid waiter: nvml error in nvmlEventSetWait: Unknown Error" not in monitor.stderr():
        assert time.monotonic() < deadline, monitor.stderr()
        time.sleep(0.1)
    assert gpu(monitor.snapshot(), 0)["health"] == "healthy"  # a waiter error is not a GPU fault
    config.errors.clear()
    config.xids = [FakeXid(1, 0, 79)]
    fake_nvml.write(config)
    report = monitor.wait_for(lambda r: gpu(r, 0)["health"] == "failed", timeout=15)
    assert xids_of(report, 0)[79]["count"] == 1
    monitor.stop()
    assert "gpu xid waiter: waiting for XID events again" in monitor.stderr()


def test_stop_is_prompt(fake_nvml: FakeNvml) -> None:
    monitor = fake_nvml.start_monitor()
    monitor.snapshot()
    stopped = monitor.stop()
    assert stopped["stop_s"] < 1.5


# -- lost GPU, no driver ---------------------------------------------------------------------------


def test_gpu_lost_in_the_middle_of_a_run(fake_nvml: FakeNvml) -> None:
    monitor = fake_nvml.start_monitor()
    first = monitor.snapshot()
    assert [g["health"] for g in first["gpus"]] == ["healthy", "healthy"]
    config = two_gpus()
    config.gpus[1].lost = True
    fake_nvml.write(config)
    report = monitor.snapshot()
    assert report["available"] is True
    lost = gpu(report, 1)
    assert lost["health"] == "failed"
    assert lost["reasons"][0].startswith("lost from the bus")
    assert lost["uuid"] == config.gpus[1].uuid  # still named, so the coordinator knows which one
    assert lost["memory_used_bytes"] is None
    assert gpu(report, 0)["health"] == "healthy"
    assert monitor.alive
    assert gpu(monitor.snapshot(), 1)["health"] == "failed"  # and it keeps answering
    monitor.stop()
    assert "health healthy -> failed: lost from the bus" in monitor.stderr()


def test_gpu_lost_before_start(fake_nvml: FakeNvml) -> None:
    config = two_gpus()
    config.gpus[0].lost = True
    fake_nvml.write(config)
    monitor = fake_nvml.start_monitor()
    report = monitor.snapshot()
    assert gpu(report, 0)["health"] == "failed"
    assert "lost from the bus" in gpu(report, 0)["reasons"][0]
    assert gpu(report, 1)["health"] == "healthy"
    monitor.stop()


def test_no_nvml_library(fake_nvml: FakeNvml) -> None:
    env = fake_nvml.env_without_library()
    expected = "NVML unavailable: NVIDIA driver library libnvidia-ml.so.1 not found"
    report = fake_nvml.probe(env=env)
    assert (report["available"], report["reason"], report["gpus"]) == (False, expected, [])
    monitor = fake_nvml.start_monitor(env=env)
    assert monitor.snapshot()["reason"] == expected
    assert monitor.snapshot()["available"] is False  # still answering
    monitor.stop()
    assert "Traceback" not in monitor.stderr()


def test_driver_not_loaded(fake_nvml: FakeNvml) -> None:
    config = two_gpus()
    config.errors["nvmlInitWithFlags"] = NVML_ERROR_DRIVER_NOT_LOADED
    fake_nvml.write(config)
    report = fake_nvml.probe()
    assert report["available"] is False
    assert report["reason"] == "NVML unavailable: the NVIDIA driver is not loaded"


def test_disabled_in_config(fake_nvml: FakeNvml) -> None:
    report = fake_nvml.probe(settings={"enabled": False})
    assert report["available"] is False
    assert "gpu.enabled: false" in report["reason"]
