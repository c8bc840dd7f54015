"""The coordinator's MySQL store against a real MariaDB: schema, leader lease, conditional writes, outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pymysql
import pytest
from jfsmilvus.common.secrets import Secret

from coordinator.model import Event
from coordinator.mysqlsession import MysqlSettings, close_quietly, connect, describe
from coordinator.schema import LATEST_VERSION
from coordinator.store import ClusterStore
from coordinator.storeapi import Leadership, NotLeader, StoreError
from tests.plugin_mysql import COORDINATOR_PASSWORD, READONLY_PASSWORD, MariaDB, MysqlDatabase, with_timeouts

CLUSTER = "test-cluster"


@pytest.fixture
def stores(mysql_db: MysqlDatabase) -> Iterator[Callable[..., ClusterStore]]:
    """Make ClusterStores on the test database (closed afterwards)."""
    made: list[ClusterStore] = []

    def make(cluster: str = CLUSTER, settings: MysqlSettings | None = None) -> ClusterStore:
        store = ClusterStore(settings or mysql_db.coordinator, cluster)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(stores: Callable[..., ClusterStore]) -> ClusterStore:
    migrated = stores()
    migrated.migrate()
    return migrated


def leader(store: ClusterStore, name: str = "coord-a", lease_s: float = 10.0) -> Leadership:
    leadership = store.acquire_or_renew(name, f"{name}:7000", lease_s, None)
    assert leadership is not None
    return leadership


def wait_for_lease_expiry(store: ClusterStore, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while store.leader_info()[3] > 0:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.02)


# -- schema ---------------------------------------------------------------------------------------------


def test_migrate_creates_the_schema_from_nothing_and_is_idempotent(
    stores: Callable[..., ClusterStore], mysql_db: MysqlDatabase
) -> None:
    store = stores()
    with pytest.raises(StoreError, match=r"not migrated|migrate"):
        store.load()  # the database does not exist yet
    assert store.migrate() == LATEST_VERSION
    durable = store.load()
    assert (durable.cluster.name, durable.cluster.writer, durable.cluster.epoch) == (CLUSTER, None, 0)
    assert not durable.cluster.paused and durable.cluster.leader is None and durable.nodes == {}

    leadership = leader(store)
    store.upsert_node(leadership, "node-a", "10.0.0.1", False)
    assert store.change_writer(leadership, 0, "node-a") == 1
    assert store.migrate() == LATEST_VERSION  # again: nothing is reset
    durable = store.load()
    assert (durable.cluster.writer, durable.cluster.epoch, durable.cluster.leader_term) == ("node-a", 1, 1)
    assert list(durable.nodes) == ["node-a"]

    admin = mysql_db.server.admin(mysql_db.name)
    try:
        with admin.cursor() as cur:
            cur.execute("SHOW TABLES")
            assert {row[0] for row in cur.fetchall()} == {
                "schema_version",
                "cluster",
                "nodes",
                "events",
                "cluster_config_versions",
                "rollouts",
            }
            cur.execute("SELECT version FROM schema_version")
            assert cur.fetchall() == ((LATEST_VERSION,),)
    finally:
        admin.close()


def test_coordinators_migrating_at_once_agree(stores: Callable[..., ClusterStore], mysql_db: MysqlDatabase) -> None:
    contenders = [stores() for _ in range(4)]
    barrier = threading.Barrier(len(contenders))
    results: list[int | BaseException] = []

    def run(store: ClusterStore) -> None:
        barrier.wait()
        try:
            results.append(store.migrate())
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [LATEST_VERSION] * len(contenders)
    admin = mysql_db.server.admin(mysql_db.name)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM schema_version")
            assert cur.fetchone() == (1,)
            cur.execute("SELECT id, name, epoch, writer FROM cluster")
            assert cur.fetchall() == ((1, CLUSTER, 0, None),)
    finally:
        admin.close()


def test_a_store_for_another_cluster_is_refused(stores: Callable[..., ClusterStore]) -> None:
    stores("cluster-one").migrate()
    other = stores("cluster-two")
    with pytest.raises(StoreError, match="belongs to cluster 'cluster-one', not 'cluster-two'"):
        other.migrate()
    with pytest.raises(StoreError, match="belongs to cluster 'cluster-one'"):
        other.load()
    with pytest.raises(StoreError, match="belongs to cluster 'cluster-one'"):
        other.acquire_or_renew("coord-x", "x:1", 5.0, None)


def test_a_schema_newer_than_the_code_is_refused(store: ClusterStore, mysql_db: MysqlDatabase) -> None:
    admin = mysql_db.server.admin(mysql_db.name)
    try:
        with admin.cursor() as cur:
            cur.execute("UPDATE schema_version SET version = %s", (LATEST_VERSION + 1,))
    finally:
        admin.close()
    store.close()
    with pytest.raises(StoreError, match="newer than this coordinator"):
        store.load()
    with pytest.raises(StoreError, match="newer than this coordinator"):
        store.migrate()


# -- leadership -----------------------------------------------------------------------------------------


def test_two_coordinators_contend_and_exactly_one_leads(stores: Callable[..., ClusterStore]) -> None:
    first = stores()
    first.migrate()
    for round_number in range(5):
        contenders = {f"coord-{i}": stores() for i in range(3)}
        barrier = threading.Barrier(len(contenders))
        won: dict[str, Leadership | None] = {}

        def run(name: str, store: ClusterStore, barrier: threading.Barrier, won: dict[str, Leadership | None]) -> None:
            barrier.wait()
            won[name] = store.acquire_or_renew(name, f"{name}:7000", 10.0, None)

        threads = [threading.Thread(target=run, args=(*item, barrier, won)) for item in contenders.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        winners = [lead for lead in won.values() if lead is not None]
        assert len(won) == 3 and len(winners) == 1, won
        assert winners[0].term == round_number + 1
        assert first.leader_info()[:3] == (winners[0].coordinator, winners[0].address, winners[0].term)
        assert first.release(winners[0])


def test_the_leader_renews_and_keeps_its_term(store: ClusterStore) -> None:
    first = leader(store, lease_s=2.0)
    time.sleep(0.05)
    renewed = store.acquire_or_renew("coord-a", "coord-a:7000", 2.0, first)
    assert renewed is not None
    assert renewed.term == first.term == 1
    assert renewed.valid_until > first.valid_until
    assert store.leader_info()[2] == 1


def test_when_the_leader_stops_renewing_another_takes_over_and_the_deposed_one_cannot_write(
    stores: Callable[..., ClusterStore],
) -> None:
    store_a, store_b = stores(), stores()
    store_a.migrate()
    lead_a = leader(store_a, "coord-a", lease_s=0.5)
    store_a.upsert_node(lead_a, "node-a", "10.0.0.1", True)
    store_a.upsert_node(lead_a, "node-b", "10.0.0.2", False)
    assert store_a.change_writer(lead_a, 0, "node-a") == 1
    event_id = store_a.add_event(lead_a, Event(kind="initial", reason="first writer", node="node-a", epoch=1))

    assert store_b.acquire_or_renew("coord-b", "coord-b:7000", 0.5, None) is None
    wait_for_lease_expiry(store_b)
    lead_b = store_b.acquire_or_renew("coord-b", "coord-b:7000", 5.0, None)
    assert lead_b is not None and lead_b.term == lead_a.term + 1
    assert store_b.leader_info()[:3] == ("coord-b", "coord-b:7000", 2)

    # The deposed leader: its renewal fails and every write is refused by MySQL.
    assert store_a.acquire_or_renew("coord-a", "coord-a:7000", 0.5, lead_a) is None
    refused: list[Callable[[], object]] = [
        lambda: store_a.change_writer(lead_a, 1, "node-b"),
        lambda: store_a.set_paused(lead_a, True, "deposed"),
        lambda: store_a.add_event(lead_a, Event(kind="failover", reason="deposed")),
        lambda: store_a.update_event(lead_a, event_id, (("detect", 1.0),), "deposed"),
        lambda: store_a.upsert_node(lead_a, "node-c", "10.0.0.3", False),
        lambda: store_a.set_priority(lead_a, "node-b", 9),
        lambda: store_a.set_maintenance(lead_a, "node-b", True, "deposed"),
    ]
    for attempt in refused:
        with pytest.raises(NotLeader, match="no longer leads"):
            attempt()
    # Even with the term it had, a stale renewal from a leader whose lease expired never reverts the term.
    lead_a_again = replace(lead_a, term=lead_b.term)
    with pytest.raises(NotLeader):
        store_a.set_paused(lead_a_again, True, "wrong coordinator")
    assert store_a.release(lead_a) is False

    durable = store_b.load()
    assert (durable.cluster.writer, durable.cluster.epoch, durable.cluster.paused) == ("node-a", 1, False)
    assert set(durable.nodes) == {"node-a", "node-b"} and durable.nodes["node-b"].priority == 1
    assert [e.reason for e in store_b.events()] == ["first writer"]
    assert store_b.change_writer(lead_b, 1, "node-b") == 2


def test_release_lets_another_coordinator_lead_at_once(stores: Callable[..., ClusterStore]) -> None:
    store_a, store_b = stores(), stores()
    store_a.migrate()
    lead_a = leader(store_a, "coord-a", lease_s=30.0)
    assert store_b.acquire_or_renew("coord-b", "b:1", 30.0, None) is None
    assert store_a.release(lead_a)
    assert store_b.leader_info()[3] <= 0
    lead_b = store_b.acquire_or_renew("coord-b", "b:1", 30.0, None)
    assert lead_b is not None and lead_b.term == 2


def test_a_restarted_coordinator_waits_out_its_own_old_lease(store: ClusterStore) -> None:
    leader(store, "coord-a", lease_s=0.4)
    assert store.acquire_or_renew("coord-a", "coord-a:7000", 0.4, None) is None
    wait_for_lease_expiry(store)
    again = store.acquire_or_renew("coord-a", "coord-a:7000", 0.4, None)
    assert again is not None and again.term == 2


def test_valid_until_ends_before_mysqls_leader_until(store: ClusterStore) -> None:
    lease_s = 5.0
    leadership = leader(store, lease_s=lease_s)
    asked_at = time.monotonic()
    left_s = store.leader_info()[3]
    # MySQL evaluated NOW(6) no earlier than asked_at, so its lease ends no earlier than asked_at + left_s here.
    assert leadership.valid_until < asked_at + left_s
    assert leadership.valid(time.monotonic()) and not leadership.valid(leadership.valid_until)
    renewed = store.acquire_or_renew("coord-a", "coord-a:7000", lease_s, leadership)
    assert renewed is not None
    asked_at = time.monotonic()
    assert renewed.valid_until < asked_at + store.leader_info()[3]


# -- conditional writes ---------------------------------------------------------------------------------


def test_change_writer_needs_the_expected_epoch_and_the_epoch_never_goes_down(store: ClusterStore) -> None:
    leadership = leader(store)
    for name in ("node-a", "node-b"):
        store.upsert_node(leadership, name, "10.0.0.9", False)
    assert store.change_writer(leadership, 0, "node-a") == 1
    assert store.change_writer(leadership, 1, "node-b") == 2
    with pytest.raises(NotLeader, match="epoch moved: expected 1, the cluster is at 2"):
        store.change_writer(leadership, 1, "node-a")
    with pytest.raises(NotLeader, match="expected 5"):
        store.change_writer(leadership, 5, "node-a")
    with pytest.raises(StoreError, match="node 'node-x' is not in the nodes table"):
        store.change_writer(leadership, 2, "node-x")
    assert (store.load().cluster.writer, store.load().cluster.epoch) == ("node-b", 2)
    assert store.change_writer(leadership, 2, None) == 3  # no writer is a writer change too
    assert (store.load().cluster.writer, store.load().cluster.epoch) == (None, 3)


def test_pause_and_resume(store: ClusterStore) -> None:
    leadership = leader(store)
    store.set_paused(leadership, True, "operator: disk work")
    store.set_paused(leadership, True, "operator: disk work")  # unchanged values still count as matched
    cluster = store.load().cluster
    assert (cluster.paused, cluster.paused_reason) == (True, "operator: disk work")
    store.set_paused(leadership, False, "")
    assert store.load().cluster.paused is False


def test_node_upsert_keeps_priority_and_maintenance(store: ClusterStore, mysql_db: MysqlDatabase) -> None:
    leadership = leader(store)
    store.upsert_node(leadership, "node-a", "10.0.0.1", False)
    assert store.load().nodes["node-a"].priority == 1
    store.set_priority(leadership, "node-a", 0)
    store.set_maintenance(leadership, "node-a", True, "replacing the GPU")
    store.upsert_node(leadership, "node-a", "10.0.0.9", True)
    node = store.load().nodes["node-a"]
    assert (node.address, node.hosts_mishards, node.priority) == ("10.0.0.9", True, 0)
    assert (node.maintenance, node.maintenance_reason) == (True, "replacing the GPU")
    store.set_maintenance(leadership, "node-a", False, "")
    assert store.load().nodes["node-a"].maintenance is False

    admin = mysql_db.server.admin(mysql_db.name)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT first_seen < last_seen FROM nodes WHERE name = 'node-a'")
            assert cur.fetchone() == (1,)
    finally:
        admin.close()


def test_load_sees_every_edit_of_the_nodes_even_by_hand(store: ClusterStore, mysql_db: MysqlDatabase) -> None:
    """load() reads the node rows again only when their fingerprint changed: any edit of any column counts."""
    leadership = leader(store)
    for i, name in enumerate(("node-a", "node-b", "node-c"), start=1):
        store.upsert_node(leadership, name, f"10.0.0.{i}", False)
    first = store.load()
    assert store.load().nodes is first.nodes  # nothing changed: the rows were not read again
    edits = (
        "UPDATE nodes SET priority = 5 WHERE name = 'node-b'",
        "UPDATE nodes SET maintenance = 1, maintenance_reason = 'by hand' WHERE name = 'node-c'",
        "UPDATE nodes SET maintenance_reason = 'by hand, again' WHERE name = 'node-c'",
        "UPDATE nodes SET address = '10.0.0.2' WHERE name = 'node-a'",  # swapped with node-b's
        "UPDATE nodes SET address = '10.0.0.1' WHERE name = 'node-b'",
        "UPDATE nodes SET hosts_mishards = 1 WHERE name = 'node-a'",
        "DELETE FROM nodes WHERE name = 'node-b'",
    )
    admin = mysql_db.server.admin(mysql_db.name)
    try:
        for sql in edits:
            with admin.cursor() as cur:
                cur.execute(sql)
            admin.commit()
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT name, address, priority, maintenance, maintenance_reason, hosts_mishards FROM nodes"
                )
                rows = {r[0]: (r[1], r[2], bool(r[3]), r[4], bool(r[5])) for r in cur.fetchall()}
            loaded = store.load().nodes
            seen = {
                n: (r.address, r.priority, r.maintenance, r.maintenance_reason, r.hosts_mishards)
                for n, r in loaded.items()
            }
            assert seen == rows, sql
    finally:
        admin.close()


def test_changing_a_node_that_does_not_exist_names_it(store: ClusterStore) -> None:
    leadership = leader(store)
    with pytest.raises(StoreError, match="node 'ghost' does not exist") as excinfo:
        store.set_priority(leadership, "ghost", 3)
    assert not isinstance(excinfo.value, NotLeader)
    with pytest.raises(StoreError, match="node 'ghost' does not exist"):
        store.set_maintenance(leadership, "ghost", True, "x")
    with pytest.raises(StoreError, match="event 999 does not exist"):
        store.update_event(leadership, 999, ())


def test_forget_node_deletes_the_row_never_the_writers_and_only_while_leading(
    stores: Callable[..., ClusterStore],
) -> None:
    store = stores()
    store.migrate()
    leadership = leader(store, lease_s=1.0)
    for i, name in enumerate(("node-a", "node-b", "node-c"), start=1):
        store.upsert_node(leadership, name, f"10.0.0.{i}", False)
    store.change_writer(leadership, 0, "node-a")
    assert store.forget_node(leadership, "node-b") is True
    assert sorted(store.load().nodes) == ["node-a", "node-c"]
    assert store.forget_node(leadership, "node-b") is False  # no such row (any more)
    with pytest.raises(StoreError, match="node 'node-a' is the writer") as excinfo:
        store.forget_node(leadership, "node-a")
    assert not isinstance(excinfo.value, NotLeader)
    assert "node-a" in store.load().nodes
    store.add_event(leadership, Event(kind="forget", reason="node-b forgotten", node="node-b"))
    store.add_event(leadership, Event(kind="priority", reason="node-c priority", node="node-c"))
    assert [e.node for e in store.events(node="node-b")] == ["node-b"]
    assert [e.reason for e in store.events(kinds=("forget",), node="node-c")] == []
    store.upsert_node(leadership, "node-b", "10.0.0.2", False)  # it came back: registered again, as new
    assert store.load().nodes["node-b"].priority == 1

    wait_for_lease_expiry(store)
    with pytest.raises(NotLeader):
        store.forget_node(leadership, "node-c")  # a deposed leader deletes nothing
    assert "node-c" in store.load().nodes


def test_events_round_trip_with_phases_in_order(store: ClusterStore) -> None:
    leadership = leader(store)
    phases = (("detect", 1_700_000_000.25), ("decide", 1_700_000_000.5), ("fence", 1_700_000_003.0))
    failover = store.add_event(
        leadership,
        Event(
            kind="failover", reason="writer GPU lost", node="node-b", epoch=7, phases=phases, at_unix=1_700_000_000.125
        ),
    )
    more = (*phases, ("promote", 1_700_000_004.0), ("first healthy check", 1_700_000_009.75))
    store.update_event(leadership, failover, more, "writer GPU lost; node-b promoted")
    ids = [store.add_event(leadership, Event(kind="maintenance", reason=f"m{i}", node="node-a")) for i in range(3)]
    assert ids == [failover + 1, failover + 2, failover + 3]

    events = store.events()
    assert [e.id for e in events] == [failover, *ids]  # newest last
    first = events[0]
    assert (first.kind, first.node, first.epoch, first.reason) == (
        "failover",
        "node-b",
        7,
        "writer GPU lost; node-b promoted",
    )
    assert first.phases == more
    assert first.at_unix == pytest.approx(1_700_000_000.125, abs=1e-6)
    assert abs(events[-1].at_unix - time.time()) < 300  # stamped by MySQL when not given

    assert [e.id for e in store.events(limit=2)] == ids[1:]
    assert [e.kind for e in store.events(kinds=("failover",))] == ["failover"]
    assert [e.id for e in store.events(after_id=ids[0])] == ids[1:]
    assert store.events(kinds=()) == []


def test_a_store_reads_events_without_leading(stores: Callable[..., ClusterStore]) -> None:
    store_a, follower = stores(), stores()
    store_a.migrate()
    store_a.add_event(leader(store_a), Event(kind="initial", reason="r"))
    assert [e.kind for e in follower.events()] == ["initial"]
    assert follower.leader_info()[0] == "coord-a"


# -- outages --------------------------------------------------------------------------------------------


def test_mysql_restarted_under_a_running_store(store: ClusterStore, mysql_db: MysqlDatabase) -> None:
    server = mysql_db.server
    leadership = leader(store, lease_s=20.0)
    store.upsert_node(leadership, "node-a", "10.0.0.1", False)
    assert store.change_writer(leadership, 0, "node-a") == 1

    server.stop()
    try:
        for call in (
            lambda: store.load(),
            lambda: store.acquire_or_renew("coord-a", "coord-a:7000", 20.0, leadership),
            lambda: store.change_writer(leadership, 1, None),
            lambda: store.events(),
        ):
            began = time.monotonic()
            with pytest.raises(StoreError, match="unreachable") as excinfo:
                call()
            assert not isinstance(excinfo.value, NotLeader)
            assert time.monotonic() - began < 1.0  # refused at once, not hanging
            assert mysql_db.coordinator.where() in str(excinfo.value)
    finally:
        server.start()

    renewed = store.acquire_or_renew("coord-a", "coord-a:7000", 20.0, leadership)
    assert renewed is not None and renewed.term == leadership.term  # renewed in time: same term
    assert store.load().cluster.epoch == 1
    assert store.change_writer(renewed, 1, None) == 2


def test_mysql_crash_longer_than_the_lease_then_the_lead_is_taken_again(
    store: ClusterStore, mysql_db: MysqlDatabase
) -> None:
    server = mysql_db.server
    leadership = leader(store, lease_s=0.3)
    store.set_paused(leadership, True, "before the crash")
    server.kill()
    try:
        with pytest.raises(StoreError):
            store.acquire_or_renew("coord-a", "coord-a:7000", 0.3, leadership)
        time.sleep(0.4)
    finally:
        server.start()
    again = store.acquire_or_renew("coord-a", "coord-a:7000", 5.0, leadership)
    # Nobody else led meanwhile, so the row still carries our term: renewing it is safe.
    assert again is not None and again.term == leadership.term
    assert store.load().cluster.paused_reason == "before the crash"


def test_a_hung_mysql_fails_calls_within_the_timeouts(mysql_db: MysqlDatabase) -> None:
    server = mysql_db.server
    store = ClusterStore(with_timeouts(mysql_db.coordinator, 0.5), CLUSTER)
    try:
        store.migrate()
        leadership = leader(store)
        server.freeze()
        try:
            for _ in range(2):  # the open connection times out on read; the next call times out connecting
                began = time.monotonic()
                with pytest.raises(StoreError, match="unreachable"):
                    store.acquire_or_renew("coord-a", "coord-a:7000", 10.0, leadership)
                assert time.monotonic() - began < 1.5
            began = time.monotonic()
            with pytest.raises(StoreError):
                read_writer_row(with_timeouts(mysql_db.readonly, 0.5))
            assert time.monotonic() - began < 1.5
        finally:
            server.thaw()
        renewed = store.acquire_or_renew("coord-a", "coord-a:7000", 10.0, leadership)
        assert renewed is not None and renewed.term == leadership.term
    finally:
        store.close()


# -- the read-only account ------------------------------------------------------------------------------


def read_writer_row(settings: MysqlSettings, cluster_name: str | None = None) -> tuple[str | None, int]:
    """(writer, epoch) from the cluster row over a fresh connection, as an agent's read-only account reads it
    (agent/writerrow.py) when no coordinator answers. With `cluster_name`, a row of another cluster is refused.
    StoreError on any failure."""
    conn = None
    try:
        conn = connect(settings, database=settings.database)
        with conn.cursor() as cur:
            cur.execute("SELECT writer, epoch, name FROM cluster WHERE id = 1")
            row = cur.fetchone()
    except (pymysql.err.Error, OSError) as exc:
        raise StoreError(
            f"reading the cluster row from {settings.where()}: {describe(exc, settings.password)}"
        ) from None
    finally:
        if conn is not None:
            close_quietly(conn)
    if row is None:
        raise StoreError(f"{settings.where()} has no cluster row (the coordinator has not migrated it)")
    writer, epoch, name = row
    if cluster_name is not None and name != cluster_name:
        raise StoreError(f"{settings.where()} belongs to cluster {name!r}, not {cluster_name!r}")
    return writer, int(epoch)


def test_read_writer_row_with_the_read_only_account(store: ClusterStore, mysql_db: MysqlDatabase) -> None:
    leadership = leader(store)
    assert read_writer_row(mysql_db.readonly) == (None, 0)
    store.upsert_node(leadership, "node-a", "10.0.0.1", False)
    store.change_writer(leadership, 0, "node-a")
    assert read_writer_row(mysql_db.readonly) == ("node-a", 1)
    assert read_writer_row(mysql_db.readonly, CLUSTER) == ("node-a", 1)
    with pytest.raises(StoreError, match="belongs to cluster"):
        read_writer_row(mysql_db.readonly, "another-cluster")

    conn = pymysql.connect(
        host=mysql_db.readonly.host,
        port=mysql_db.readonly.port,
        user=mysql_db.readonly.user,
        password=READONLY_PASSWORD,
        database=mysql_db.name,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError, match="UPDATE command denied"):
            cur.execute("UPDATE cluster SET epoch = epoch + 1, writer = 'evil' WHERE id = 1")
    finally:
        conn.close()
    readonly_store = ClusterStore(mysql_db.readonly, CLUSTER)
    try:
        assert readonly_store.load().cluster.epoch == 1  # it may read
        with pytest.raises(StoreError, match="denied"):
            readonly_store.acquire_or_renew("coord-r", "r:1", 5.0, None)
        with pytest.raises(StoreError, match="denied"):
            readonly_store.migrate()
    finally:
        readonly_store.close()
    assert read_writer_row(mysql_db.readonly) == ("node-a", 1)


def test_read_writer_row_fails_cleanly_when_mysql_is_down_or_not_migrated(mysql_db: MysqlDatabase) -> None:
    with pytest.raises(StoreError, match="reading the cluster row"):
        read_writer_row(mysql_db.readonly)  # no database yet
    closed_port = replace(mysql_db.readonly, port=1, connect_timeout_s=0.5)
    began = time.monotonic()
    with pytest.raises(StoreError, match=r"unreachable|Can't connect"):
        read_writer_row(closed_port)
    assert time.monotonic() - began < 1.5


def test_no_password_in_errors_logs_or_reprs(
    store: ClusterStore, mysql_db: MysqlDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_password = "Wr0ng-pass-7d1f9c"
    wrong = replace(mysql_db.coordinator, password=Secret(wrong_password))
    messages: list[str] = []
    bad_store = ClusterStore(wrong, CLUSTER)
    for call in (bad_store.load, bad_store.migrate, lambda: bad_store.acquire_or_renew("c", "a", 1.0, None)):
        with pytest.raises(StoreError, match="Access denied") as excinfo:
            call()
        messages.append(str(excinfo.value))
        assert excinfo.value.__cause__ is None  # raised "from None": no driver exception rides along
    with pytest.raises(StoreError, match="Access denied") as excinfo:
        read_writer_row(replace(mysql_db.readonly, password=Secret(wrong_password)))
    messages.append(str(excinfo.value))
    messages += [repr(wrong), str(wrong), repr(mysql_db.coordinator), caplog.text]

    # A server outage under a working store, which logs the reconnect.
    store.load()
    mysql_db.server.stop()
    try:
        with pytest.raises(StoreError) as excinfo:
            store.load()
        messages.append(str(excinfo.value))
    finally:
        mysql_db.server.start()
    messages.append(caplog.text)
    for text in messages:
        for secret in (wrong_password, COORDINATOR_PASSWORD, READONLY_PASSWORD):
            assert secret not in text


def test_plugin_reports_a_fast_startup(mariadb: MariaDB) -> None:
    assert mariadb.running
    assert 0 < mariadb.startup_s < 30
