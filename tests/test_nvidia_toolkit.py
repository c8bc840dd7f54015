"""The agent's look for the NVIDIA container toolkit (agent/milvus/nvidiatoolkit.py): what serves Docker's GPU device
request, found as dockerd finds it, and reported in the agent's status for the doctor to judge."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest
from jfsmilvus.common.milvus1 import CONTAINER_CLI, RUNTIME_HOOK, TOOLKIT_CLI

from agent.config import GpuSettings, default_agent_config
from agent.daemon import Agent
from agent.milvus.nvidiatoolkit import find_nvidia_toolkit, toolkit_search_path
from agent.wire import observation_pb

CPU_IMAGE = "milvusdb/milvus:1.1.1-cpu-d061621-330cc6"


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_agent_finds_the_toolkit_binaries_on_the_path(tmp_path: Path) -> None:
    bin_dir, sbin_dir = tmp_path / "bin", tmp_path / "sbin"
    bin_dir.mkdir()
    sbin_dir.mkdir()
    hook = executable(bin_dir / RUNTIME_HOOK)
    cli = executable(sbin_dir / CONTAINER_CLI)
    (bin_dir / TOOLKIT_CLI).write_text("not executable\n")
    found = find_nvidia_toolkit(os.pathsep.join([str(bin_dir), str(sbin_dir)]))
    assert found == {RUNTIME_HOOK: str(hook), CONTAINER_CLI: str(cli)}
    assert find_nvidia_toolkit(str(tmp_path / "empty")) == {}


def test_the_agent_also_searches_where_dockerd_looks() -> None:
    path = toolkit_search_path({"PATH": "/opt/tools/bin"}).split(os.pathsep)
    assert path[0] == "/opt/tools/bin"
    assert "/usr/bin" in path and "/usr/local/bin" in path and "/usr/sbin" in path
    assert toolkit_search_path({"PATH": "/usr/bin:/bin"}).split(os.pathsep).count("/usr/bin") == 1


def test_the_daemon_reports_its_image_flavor_and_toolkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hook = executable(bin_dir / RUNTIME_HOOK)
    monkeypatch.setenv("PATH", str(bin_dir))
    defaults = default_agent_config()
    milvus = dataclasses.replace(defaults.milvus, image=CPU_IMAGE, flavor="cpu", data_dir=str(tmp_path / "milvus"))
    config = dataclasses.replace(defaults, state_dir=str(tmp_path), gpu=GpuSettings(enabled=False), milvus=milvus)
    agent = Agent(config, docker_url=f"unix://{tmp_path}/no-docker.sock")
    agent.loop_once()  # Docker unreachable: the agent still looks at the node
    observation = observation_pb(agent.status())
    assert (observation.milvus_image, observation.milvus_flavor) == (CPU_IMAGE, "cpu")
    assert observation.nvidia_toolkit.checked and observation.nvidia_toolkit.found[RUNTIME_HOOK] == str(hook)
