"""A whole cluster on this machine: one JuiceFS volume, MariaDB, a coordinator, and N agents.

Each node has its own loopback address (127.0.0.x), its own mount of the shared volume, its own stand-in
Milvus container, and its agent runs in its own net_cls cgroup so that iptables can cut that node off from
the coordinator, from MySQL, or from everything, without touching the others. A writer client and the
stand-in's write log let tests prove that no two writers overlapped and nothing acknowledged was lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import JuicefsSettings
from tests.plugin_agent import AgentNode, wait_until
from tests.plugin_coordinator import CoordinatorProcess
from tests.plugin_gpu import two_gpus
from tests.plugin_juicefs import JfsTestVolume
from tests.plugin_mysql import MysqlDatabase
from tests.standin import writelog

NET_CLS = Path("/sys/fs/cgroup/net_cls")


def ensure_net_cls() -> None:
    if (NET_CLS / "net_cls.classid").exists():
        return
    NET_CLS.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        ["mount", "-t", "cgroup", "-o", "net_cls", "net_cls", str(NET_CLS)], capture_output=True, text=True
    )
    if run.returncode != 0 and not (NET_CLS / "net_cls.classid").exists():
        pytest.skip(f"cannot mount the net_cls cgroup for per-node partitions: {run.stderr.strip()}")


class Firewall:
    """iptables rules for one test, all removed at the end."""

    def __init__(self) -> None:
        self.rules: list[list[str]] = []

    def add(self, *rule: str) -> None:
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
        self.rules.append(list(rule))

    def clear(self) -> None:
        for rule in reversed(self.rules):
            subprocess.run(["iptables", "-D", *rule], capture_output=True)
        self.rules = []


class ClusterNode(AgentNode):
    def __init__(self, *args: Any, classid: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.classid = classid
        self.cgroup = NET_CLS / f"jfs-milvus-test-{self.name}"

    def start(self) -> None:
        self.cgroup.mkdir(exist_ok=True)
        (self.cgroup / "net_cls.classid").write_text(f"{self.classid}\n")
        self.launcher = ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$@"', "sh"]
        super().start()


class LocalCluster:
    def __init__(
        self,
        root: Path,
        volume: JfsTestVolume,
        db: MysqlDatabase,
        image: str,
        coordinator: CoordinatorProcess,
        size: int,
        nvml_lib: Path | None = None,
    ):
        ensure_net_cls()
        self.root = root
        self.volume = volume
        self.db = db
        self.coordinator = coordinator
        self.firewall = Firewall()
        readonly_password = root / "reader-mysql-password"
        assert db.readonly.password is not None
        readonly_password.write_text(db.readonly.password.reveal() + "\n")
        readonly_password.chmod(0o600)
        self.nodes: dict[str, ClusterNode] = {}
        suffix = os.getpid() % 1000
        for i in range(size):
            name = f"node-{chr(ord('a') + i)}{suffix}"
            node_root = root / name
            node_root.mkdir()
            mountpoint = node_root / "jfs"
            vol = dataclasses.replace(volume.volume, mountpoint=str(mountpoint), cache_dir=str(node_root / "cache"))
            settings: JuicefsSettings = dataclasses.replace(
                volume.settings,
                fstab=str(node_root / "fstab"),
                systemd_dir=str(node_root / "systemd"),
                secrets_dir=str(node_root / "secrets"),
                volumes=(vol,),
            )
            node_volume = dataclasses.replace(volume, volume=vol, settings=settings, root=node_root)
            node = ClusterNode(
                node_root, node_volume, image, name=name, address=f"127.0.0.{20 + i}", classid=0x100010 + i
            )
            node.write_config(
                coordinators=[coordinator.address],
                coordination={
                    "report_interval_s": 1.0,
                    "report_timeout_s": 0.5,
                    "mysql": {
                        "host": db.readonly.host,
                        "port": db.readonly.port,
                        "user": db.readonly.user,
                        "database": db.name,
                        "password_file": str(readonly_password),
                    },
                },
            )
            if nvml_lib is not None:
                node.nvml_config = node_root / "fake-nvml.conf"
                node.nvml_config.write_text(two_gpus().render())
                node.env.update(LD_LIBRARY_PATH=str(nvml_lib), FAKE_NVML_CONFIG=str(node.nvml_config))
                node.write_config(gpu={"enabled": True, "poll_interval_s": 1})
            self.nodes[name] = node

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.coordinator.start()
        for node in self.nodes.values():
            node.start()

    def status(self) -> Any:
        return self.coordinator.status()

    def writer(self) -> str:
        return self.status().writer

    def wait_for_writer(self, timeout: float = 60, other_than: str | None = None) -> ClusterNode:
        def one_healthy_writer() -> str | None:
            s = self.status()
            if not s.writer or s.writer == other_than:
                return None
            row = next((n for n in s.nodes if n.name == s.writer), None)
            if row is None or row.role_running != 2:  # ROLE_RW
                return None
            code, _ = self.nodes[s.writer].http("GET", "/state")
            return s.writer if code == 200 else None

        name = wait_until(one_healthy_writer, timeout, f"one healthy writer (not {other_than})\n{self.logs()}")
        return self.nodes[name]

    def readers(self) -> list[ClusterNode]:
        writer = self.writer()
        return [n for name, n in self.nodes.items() if name != writer]

    def logs(self) -> str:
        parts = [f"--- coordinator ---\n{self.coordinator.log()[-3000:]}"]
        parts += [f"--- {n.name} ---\n{n.log()[-2000:]}" for n in self.nodes.values()]
        return "\n".join(parts)

    # -- faults ---------------------------------------------------------------------------------------------
    def _port(self, address: str) -> str:
        return address.rpartition(":")[2]

    def cut_from_coordinator(self, node: ClusterNode) -> None:
        self.firewall.add(
            "OUTPUT",
            "-m",
            "cgroup",
            "--cgroup",
            str(node.classid),
            "-p",
            "tcp",
            "--dport",
            self._port(self.coordinator.address),
            "-j",
            "DROP",
        )

    def cut_from_mysql(self, node: ClusterNode) -> None:
        self.firewall.add(
            "OUTPUT",
            "-m",
            "cgroup",
            "--cgroup",
            str(node.classid),
            "-p",
            "tcp",
            "--dport",
            str(self.db.readonly.port),
            "-j",
            "DROP",
        )

    def cut_from_peers(self, node: ClusterNode) -> None:
        """Nobody reaches the node's Milvus (witnesses see it down); the node's own agent still does."""
        self.firewall.add(
            "OUTPUT", "-d", node.address, "-m", "cgroup", "!", "--cgroup", str(node.classid), "-j", "DROP"
        )

    def heal(self) -> None:
        self.firewall.clear()

    def cleanup(self) -> None:
        self.heal()
        self.coordinator.kill()
        for node in self.nodes.values():
            node.cleanup()
            with contextlib.suppress(OSError):
                node.cgroup.rmdir()

    # -- the checker ----------------------------------------------------------------------------------------
    def db_dir(self) -> Path:
        return Path(next(iter(self.nodes.values())).volume.mountpoint) / "milvus" / "db"

    def check_history(self, acknowledged: set[str]) -> list[writelog.WriterInterval]:
        """No two writers overlapped, nothing acknowledged was lost; returns the writer intervals."""
        reader = next(n for n in self.nodes.values() if n.mount_mode())
        logs = writelog.read_logs(Path(reader.volume.mountpoint) / "milvus" / "db")
        intervals = writelog.writer_intervals(logs)
        overlaps = writelog.find_overlaps(intervals)
        assert not overlaps, f"two writers at once: {overlaps}"
        missing = writelog.missing_acknowledged(acknowledged, logs)
        assert not missing, f"acknowledged writes lost: {sorted(missing)[:10]}"
        return intervals


class WriteClient:
    """Writes steadily to whichever node the coordinator names as writer; remembers what was acknowledged."""

    def __init__(self, cluster: LocalCluster, period_s: float = 0.05):
        self.cluster = cluster
        self.period_s = period_s
        self.acknowledged: set[str] = set()
        self.ack_times: list[float] = []
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._writer: str | None = None

    def _run(self) -> None:
        n = 0
        last_lookup = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_lookup > 0.5:
                try:
                    self._writer = self.cluster.writer() or None
                except Exception as exc:
                    self._writer = None
                    self.last_error = f"status: {exc!r}"
                last_lookup = time.monotonic()
            node = self.cluster.nodes.get(self._writer or "")
            if node is not None:
                write_id = f"w{n}"
                n += 1
                try:
                    code, answer = node.write(write_id)
                except Exception as exc:  # the client must outlive any one bad answer
                    code, answer = 0, {"error": repr(exc)}
                if code == 200:
                    self.acknowledged.add(write_id)
                    self.ack_times.append(time.monotonic())
                else:
                    self.errors += 1
                    self.last_error = f"{node.name}: HTTP {code} {answer}"
            self._stop.wait(self.period_s)

    def start(self) -> WriteClient:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def acked_after(self, t: float) -> int:
        return sum(1 for a in self.ack_times if a > t)


@pytest.fixture
def local_cluster(
    make_volume: Callable[..., JfsTestVolume],
    mysql_db: MysqlDatabase,
    standin_image: str,
    coordinator_factory: Callable[..., CoordinatorProcess],
    tmp_path: Path,
) -> Iterator[Callable[..., LocalCluster]]:
    made: list[LocalCluster] = []

    def make(size: int = 3, nvml_lib: Path | None = None, publish: bool = False, **timing: Any) -> LocalCluster:
        volume = make_volume(probe_timeout_s=2.0)
        coordinator = coordinator_factory(**timing)
        if publish:
            password = tmp_path / "publish-redis-password"
            password.write_text((volume.redis.password or "") + "\n")
            password.chmod(0o600)
            coordinator.data["publish"] = {
                "redis_url": f"redis://127.0.0.1:{volume.redis.port}/0",
                "password_file": str(password),
                "channel": "jfs-milvus:writer",
            }
        root = tmp_path / f"cluster{len(made)}"
        root.mkdir()
        cluster = LocalCluster(root, volume, mysql_db, standin_image, coordinator, size, nvml_lib)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.cleanup()
