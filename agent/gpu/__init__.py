"""The agent's GPU sense, through NVML: inventory, load and health of each GPU, XIDs included.

`GpuMonitor(settings)` for the daemon (start / snapshot / stop), `probe_gpus(settings)` for one look.
The health rules are pure and live in `agent.gpu.health`; every pynvml call lives in `agent.gpu.nvml`.
"""

from agent.gpu.health import Health, XidRecord, judge_gpu_health
from agent.gpu.monitor import GpuMonitor, probe_gpus
from agent.gpu.report import GpuReport, GpuStatus

__all__ = ["GpuMonitor", "GpuReport", "GpuStatus", "Health", "XidRecord", "judge_gpu_health", "probe_gpus"]
