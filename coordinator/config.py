"""The coordinator's configuration: /etc/jfs-milvus/coordinator.yaml, validated at load.

Same conventions as the agent's: every problem names the file, key, bad value and what is allowed; secrets
come from `*_file` (mode 0600/0400) or `*_env`, never from the YAML.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from jfsmilvus.common.configschema import (
    NAME_ALLOWED,
    NAME_PATTERN,
    Section,
    check_host_port,
    load_config_file,
    secret_ref,
)
from jfsmilvus.common.secrets import SecretRef
from jfsmilvus.common.tls import TlsSettings, listen_host, read_tls

from coordinator.core import Timing

DEFAULT_CONFIG_PATH = "/etc/jfs-milvus/coordinator.yaml"
CONFIG_ENV = "JFS_MILVUS_COORDINATOR_CONFIG"


@dataclass(frozen=True)
class MysqlRef:
    host: str
    port: int
    user: str
    database: str
    password: SecretRef | None
    connect_timeout_s: float = 2.0


@dataclass(frozen=True)
class PublishSettings:
    redis_url: str | None = None  # redis://host:port/db, no password
    password: SecretRef | None = None
    channel: str = "jfs-milvus:writer"


@dataclass(frozen=True)
class CoordinatorConfig:
    path: str | None
    cluster: str
    coordinator_id: str
    listen: str  # HOST:PORT for the gRPC API
    advertise: str  # HOST:PORT agents and coordinatorctl use to reach this coordinator
    metrics_port: int
    mysql: MysqlRef
    leader_lease_s: float = 5.0
    tick_s: float = 0.2
    log_level: str = "info"
    tls: TlsSettings = field(default_factory=TlsSettings)
    timing: Timing = field(default_factory=Timing)
    publish: PublishSettings = field(default_factory=PublishSettings)

    @property
    def listen_host(self) -> str:
        """The host the API and /metrics really bind: `listen`'s, or loopback without TLS (listen_host())."""
        return listen_host(self.listen.rpartition(":")[0], self.tls)

    @property
    def listen_address(self) -> str:
        """HOST:PORT the API really listens on."""
        return f"{self.listen_host}:{self.listen.rpartition(':')[2]}"

    @property
    def local_address(self) -> str:
        """HOST:PORT a client on this host reaches the API at: where it listens, 127.0.0.1 for a wildcard.
        Not `advertise`: that is for the others, and its default (this host's name) need not resolve to an
        address the API listens on."""
        host, _, port = self.listen_address.rpartition(":")
        return f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def load_coordinator_config(path: str) -> CoordinatorConfig:
    return load_config_file(path, _read)


def _read(top: Section) -> CoordinatorConfig | None:
    cluster = top.string("cluster", pattern=NAME_PATTERN, allowed=NAME_ALLOWED)
    log_level = top.choice("log_level", ("debug", "info", "warning", "error"), "info")
    me = top.section("coordinator")
    coordinator_id = me.string("id", socket.gethostname().split(".")[0].lower() or "coordinator")
    listen = me.string("listen", "0.0.0.0:19800", check=check_host_port)
    advertise = me.string("advertise", None, check=check_host_port)
    metrics_port = me.number("metrics_port", 19801, minimum=1, maximum=65535, integer=True)
    leader_lease_s = me.number("leader_lease_s", 5.0, minimum=1, maximum=120)
    tick_s = me.number("tick_s", 0.2, minimum=0.05, maximum=5)
    me.finish()

    mysql = _read_mysql(top.section("mysql", required=True))
    tls = read_tls(top.section("tls"), private_key=False)
    timing = _read_timing(top.section("timing"), me, leader_lease_s)
    publish = _read_publish(top.section("publish"))
    if cluster is None or listen is None:
        return None
    host, _, port = listen.rpartition(":")
    return CoordinatorConfig(
        path=top.file,
        cluster=cluster,
        coordinator_id=coordinator_id,
        listen=listen,
        advertise=advertise or (listen if host not in ("0.0.0.0", "") else f"{socket.gethostname()}:{port}"),
        metrics_port=metrics_port,
        mysql=mysql,
        leader_lease_s=leader_lease_s,
        tick_s=tick_s,
        log_level=log_level,
        tls=tls,
        timing=timing,
        publish=publish,
    )


def _read_mysql(db: Section) -> MysqlRef:
    mysql = MysqlRef(
        host=db.string("host", "127.0.0.1"),
        port=db.number("port", 3306, minimum=1, maximum=65535, integer=True),
        user=db.string("user", "jfs_milvus"),
        database=db.string("database", "jfs_milvus", pattern=r"[A-Za-z0-9_]{1,64}", allowed="letters, digits, '_'"),
        password=secret_ref(db, "password"),
        connect_timeout_s=db.number("connect_timeout_s", 2.0, minimum=0.1, maximum=60),
    )
    db.finish()
    return mysql


def _read_timing(t: Section, me: Section, leader_lease_s: float | None) -> Timing:
    """The `timing` section, checked against itself and against the coordinator's `leader_lease_s`."""
    d = Timing()
    lease_s = t.number("lease_s", d.lease_s, minimum=0.5, maximum=600)
    timing = Timing(
        report_interval_s=t.number("report_interval_s", d.report_interval_s, minimum=0.1, maximum=60),
        detect_after_s=t.number("detect_after_s", d.detect_after_s, minimum=0.2, maximum=600),
        lease_s=lease_s,
        # Unset, it follows a shorter lease_s down: a row read never renews for more than a whole lease.
        row_lease_s=t.number("row_lease_s", min(d.row_lease_s, lease_s), minimum=0.5, maximum=600),
        fence_margin_s=t.number("fence_margin_s", d.fence_margin_s, minimum=0, maximum=60),
        fault_grace_s=t.number("fault_grace_s", d.fault_grace_s, minimum=0, maximum=600),
        recover_in_place_s=t.number("recover_in_place_s", d.recover_in_place_s, minimum=0, maximum=3600),
        drain_timeout_s=t.number("drain_timeout_s", d.drain_timeout_s, minimum=1, maximum=86400),
        drain_timeout_action=t.choice("drain_timeout_action", ("abandon", "force"), d.drain_timeout_action),
        failover_window_s=t.number("failover_window_s", d.failover_window_s, minimum=0, maximum=86400),
        settle_s=t.number("settle_s", d.settle_s, minimum=0, maximum=3600),
        promote_timeout_s=t.number("promote_timeout_s", d.promote_timeout_s, minimum=1, maximum=3600),
        startup_wait_s=t.number("startup_wait_s", d.startup_wait_s, minimum=0, maximum=600),
        witness_fresh_s=t.number("witness_fresh_s", d.witness_fresh_s, minimum=0.1, maximum=600),
        write_probe_limit_ms=t.number("write_probe_limit_ms", d.write_probe_limit_ms, minimum=1),
        include_writer_in_hosts=t.boolean("include_writer_in_hosts", d.include_writer_in_hosts),
    )
    if t.has("container_grace_s"):
        t.data.pop("container_grace_s")  # reported here, not again as unknown
        t.problem(
            "container_grace_s",
            "(removed)",
            "was replaced by recover_in_place_s: how long a writer whose node is alive gets to recover in place "
            "(a crashed container, a dead or hung mount, a lost GPU with others left) before a failover",
        )
    if timing.detect_after_s <= timing.report_interval_s:
        t.problem(
            "detect_after_s",
            timing.detect_after_s,
            "must be longer than report_interval_s (one late report is no failure)",
        )
    if timing.lease_s <= timing.report_interval_s:
        t.problem("lease_s", timing.lease_s, "must be longer than report_interval_s, or every writer fences itself")
    if timing.row_lease_s > timing.lease_s:
        t.problem("row_lease_s", timing.row_lease_s, f"must be at most lease_s ({timing.lease_s:g})")
    if leader_lease_s is not None and timing.lease_s > leader_lease_s:
        me.problem(
            "leader_lease_s",
            leader_lease_s,
            "must be at least timing.lease_s (a node lease never outlives the leader's)",
        )
    t.finish()
    return timing


def _read_publish(pub: Section) -> PublishSettings:
    publish = PublishSettings(
        redis_url=pub.string(
            "redis_url", None, pattern=r"rediss?://[^@\s]+", allowed="redis://HOST:PORT/DB without a password"
        ),
        password=secret_ref(pub, "password"),
        channel=pub.string("channel", "jfs-milvus:writer"),
    )
    pub.finish()
    return publish


def config_path(explicit: str | None) -> str:
    return explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
