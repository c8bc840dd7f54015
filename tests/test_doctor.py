"""`coordinatorctl doctor`'s judgement of what agents report: the GPUs' compute capability against the image's, and
whether Docker can serve the GPU device request Milvus starts with (the NVIDIA container toolkit's hook).

GPU cases go the whole way an operator's node does: the fake NVML reports a capability, the agent's GPU monitor
reads it through pynvml, the agent's status becomes the NodeObservation on the wire, and the doctor judges that.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from jfsmilvus.common.milvus1 import (
    CDI_HOOK,
    CONTAINER_CLI,
    RUNTIME_HOOK,
    TOOLKIT_CLI,
)
from jfsmilvus.v1 import node_pb2

from agent.observation import AgentObservation
from agent.snapshot import NodeSnapshot
from agent.wire import observation_pb
from coordinator.doctor import Check, node_checks
from tests.obsdata import gpu_report_from_dict
from tests.plugin_gpu import FakeNvml, two_gpus

GPU_IMAGE = "milvusdb/milvus:1.0.0-gpu-d030521-1ea92e"
CPU_IMAGE = "milvusdb/milvus:1.1.1-cpu-d061621-330cc6"
CAPABILITY_FIX = "run a CPU image (milvus.flavor: cpu) or a GPU the image supports (compute capability 6.0-7.5)"
HOOK = {RUNTIME_HOOK: "/usr/bin/nvidia-container-runtime-hook", CONTAINER_CLI: "/usr/bin/nvidia-container-cli"}


def agent_status(
    gpu_report: dict[str, Any] | None,
    *,
    flavor: str = "gpu",
    image: str = GPU_IMAGE,
    toolkit: dict[str, str] | None = None,
    runtimes: list[str] | None = None,
) -> AgentObservation:
    """An agent's observation (agent/daemon.py Agent.status) with what the doctor's GPU checks read; the GPU
    report as `GpuReport.to_dict()` writes it."""
    return AgentObservation(
        node="node-a",
        address="10.0.0.11",
        seen=NodeSnapshot(
            gpus=None if gpu_report is None else gpu_report_from_dict(gpu_report),
            role_running="ro",
            highest_epoch=3,
            observed_at=1000.0,
        ),
        milvus_image=image,
        milvus_flavor=flavor,
        nvidia_toolkit=HOOK if toolkit is None else toolkit,
        docker_runtimes=("runc",) if runtimes is None else tuple(runtimes),
    )


def doctor_finding(status: AgentObservation, name: str) -> Check:
    """The doctor's one finding called `name` about the node, judged from the status as it comes over the wire."""
    observation = node_pb2.NodeObservation.FromString(observation_pb(status).SerializeToString())
    found = [c for c in node_checks(observation, received_unix=1000.0, max_skew=1.0) if c.name == name]
    assert len(found) == 1, found
    return found[0]


def gpus_with(fake_nvml: FakeNvml, *capabilities: str) -> dict[str, Any]:
    """The GPU report of a node whose GPUs have these compute capabilities, read through the fake NVML."""
    config = two_gpus()
    for gpu, capability in zip(config.gpus, capabilities, strict=False):
        gpu.compute_capability = capability
    config.gpus = config.gpus[: len(capabilities)]
    fake_nvml.write(config)
    return fake_nvml.probe()


# -- compute capability ----------------------------------------------------------------------------


@pytest.mark.parametrize("capability", ["8.0", "8.6", "9.0", "5.2"])  # A100, RTX 3090, H100; and a Maxwell
def test_a_gpu_outside_6_0_to_7_5_fails_the_gpu_image_with_the_fix(fake_nvml: FakeNvml, capability: str) -> None:
    finding = doctor_finding(agent_status(gpus_with(fake_nvml, capability)), "GPU compute capability")
    assert finding.result == "FAIL"
    assert finding.where == "node-a"
    assert f"gpu 0 (NVIDIA A100-SXM4-80GB) {capability}" in finding.detail
    assert GPU_IMAGE in finding.detail and "6.0-7.5" in finding.detail
    assert finding.fix == CAPABILITY_FIX


@pytest.mark.parametrize("capability", ["6.0", "6.1", "7.0", "7.5"])  # P100, P40, V100, T4
def test_a_gpu_the_image_supports_passes(fake_nvml: FakeNvml, capability: str) -> None:
    finding = doctor_finding(agent_status(gpus_with(fake_nvml, capability)), "GPU compute capability")
    assert finding.result == "PASS", finding
    assert f"gpu 0 (NVIDIA A100-SXM4-80GB) {capability}" in finding.detail


def test_one_unsupported_gpu_among_supported_ones_fails_naming_it(fake_nvml: FakeNvml) -> None:
    finding = doctor_finding(agent_status(gpus_with(fake_nvml, "7.0", "9.0")), "GPU compute capability")
    assert finding.result == "FAIL"
    assert "gpu 1 (NVIDIA A100-SXM4-80GB) 9.0" in finding.detail and "gpu 0" not in finding.detail


def test_a_capability_the_driver_cannot_tell_is_a_warning(fake_nvml: FakeNvml) -> None:
    config = two_gpus()
    config.gpus[1].errors["nvmlDeviceGetCudaComputeCapability"] = 3  # NVML_ERROR_NOT_SUPPORTED
    fake_nvml.write(config)
    finding = doctor_finding(agent_status(fake_nvml.probe()), "GPU compute capability")
    assert finding.result == "WARN"
    assert "gpu 1 (NVIDIA A100-SXM4-80GB): compute capability unknown" in finding.detail
    assert "nvidia-smi --query-gpu=compute_cap" in finding.fix and CAPABILITY_FIX in finding.fix


def test_a_cpu_image_is_not_judged_on_its_gpus(fake_nvml: FakeNvml) -> None:
    status = agent_status(gpus_with(fake_nvml, "9.0"), flavor="cpu", image=CPU_IMAGE)
    finding = doctor_finding(status, "GPU compute capability")
    assert finding.result == "PASS"
    assert "milvus.flavor cpu" in finding.detail and CPU_IMAGE in finding.detail


def test_an_agent_that_reports_no_flavor_runs_the_gpu_default(fake_nvml: FakeNvml) -> None:
    finding = doctor_finding(agent_status(gpus_with(fake_nvml, "8.0"), flavor=""), "GPU compute capability")
    assert finding.result == "FAIL"


def test_no_nvml_leaves_the_finding_to_the_driver_check() -> None:
    status = agent_status({"available": False, "reason": "NVML unavailable: no driver", "gpus": []})
    observation = observation_pb(status)
    names = {c.name: c.result for c in node_checks(observation, received_unix=1000.0, max_skew=1.0)}
    assert names["NVIDIA driver"] == "FAIL"
    assert "GPU compute capability" not in names


def test_a_cpu_image_needs_neither_nvml_nor_the_container_hook() -> None:
    status = agent_status(
        {"available": False, "reason": "NVML unavailable: no driver", "gpus": []},
        flavor="cpu",
        image=CPU_IMAGE,
        toolkit={},
        runtimes=["runc"],
    )
    for name in ("NVIDIA driver", "Docker GPU hook"):
        finding = doctor_finding(status, name)
        assert (finding.result, finding.detail) == ("PASS", "not needed: milvus.flavor cpu")
    gpu_node = agent_status({"available": False, "reason": "NVML unavailable: no driver", "gpus": []}, toolkit={})
    assert doctor_finding(gpu_node, "NVIDIA driver").result == "FAIL"
    assert doctor_finding(gpu_node, "Docker GPU hook").result == "FAIL"


# -- the Docker GPU hook ---------------------------------------------------------------------------


def test_the_hook_serves_gpus_without_an_nvidia_runtime() -> None:
    # MILVUS1.md item 9: device requests need no registered nvidia runtime; the old check failed here.
    finding = doctor_finding(
        agent_status(None, toolkit=HOOK, runtimes=["io.containerd.runc.v2", "runc"]), "Docker GPU hook"
    )
    assert finding.result == "PASS"
    assert HOOK[RUNTIME_HOOK] in finding.detail and HOOK[CONTAINER_CLI] in finding.detail


def test_an_nvidia_runtime_without_the_hook_fails() -> None:
    status = agent_status(None, toolkit={TOOLKIT_CLI: "/usr/bin/nvidia-ctk"}, runtimes=["nvidia", "runc"])
    finding = doctor_finding(status, "Docker GPU hook")
    assert finding.result == "FAIL"
    assert f"no {RUNTIME_HOOK}" in finding.detail and "nvidia-ctk" in finding.detail
    assert "nvidia runtime does not serve device requests" in finding.detail
    assert "install nvidia-container-toolkit" in finding.fix and "restart Docker" in finding.fix


def test_no_toolkit_at_all_fails() -> None:
    finding = doctor_finding(agent_status(None, toolkit={}), "Docker GPU hook")
    assert finding.result == "FAIL"
    assert "none of the NVIDIA container toolkit found" in finding.detail
    assert "restart Docker" in finding.fix


def test_the_hook_without_nvidia_container_cli_fails() -> None:
    finding = doctor_finding(agent_status(None, toolkit={RUNTIME_HOOK: HOOK[RUNTIME_HOOK]}), "Docker GPU hook")
    assert finding.result == "FAIL"
    assert f"no {CONTAINER_CLI}" in finding.detail and "libnvidia-container-tools" in finding.fix


def test_only_the_cdi_hook_is_a_warning() -> None:
    finding = doctor_finding(agent_status(None, toolkit={CDI_HOOK: "/usr/bin/nvidia-cdi-hook"}), "Docker GPU hook")
    assert finding.result == "WARN"
    assert "CDI" in finding.detail and "--gpus" in finding.fix


@pytest.mark.parametrize(("runtimes", "result"), [(["nvidia", "runc"], "PASS"), (["runc"], "FAIL"), ([], "WARN")])
def test_an_agent_that_does_not_look_for_the_hook_is_judged_by_runtimes(runtimes: list[str], result: str) -> None:
    status = replace(agent_status(None, runtimes=runtimes), nvidia_toolkit=None)  # what an older agent sends:
    # nvidia_toolkit.checked stays false
    finding = doctor_finding(status, "Docker GPU hook")
    assert finding.result == result
    assert "does not report the NVIDIA container toolkit" in finding.detail


def test_what_the_agent_found_goes_on_the_wire() -> None:
    observation = observation_pb(agent_status(None, toolkit=HOOK))
    assert observation.nvidia_toolkit.checked is True
    assert dict(observation.nvidia_toolkit.found) == HOOK
    assert (observation.milvus_image, observation.milvus_flavor) == (GPU_IMAGE, "gpu")
    nothing_found = observation_pb(agent_status(None, toolkit={}))
    assert nothing_found.nvidia_toolkit.checked is True and not nothing_found.nvidia_toolkit.found
