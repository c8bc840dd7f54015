"""The agent's side of the coordinator protocol: reports, leader redirects, leases, self-fencing, witness.

Real agent daemons (tests.plugin_agent) on a real JuiceFS mount with the stand-in Milvus image, against a
scripted CoordinatorService (tests.fake_coordinator). The first tests need neither root nor Docker: the lease
rule, the lease file and the wrapper script on this host's /bin/sh.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from jfsmilvus.v1 import node_pb2

from agent.config import parse_agent_config
from agent.lease import Lease, after_rw_answer, granted, lease_now, renewed_by_row, report_period_s
from agent.milvus.leasewatch import (
    LEASE_EXPIRED_EXIT,
    LEASEWATCH_SH,
    WRAPPER_EARLY_S,
    LeaseFile,
    parse_lease_file,
    read_lease_file,
    render_lease_file,
    write_lease_file,
)
from tests.fake_coordinator import FakeCoordinator, ro, rw
from tests.plugin_agent import AgentNode, free_port, wait_until
from tests.standin.writelog import read_logs
from tests.test_agent_daemon import prepared
from tests.test_agent_edges import make_tls

LEASE_MS = 3000
# Whoever ends a lapsed writer first says why: the agent's lease check, its convergence table, or the
# in-container watchdog (exit 75).
WHY_A_WRITER_ENDED = ("lease expired", "exit code 75", "its lease is not valid")


# -- the rule, the file and the wrapper (no root, no Docker) ------------------------------------------------
def test_a_lease_runs_from_the_send_time_and_the_row_renews_only_this_writer_and_epoch() -> None:
    lease = granted(epoch=4, lease_ms=3000, sent_at=100.0, coordinator="coordinator c1")
    assert lease.deadline == 103.0 and lease.valid(102.99) and not lease.valid(103.0)
    renewed = renewed_by_row(lease, "n1", "n1", 4, sent_at=110.0)
    assert isinstance(renewed, Lease) and renewed.deadline == 113.0 and renewed.renewed_by == "MySQL cluster row"
    assert "names writer n2" in str(renewed_by_row(lease, "n1", "n2", 4, 110.0))
    assert "epoch 5" in str(renewed_by_row(lease, "n1", "n1", 5, 110.0))
    assert "no writer lease" in str(renewed_by_row(None, "n1", "n1", 4, 110.0))


def test_a_writer_reports_three_times_per_lease_and_a_reader_at_the_interval() -> None:
    assert report_period_s(1.0, None) == 1.0 and report_period_s(1.0, 0) == 1.0  # no lease held
    assert report_period_s(1.0, 1800) == pytest.approx(0.6)  # the default 1.8 s lease
    assert report_period_s(0.5, 3000) == 0.5  # never slower than the interval


def test_a_row_read_renews_for_the_row_lease_and_never_shortens_a_grant() -> None:
    lease = granted(epoch=4, lease_ms=3000, sent_at=100.0, coordinator="c1", row_lease_ms=1500)
    assert lease.row_renewal_ms == 1500
    assert renewed_by_row(lease, "n1", "n1", 4, sent_at=101.0) is lease  # 102.5 < 103.0: the grant runs longer
    later = renewed_by_row(lease, "n1", "n1", 4, sent_at=102.0)
    assert isinstance(later, Lease) and later.deadline == 103.5 and later.row_lease_ms == 1500
    # No row lease said (an older coordinator), or one longer than the lease: a row read renews one whole lease.
    assert granted(4, 3000, 100.0, "c1").row_renewal_ms == 3000
    assert granted(4, 1200, 100.0, "c1", row_lease_ms=1500).row_renewal_ms == 1200


def test_an_rw_answer_without_a_lease_renews_nothing_and_shortens_nothing() -> None:
    lease = granted(epoch=4, lease_ms=3000, sent_at=100.0, coordinator="c1")
    assert after_rw_answer(lease, 4, 0, 101.0, "c2") is lease  # a new leader still listening: no demotion
    assert after_rw_answer(lease, 5, 0, 101.0, "c2") is None  # another epoch: no lease at all
    assert after_rw_answer(None, 4, 0, 101.0, "c2") is None
    renewed = after_rw_answer(lease, 4, 2000, 101.0, "c2")
    assert renewed is not None and renewed.deadline == 103.0


def test_the_lease_file_is_early_for_the_wrapper_and_refused_from_another_boot(tmp_path: Path) -> None:
    text = render_lease_file(LeaseFile(deadline=1000.0, epoch=3, lease_ms=5000, row_lease_ms=1500), "boot-a")
    assert text == f"{int((1000.0 - WRAPPER_EARLY_S) * 100)} boot-a 3 5000 1500\n"
    back = parse_lease_file(text, "boot-a")
    assert back is not None and back.epoch == 3 and back.deadline == pytest.approx(1000.0 - WRAPPER_EARLY_S)
    assert back.row_lease_ms == 1500
    older = parse_lease_file("99970 boot-a 3 5000\n", "boot-a")  # an older agent's file: no row lease said
    assert older is not None and older.row_lease_ms == 0 and older.lease_ms == 5000
    assert parse_lease_file(text, "boot-b") is None and parse_lease_file("garbage", "boot-a") is None
    path = str(tmp_path / "lease")
    write_lease_file(path, LeaseFile(deadline=lease_now() + 5, epoch=1, lease_ms=5000))
    assert read_lease_file(path) is not None and oct(os.stat(path).st_mode & 0o777) == "0o644"


# Exits as Milvus 1.x does (utils/SignalUtil.cpp): 0 on SIGINT, 1 ("critical signal") on SIGTERM. It installs
# its own handlers, as Milvus does: a POSIX shell starts a background child with SIGINT ignored.
SIGNAL_CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
def critical(*_):
    print("Server received critical signal: 15", file=sys.stderr)
    sys.exit(1)
signal.signal(signal.SIGTERM, critical)
while True:
    time.sleep(0.05)
"""


def run_wrapper(tmp_path: Path, lease_s: float | None, child: str = SIGNAL_CHILD) -> subprocess.Popen[str]:
    script, lease_file = tmp_path / "leasewatch", tmp_path / "lease"
    script.write_text(LEASEWATCH_SH)
    if lease_s is not None:
        write_lease_file(str(lease_file), LeaseFile(deadline=lease_now() + lease_s, epoch=1, lease_ms=1000))
    env = dict(os.environ, JFS_MILVUS_LEASE_FILE=str(lease_file))
    argv = ["/bin/sh", str(script), sys.executable, "-c", child]
    # As PID 1 of a container, the wrapper starts with every signal at its default: a shell cannot trap a signal
    # that was ignored when it started (a test run from a background job inherits SIGINT ignored).
    return subprocess.Popen(
        argv,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_the_wrapper_kills_its_child_when_the_lease_lapses(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = run_wrapper(tmp_path, lease_s=1.0)
    _, err = proc.communicate(timeout=5)
    took = time.monotonic() - started
    assert proc.returncode == LEASE_EXPIRED_EXIT, err
    assert "leasewatch: lease expired" in err and "killed the rw container" in err
    assert took <= 1.0, took  # it fires WRAPPER_EARLY_S before the deadline, within one poll


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_wrapper_forwards_term_and_int_as_sigint_so_milvus_exits_0(tmp_path: Path, sig: int) -> None:
    """`docker stop` (stop signal SIGINT) or a SIGTERM to the wrapper both reach Milvus as SIGINT: a clean stop."""
    proc = run_wrapper(tmp_path, lease_s=5.0)
    time.sleep(0.5)  # the child has installed its handlers
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert "critical signal" not in err


def test_the_wrapper_renews_and_passes_the_exit_code(tmp_path: Path) -> None:
    proc = run_wrapper(tmp_path, lease_s=1.0)
    for _ in range(4):  # renewed past its first deadline
        time.sleep(0.5)
        write_lease_file(str(tmp_path / "lease"), LeaseFile(deadline=lease_now() + 1.0, epoch=1, lease_ms=1000))
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    assert proc.wait(5) == 0
    done = run_wrapper(tmp_path, lease_s=5.0, child="raise SystemExit(4)")
    assert done.wait(5) == 4
    elsewhere = tmp_path / "no-lease"
    elsewhere.mkdir()
    missing = run_wrapper(elsewhere, None)
    _, err = missing.communicate(timeout=5)
    assert missing.returncode == LEASE_EXPIRED_EXIT and "no readable lease file" in err


def test_the_coordination_section_is_validated(tmp_path: Path) -> None:
    secret = tmp_path / "mysql-password"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    milvus = f"milvus: {{meta_uri: 'mysql://milvus@127.0.0.1:3306/milvus', meta_password_file: {secret}}}\n"
    text = f"""
node: {{name: n1, address: 127.0.0.1}}
coordinators: ["127.0.0.1:19800", "10.0.0.2:19800"]
coordination:
  report_interval_s: 2
  mysql: {{host: 127.0.0.1, user: jfs_reader, database: jfs, password_file: {secret}}}
{milvus}"""
    config = parse_agent_config(text, "agent.yaml")
    assert config.coordination.report_interval_s == 2 and config.coordination.report_timeout_s == 0.5
    assert config.coordination.mysql is not None and config.coordination.mysql.port == 3306
    assert config.coordination.mysql.password is not None and config.coordination.mysql.password.load().reveal() == "pw"
    assert parse_agent_config(f"node: {{name: n1, address: 127.0.0.1}}\n{milvus}", "a").coordination.mysql is None


# -- real agents against a fake coordinator ------------------------------------------------------------------
@pytest.fixture
def coordinators() -> Iterator[Callable[[], FakeCoordinator]]:
    made: list[FakeCoordinator] = []

    def make() -> FakeCoordinator:
        fake = FakeCoordinator()
        fake.start()
        made.append(fake)
        return fake

    try:
        yield make
    finally:
        for fake in made:
            fake.stop()


def coordinated(agent_node: Callable[..., AgentNode], *addresses: str, **coordination: Any) -> AgentNode:
    node = prepared(agent_node)
    node.write_config(coordinators=list(addresses), coordination={"report_timeout_s": 0.5, **coordination})
    return node


def running(node: AgentNode) -> list[Any]:
    return [c for c in node.containers() if c.status == "running"]


def db_dir(node: AgentNode) -> Path:
    return node.volume.root / "mnt point" / "milvus" / "db"


@pytest.mark.root
@pytest.mark.slow
def test_reports_every_second_with_the_observation(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    fake = coordinators()
    fake.lead(ro(1))
    node = coordinated(agent_node, fake.address)
    node.start()
    node.wait_role("ro")
    wait_until(lambda: (o := fake.last()) is not None and o.role_running == node_pb2.ROLE_RO, 10, "ro reported")
    first, began = fake.count(), time.monotonic()
    time.sleep(6)
    rate = (fake.count() - first) / (time.monotonic() - began)
    assert 0.6 <= rate <= 1.4, rate  # ~1 Hz; the margin is for a loaded 2-core CI machine
    report = fake.reports[-1]
    obs = report.request.observation
    assert obs.node == node.name and obs.address == node.address and obs.highest_epoch_seen == 1
    assert obs.milvus_port == node.milvus_port and obs.milvus_http_port == node.http_port
    assert obs.container.role == node_pb2.ROLE_RO and obs.container.healthy
    assert obs.mounts[0].read_only and obs.mounts[0].state == "healthy"
    assert obs.lease_left_s == 0 and obs.writer_seen_healthy_age_s < 0 and obs.mishards_writer == ""
    assert report.request.hosts_mishards is False
    assert f"reporting to coordinator {fake.address}: it leads" in node.log()
    assert "coordinator" in node.log() and "assigns ro at epoch 1" in node.log()


@pytest.mark.root
@pytest.mark.slow
def test_a_writer_holding_a_short_lease_reports_three_times_per_lease(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    fake = coordinators()
    node = coordinated(agent_node, fake.address)
    fake.lead(rw(1, 1800, node.name))
    node.start()
    node.wait_role("rw")
    first, began = fake.count(), time.monotonic()
    time.sleep(6)
    rate = (fake.count() - first) / (time.monotonic() - began)
    assert 1.3 <= rate <= 2.2, rate  # every 0.6 s, where a reader reports every second
    lefts = [r.request.observation.lease_left_s for r in fake.reports[-8:]]
    assert min(lefts) > 1.0, lefts  # renewed long before it runs out


@pytest.mark.root
@pytest.mark.slow
def test_reports_keep_their_pace_while_a_cycle_hangs(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator], tmp_path: Path
) -> None:
    sock_path = str(tmp_path / "hung-docker.sock")
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(sock_path)
    hung.listen()
    held: list[socket.socket] = []

    def accept_and_never_answer() -> None:
        with contextlib.suppress(OSError):  # the socket is closed when the test ends
            for _ in range(100):
                held.append(hung.accept()[0])

    threading.Thread(target=accept_and_never_answer, daemon=True).start()
    fake = coordinators()
    fake.lead(ro(1))
    node = coordinated(agent_node, fake.address)
    node.env["DOCKER_HOST"] = f"unix://{sock_path}"  # Docker accepts and never answers: every cycle hangs
    try:
        node.start()
        wait_until(lambda: fake.count() >= 2, 10, "the first reports")
        first, began = fake.count(), time.monotonic()
        time.sleep(4)
        rate = (fake.count() - first) / (time.monotonic() - began)
        assert 0.75 <= rate <= 1.25, rate
        assert held  # the loop is stuck in Docker meanwhile
    finally:
        node.kill()
        hung.close()


@pytest.mark.root
@pytest.mark.slow
def test_reports_over_mutual_tls(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator], tmp_path: Path
) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    make_tls(tls)  # agent.pem: IP:127.0.0.1, signed by ca.pem
    key, cert, ca = ((tls / n).read_bytes() for n in ("agent.key", "agent.pem", "ca.pem"))
    fake = FakeCoordinator()
    fake.lead(ro(1))
    fake.start(grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True))
    try:
        node = coordinated(agent_node, fake.address)
        node.write_config(
            tls={"ca": str(tls / "ca.pem"), "cert": str(tls / "agent.pem"), "key": str(tls / "agent.key")}
        )
        node.channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(tls / "client.key").read_bytes(),
            certificate_chain=(tls / "client.pem").read_bytes(),
        )
        node.start()
        node.wait_role("ro")
        assert fake.count() >= 1 and "(mutual TLS)" in node.log()
    finally:
        fake.stop()


@pytest.mark.root
@pytest.mark.slow
def test_follows_the_leader_and_moves_on_from_a_silent_coordinator(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    silent, follower, leader = coordinators(), coordinators(), coordinators()
    silent.hang()
    follower.redirect(leader.address)
    leader.lead(ro(1))
    node = coordinated(agent_node, silent.address, follower.address)
    node.start()
    node.wait_role("ro")
    wait_until(lambda: leader.count() >= 2, 10, "reports at the leader")
    before = (silent.count(), follower.count(), leader.count())
    time.sleep(3)
    assert (silent.count(), follower.count()) == before[:2]  # it stays with the leader
    assert leader.count() - before[2] >= 2
    log = node.log()
    assert f"coordinator {follower.address} does not lead; going to the leader {leader.address}" in log
    assert f"{silent.address}: no answer within 0.5s" in log

    leader.stop()  # the leader goes away: the list again, the silent one skipped after its timeout
    follower.lead(ro(1))
    wait_until(lambda: (r := follower.last_answered()) is not None and r.monotonic > time.monotonic() - 1, 10, "")
    assert f"reporting to coordinator {follower.address}: it leads" in node.log()


@pytest.mark.root
@pytest.mark.slow
def test_a_writer_runs_under_its_lease_and_is_killed_when_no_one_renews_it(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    fake = coordinators()
    node = coordinated(agent_node, fake.address)
    fake.lead(rw(1, 0, node.name))  # rw with no lease: never started
    node.start()
    wait_until(lambda: "holding no valid lease: not starting" in node.log(), 15, "the refusal to start")
    assert running(node) == []

    fake.lead(rw(1, LEASE_MS, node.name))
    status = node.wait_role("rw")
    assert 0 < status.lease_left_s <= LEASE_MS / 1000
    (container,) = node.containers()
    assert container.labels["io.jfs-milvus.leasewatch"] == "1"
    assert container.attrs["Config"]["Entrypoint"] == ["/bin/sh", "/jfs-milvus/leasewatch"]
    assert node.write(1)

    fake.stop()
    last = fake.last_answered()
    assert last is not None
    gone = wait_until(lambda: not running(node) and time.monotonic(), 15, "the writer to stop")
    assert (
        gone - last.monotonic <= LEASE_MS / 1000 + 2.0
    )  # watchdog poll + Docker's own delay on a busy machine, gone - last.monotonic
    # Whoever is first says why: the agent ("lease expired ...") or the in-container watchdog (exit 75).
    wait_until(lambda: any(w in node.log() for w in WHY_A_WRITER_ENDED), 10, "the agent to say why")
    log = node.log()
    assert "writer lease not renewed" in log and "no MySQL is configured to renew the lease" in log
    writer_log = next(f for f in read_logs(db_dir(node)) if f.entries[0]["epoch"] == 1)
    assert writer_log.entries[-1]["wall_ns"] / 1e9 <= last.wall + LEASE_MS / 1000  # it wrote nothing past the lease


@pytest.mark.root
@pytest.mark.slow
def test_an_answer_with_a_stale_epoch_is_refused(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    fake = coordinators()
    fake.lead(ro(5))
    node = coordinated(agent_node, fake.address)
    node.start()
    node.wait_role("ro")
    fake.lead(rw(4, LEASE_MS, node.name))
    refusal = f"refused the assignment rw at epoch 4 from coordinator {fake.address}: epoch 4 is older than epoch 5"
    wait_until(lambda: refusal in node.log(), 10, "the refusal")
    time.sleep(2.5)
    status = node.status()
    assert status.role_running == node_pb2.ROLE_RO and status.highest_epoch_seen == 5 and status.lease_left_s == 0
    assert node.log().count(refusal) == 1  # said once, not at every report


@pytest.mark.root
@pytest.mark.slow
def test_with_the_agent_dead_the_writer_kills_itself_when_its_lease_lapses(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    fake = coordinators()
    node = coordinated(agent_node, fake.address)
    fake.lead(rw(1, LEASE_MS, node.name))
    node.start()
    node.wait_role("rw")
    node.kill()  # kill -9: nobody fences but the wrapper
    fake.stop()
    last = fake.last_answered()
    assert last is not None
    (container,) = node.containers()
    wait_until(lambda: container.reload() or container.status == "exited", LEASE_MS / 1000 + 5, "the wrapper")
    gone = time.monotonic()
    assert (
        gone - last.monotonic <= LEASE_MS / 1000 + 2.0
    )  # watchdog poll + Docker's own delay on a busy machine, gone - last.monotonic
    assert container.attrs["State"]["ExitCode"] == LEASE_EXPIRED_EXIT
    assert "leasewatch: lease expired" in container.logs().decode()
    writer_log = next(f for f in read_logs(db_dir(node)) if f.entries[0]["epoch"] == 1)
    assert writer_log.entries[-1]["kind"] != "stop"  # SIGKILL: no goodbye
    assert writer_log.entries[-1]["wall_ns"] / 1e9 <= last.wall + LEASE_MS / 1000

    node.start()  # back, with no coordinator: it removes the fenced container and starts nothing
    wait_until(lambda: node.containers() == [], 20, "the fenced container removed")
    assert "its lease wrapper killed it when the lease lapsed" in node.log()


@pytest.mark.root
@pytest.mark.slow
def test_a_demoted_writer_stops_gracefully_within_its_lease(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    fake = coordinators()
    node = coordinated(agent_node, fake.address)
    fake.lead(rw(1, 10_000, node.name))
    node.start()
    node.wait_role("rw")
    fake.lead(ro(2, writer="someone-else"))
    node.wait_role("ro")
    writer_log = next(f for f in read_logs(db_dir(node)) if f.entries[0]["epoch"] == 1)
    # docker stop sends the container's stop signal, SIGINT; the lease wrapper forwards it as SIGINT, on which
    # Milvus 1.x flushes and exits 0 (SIGTERM would be a "critical signal", exit 1).
    assert writer_log.entries[-1]["kind"] == "stop" and writer_log.entries[-1]["reason"] == "SIGINT"
    assert "stopping rw container to switch to ro (epoch 2)" in node.log()
    assert "killed the rw container" not in node.log()


class StateHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"message":"Success","code":0}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.root
@pytest.mark.slow
def test_a_reader_witnesses_the_writers_health(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    writer_port = free_port()
    writer = ThreadingHTTPServer(("127.0.0.1", writer_port), StateHandler)
    threading.Thread(target=writer.serve_forever, daemon=True).start()
    fake = coordinators()
    fake.lead(ro(1, writer="w1", writer_address="127.0.0.1", writer_http_port=writer_port))
    node = coordinated(agent_node, fake.address)
    try:
        node.start()
        node.wait_role("ro")
        wait_until(lambda: 0 <= fake.last().writer_seen_healthy_age_s <= 1.5, 10, "a fresh sighting")  # type: ignore[union-attr]
    finally:
        writer.shutdown()
        writer.server_close()
    # The writer is gone: the next failed check withdraws the sighting at once (and reports it at once), rather
    # than letting the last one count until it is stale.
    gone = time.monotonic()
    wait_until(lambda: fake.last().writer_seen_healthy_age_s < 0, 5, "the sighting withdrawn")  # type: ignore[union-attr]
    assert time.monotonic() - gone < 2.5

    other = free_port()  # a writer never seen at all
    fake.lead(ro(2, writer="w2", writer_address="127.0.0.1", writer_http_port=other))
    wait_until(lambda: fake.last().writer_seen_healthy_age_s < 0, 10, "never seen")  # type: ignore[union-attr]


@pytest.mark.root
@pytest.mark.slow
def test_without_a_coordinator_the_mysql_row_renews_the_writer_lease(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator], request: pytest.FixtureRequest
) -> None:
    try:
        database = request.getfixturevalue("mysql_db")
    except pytest.FixtureLookupError:
        pytest.skip("needs the mysql_db fixture of tests/plugin_mysql.py (run with -p tests.plugin_mysql)")
    from coordinator.store import ClusterStore

    ClusterStore(database.coordinator, "test").migrate()

    def set_row(writer: str, epoch: int) -> None:
        conn = database.server.admin(database.name)
        try:
            with conn.cursor() as cur:
                cur.execute("UPDATE cluster SET writer = %s, epoch = %s WHERE id = 1", (writer, epoch))
        finally:
            conn.close()

    fake = coordinators()
    node = coordinated(
        agent_node,
        fake.address,
        mysql={
            "host": database.readonly.host,
            "port": database.readonly.port,
            "user": database.readonly.user,
            "database": database.name,
            "password_env": "JFS_TEST_MYSQL_PASSWORD",
        },
    )
    node.env["JFS_TEST_MYSQL_PASSWORD"] = database.readonly.password.reveal()
    set_row(node.name, 1)
    lease_ms = 5000
    row_lease_ms = 4000  # what one row read renews: the agent restart below must fit well inside it
    fake.lead(rw(1, lease_ms, node.name, row_lease_ms=row_lease_ms))
    node.start()
    first = node.wait_role("rw").container.id
    fake.stop()
    time.sleep(lease_ms / 1000 + 2)
    status = node.status()
    assert status.role_running == node_pb2.ROLE_RW and status.container.id == first
    assert 0 < status.lease_left_s <= row_lease_ms / 1000  # renewed for the row lease, not the whole lease
    assert fake.last().row_lease_ms == row_lease_ms  # type: ignore[union-attr]  # what the coordinator fences for
    assert "renewed the writer lease for 4.0s from the MySQL cluster row" in node.log()

    node.kill()  # an agent restart during the outage keeps the writer: its lease is on disk, MySQL renews it
    node.start()
    time.sleep(lease_ms / 1000 + 1)
    status = node.status()
    assert status.role_running == node_pb2.ROLE_RW and status.container.id == first and status.lease_left_s > 0
    assert "found a writer lease for epoch 1 on disk" in node.log()

    set_row("someone-else", 2)  # a promotion elsewhere: the row no longer names this node
    changed = time.monotonic()
    gone = wait_until(lambda: not running(node) and time.monotonic(), 15, "the writer to stop")
    assert gone - changed <= row_lease_ms / 1000 + 1.0
    # Whoever is first says why: the agent ("lease expired ...") or the in-container watchdog (exit 75).
    wait_until(lambda: any(w in node.log() for w in WHY_A_WRITER_ENDED), 10, "the agent to say why")
    assert "the MySQL cluster row names writer someone-else, not this node" in node.log()


@pytest.mark.root
@pytest.mark.slow
def test_a_promotion_acts_at_once_not_at_the_loop_interval(
    agent_node: Callable[..., AgentNode], coordinators: Callable[[], FakeCoordinator]
) -> None:
    """With a 10 s loop interval, a promotion that waited an interval between its steps (stop ro, mount rw, write
    the config), or for its next tick once its lease came, would take 10-40 s: each step waits only on the one
    before it, and the lease wakes the loop."""
    fake = coordinators()
    fake.lead(ro(1, writer="other"))
    node = coordinated(agent_node, fake.address)
    node.write_config(loop_interval_s=10)
    node.start()
    node.wait_role("ro", timeout=60)

    designate = ro(2, writer=node.name)  # the committed epoch names this node: it prepares during the fence
    fake.lead(designate)
    told = time.monotonic()
    node.push(designate)
    wait_until(lambda: node.mount_mode() == "rw" and node.config_role() == "rw", 30, "the designate ready")
    prepared_s = time.monotonic() - told
    assert not running(node)  # ready to write, but nothing runs without a lease

    fake.lead(rw(2, LEASE_MS, node.name))
    promoted = time.monotonic()
    node.push(rw(2, 0, node.name))  # a push carries no lease: the agent asks for one with a report at once
    node.wait_role("rw", timeout=30)
    started_s = time.monotonic() - promoted
    assert prepared_s < 6, f"prepared in {prepared_s:.1f}s\n{node.log()[-3000:]}"
    assert started_s < 4, f"started in {started_s:.1f}s\n{node.log()[-3000:]}"
