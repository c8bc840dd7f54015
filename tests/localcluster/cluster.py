"""The nodes, coordinators and partitions of a cluster on this machine; the write client and the checker.

Each node has its own loopback address (127.0.0.x), its own mount of the shared volume, its own stand-in
Milvus container, and its agent runs in its own net_cls cgroup so that iptables can cut that node off from
the coordinators, from MySQL, or from everything, without touching the others. Every iptables rule carries
a comment naming the cluster's root, so `down` finds any rule a crashed run left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from agent.config import JuicefsSettings
from tests.plugin_agent import AgentNode, wait_until
from tests.plugin_coordinator import CoordinatorProcess
from tests.plugin_gpu import two_gpus
from tests.plugin_juicefs import JfsTestVolume
from tests.plugin_mysql import MysqlDatabase
from tests.standin import writelog

NET_CLS = Path("/sys/fs/cgroup/net_cls")
CGROUP_PREFIX = "jfs-milvus-test-"
RULE_TAG = "jfs-milvus-localcluster"
Say = Callable[[str], None]  # where a long operation tells its progress, one line at a time


class ClusterSetupError(RuntimeError):
    """This machine cannot run a local cluster; the message says what is missing."""


def ensure_net_cls() -> None:
    if (NET_CLS / "net_cls.classid").exists():
        return
    NET_CLS.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        ["mount", "-t", "cgroup", "-o", "net_cls", "net_cls", str(NET_CLS)], capture_output=True, text=True
    )
    if run.returncode != 0 and not (NET_CLS / "net_cls.classid").exists():
        raise ClusterSetupError(f"cannot mount the net_cls cgroup for per-node partitions: {run.stderr.strip()}")


def rule_comment(root: Path) -> str:
    return f"{RULE_TAG} {hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


class Firewall:
    """iptables rules of one cluster, each tagged with the cluster's comment; all removed by `clear`."""

    def __init__(self, comment: str) -> None:
        self.comment = comment
        self.rules: list[list[str]] = []

    def add(self, *rule: str) -> None:
        tagged = [*rule[:1], "-m", "comment", "--comment", self.comment, *rule[1:]]
        subprocess.run(["iptables", "-I", *tagged], check=True, capture_output=True)
        self.rules.append(tagged)

    def clear(self) -> None:
        for rule in reversed(self.rules):
            subprocess.run(["iptables", "-D", *rule], capture_output=True)
        self.rules = []
        sweep_rules(self.comment)


def sweep_rules(comment: str) -> int:
    """Delete every filter rule carrying `comment` (also those of a run that crashed); returns how many."""
    saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True)
    removed = 0
    for line in saved.stdout.splitlines():
        if not line.startswith("-A ") or comment not in line:
            continue
        words = shlex.split(line)
        if subprocess.run(["iptables", "-D", *words[1:]], capture_output=True).returncode == 0:
            removed += 1
    return removed


class ClusterNode(AgentNode):
    def __init__(self, *args: Any, classid: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.classid = classid
        self.cgroup = NET_CLS / f"{CGROUP_PREFIX}{self.name}"

    def start(self) -> None:
        self.cgroup.mkdir(exist_ok=True)
        (self.cgroup / "net_cls.classid").write_text(f"{self.classid}\n")
        self.launcher = ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$@"', "sh"]
        super().start()


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Certificates made by `jfs-milvus-coordinator make-certs` in one directory."""

    directory: Path

    def section(self, name: str) -> dict[str, str]:
        d = self.directory
        return {"ca": str(d / "ca.pem"), "cert": str(d / f"{name}.pem"), "key": str(d / f"{name}.key")}

    def credentials(self, name: str) -> grpc.ChannelCredentials:
        files = self.section(name)
        return grpc.ssl_channel_credentials(
            root_certificates=Path(files["ca"]).read_bytes(),
            private_key=Path(files["key"]).read_bytes(),
            certificate_chain=Path(files["cert"]).read_bytes(),
        )


class LocalCluster:
    def __init__(
        self,
        root: Path,
        volume: JfsTestVolume,
        db: MysqlDatabase,
        image: str,
        coordinators: CoordinatorProcess | list[CoordinatorProcess],
        size: int,
        nvml_lib: Path | None = None,
        names: Iterable[str] | None = None,
        tls: TlsFiles | None = None,
        addresses: Iterable[str] | None = None,
        classid_base: int = 0x100010,
    ):
        ensure_net_cls()
        self.root = root
        self.volume = volume
        self.db = db
        self.coordinators = coordinators if isinstance(coordinators, list) else [coordinators]
        self.coordinator = self.coordinators[0]
        self._last_leader: CoordinatorProcess | None = None
        self.tls = tls
        self.firewall = Firewall(rule_comment(root))
        readonly_password = root / "reader-mysql-password"
        assert db.readonly.password is not None
        readonly_password.write_text(db.readonly.password.reveal() + "\n")
        readonly_password.chmod(0o600)
        if names is None:
            suffix = os.getpid() % 1000
            names = [f"node-{chr(ord('a') + i)}{suffix}" for i in range(size)]
        if tls is not None:
            for c in self.coordinators:
                c.data["tls"] = tls.section(c.name)
                c.credentials = tls.credentials("operator")
        self.nodes: dict[str, ClusterNode] = {}
        addresses = list(addresses or [f"127.0.0.{20 + i}" for i in range(size)])
        for i, name in enumerate(list(names)[:size]):
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
            node = ClusterNode(node_root, node_volume, image, name=name, address=addresses[i], classid=classid_base + i)
            node.write_config(
                coordinators=[c.address for c in self.coordinators],
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
            if tls is not None:
                node.write_config(tls=tls.section(name))
                node.channel_credentials = tls.credentials("operator")
            if nvml_lib is not None:
                node.nvml_config = node_root / "fake-nvml.conf"
                node.nvml_config.write_text(two_gpus().render())
                node.env.update(LD_LIBRARY_PATH=str(nvml_lib), FAKE_NVML_CONFIG=str(node.nvml_config))
                node.write_config(gpu={"enabled": True, "poll_interval_s": 1})
            self.nodes[name] = node

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        for c in self.coordinators:
            c.start()
        for node in self.nodes.values():
            node.start()

    def leader(self) -> CoordinatorProcess | None:
        return next((c for c in self.coordinators if c.running() and c.leads()), None)

    def status(self) -> Any:
        """The cluster status from the leading coordinator (asked first: the last one that led), else from
        any coordinator that answers, else the error. One RPC when the leader has not changed."""
        error: Exception | None = None
        fallback = None
        last = [self._last_leader] if self._last_leader is not None else []
        for c in last + [c for c in self.coordinators if c not in last]:
            if not c.running():
                continue
            try:
                s = c.status()
            except grpc.RpcError as exc:
                error = exc
                continue
            if s.leader_address == c.address or len(self.coordinators) == 1:
                self._last_leader = c
                return s
            fallback = fallback or s
        if fallback is not None:
            return fallback
        raise error or RuntimeError("no coordinator is running")

    def writer(self) -> str:
        return self.status().writer

    def events(self, since_id: int = 0) -> list[Any]:
        leader = self.leader() or self.coordinator
        return [e for e in leader.events() if e.id > since_id]

    def wait_for_writer(self, timeout: float = 60, other_than: str | None = None) -> ClusterNode:
        def one_healthy_writer() -> str | None:
            try:
                s = self.status()
            except (grpc.RpcError, RuntimeError):
                return None
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
        parts = [f"--- {c.name} ---\n{c.log()[-3000:]}" for c in self.coordinators]
        parts += [f"--- {n.name} ---\n{n.log()[-2000:]}" for n in self.nodes.values()]
        return "\n".join(parts)

    # -- partitions -----------------------------------------------------------------------------------------
    def _drop_from(self, node: ClusterNode, port: int | str) -> None:
        self.firewall.add(
            "OUTPUT", "-m", "cgroup", "--cgroup", str(node.classid), "-p", "tcp", "--dport", str(port), "-j", "DROP"
        )

    def cut_from_coordinator(self, node: ClusterNode) -> None:
        """The node's agent reaches no coordinator (every coordinator's port is dropped)."""
        for c in self.coordinators:
            self._drop_from(node, c.port)

    def cut_from_mysql(self, node: ClusterNode) -> None:
        self._drop_from(node, self.db.readonly.port)

    def cut_from_peers(self, node: ClusterNode) -> None:
        """Nobody reaches the node's Milvus (witnesses see it down); the node's own agent still does."""
        self.firewall.add(
            "OUTPUT", "-d", node.address, "-m", "cgroup", "!", "--cgroup", str(node.classid), "-j", "DROP"
        )

    def cut_off(self, node: ClusterNode) -> None:
        """The node is cut off from everything: coordinators, MySQL, and every peer."""
        self.cut_from_coordinator(node)
        self.cut_from_mysql(node)
        self.cut_from_peers(node)

    def heal(self) -> None:
        self.firewall.clear()

    def cleanup(self) -> None:
        self.heal()
        for c in self.coordinators:
            c.kill()
        for node in self.nodes.values():
            node.cleanup()
            with contextlib.suppress(OSError):
                node.cgroup.rmdir()

    # -- the checker ----------------------------------------------------------------------------------------
    def check_history(self, acknowledged: set[str]) -> list[writelog.WriterInterval]:
        """No two writers overlapped, nothing acknowledged was lost; returns the writer intervals."""
        verdict = self.verdict(acknowledged)
        assert not verdict.overlaps, f"two writers at once: {verdict.overlaps}"
        assert not verdict.missing, f"acknowledged writes lost: {sorted(verdict.missing)[:10]}"
        return verdict.intervals

    def verdict(self, acknowledged: set[str]) -> HistoryVerdict:
        reader = next((n for n in self.nodes.values() if n.mount_mode()), None)
        if reader is None:
            raise AssertionError("no node has the volume mounted: the write log cannot be read")
        logs = writelog.read_logs(Path(reader.volume.mountpoint) / "milvus" / "db")
        intervals = writelog.writer_intervals(logs)
        return HistoryVerdict(
            intervals=intervals,
            overlaps=writelog.find_overlaps(intervals),
            missing=writelog.missing_acknowledged(acknowledged, logs),
        )


@dataclasses.dataclass(frozen=True)
class HistoryVerdict:
    intervals: list[writelog.WriterInterval]
    overlaps: list[Any]
    missing: set[str]


class WriteClient:
    """Writes steadily to whichever node the coordinator names as writer; remembers what was acknowledged."""

    def __init__(self, cluster: LocalCluster, period_s: float = 0.05, lookup_s: float = 0.5):
        self.cluster = cluster
        self.period_s = period_s
        self.lookup_s = lookup_s
        self.acknowledged: set[str] = set()
        self.ack_times: list[float] = []
        self.ack_nodes: list[str] = []  # which node acknowledged each write, beside ack_times
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._writer: str | None = None

    def _run(self) -> None:
        n = 0
        last_lookup = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_lookup > self.lookup_s:
                try:
                    self._writer = self.cluster.writer() or None
                except Exception as exc:  # no coordinator answers: keep writing where the writer last was
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
                    self.ack_nodes.append(node.name)
                    self.ack_times.append(time.monotonic())
                else:
                    self.errors += 1
                    self.last_error = f"{node.name}: HTTP {code} {answer}"
                    last_lookup = min(last_lookup, time.monotonic() - self.lookup_s / 2)
            self._stop.wait(self.period_s)

    def start(self) -> WriteClient:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def acked_after(self, t: float) -> int:
        return sum(1 for a in self.ack_times if a > t)

    def first_ack_after(self, t: float, by: str | None = None) -> float | None:
        """When the first write after `t` was acknowledged (by node `by`, when given)."""
        return next((a for a, n in self._acks() if a > t and by in (None, n)), None)

    def last_ack_before(self, t: float, by: str | None = None) -> float | None:
        return next((a for a, n in reversed(self._acks()) if a <= t and by in (None, n)), None)

    def _acks(self) -> list[tuple[float, str]]:
        """(time, node) of every acknowledged write so far (the writer thread appends the node first)."""
        times = list(self.ack_times)
        return list(zip(times, self.ack_nodes[: len(times)], strict=True))
