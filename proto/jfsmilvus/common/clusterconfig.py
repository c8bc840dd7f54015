"""The cluster config: the settings every node of the cluster shares, versioned in MySQL by the coordinator.

Pure: YAML text in, a frozen `ClusterConfig` out (every problem at once, each naming the file, key, bad value
and what is allowed, as agent.yaml's), and back. Both daemons import it: the coordinator validates an edit
before it commits it, the agent validates what a report's answer brings before it takes it.

What is the cluster's (a node's `agent.yaml` keeps what is its own: name, address, mounts, secrets, GPUs):

- `milvus.image`, `milvus.flavor` (gpu | cpu) and `milvus.server_config` (the base server_config.yaml, as
  a mapping, checked as the agent checks its base file: sections are mappings, `version` is 0.5);
- the GPU policy: `gpu.set_gpu_devices` (leave failed GPUs out of the container and render the device lists),
  `gpu.fatal_xids` and `gpu.xid_hold_s` (which XIDs fail a GPU, and for how long). Which GPUs a node has and
  gives Milvus (`milvus.gpus`) and whether it watches them (`gpu.enabled`) stay the node's;
- the timing of the Milvus container: `timing.start_timeout_s`, `timing.stop_timeout_s` and
  `timing.health_timeout_s` (milvus.*_timeout_s in agent.yaml). They depend on the data and the image, which
  every node shares, and a reader that gives up on a start sooner than the writer would is no use. The
  coordinator's timing (lease, detection, drain) stays in coordinator.yaml: its safety rules are checked
  against that coordinator's own `leader_lease_s` when it loads, and `coordination.report_interval_s` stays
  the node's (its reporter reads it once, at the start).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import yaml

from jfsmilvus.common.configschema import ConfigError, ConfigProblem, Section, parse_config_text
from jfsmilvus.common.milvus1 import MILVUS_CONFIG_VERSION

FLAVORS = ("gpu", "cpu")
DEFAULT_IMAGE = "milvusdb/milvus:1.0.0-gpu-d030521-1ea92e"
# XIDs NVIDIA documents as fatal for the GPU or its memory; 63, 92 and 94 are recoverable and are not.
DEFAULT_FATAL_XIDS: tuple[int, ...] = (46, 48, 62, 64, 74, 79, 95, 109, 110, 119, 120)
MAX_BODY_BYTES = 64 * 1024  # a whole cluster config; a real one is a few KiB
IMAGE_PATTERN = r"[^\s$]+"


@dataclass(frozen=True)
class GpuPolicy:
    set_gpu_devices: bool = True
    fatal_xids: tuple[int, ...] = DEFAULT_FATAL_XIDS
    xid_hold_s: float | None = None  # None: a fatal XID holds the GPU failed until the agent restarts


@dataclass(frozen=True)
class MilvusTiming:
    start_timeout_s: float = 600.0
    stop_timeout_s: float = 30.0
    health_timeout_s: float = 120.0


@dataclass(frozen=True)
class ClusterConfig:
    image: str = DEFAULT_IMAGE
    flavor: str = "gpu"
    server_config: dict[str, Any] = field(default_factory=dict)  # the base server_config.yaml
    gpu: GpuPolicy = field(default_factory=GpuPolicy)
    timing: MilvusTiming = field(default_factory=MilvusTiming)


def _is_config_version(value: object) -> bool:
    if isinstance(value, float):
        return str(value) == MILVUS_CONFIG_VERSION
    return isinstance(value, str) and value == MILVUS_CONFIG_VERSION


def _read_server_config(sec: Section) -> dict[str, Any]:
    """The base server_config.yaml as the agent takes its base file (agent/milvus/server_config.py)."""
    # No finish(): keys Milvus ignores are the agent's warnings when it renders (milvuskeys.py), not errors.
    data = sec.data
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name == "version":
            if not _is_config_version(value):
                sec.problem(
                    "version",
                    value,
                    f"Milvus 1.x reads only config version {MILVUS_CONFIG_VERSION} and exits on any other "
                    f"(a 0.x config needs the 1.x layout of server_config.template, version: {MILVUS_CONFIG_VERSION})",
                )
                continue
        elif value is not None and not isinstance(value, dict):
            sec.problem(str(name), value, f"a section must be a mapping of keys to values, not {type(value).__name__}")
            continue
        out[str(name)] = value
    return out


def _read(top: Section) -> ClusterConfig:
    milvus = top.section("milvus", required=True)
    image = milvus.string("image", DEFAULT_IMAGE, pattern=IMAGE_PATTERN, allowed="a Docker image reference")
    flavor = milvus.choice("flavor", FLAVORS, "gpu")
    server_config = _read_server_config(milvus.section("server_config"))
    milvus.finish()

    gpu = top.section("gpu")
    policy = GpuPolicy(
        set_gpu_devices=gpu.boolean("set_gpu_devices", True),
        fatal_xids=tuple(gpu.int_list("fatal_xids", list(DEFAULT_FATAL_XIDS), minimum=1)),
        xid_hold_s=gpu.number("xid_hold_s", None, minimum=1),
    )
    gpu.finish()

    t = top.section("timing")
    timing = MilvusTiming(
        start_timeout_s=t.number("start_timeout_s", 600.0, minimum=1, maximum=86400),
        stop_timeout_s=t.number("stop_timeout_s", 30.0, minimum=1, maximum=3600),
        health_timeout_s=t.number("health_timeout_s", 120.0, minimum=1, maximum=3600),
    )
    t.finish()
    return ClusterConfig(
        image=image,
        flavor=flavor,
        server_config=server_config,
        gpu=policy,
        timing=timing,
    )


def parse_cluster_config(text: str, source: str) -> ClusterConfig:
    """The config `text` holds; ConfigError (jfsmilvus.common.configschema) with every problem, each naming
    `source` (a file, or "cluster config version N")."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_BODY_BYTES:
        raise ConfigError([ConfigProblem(source, "(file)", f"{size} bytes", f"at most {MAX_BODY_BYTES} bytes")])
    return parse_config_text(text, source, _read)


def render_cluster_config(cfg: ClusterConfig) -> str:
    """The YAML text of `cfg`, every key written out (parse_cluster_config reads it back to `cfg`)."""
    data: dict[str, Any] = {
        "milvus": {"image": cfg.image, "flavor": cfg.flavor, "server_config": cfg.server_config},
        "gpu": {
            "set_gpu_devices": cfg.gpu.set_gpu_devices,
            "fatal_xids": list(cfg.gpu.fatal_xids),
            "xid_hold_s": cfg.gpu.xid_hold_s,
        },
        "timing": {
            "start_timeout_s": cfg.timing.start_timeout_s,
            "stop_timeout_s": cfg.timing.stop_timeout_s,
            "health_timeout_s": cfg.timing.health_timeout_s,
        },
    }
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def config_diff(old_text: str, new_text: str, old_name: str = "current", new_name: str = "new") -> str:
    """A unified diff of two config texts; "" when they are the same."""
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True), old_name, new_name
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def restart_needed(old: ClusterConfig | None, new: ClusterConfig) -> bool:
    """Whether a running Milvus must restart to run `new` rather than `old`: the image, the flavor or the base
    server_config changed, or the GPU policy's set_gpu_devices (the device request and lists follow it).
    The XID policy and the timing apply in the agent, without a restart. No `old` (a first version): True."""
    if old is None:
        return True
    return (
        old.image != new.image
        or old.flavor != new.flavor
        or old.server_config != new.server_config
        or old.gpu.set_gpu_devices != new.gpu.set_gpu_devices
    )
