"""`coordinatorctl doctor`: the prerequisites the seed guides list and the pitfalls they warn about.

Each check gives PASS, WARN or FAIL with how to fix it. Cluster-wide checks run from here (MySQL from the
coordinator config); per-node checks read what each agent last reported to the leader (its GPUs, mount,
metadata engine, Docker, Mishards env file and clock) and what the real Milvus image needs of them: its version,
its MySQL account's CREATE right, one meta database for all, the writer's WAL recovery (coordinator.milvuschecks).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pymysql
from jfsmilvus.common.configschema import ConfigError
from jfsmilvus.common.milvus1 import CDI_HOOK, CONTAINER_CLI, RUNTIME_HOOK
from jfsmilvus.v1 import coordinator_pb2, node_pb2

from coordinator.checks import Check
from coordinator.config import DEFAULT_CONFIG_PATH, load_coordinator_config
from coordinator.configviews import judge_config_conflicts
from coordinator.connection import Connection
from coordinator.core import epochs_ahead_sentence
from coordinator.milvuschecks import judge_meta_databases, milvus_node_checks
from coordinator.output import EXIT_FAILED, EXIT_OK, emit, table

MIN_DRIVER = 418
# The Milvus 1.0 and 1.1 GPU images build faiss for sm_60, sm_61, sm_70 and sm_75 as SASS with no PTX
# (core/src/index/cmake/ThirdPartyPackagesCore.cmake:538), so their GPU kernels run on compute capability 6.0-7.5
# only; on an Ampere or Hopper GPU the first GPU search or index build aborts (milvus-io/milvus#5246, an RTX 3090).
MILVUS1_GPU_CAPABILITIES = ((6, 0), (7, 5))
CAPABILITY_FIX = "run a CPU image (milvus.flavor: cpu) or a GPU the image supports (compute capability 6.0-7.5)"


def check_mysql(args: argparse.Namespace) -> list[Check]:
    path = args.config or DEFAULT_CONFIG_PATH
    try:
        config = load_coordinator_config(path)
    except ConfigError as exc:
        return [
            Check("MySQL", path, "WARN", f"cannot read the coordinator config: {exc.problems[0]}", "pass --config FILE")
        ]
    ref = config.mysql
    where = f"mysql://{ref.user}@{ref.host}:{ref.port}"
    try:
        password = ref.password.load().reveal() if ref.password else None
        conn = pymysql.connect(
            host=ref.host, port=ref.port, user=ref.user, password=password or "", connect_timeout=3, read_timeout=3
        )
    except Exception as exc:  # any failure to connect is the finding
        message = str(exc)
        if password:
            message = message.replace(password, "***")
        return [
            Check("MySQL reachable", where, "FAIL", message, "start MySQL, or fix mysql.host/port/user in the config")
        ]
    checks = [Check("MySQL reachable", where, "PASS", "connected")]
    try:
        with conn.cursor() as cur:
            for database, what, fix in (
                (ref.database, "coordinator state database", "start jfs-milvus-coordinator once: it creates it"),
                (args.milvus_db, "Milvus meta database", f"CREATE DATABASE {args.milvus_db} (general.meta_uri)"),
            ):
                cur.execute("SHOW DATABASES LIKE %s", (database,))
                present = cur.fetchone() is not None
                checks.append(
                    Check(
                        what,
                        f"{where}/{database}",
                        "PASS" if present else "FAIL",
                        "present" if present else "missing",
                        "" if present else fix,
                    )
                )
    finally:
        conn.close()
    return checks


@dataclass(frozen=True)
class GpuFact:
    """What the compute capability rule needs of one GPU."""

    index: int
    name: str
    compute_capability: tuple[int, int] | None  # None: the agent could not read it


def _gpu_label(gpu: GpuFact) -> str:
    return f"gpu {gpu.index} ({gpu.name or 'unnamed'})"


def _capability_text(capability: tuple[int, int] | None) -> str:
    return "unknown" if capability is None else f"{capability[0]}.{capability[1]}"


def judge_compute_capability(node: str, flavor: str, image: str, gpus: Sequence[GpuFact]) -> Check | None:
    """Each GPU's compute capability against the GPU image's 6.0-7.5. None when there is nothing to judge (no GPU
    reported: the driver check says why)."""
    name = "GPU compute capability"
    if flavor == "cpu":
        return Check(name, node, "PASS", f"not checked: milvus.flavor cpu ({image}) runs no GPU kernels")
    if not gpus:
        return None
    low, high = MILVUS1_GPU_CAPABILITIES
    supports = f"the Milvus 1.x GPU image {image} runs GPU kernels on compute capability 6.0-7.5 only"
    unsupported = [g for g in gpus if g.compute_capability is not None and not low <= g.compute_capability <= high]
    if unsupported:
        listed = ", ".join(f"{_gpu_label(g)} {_capability_text(g.compute_capability)}" for g in unsupported)
        detail = f"{listed}: {supports}; its first GPU search or index build aborts (CUDA error 209, no kernel image)"
        return Check(name, node, "FAIL", detail, CAPABILITY_FIX)
    unknown = [g for g in gpus if g.compute_capability is None]
    if unknown:
        listed = ", ".join(_gpu_label(g) for g in unknown)
        detail = f"{listed}: compute capability unknown (the driver does not report it); {supports}"
        fix = f"read it with `nvidia-smi --query-gpu=compute_cap --format=csv`; outside 6.0-7.5: {CAPABILITY_FIX}"
        return Check(name, node, "WARN", detail, fix)
    listed = ", ".join(f"{_gpu_label(g)} {_capability_text(g.compute_capability)}" for g in gpus)
    return Check(name, node, "PASS", f"{listed}: within 6.0-7.5 of {image}")


def judge_docker_gpu(node: str, toolkit: Mapping[str, str] | None, runtimes: Sequence[str]) -> Check:
    """Can this node's Docker serve the GPU device request Milvus starts with? `toolkit`: the NVIDIA container
    toolkit's binaries the agent found (None: an agent too old to look, judged by the engine's runtimes alone)."""
    name = "Docker GPU hook"
    install = f"install nvidia-container-toolkit (it ships {RUNTIME_HOOK}) and restart Docker: dockerd looks for it"
    install += " only as it starts"
    if toolkit is None:
        return _judge_runtimes_only(node, name, runtimes, install)
    hook, cli, cdi_hook = toolkit.get(RUNTIME_HOOK), toolkit.get(CONTAINER_CLI), toolkit.get(CDI_HOOK)
    if hook and cli:
        return Check(name, node, "PASS", f"{hook} and {cli}: Docker serves the GPU device request (--gpus)")
    if hook:
        detail = f"{hook} found but no {CONTAINER_CLI}: the hook cannot bring the GPUs into the container"
        return Check(name, node, "FAIL", detail, f"install libnvidia-container-tools (it ships {CONTAINER_CLI})")
    if cdi_hook:
        detail = (
            f"no {RUNTIME_HOOK}, only {cdi_hook}: --gpus then works only on a Docker engine that serves it through"
            " CDI (moby#50228) with a CDI spec from `nvidia-ctk cdi generate`"
        )
        return Check(name, node, "WARN", detail, f"{install}; or check `docker run --rm --gpus all IMAGE true`")
    found = f"found only {', '.join(sorted(toolkit))}" if toolkit else "none of the NVIDIA container toolkit found"
    runtime_note = "; the registered nvidia runtime does not serve device requests" if "nvidia" in runtimes else ""
    detail = (
        f"no {RUNTIME_HOOK} ({found}){runtime_note}: Docker refuses the GPU device request Milvus starts with"
        ' (could not select device driver "nvidia")'
    )
    return Check(name, node, "FAIL", detail, install)


def _judge_runtimes_only(node: str, name: str, runtimes: Sequence[str], install: str) -> Check:
    older = "the agent does not report the NVIDIA container toolkit (upgrade it)"
    if not runtimes:
        return Check(name, node, "WARN", f"{older}, nor could it read the engine's runtimes", "check Docker")
    if "nvidia" in runtimes:
        return Check(name, node, "PASS", f"nvidia runtime registered ({older})")
    return Check(name, node, "FAIL", f"no nvidia runtime (runtimes {', '.join(runtimes)}; {older})", install)


def gpu_facts(observation: Any) -> list[GpuFact]:
    """The GPUs of a NodeObservation as the compute capability rule reads them (none when NVML was unavailable)."""
    if not observation.gpus.available:
        return []
    return [
        GpuFact(
            index=g.index,
            name=g.name,
            compute_capability=(g.compute_capability.major, g.compute_capability.minor)
            if g.HasField("compute_capability")
            else None,
        )
        for g in observation.gpus.gpus
    ]


def node_checks(observation: Any, received_unix: float, max_skew: float) -> list[Check]:
    node = observation.node
    out: list[Check] = []
    gpus = observation.gpus
    # An agent older than the field runs the default; a value no agent sends gets the stricter GPU checks.
    flavor = observation.milvus_flavor if observation.milvus_flavor in ("gpu", "cpu") else "gpu"
    if flavor == "cpu":  # a CPU image loads no NVIDIA library and asks Docker for no GPU
        out.append(Check("NVIDIA driver", node, "PASS", "not needed: milvus.flavor cpu"))
    elif not gpus.available:
        out.append(
            Check(
                "NVIDIA driver", node, "FAIL", gpus.reason or "NVML unavailable", "install NVIDIA driver 418 or later"
            )
        )
    else:
        major = int(m.group(1)) if (m := re.match(r"(\d+)", gpus.driver_version)) else 0
        ok = major >= MIN_DRIVER
        out.append(
            Check(
                "NVIDIA driver",
                node,
                "PASS" if ok else "FAIL",
                f"version {gpus.driver_version or '?'}",
                "" if ok else "upgrade to 418 or later",
            )
        )
    for mount in observation.mounts:
        where = f"{node}:{mount.mountpoint}"
        if mount.state in ("healthy", "degraded") and mount.mounted:
            out.append(
                Check(
                    "JuiceFS volume",
                    where,
                    "PASS",
                    f"{mount.volume} mounted {'ro' if mount.read_only else 'rw'}, {mount.state}",
                )
            )
        else:
            out.append(
                Check(
                    "JuiceFS volume",
                    where,
                    "FAIL",
                    f"{mount.state}: {'; '.join(mount.reasons) or 'not mounted'}",
                    "check `juicefs format` was run and the cache dir is writable",
                )
            )
        if mount.cache_dir_writable:
            out.append(Check("JuiceFS cache dir", where, "PASS", "writable"))
        else:
            out.append(
                Check(
                    "JuiceFS cache dir",
                    where,
                    "FAIL",
                    "not writable",
                    "fix the owner or mode of cache_dir, or choose another",
                )
            )
        meta = mount.meta_engine
        if not meta.reachable:
            out.append(
                Check("Redis (metadata)", where, "FAIL", meta.error or "unreachable", "start Redis or fix meta_url")
            )
        else:
            out.append(Check("Redis reachable", where, "PASS", f"latency {meta.latency_ms:.1f} ms"))
            policy = meta.maxmemory_policy
            if policy and policy != "noeviction":
                out.append(
                    Check(
                        "Redis maxmemory-policy",
                        where,
                        "WARN",
                        f"{policy}: Redis may evict JuiceFS metadata",
                        "CONFIG SET maxmemory-policy noeviction (and in redis.conf)",
                    )
                )
            elif policy:
                out.append(Check("Redis maxmemory-policy", where, "PASS", policy))
            for warning in meta.warnings:
                if "maxmemory-policy" not in warning:
                    out.append(
                        Check("Redis security", where, "WARN", warning, "set requirepass (and protected-mode as fits)")
                    )
    image = observation.milvus_image or observation.container.image or "(image not reported)"
    out += milvus_node_checks(observation, image)
    capability = judge_compute_capability(node, flavor, image, gpu_facts(observation))
    if capability is not None:
        out.append(capability)
    toolkit = dict(observation.nvidia_toolkit.found) if observation.nvidia_toolkit.checked else None
    if flavor == "cpu":
        out.append(Check("Docker GPU hook", node, "PASS", "not needed: milvus.flavor cpu"))
    else:
        out.append(judge_docker_gpu(node, toolkit, list(observation.docker_runtimes)))
    docker_errors = [e for e in observation.last_errors if "Docker" in e]
    if observation.container.state in ("running",):
        out.append(Check("Docker", node, "PASS", f"Milvus container {observation.container.state}"))
    elif docker_errors:
        out.append(Check("Docker", node, "FAIL", docker_errors[-1], "start the Docker engine"))
    else:
        out.append(
            Check("Docker", node, "WARN", f"no Milvus container running ({observation.container.state or 'absent'})")
        )
    out += mishards_checks(observation)
    out.append(judge_config_conflicts(observation))
    obs = observation
    out.append(judge_clock(node, obs.clock_offset_s, obs.clock_rtt_s, received_unix, obs.observed_at_unix, max_skew))
    return out


def judge_clock(
    node: str, offset_s: float, rtt_s: float, received_unix: float, observed_at_unix: float, max_skew: float
) -> Check:
    """The node's clock against the leader's. From the agent's NTP-style estimate (agent.clock: the leader's clock
    in a report's answer against the middle of its round trip, off by at most half of it); from an agent too old
    to measure, by the age of its last observation, which is taken up to a cycle before it is sent, so only a
    gap beyond that means a clock is off."""
    fix = "run chrony or systemd-timesyncd"
    if rtt_s > 0:
        skew, slack = offset_s, 0.0
        detail = f"{skew:+.3f}s from the leader's (on a {rtt_s * 1000:.1f} ms round trip: +-{rtt_s * 500:.1f} ms)"
    else:
        skew, slack = observed_at_unix - received_unix, 1.5
        detail = f"{skew:+.2f}s from the leader's (by its report's age, +-{slack:.1f}s: the agent does not estimate it)"
    result = "PASS" if abs(skew) <= max_skew + slack else ("WARN" if abs(skew) <= 5 else "FAIL")
    return Check("clock", node, result, detail, "" if result == "PASS" else fix)


def judge_epochs(reported: Mapping[str, int], committed_epoch: int) -> Check:
    """Every node at or below the committed epoch; one above it is no candidate until the leader heals it."""
    ahead = epochs_ahead_sentence(reported, committed_epoch)
    if ahead:
        return Check(
            "epochs",
            "cluster",
            "FAIL",
            ahead,
            "the leader heals this by committing a higher epoch; if it does not within a few ticks, check "
            "`coordinatorctl why` and the leader's log",
        )
    return Check("epochs", "cluster", "PASS", f"no node reports an epoch above the committed epoch {committed_epoch}")


def mishards_checks(observation: node_pb2.NodeObservation) -> list[Check]:
    """The Mishards container the agent runs (issue 14), and any Mishards container whose environment overrides
    the agent's settings (the seed's compose file: FROM_EXAMPLE and the Mishards keys in `environment:`)."""
    node = observation.node
    if not observation.HasField("mishards"):
        return []
    m = observation.mishards
    out = []
    if m.error:
        out.append(Check("Mishards container", node, "FAIL", m.error, "see the agent's log; mishards.image, Docker"))
    elif m.state == "running":
        detail = f"{m.container}: WOSERVER {observation.mishards_writer}, hosts {','.join(m.hosts)}"
        if m.left_out:
            detail += f"; left out (not answering): {','.join(m.left_out)}"
        out.append(Check("Mishards container", node, "PASS", detail))
    else:
        out.append(Check("Mishards container", node, "WARN", f"{m.state}: {m.reason}"))
    for foreign in m.foreign_overrides:
        out.append(
            Check(
                "Mishards not run by the agent",
                node,
                "FAIL",
                f"{foreign} (its environment beats the agent's settings)",
                "stop that compose service, or remove FROM_EXAMPLE and the Mishards keys from its environment:",
            )
        )
    return out


def cmd_doctor(conn: Connection, args: argparse.Namespace) -> int:
    checks = check_mysql(args)
    try:
        stub = conn.leader()
        observed = stub.GetNodeObservations(coordinator_pb2.NodeObservationsRequest(), timeout=conn.timeout_s)
        checks.append(
            Check("coordinator", ",".join(conn.addresses), "PASS", f"{len(observed.observations)} nodes reporting")
        )
        hosts = 0
        for observation, received in zip(observed.observations, observed.received_unix, strict=False):
            checks += node_checks(observation, received, args.max_clock_skew)
            hosts += observation.HasField("mishards")
        cluster = stub.GetClusterStatus(coordinator_pb2.ClusterStatusRequest(), timeout=conn.timeout_s)
        checks.append(judge_epochs({o.node: o.highest_epoch_seen for o in observed.observations}, cluster.epoch))
        databases = judge_meta_databases([(o.node, o.milvus_meta) for o in observed.observations])
        if databases is not None:
            checks.append(databases)
        if not hosts:
            checks.append(
                Check(
                    "Mishards container",
                    "cluster",
                    "WARN",
                    "no node runs Mishards through its agent",
                    "set mishards.enabled on the node that hosts Mishards",
                )
            )
    except (grpc.RpcError, Exception) as exc:  # the coordinator being down is a finding, not a crash
        detail = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)
        checks.append(Check("coordinator", ",".join(conn.addresses), "FAIL", detail, "start jfs-milvus-coordinator"))
    data = [c.__dict__ for c in checks]
    emit(
        data,
        args.output,
        lambda d: table(
            ["RESULT", "CHECK", "WHERE", "DETAIL", "FIX"],
            [[c["result"], c["name"], c["where"], c["detail"], c["fix"]] for c in d],
        ),
    )
    return EXIT_FAILED if any(c.result == "FAIL" for c in checks) else EXIT_OK
