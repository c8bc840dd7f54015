"""The one place that calls pynvml: open the library, read a device, wait for XID events.

Every reading comes back as plain data (`DeviceReading`); NVML errors are turned into values here:
NOT_SUPPORTED (or a function this driver lacks) gives None, GPU_IS_LOST marks the reading lost, any
other error is kept as an `NvmlCallError` for the health rules. Only `open()` and the event calls raise,
and only `NvmlUnavailable` or `NvmlCallFailed`.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.gpu.health import HealthReadings, NvmlCallError

try:
    import pynvml
except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency, but the agent must run without it
    pynvml = None

T = TypeVar("T")

NVML_LIBRARY = "libnvidia-ml.so.1"
# Codes from nvml.h (also pynvml.NVML_ERROR_*), so this module reads without pynvml installed.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_TEMPERATURE_GPU = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_EVENT_TYPE_XID_CRITICAL_ERROR = 0x8
_NOT_APPLICABLE = (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND)


class NvmlUnavailable(Exception):
    """NVML cannot be used on this host; `reason` says why in words an operator can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NvmlCallFailed(Exception):
    def __init__(self, call: str, code: int | None, message: str) -> None:
        super().__init__(f"nvml error in {call}: {message}")
        self.call = call
        self.code = code
        self.message = message

    @property
    def gpu_is_lost(self) -> bool:
        return self.code == NVML_ERROR_GPU_IS_LOST


def nvml_error_code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def nvml_error_message(exc: BaseException) -> str:
    try:
        return str(exc) or type(exc).__name__
    except Exception:  # pynvml's __str__ calls back into the library
        return f"NVML error with code {nvml_error_code(exc)}"


def _is_nvml_error(exc: BaseException) -> bool:
    return pynvml is not None and isinstance(exc, pynvml.NVMLError)


def unavailable_reason(exc: BaseException) -> str:
    """Why nvmlInit failed, for the report."""
    code = nvml_error_code(exc) if _is_nvml_error(exc) else None
    if code == NVML_ERROR_LIBRARY_NOT_FOUND:
        return f"NVML unavailable: NVIDIA driver library {NVML_LIBRARY} not found"
    if code == NVML_ERROR_DRIVER_NOT_LOADED:
        return "NVML unavailable: the NVIDIA driver is not loaded"
    if code == NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return "NVML unavailable: NVML and kernel driver versions differ (reload the driver or reboot)"
    if code is not None:
        return f"NVML unavailable: nvmlInit failed: {nvml_error_message(exc)}"
    return f"NVML unavailable: nvmlInit failed: {type(exc).__name__}: {exc}"


def handle_address(handle: Any) -> int | None:
    """A device handle's pointer value, to match an event's device with the handles we hold."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except Exception:
        return None


@dataclass
class DeviceReading:
    """One poll of one GPU. None: not supported on this GPU, or the call failed (see health)."""

    index: int
    uuid: str | None = None
    name: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization_pct: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    health: HealthReadings = field(default_factory=HealthReadings)


@dataclass(frozen=True)
class XidEvent:
    device_address: int | None
    xid: int


class _DeviceCalls:
    """Calls on one device that turn errors into values; after GPU_IS_LOST it calls nothing more."""

    def __init__(self) -> None:
        self.lost_in: str | None = None
        self.errors: list[NvmlCallError] = []

    def call(self, name: str, fn: Callable[..., T], *args: Any) -> T | None:
        if self.lost_in is not None:
            return None
        try:
            return fn(*args)
        except Exception as exc:
            self.classify(name, exc)
            return None

    def classify(self, name: str, exc: Exception) -> None:
        """Note what a failed call means: lost, not applicable (ignored), or an error to report."""
        if not _is_nvml_error(exc):
            self.errors.append(NvmlCallError(name, f"{type(exc).__name__}: {exc}"))
            return
        code = nvml_error_code(exc)
        if code == NVML_ERROR_GPU_IS_LOST:
            self.lost_in = name
        elif code not in _NOT_APPLICABLE:
            self.errors.append(NvmlCallError(name, nvml_error_message(exc)))


class XidEventSet:
    """An NVML event set registered for critical XID errors on the given devices."""

    def __init__(self, event_set: Any) -> None:
        self._event_set = event_set

    def wait(self, timeout_ms: int) -> XidEvent | None:
        """The next XID event, or None when none came within timeout_ms. Raises NvmlCallFailed."""
        try:
            data = pynvml.nvmlEventSetWait(self._event_set, timeout_ms)
        except Exception as exc:
            code = nvml_error_code(exc) if _is_nvml_error(exc) else None
            if code == NVML_ERROR_TIMEOUT:
                return None
            message = nvml_error_message(exc) if code is not None else f"{type(exc).__name__}: {exc}"
            raise NvmlCallFailed("nvmlEventSetWait", code, message) from exc
        if not int(data.eventType) & NVML_EVENT_TYPE_XID_CRITICAL_ERROR:
            return None
        return XidEvent(device_address=handle_address(data.device), xid=int(data.eventData))

    def free(self) -> None:
        with contextlib.suppress(Exception):
            pynvml.nvmlEventSetFree(self._event_set)


class NvmlLibrary:
    """pynvml behind a small interface: open/close, driver version, device handles, readings, events."""

    def open(self) -> None:
        """nvmlInit. Raises NvmlUnavailable with the reason."""
        if pynvml is None:
            raise NvmlUnavailable("NVML unavailable: the pynvml module (nvidia-ml-py) is not installed")
        try:
            pynvml.nvmlInit()
        except Exception as exc:
            raise NvmlUnavailable(unavailable_reason(exc)) from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()

    def driver_version(self) -> str | None:
        try:
            return str(pynvml.nvmlSystemGetDriverVersion())
        except Exception:
            return None

    def device_count(self) -> int:
        try:
            return int(pynvml.nvmlDeviceGetCount())
        except Exception as exc:
            raise NvmlUnavailable(f"NVML unavailable: nvmlDeviceGetCount failed: {nvml_error_message(exc)}") from exc

    def device_handle(self, index: int) -> Any:
        """The handle of GPU `index`. Raises NvmlCallFailed (gpu_is_lost tells a lost GPU)."""
        try:
            return pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:
            code = nvml_error_code(exc) if _is_nvml_error(exc) else None
            raise NvmlCallFailed("nvmlDeviceGetHandleByIndex", code, nvml_error_message(exc)) from exc

    def device_identity(self, handle: Any) -> tuple[str | None, str | None]:
        """(UUID, name) of a device, None for what cannot be read. Never raises."""
        calls = _DeviceCalls()
        uuid = calls.call("nvmlDeviceGetUUID", pynvml.nvmlDeviceGetUUID, handle)
        name = calls.call("nvmlDeviceGetName", pynvml.nvmlDeviceGetName, handle)
        return uuid, name

    def device_compute_capability(self, handle: Any) -> tuple[int, int] | None:
        """(major, minor) CUDA compute capability of a device; None when unknown: a driver without the call
        (NOT_SUPPORTED, FunctionNotFound), a lost GPU or any other error. Never raises."""
        calls = _DeviceCalls()
        value = calls.call("nvmlDeviceGetCudaComputeCapability", pynvml.nvmlDeviceGetCudaComputeCapability, handle)
        if value is None:
            return None
        try:
            major, minor = (int(part) for part in value)
        except (TypeError, ValueError):
            return None
        return (major, minor) if major > 0 else None

    def read_device(self, index: int, handle: Any) -> DeviceReading:
        """Inventory, load and health counters of one GPU. Never raises."""
        calls = _DeviceCalls()
        nv = pynvml
        reading = DeviceReading(index=index)
        reading.uuid = calls.call("nvmlDeviceGetUUID", nv.nvmlDeviceGetUUID, handle)
        reading.name = calls.call("nvmlDeviceGetName", nv.nvmlDeviceGetName, handle)
        memory = calls.call("nvmlDeviceGetMemoryInfo", nv.nvmlDeviceGetMemoryInfo, handle)
        if memory is not None:
            reading.memory_total_bytes = int(memory.total)
            reading.memory_used_bytes = int(memory.used)
        utilization = calls.call("nvmlDeviceGetUtilizationRates", nv.nvmlDeviceGetUtilizationRates, handle)
        if utilization is not None:
            reading.utilization_pct = int(utilization.gpu)
        reading.temperature_c = self._temperature(calls, handle)
        power_mw = calls.call("nvmlDeviceGetPowerUsage", nv.nvmlDeviceGetPowerUsage, handle)
        if power_mw is not None:
            reading.power_w = int(power_mw) / 1000.0

        ecc = calls.call(
            "nvmlDeviceGetTotalEccErrors",
            nv.nvmlDeviceGetTotalEccErrors,
            handle,
            NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            NVML_VOLATILE_ECC,
        )
        remapped = calls.call("nvmlDeviceGetRemappedRows", nv.nvmlDeviceGetRemappedRows, handle)
        retired = calls.call(
            "nvmlDeviceGetRetiredPagesPendingStatus", nv.nvmlDeviceGetRetiredPagesPendingStatus, handle
        )
        clocks = calls.call("nvmlDeviceGetCurrentClocksEventReasons", nv.nvmlDeviceGetCurrentClocksEventReasons, handle)
        reading.health = HealthReadings(
            lost_in=calls.lost_in,
            ecc_uncorrected_volatile=None if ecc is None else int(ecc),
            remapped_rows_pending=None if remapped is None else bool(remapped[2]),
            remapped_rows_failure=None if remapped is None else bool(remapped[3]),
            retired_pages_pending=None if retired is None else bool(retired),
            clocks_event_reasons=None if clocks is None else int(clocks),
            call_errors=tuple(calls.errors),
        )
        return reading

    @staticmethod
    def _temperature(calls: _DeviceCalls, handle: Any) -> int | None:
        """GetTemperatureV, or the older GetTemperature on drivers that lack it."""
        sensor = NVML_TEMPERATURE_GPU
        if calls.lost_in is not None:
            return None
        try:
            return int(pynvml.nvmlDeviceGetTemperatureV(handle, sensor))
        except Exception as exc:
            if not (_is_nvml_error(exc) and nvml_error_code(exc) == NVML_ERROR_FUNCTION_NOT_FOUND):
                calls.classify("nvmlDeviceGetTemperatureV", exc)
                return None
        value = calls.call("nvmlDeviceGetTemperature", pynvml.nvmlDeviceGetTemperature, handle, sensor)
        return None if value is None else int(value)

    def create_xid_event_set(self, handles: Sequence[tuple[int, Any]]) -> tuple[XidEventSet, list[str]]:
        """An event set for critical XIDs on (index, handle) pairs, and one note per device not registered.

        Raises NvmlCallFailed when the set itself cannot be created.
        """
        try:
            event_set = pynvml.nvmlEventSetCreate()
        except Exception as exc:
            code = nvml_error_code(exc) if _is_nvml_error(exc) else None
            raise NvmlCallFailed("nvmlEventSetCreate", code, nvml_error_message(exc)) from exc
        notes: list[str] = []
        for index, handle in handles:
            try:
                pynvml.nvmlDeviceRegisterEvents(handle, NVML_EVENT_TYPE_XID_CRITICAL_ERROR, event_set)
            except Exception as exc:
                message = nvml_error_message(exc)
                notes.append(f"gpu {index}: XID events not watched: nvmlDeviceRegisterEvents: {message}")
        return XidEventSet(event_set), notes
