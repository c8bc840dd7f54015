"""The fake libnvidia-ml.so.1 is built once and rebuilt only when its source changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fakenvml.build import LIBRARY_NAME, build_fake_nvml, source_digest

pytestmark = pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")


def test_build_is_cached_by_source_hash(tmp_path: Path) -> None:
    library = build_fake_nvml(tmp_path) / LIBRARY_NAME
    stamp = tmp_path / "source.sha256"
    assert library.exists() and stamp.read_text().strip() == source_digest()
    built = library.stat().st_mtime_ns
    build_fake_nvml(tmp_path)
    assert library.stat().st_mtime_ns == built, "rebuilt although the source did not change"
    stamp.write_text("a different source\n")
    build_fake_nvml(tmp_path)
    assert library.stat().st_mtime_ns != built, "not rebuilt although the source hash changed"
    assert stamp.read_text().strip() == source_digest()


def test_library_exports_what_pynvml_calls(fake_nvml_lib_dir: Path) -> None:
    import ctypes

    lib = ctypes.CDLL(str(fake_nvml_lib_dir / LIBRARY_NAME))
    for symbol in (
        "nvmlInitWithFlags",
        "nvmlShutdown",
        "nvmlErrorString",
        "nvmlSystemGetDriverVersion",
        "nvmlDeviceGetCount_v2",
        "nvmlDeviceGetHandleByIndex_v2",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetName",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetTemperatureV",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetTotalEccErrors",
        "nvmlDeviceGetRemappedRows",
        "nvmlDeviceGetRetiredPagesPendingStatus",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlEventSetCreate",
        "nvmlDeviceRegisterEvents",
        "nvmlEventSetWait_v2",
        "nvmlEventSetFree",
    ):
        assert hasattr(lib, symbol), symbol
