"""Which GPUs the Milvus container gets, and whether it may start at all. Pure: a GPU report in, a choice out.

The GPU image (`milvus.flavor: gpu`, the default) links libnvidia-ml.so.1, which only the NVIDIA container hook
provides: started without a GPU device request, it exits before `main` ("libnvidia-ml.so.1: file too short"),
and again on every retry. So a GPU image is never started without GPUs:

| flavor | when                                                | device request | gpu section      | start?        |
|--------|-----------------------------------------------------|----------------|------------------|---------------|
| cpu    | always                                              | none           | `enable: false`  | yes           |
| gpu    | `milvus.gpus: none`                                 | -              | -                | no: wait, why |
| gpu    | GPU monitor off (`gpu.enabled: false`)              | -              | -                | no: wait, why |
| gpu    | NVML unavailable (no driver, a snapshot error)      | -              | -                | no: wait, why |
| gpu    | none of the configured GPUs healthy or degraded     | -              | -                | no: wait, why |
| gpu    | otherwise: the configured GPUs that have not failed | their UUIDs    | gpu0..gpuN-1     | yes           |

With `milvus.set_gpu_devices: false` failed GPUs are not left out and the base's gpu section is kept.

While the report is unavailable (the monitor off, NVML gone or a snapshot that raised), it cannot say which
GPUs a restart would get; `report_unavailable` tells the convergence table (rule 7) not to restart a running
Milvus for a config change then. A GPU that really fails changes the set, and that restart goes ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # agent.gpu imports agent.config, which takes FLAVORS from here
    from agent.gpu.report import GpuReport

FLAVORS = ("gpu", "cpu")
_NOT_STARTING = "not starting Milvus: the GPU image needs GPUs"


@dataclass(frozen=True)
class GpuChoice:
    uuids: tuple[str, ...] | None  # the device request; None: no GPU request at all
    render_count: int | None  # gpu0..gpuN-1 in server_config.yaml; 0: gpu.enable false; None: the base's section
    start_blocker: str | None = None  # why Milvus must not start now; None: it may
    report_unavailable: bool = False


def choose_gpus(
    flavor: str,
    gpus: str,
    gpu_indexes: Sequence[int],
    set_gpu_devices: bool,
    report: GpuReport | None,
) -> GpuChoice:
    """`gpus` is all | none | list (then `gpu_indexes`); `report` is None when the GPU monitor is off."""
    if flavor == "cpu":
        return GpuChoice(uuids=None, render_count=0)
    if gpus == "none":
        why = f"{_NOT_STARTING} and milvus.gpus is none (a CPU image with milvus.flavor: cpu runs without them)"
        return GpuChoice(uuids=None, render_count=0, start_blocker=why)
    if report is None:
        why = f"{_NOT_STARTING} and GPU monitoring is off (gpu.enabled: false), so none can be given to it"
        return GpuChoice(uuids=None, render_count=None, start_blocker=why, report_unavailable=True)
    if not report.available:
        why = f"{_NOT_STARTING} and NVML is unavailable: {report.reason or 'no reason given'}"
        return GpuChoice(uuids=None, render_count=None, start_blocker=why, report_unavailable=True)
    configured = [g for g in report.gpus if gpus == "all" or g.index in gpu_indexes]
    usable = [g for g in configured if g.uuid and (not set_gpu_devices or g.health != "failed")]
    if not usable:
        if not configured:
            detail = f"none of milvus.gpus {list(gpu_indexes)} is on this node" if gpus != "all" else "it has no GPU"
            why = f"{_NOT_STARTING} and NVML reports none healthy ({detail})"
        else:
            failed = "; ".join(f"gpu {g.index}: {', '.join(g.reasons) or g.health}" for g in configured)
            why = f"{_NOT_STARTING} and NVML reports none healthy ({failed})"
        return GpuChoice(uuids=(), render_count=0, start_blocker=why)
    uuids = tuple(g.uuid for g in usable)
    return GpuChoice(uuids=uuids, render_count=len(uuids) if set_gpu_devices else None)
