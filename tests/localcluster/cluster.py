"""The nodes, coordinators and partitions of a cluster on this machine; the write client and the checker.

Each node has its own loopback address (127.0.0.x), its own mount of the shared volume, its own stand-in
Milvus container, and its agent runs in its own net_cls cgroup so that iptables can cut that node off from
the coordinators, from MySQL, or from everything, without touching the others. Every iptables rule carries
a comment naming the cluster's root, so `down` finds any rule a crashed run left behind.
"""

from __future__ import annotations

import bisect
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
from typing import TYPE_CHECKING, Any

import grpc
from jfsmilvus.v1 import node_pb2

from agent.config import JuicefsSettings
from tests.localcluster.milvusmeta import BaseConfig, MilvusMeta
from tests.milvusclient.child import ClientProcess, ClientSettings
from tests.milvusclient.ledger import Durability, WriteLedger, durability
from tests.plugin_agent import AgentNode, wait_until
from tests.plugin_coordinator import CoordinatorProcess
from tests.plugin_gpu import two_gpus
from tests.plugin_juicefs import JfsTestVolume
from tests.plugin_mysql import MysqlDatabase
from tests.standin import writelog
from tests.standin.durable import durable_ids

if TYPE_CHECKING:
    from tests.localcluster.mishardshost import MishardsHost, RouteTimeline

NET_CLS = Path("/sys/fs/cgroup/net_cls")
CGROUP_PREFIX = "jfs-milvus-test-"
RULE_TAG = "jfs-milvus-localcluster"
VIA_MISHARDS = "mishards"  # the node the write client names when it writes through Mishards
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
        milvus_meta: MilvusMeta,
        image: str,
        coordinators: CoordinatorProcess | list[CoordinatorProcess],
        size: int,
        nvml_lib: Path | None = None,
        names: Iterable[str] | None = None,
        tls: TlsFiles | None = None,
        addresses: Iterable[str] | None = None,
        classid_base: int = 0x100010,
        base_config: BaseConfig | None = None,
    ):
        ensure_net_cls()
        self.root = root
        self.volume = volume
        self.db = db
        self.milvus_meta = milvus_meta
        self.base_config = base_config or BaseConfig()
        # A write a live writer acknowledged is on the volume after its next automatic flush: judge it later.
        self.settle_s = self.base_config.auto_flush_interval_s + 2.0
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
            node = ClusterNode(
                node_root, node_volume, image, name=name, address=addresses[i], meta=milvus_meta,
                classid=classid_base + i,
            )  # fmt: skip
            node.write_base_config(**self.base_config.sections())
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
    def db_dir(self) -> Path:
        """The shared volume's db/ as a reader sees it: through a node whose mount is read-only (what a search
        there reads), else through any node's mount (the writer's when no reader is up)."""
        modes = {n.name: n.mount_mode() for n in self.nodes.values()}
        mounted = [n for n in self.nodes.values() if modes[n.name]]
        node = next((n for n in mounted if modes[n.name] == "ro"), mounted[0] if mounted else None)
        if node is None:
            raise AssertionError("no node has the volume mounted: the volume cannot be read")
        return Path(node.volume.mountpoint) / "milvus" / "db"

    def check_history(self, client: WriteClient) -> list[writelog.WriterInterval]:
        """No two writers overlapped, no flushed write was lost and every search found the flushed write it
        looked for; returns the writer intervals."""
        verdict = self.verdict(client)
        assert not verdict.overlaps, f"two writers at once: {verdict.overlaps}"
        assert not verdict.durability.flushed_lost, f"flushed writes lost: {sorted(verdict.durability.flushed_lost)}"
        assert verdict.durability.flushed > 0, f"no write was ever flushed (last error: {client.last_error})"
        assert client.search_misses == 0, f"{client.search_misses} searches missed a flushed write"
        return verdict.intervals

    def verdict(self, client: WriteClient, until: float | None = None) -> HistoryVerdict:
        """The writer intervals and their overlaps (the write log), and the client's writes acknowledged by
        `until` (monotonic) held against what a reader sees. With no `until`: every write, judged once the
        last one is old enough that a live writer has flushed it by itself."""
        if until is None:
            last = client.last_ack_before(time.monotonic())
            if last is not None:
                time.sleep(max(0.0, last + self.settle_s - time.monotonic()))
        acknowledged, flushed = client.written(until)
        db_dir = self.db_dir()
        intervals = writelog.writer_intervals(writelog.read_logs(db_dir))
        for attempt in range(3):
            if attempt:
                time.sleep(1.5)  # what was flushed a moment ago may not be in a reader's view yet (1 s caches)
            found = durability(acknowledged, flushed, durable_ids(self.milvus_meta.connect, db_dir, client.collection))
            if not found.flushed_lost and not found.unflushed_lost:
                break
        return HistoryVerdict(intervals, writelog.find_overlaps(intervals), found)


@dataclasses.dataclass(frozen=True)
class HistoryVerdict:
    intervals: list[writelog.WriterInterval]
    overlaps: list[Any]
    durability: Durability


def writer_to_follow(status: Any, following: str | None) -> str | None:
    """Where the client writes: the writer the coordinator names, once it runs rw (a Milvus still running ro
    would acknowledge the inserts into its WAL and never apply them). The writer it already follows it keeps
    following while its reported role flickers (a restart in place, a coordinator's first seconds)."""
    if not status.writer:
        return None
    if status.writer == following:
        return following
    row = next((n for n in status.nodes if n.name == status.writer), None)
    return status.writer if row is not None and row.role_running == node_pb2.ROLE_RW else None


class WriteClient:
    """A pymilvus 1.x client (tests/milvusclient, its own process) inserting steadily into a collection,
    flushing every `flush_every` acknowledged inserts and searching now and then; remembers what was
    acknowledged (when, by which node) and what was flushed.

    `through`: the Mishards it writes and searches through (as a production client does); each write is
    then the writer's that the Mishards container running at its acknowledgement was given. Without it, it
    writes to whichever node the coordinator names as writer, directly (for tests of the nodes alone)."""

    def __init__(
        self,
        cluster: LocalCluster,
        period_s: float = 0.05,
        lookup_s: float = 0.5,
        flush_every: int = 20,
        collection: str = "jfs_writes",
        through: MishardsHost | None = None,
    ):
        self.cluster = cluster
        self.collection = collection
        self.lookup_s = lookup_s
        self.through = through
        self.ledger = WriteLedger()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow, daemon=True)
        self._following: str | None = None
        self.routes: RouteTimeline | None = None
        self.settings = ClientSettings(collection, period_s=period_s, flush_every=flush_every)
        self.process = ClientProcess(self.settings, self._on_event, cluster.root / f"client-{collection}.log")

    # -- running --------------------------------------------------------------------------------------------
    def start(self) -> WriteClient:
        self.process.start()
        if self.through is None:
            self._follower.start()
            return self
        from tests.localcluster.mishardshost import RouteTimeline

        self.routes = RouteTimeline(self.through).start()
        self.process.send({"op": "writer", "node": VIA_MISHARDS, "address": self.through.address})
        return self

    def stop(self) -> None:
        """Flush what the current writer acknowledged (as a client that finishes does), then stop."""
        self._stop.set()
        if self._follower.is_alive():
            self._follower.join(10)
        self.process.send({"op": "flush", "req": "stop"})
        self.process.stop(self.settings.flush_timeout_s + self.settings.timeout_s + 5)
        if self.routes is not None:
            self.routes.stop()

    @property
    def via(self) -> str:
        return "mishards" if self.through is not None else "writer"

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.ledger.apply(event)

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                writer = writer_to_follow(self.cluster.status(), self._following)
            except Exception as exc:  # no coordinator answers: keep writing where the writer last was
                with self._lock:
                    self.ledger.last_error = f"status: {exc!r}"
            else:
                if writer != self._following:
                    node = self.cluster.nodes.get(writer or "")
                    address = f"{node.address}:{node.milvus_port}" if node is not None else None
                    if self.process.send({"op": "writer", "node": writer, "address": address}):
                        self._following = writer
            self._stop.wait(self.lookup_s)

    # -- what it saw ----------------------------------------------------------------------------------------
    @property
    def acknowledged(self) -> set[int]:
        with self._lock:
            return set(self.ledger.acknowledged)

    @property
    def ack_times(self) -> list[float]:
        with self._lock:
            return list(self.ledger.ack_times)

    @property
    def search_misses(self) -> int:
        """Searches for a flushed write's vector that did not find it (a reader sees only flushed writes)."""
        return len(self.ledger.search_misses)

    @property
    def last_error(self) -> str:
        return self.ledger.last_error

    def written(self, until: float | None = None) -> tuple[set[int], set[int]]:
        """(acknowledged, flushed): the writes acknowledged by `until` (all when None), and those of them flushed."""
        with self._lock:
            acked = set(self.ledger.acknowledged) if until is None else self.ledger.acknowledged_until(until)
            return acked, acked & self.ledger.flushed

    def acked_after(self, t: float) -> int:
        with self._lock:
            return len(self.ledger.ack_times) - bisect.bisect_right(self.ledger.ack_times, t)

    def first_ack_after(self, t: float, by: str | None = None) -> float | None:
        """When the first write after `t` was acknowledged (by node `by`, when given)."""
        return next((a for a, n in self._acks() if a > t and by in (None, n)), None)

    def last_ack_before(self, t: float, by: str | None = None) -> float | None:
        return next((a for a, n in reversed(self._acks()) if a <= t and by in (None, n)), None)

    def _acks(self) -> list[tuple[float, str]]:
        """(time, node) of every acknowledged write so far; through Mishards, the node is the writer the
        Mishards container running then was given ("" while its start has not been seen yet)."""
        with self._lock:
            acks = list(zip(self.ledger.ack_times, self.ledger.ack_nodes, strict=True))
        if self.routes is None:
            return acks
        by_woserver = {f"tcp://{n.address}:{n.milvus_port}": name for name, n in self.cluster.nodes.items()}
        routes = self.routes
        return [(t, by_woserver.get(routes.writer_at(t) or "", "") if n == VIA_MISHARDS else n) for t, n in acks]
