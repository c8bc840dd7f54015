"""The cluster config on a node: the version a report's answer brings, kept on disk, merged over agent.yaml.

The coordinator answers each report with the version this node is to run (`ReportResponse.cluster_config`:
its pin, else the cluster's current one; version 0: none, agent.yaml alone). The agent keeps the last one it
took in `state_dir/cluster-config.yaml` (written atomically), so an agent restarted while no coordinator
answers runs it still, and writes its base server_config to `state_dir/cluster-server_config.yaml`, which the
merged config names as `milvus.base_config`.

The merge (`merge_cluster_config`, pure): the cluster wins for its keys (jfsmilvus.common.clusterconfig:
milvus.image, milvus.flavor, the base server_config, milvus.set_gpu_devices, gpu.fatal_xids, gpu.xid_hold_s,
milvus.*_timeout_s); every value agent.yaml sets for one of them that differs is a conflict line, shown by
`jfs-milvus-agent status`, in the report (`coordinatorctl status`) and by the doctor. A cluster config with an
empty server_config leaves each node's base file in use. Everything else in agent.yaml is the node's own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import yaml
from jfsmilvus.common.atomicfile import read_text, write_atomic
from jfsmilvus.common.clusterconfig import ClusterConfig, parse_cluster_config
from jfsmilvus.common.configschema import ConfigError

from agent.config import AgentConfig
from agent.milvus.container import ContainerState

log = logging.getLogger("jfs_milvus.agent.config")

TAKEN_FILE = "cluster-config.yaml"
BASE_FILE = "cluster-server_config.yaml"


@dataclass(frozen=True)
class TakenConfig:
    version: int  # 0: none (agent.yaml alone)
    body: str
    config: ClusterConfig | None


NONE_TAKEN = TakenConfig(0, "", None)

# (agent.yaml key, its value in an AgentConfig, the cluster's value, how to set it)
_Setter = Callable[[AgentConfig, Any], AgentConfig]
_Key = tuple[str, Callable[[AgentConfig], Any], Callable[[ClusterConfig], Any], _Setter]


def _milvus(field: str) -> _Setter:
    return lambda a, v: replace(a, milvus=replace(a.milvus, **{field: v}))


def _gpu(field: str) -> _Setter:
    return lambda a, v: replace(a, gpu=replace(a.gpu, **{field: v}))


CLUSTER_KEYS: tuple[_Key, ...] = (
    ("milvus.image", lambda a: a.milvus.image, lambda c: c.image, _milvus("image")),
    ("milvus.flavor", lambda a: a.milvus.flavor, lambda c: c.flavor, _milvus("flavor")),
    (
        "milvus.set_gpu_devices",
        lambda a: a.milvus.set_gpu_devices,
        lambda c: c.gpu.set_gpu_devices,
        _milvus("set_gpu_devices"),
    ),
    ("gpu.fatal_xids", lambda a: tuple(a.gpu.fatal_xids), lambda c: tuple(c.gpu.fatal_xids), _gpu("fatal_xids")),
    ("gpu.xid_hold_s", lambda a: a.gpu.xid_hold_s, lambda c: c.gpu.xid_hold_s, _gpu("xid_hold_s")),
    (
        "milvus.start_timeout_s",
        lambda a: a.milvus.start_timeout_s,
        lambda c: c.timing.start_timeout_s,
        _milvus("start_timeout_s"),
    ),
    (
        "milvus.stop_timeout_s",
        lambda a: a.milvus.stop_timeout_s,
        lambda c: c.timing.stop_timeout_s,
        _milvus("stop_timeout_s"),
    ),
    (
        "milvus.health_timeout_s",
        lambda a: a.milvus.health_timeout_s,
        lambda c: c.timing.health_timeout_s,
        _milvus("health_timeout_s"),
    ),
)


def explicit_keys(agent_yaml: str | None) -> frozenset[str]:
    """The dotted keys agent.yaml sets (section.key, for the sections the cluster config shares)."""
    try:
        data = yaml.safe_load(agent_yaml or "")
    except yaml.YAMLError:
        return frozenset()
    if not isinstance(data, dict):
        return frozenset()
    found = set()
    for section in ("milvus", "gpu"):
        values = data.get(section)
        if isinstance(values, dict):
            found.update(f"{section}.{key}" for key, value in values.items() if value is not None)
    return frozenset(found)


def merge_cluster_config(
    local: AgentConfig,
    taken: TakenConfig,
    explicit: frozenset[str],
    local_base: dict[str, Any] | None,
    cluster_base_path: str,
) -> tuple[AgentConfig, tuple[str, ...]]:
    """agent.yaml with the cluster's keys over it, and one line per agent.yaml value the cluster overrides.
    `local_base`: the node's own base server_config as parsed (None: none readable)."""
    cfg = taken.config
    if cfg is None:
        return local, ()
    merged = local
    conflicts: list[str] = []
    where = local.path or "agent.yaml"
    for key, mine, cluster, put in CLUSTER_KEYS:
        value = cluster(cfg)
        if key in explicit and mine(local) != value:
            conflicts.append(
                f"{where}: {key} = {mine(local)!r} is overridden by cluster config version {taken.version} ({value!r})"
            )
        merged = put(merged, value)
    if cfg.server_config:
        if local_base is not None and local_base != cfg.server_config:
            conflicts.append(
                f"{where}: milvus.base_config {local.milvus.base_config} differs from the server_config of cluster "
                f"config version {taken.version}, which is used"
            )
        merged = _milvus("base_config")(merged, cluster_base_path)
    return merged, tuple(conflicts)


def built_version(container: ContainerState | None, want_version: int, current: bool) -> int:
    """The cluster config version a running container runs: the wanted one when it is current (built from it,
    or from one that needs no restart from it), else the version on its label (0: none, or no label)."""
    if container is None or not container.running:
        return 0
    return want_version if current else container.config_version or 0


# -- on disk ------------------------------------------------------------------------------------------------
def read_taken(state_dir: str) -> TakenConfig:
    """The last version taken, as saved; NONE_TAKEN when there is none or it cannot be used (said once)."""
    path = os.path.join(state_dir, TAKEN_FILE)
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cluster config %s cannot be read, running agent.yaml alone: %s", path, exc)
        return NONE_TAKEN
    if text is None:
        return NONE_TAKEN
    try:
        data = yaml.safe_load(text)
        version, body = int(data["version"]), str(data["body"])
        return TakenConfig(version, body, parse_cluster_config(body, path) if version else None)
    except (yaml.YAMLError, TypeError, KeyError, ValueError, ConfigError) as exc:
        log.warning("cluster config %s cannot be used, running agent.yaml alone: %s", path, exc)
        return NONE_TAKEN


def save_taken(state_dir: str, taken: TakenConfig) -> None:
    """The taken version (and its base server_config) on disk, each file atomically; the base first."""
    if taken.config is not None and taken.config.server_config:
        base = yaml.safe_dump(taken.config.server_config, sort_keys=False, default_flow_style=False)
        write_atomic(os.path.join(state_dir, BASE_FILE), base, mode=0o600)
    text = yaml.safe_dump({"version": taken.version, "body": taken.body}, sort_keys=False)
    write_atomic(os.path.join(state_dir, TAKEN_FILE), text, mode=0o600)


def _read_mapping(path: str) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(read_text(path) or "")
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


class ClusterConfigKeeper:
    """The taken version and the merged config the agent runs (the imperative shell around the merge)."""

    def __init__(self, local: AgentConfig):
        self.local = local
        self.taken = read_taken(local.state_dir) if local.coordinators else NONE_TAKEN
        self._merged: tuple[tuple[AgentConfig, int], tuple[AgentConfig, tuple[str, ...]]] | None = None
        self._running = 0
        self._pending = False
        self._refused: str | None = None
        if self.taken.version:
            log.info("running cluster config version %d, as last taken (%s)", self.taken.version, TAKEN_FILE)

    @property
    def version(self) -> int:
        return self.taken.version

    def set_local(self, local: AgentConfig) -> None:
        self.local = local

    def _merge(self) -> tuple[AgentConfig, tuple[str, ...]]:
        key = (self.local, self.taken.version)
        if self._merged is None or self._merged[0] != key:
            local = self.local
            explicit = frozenset()
            if local.path:
                try:
                    explicit = explicit_keys(read_text(local.path))
                except (OSError, UnicodeDecodeError):
                    explicit = frozenset()
            base = _read_mapping(local.milvus.base_config) if self.taken.config is not None else None
            path = os.path.join(local.state_dir, BASE_FILE)
            self._merged = (key, merge_cluster_config(local, self.taken, explicit, base, path))
        return self._merged[1]

    def merged(self) -> AgentConfig:
        return self._merge()[0]

    @property
    def conflicts(self) -> tuple[str, ...]:
        return self._merge()[1]

    def take(self, version: int, body: str, problem: str | None) -> bool:
        """Take the version an answer brings (`problem`: why it cannot be used, from the wire check); True
        when it is another version than the one taken. A version that cannot be used or saved is not taken."""
        if problem is not None:
            if problem != self._refused:
                log.error("refused cluster config version %d from the coordinator: %s", version, problem)
                self._refused = problem
            return False
        if version == self.taken.version:
            return False
        try:
            config = parse_cluster_config(body, f"cluster config version {version}") if version else None
            taken = TakenConfig(version, body if version else "", config)
            save_taken(self.local.state_dir, taken)
        except (ConfigError, OSError) as exc:
            log.error("cluster config version %d not taken: %s", version, exc)
            return False
        log.info("took cluster config version %d (was %d) from the coordinator", version, self.taken.version)
        self.taken = taken
        self._refused = None
        return True

    def observe(self, container: ContainerState | None, want_version: int, current: bool) -> None:
        """What the running container was built from, after a cycle (`current`: converge.config_current)."""
        self._running = built_version(container, want_version, current)
        self._pending = container is not None and container.running and self._running != want_version

    def status(self) -> dict[str, Any]:
        return {
            "config_version": self._running,
            "config_wanted": self.taken.version,
            "config_pending": self._pending,
            "config_conflicts": list(self.conflicts),
        }


def cluster_config_summary(local: AgentConfig) -> tuple[AgentConfig, dict[str, Any]]:
    """For `jfs-milvus-agent status`: the config the daemon runs (agent.yaml with the version it took last) and
    what to show of it: the version, and each conflict line."""
    keeper = ClusterConfigKeeper(local)
    return keeper.merged(), {"version": keeper.version, "conflicts": list(keeper.conflicts)}


def render_cluster_config_lines(summary: dict[str, Any] | None) -> list[str]:
    if not summary or not summary.get("version"):
        return ["Cluster config: none taken (agent.yaml alone)"]
    lines = [f"Cluster config: version {summary['version']} (the last the coordinator gave this node)"]
    lines += [f"  conflict: {line}" for line in summary.get("conflicts", [])]
    return lines
