"""The GPU monitor: NVML opened once, a background XID waiter, and snapshots on demand.

The shell around the pure rules in `agent.gpu.health`: it reads NVML through `agent.gpu.nvml`, keeps
the XID history the waiter thread collects, and judges each GPU on every snapshot. Nothing here raises
to the caller: without a driver the report says available=False and why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.config import GpuSettings
from agent.gpu.health import (
    Health,
    HealthReadings,
    NvmlCallError,
    XidRecord,
    is_fatal_xid,
    judge_gpu_health,
    record_xid,
)
from agent.gpu.nvml import (
    DeviceReading,
    NvmlCallFailed,
    NvmlLibrary,
    NvmlUnavailable,
    XidEvent,
    XidEventSet,
    handle_address,
)
from agent.gpu.report import GpuReport, GpuStatus

log = logging.getLogger("jfs_milvus.agent.gpu")

XID_WAIT_MS = 500  # one nvmlEventSetWait; bounds how long stop() waits for the waiter
WAITER_BACKOFF_MIN_S = 0.5
WAITER_BACKOFF_MAX_S = 10.0
DISABLED_REASON = "GPU monitoring is disabled in the config (gpu.enabled: false)"
NOT_STARTED_REASON = "GPU monitor not started"
STOPPED_REASON = "GPU monitor stopped"


@dataclass
class _GpuSlot:
    """What the monitor keeps about one GPU index between snapshots."""

    index: int
    handle: Any = None
    uuid: str | None = None
    name: str | None = None
    compute_capability: tuple[int, int] | None = None
    health: Health | None = None
    reasons: tuple[str, ...] = ()


class GpuMonitor:
    """start() once, snapshot() as often as wanted (about a millisecond per GPU), stop() at the end.

    watch_xids=False skips the XID waiter (a one-shot probe has no time to see events).
    """

    def __init__(
        self,
        settings: GpuSettings,
        *,
        watch_xids: bool = True,
        nvml: NvmlLibrary | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._watch_xids = watch_xids
        self._nvml = nvml or NvmlLibrary()
        self._clock = clock
        self._lock = threading.RLock()  # start, snapshot, stop
        self._xid_lock = threading.Lock()  # the XID history, shared with the waiter
        self._state = "new"  # new -> started -> stopped
        self._opened = False
        self._unavailable: str | None = None
        self._driver_version: str | None = None
        self._slots: list[_GpuSlot] = []
        self._index_by_address: dict[int, int] = {}
        self._xids: dict[int, tuple[XidRecord, ...]] = {}
        self.xids_seen = 0  # grows with every XID event: a reason to read the GPUs again at once
        self._events: XidEventSet | None = None
        self._stopping = threading.Event()
        self._waiter: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Open NVML, find the GPUs and start the XID waiter. Idempotent; never raises."""
        with self._lock:
            if self._state != "new":
                return
            self._state = "started"
            try:
                self._open()
            except Exception as exc:
                self._unavailable = f"NVML unavailable: unexpected error at start: {type(exc).__name__}: {exc}"
                log.exception("gpu monitor start failed: %s", self._unavailable)

    def _open(self) -> None:
        if not self._settings.enabled:
            self._unavailable = DISABLED_REASON
            log.info("gpu monitor off: %s", DISABLED_REASON)
            return
        try:
            self._nvml.open()
        except NvmlUnavailable as exc:
            self._unavailable = exc.reason
            log.warning("gpu monitor: %s; the agent goes on without GPU data", exc.reason)
            return
        self._opened = True
        self._driver_version = self._nvml.driver_version()
        try:
            count = self._nvml.device_count()
        except NvmlUnavailable as exc:
            self._unavailable = exc.reason
            log.warning("gpu monitor: %s", exc.reason)
            return
        self._slots = [_GpuSlot(index=i) for i in range(count)]
        for slot in self._slots:
            self._attach(slot)
        log.info("gpu monitor: NVML open, driver %s, %d GPU(s)", self._driver_version, count)
        if self._watch_xids and self._slots:
            self._events = self._create_event_set()  # before returning, so no XID after start() is missed
            self._waiter = threading.Thread(target=self._watch_xid_events, name="gpu-xid-waiter", daemon=True)
            self._waiter.start()

    def _attach(self, slot: _GpuSlot) -> NvmlCallFailed | None:
        """Get the slot's handle; the error when it cannot be had."""
        try:
            slot.handle = self._nvml.device_handle(slot.index)
        except NvmlCallFailed as exc:
            log.warning("gpu %d: no handle: %s", slot.index, exc)
            return exc
        slot.uuid, slot.name = self._nvml.device_identity(slot.handle)
        slot.compute_capability = self._nvml.device_compute_capability(slot.handle)
        address = handle_address(slot.handle)
        if address is not None:
            self._index_by_address[address] = slot.index
        return None

    def stop(self) -> None:
        """Stop the waiter (within about XID_WAIT_MS) and close NVML. Idempotent; never raises."""
        with self._lock:
            if self._state == "stopped":
                return
            self._state = "stopped"
            try:
                self._stopping.set()
                waiter = self._waiter
                if waiter is not None:
                    waiter.join(timeout=4 * XID_WAIT_MS / 1000)
                if waiter is not None and waiter.is_alive():
                    log.warning("gpu xid waiter did not stop in time; its event set is left open")
                elif self._events is not None:
                    self._events.free()
                    self._events = None
                if self._opened:
                    self._nvml.close()
                    self._opened = False
            except Exception:
                log.exception("gpu monitor stop failed")

    # -- snapshots -----------------------------------------------------------------------------------
    def snapshot(self) -> GpuReport:
        """Poll every GPU now and judge it. Never raises."""
        now = self._clock()
        with self._lock:
            try:
                return self._snapshot(now)
            except Exception as exc:
                log.exception("gpu snapshot failed")
                return GpuReport(False, f"GPU monitor error: {type(exc).__name__}: {exc}", None, [], now)

    def _snapshot(self, now: float) -> GpuReport:
        if self._state == "new":
            return GpuReport(False, NOT_STARTED_REASON, None, [], now)
        if self._state == "stopped":
            return GpuReport(False, STOPPED_REASON, self._driver_version, [], now)
        if self._unavailable is not None:
            return GpuReport(False, self._unavailable, self._driver_version, [], now)
        gpus = [self._gpu_status(slot, now) for slot in self._slots]
        return GpuReport(True, None, self._driver_version, gpus, now)

    def _gpu_status(self, slot: _GpuSlot, now: float) -> GpuStatus:
        reading = self._read(slot)
        slot.uuid = reading.uuid or slot.uuid  # a lost GPU keeps the identity it had
        slot.name = reading.name or slot.name
        if slot.compute_capability is None and slot.handle is not None and reading.health.lost_in is None:
            slot.compute_capability = self._nvml.device_compute_capability(slot.handle)  # a fixed fact: kept once known
        with self._xid_lock:
            xids = self._xids.get(slot.index, ())
        health, reasons = judge_gpu_health(reading.health, xids, self._settings, now)
        self._log_health_change(slot, health, reasons)
        return GpuStatus(
            index=slot.index,
            uuid=slot.uuid,
            name=slot.name,
            memory_total_bytes=reading.memory_total_bytes,
            memory_used_bytes=reading.memory_used_bytes,
            utilization_pct=reading.utilization_pct,
            temperature_c=reading.temperature_c,
            power_w=reading.power_w,
            health=health,
            reasons=reasons,
            xids=sorted(xids, key=lambda x: x.xid),
            compute_capability=slot.compute_capability,
        )

    def _read(self, slot: _GpuSlot) -> DeviceReading:
        if slot.handle is None:
            error = self._attach(slot)
            if error is not None:
                if error.gpu_is_lost:
                    return DeviceReading(slot.index, health=HealthReadings(lost_in=error.call))
                call_error = NvmlCallError(error.call, error.message)
                return DeviceReading(slot.index, health=HealthReadings(call_errors=(call_error,)))
        return self._nvml.read_device(slot.index, slot.handle)

    def _log_health_change(self, slot: _GpuSlot, health: Health, reasons: list[str]) -> None:
        if slot.health == health and slot.reasons == tuple(reasons):
            return
        first = slot.health is None
        before = "unknown" if first else slot.health
        slot.health, slot.reasons = health, tuple(reasons)
        detail = "; ".join(reasons) or "no problem found"
        if health != "healthy":
            log.warning("gpu %d (%s) health %s -> %s: %s", slot.index, slot.uuid, before, health, detail)
        elif not first:
            log.info("gpu %d (%s) health %s -> healthy", slot.index, slot.uuid, before)
        else:
            log.debug("gpu %d (%s) healthy", slot.index, slot.uuid)

    # -- XID events ----------------------------------------------------------------------------------
    def _create_event_set(self) -> XidEventSet | None:
        handles = [(slot.index, slot.handle) for slot in self._slots if slot.handle is not None]
        try:
            events, notes = self._nvml.create_xid_event_set(handles)
        except NvmlCallFailed as exc:
            log.warning("gpu xid waiter: %s; will retry", exc)
            return None
        for note in notes:
            log.warning("gpu xid waiter: %s", note)
        return events

    def _watch_xid_events(self) -> None:
        """The waiter thread: wait for XIDs in short steps until stop(); on errors log, back off, retry."""
        backoff = WAITER_BACKOFF_MIN_S
        failing = False
        while not self._stopping.is_set():
            try:
                if self._events is None:
                    self._events = self._create_event_set()
                    if self._events is None:
                        self._stopping.wait(backoff)
                        backoff = min(backoff * 2, WAITER_BACKOFF_MAX_S)
                        continue
                event = self._events.wait(XID_WAIT_MS)
            except Exception as exc:
                log.warning("gpu xid waiter: %s; retrying in %.1fs", exc, backoff)
                failing = True
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, WAITER_BACKOFF_MAX_S)
                continue
            if failing:
                log.info("gpu xid waiter: waiting for XID events again")
                failing = False
            backoff = WAITER_BACKOFF_MIN_S
            if event is not None:
                self._record_xid(event)

    def _record_xid(self, event: XidEvent) -> None:
        index = self._index_by_address.get(event.device_address or 0)
        if index is None:
            log.warning("gpu xid %d from a device this monitor does not know; ignored", event.xid)
            return
        at = self._clock()
        with self._xid_lock:
            history = record_xid(self._xids.get(index, ()), event.xid, at, self._settings)
            self._xids[index] = history
            self.xids_seen += 1
        count = next(r.count for r in history if r.xid == event.xid)
        fatal = is_fatal_xid(event.xid, self._settings)
        uuid = self._slots[index].uuid if index < len(self._slots) else None
        log.log(
            logging.ERROR if fatal else logging.WARNING,
            "gpu %d (%s) xid %d seen (%s), count %d",
            index,
            uuid,
            event.xid,
            "fatal" if fatal else "not fatal",
            count,
        )


def probe_gpus(settings: GpuSettings) -> GpuReport:
    """One look at the GPUs (open NVML, read, close), for `jfs-milvus-agent status`. Never raises."""
    monitor = GpuMonitor(settings, watch_xids=False)
    try:
        monitor.start()
        return monitor.snapshot()
    finally:
        monitor.stop()
