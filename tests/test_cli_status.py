"""`jfs-milvus-agent status`: what an operator sees on a node, with and without GPUs and mounts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agent.mount import MountManager
from tests.agentconf import write_agent_yaml
from tests.plugin_gpu import FakeNvml, FakeXid, two_gpus
from tests.plugin_juicefs import JfsTestVolume

STATUS = [sys.executable, "-m", "agent.cli", "status"]


def run_status(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd: a directory with no agent.yaml; HOME-independent defaults.
    env = {k: v for k, v in env.items() if k != "JFS_MILVUS_AGENT_CONFIG"}
    return subprocess.run([*STATUS, *args], env=env, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_no_driver_no_config_prints_json_naming_nvml_unavailable(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    run = run_status(fake_nvml.env_without_library(), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    status = json.loads(run.stdout)
    assert status["gpu"]["available"] is False
    assert status["gpu"]["reason"].startswith("NVML unavailable")
    assert status["mounts"] == []
    assert "no JuiceFS volume is configured" in status["mounts_note"]
    assert status["config"] is None


def test_table_without_driver_says_so(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    run = run_status(fake_nvml.env_without_library(), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "GPUs: NVML unavailable" in run.stdout
    assert "Mounts: no JuiceFS volume is configured" in run.stdout


def test_gpus_and_a_real_mount(fake_nvml: FakeNvml, jfs_volume: JfsTestVolume, tmp_path: Path) -> None:
    gpus = two_gpus()
    gpus.xids.append(FakeXid(seq=1, gpu=1, xid=79))  # before start: a one-shot probe cannot see it
    gpus.gpus[1].ecc_uncorrected_volatile = 2
    fake_nvml.write(gpus)
    MountManager(jfs_volume.volume, jfs_volume.settings, "node-a").ensure("ro")
    config = write_agent_yaml(tmp_path / "agent.yaml", "node-a", "127.0.0.1", jfs_volume)

    run = run_status(fake_nvml.env(), "--config", config, "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    status = json.loads(run.stdout)
    assert status["config"] == config
    assert status["gpu"]["available"] is True
    assert [g["health"] for g in status["gpu"]["gpus"]] == ["healthy", "failed"]
    assert status["gpu"]["gpus"][0]["uuid"] == gpus.gpus[0].uuid
    (mount,) = status["mounts"]
    assert mount["mountpoint"] == jfs_volume.mountpoint
    assert mount["mounted"] is True and mount["mode"] == "ro" and mount["state"] == "healthy"
    assert mount["meta_engine"]["reachable"] is True

    table = run_status(fake_nvml.env(), "--config", config, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert gpus.gpus[0].uuid in table.stdout and "failed" in table.stdout
    assert jfs_volume.mountpoint in table.stdout and "healthy" in table.stdout
    assert " ok " in table.stdout  # the metadata engine answered


def test_an_unmounted_volume_and_a_bad_config(fake_nvml: FakeNvml, jfs_volume: JfsTestVolume, tmp_path: Path) -> None:
    config = write_agent_yaml(tmp_path / "agent.yaml", "node-a", "127.0.0.1", jfs_volume)
    run = run_status(fake_nvml.env_without_library(), "--config", config, "--json", cwd=tmp_path)
    (mount,) = json.loads(run.stdout)["mounts"]
    assert mount["mounted"] is False and mount["state"] == "unmounted"

    bad = write_agent_yaml(tmp_path / "bad.yaml", "Node A", "127.0.0.1", None)
    run = run_status(fake_nvml.env_without_library(), "--config", bad, cwd=tmp_path)
    assert run.returncode == 2
    assert "node.name = 'Node A'" in run.stderr


def test_status_shows_compute_capability_image_and_toolkit(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    gpus = two_gpus()
    gpus.gpus[0].compute_capability = "8.0"
    gpus.gpus[1].errors["nvmlDeviceGetCudaComputeCapability"] = 13  # a driver without the call
    fake_nvml.write(gpus)
    env = fake_nvml.env()
    env["PATH"] = f"{tmp_path}:{env.get('PATH', '')}"
    hook = tmp_path / "nvidia-container-runtime-hook"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)

    run = run_status(env, "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    status = json.loads(run.stdout)
    assert [g["compute_capability"] for g in status["gpu"]["gpus"]] == [[8, 0], None]
    assert status["milvus_flavor"] == "gpu" and status["milvus_image"].startswith("milvusdb/milvus:1.0.0-gpu")
    assert status["nvidia_toolkit"]["nvidia-container-runtime-hook"] == str(hook)

    table = run_status(env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    header = next(line for line in table.stdout.splitlines() if line.startswith("GPU "))
    assert " CC " in header
    first = next(line for line in table.stdout.splitlines() if gpus.gpus[0].uuid in line)
    assert " 8.0 " in first
    assert f"NVIDIA container toolkit: nvidia-container-runtime-hook {hook}" in table.stdout
    assert "Milvus image milvusdb/milvus:1.0.0-gpu" in table.stdout and "(flavor gpu)" in table.stdout
