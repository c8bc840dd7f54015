"""The pymilvus 1.x write client (tests/milvusclient): what its parent learns from it, against nothing, against a
stand-in writer and against a stand-in reader (which acknowledges inserts it never applies)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.milvusclient.child import CLIENT_PYTHON, ClientProcess, ClientSettings
from tests.milvusclient.ledger import WriteLedger, durability
from tests.plugin_agent import wait_until
from tests.standin.durable import durable_ids


def test_a_flush_covers_the_inserts_acknowledged_before_it_and_moving_on_leaves_the_rest_unflushed() -> None:
    ledger = WriteLedger()
    for event in (
        {"ev": "ack", "id": 1, "node": "a", "conn": 1, "t": 1.0},
        {"ev": "ack", "id": 2, "node": "a", "conn": 1, "t": 2.0},
        {"ev": "flushed", "node": "a", "conn": 1, "ids": [1, 2], "t": 2.5},
        {"ev": "ack", "id": 3, "node": "a", "conn": 1, "t": 3.0},  # a would flush it, but the client moved on
        {"ev": "ack", "id": 4, "node": "b", "conn": 2, "t": 4.0},
        {"ev": "error", "op": "flush", "node": "b", "conn": 2, "code": "DEADLINE_EXCEEDED", "message": "x", "t": 5},
    ):
        ledger.apply(event)
    assert ledger.acknowledged == {1, 2, 3, 4} and ledger.flushed == {1, 2}
    assert ledger.acknowledged_until(3.0) == {1, 2, 3} and ledger.ack_nodes == ["a", "a", "a", "b"]
    assert ledger.errors == 1 and "DEADLINE_EXCEEDED" in ledger.last_error
    found = durability(ledger.acknowledged, ledger.flushed, durable={1, 3})
    assert found.flushed_lost == {2} and found.unflushed_lost == {4} and (found.judged, found.flushed) == (4, 2)


class Client:
    """A writer.py child and what it told, for one test."""

    def __init__(self, log: Path, **settings: Any) -> None:
        if not CLIENT_PYTHON.exists():
            pytest.skip("no .venv-milvus1 (run scripts/setup-test-env)")
        self.ledger = WriteLedger()
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.settings = ClientSettings(**{"collection": "client_test", "period_s": 0.02, **settings})
        self.process = ClientProcess(self.settings, self._on_event, log)
        self.process.start()

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)
            self.ledger.apply(event)

    def seen(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["ev"] == kind and all(e.get(k) == v for k, v in fields.items())]

    def write_to(self, node: str, host: str, port: int) -> None:
        self.process.send({"op": "writer", "node": node, "address": f"{host}:{port}"})


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    made: list[Client] = []

    def make(**settings: Any) -> Client:
        made.append(Client(tmp_path / f"client{len(made)}.log", **settings))
        return made[-1]

    yield make
    for c in made:
        c.process.stop(10)


def test_with_no_server_every_rpc_fails_within_its_deadline_and_stop_ends_it(client: Any) -> None:
    c = client(timeout_s=0.5)
    c.write_to("nowhere", "127.0.0.1", 1)
    wait_until(lambda: len(c.seen("error", op="connect")) >= 3, 10, "connect errors")
    began = time.monotonic()
    assert c.process.stop(10) == 0
    assert time.monotonic() - began < 3 and c.seen("stopped") and not c.ledger.acknowledged


@pytest.mark.slow
def test_on_a_writer_flushed_inserts_are_on_the_volume_and_searches_find_them(
    client: Any, standin_factory: Any, standin_db_dir: Path, milvus_meta: Any
) -> None:
    rw = standin_factory.start("a", "rw", standin_db_dir)
    c = client(flush_every=10, search_every=5)
    c.write_to("a", rw.host, rw.grpc_port)
    wait_until(lambda: len(c.ledger.flushed) >= 30 and c.ledger.searches >= 3, 30, lambda: c.ledger.last_error)
    c.process.send({"op": "flush", "req": "last"})
    (last,) = wait_until(lambda: c.seen("flushed", req="last"), 10, "the requested flush")
    acked = c.ledger.acknowledged_until(last["sent_t"])
    assert c.seen("collection", created=True) and c.ledger.search_misses == []
    assert acked == set(range(1, len(acked) + 1))  # explicit ids, one row an insert, none refused
    assert acked <= c.ledger.flushed  # the requested flush covered every insert acknowledged before it
    assert acked <= durable_ids(milvus_meta.connect, standin_db_dir, "client_test")


@pytest.mark.slow
def test_on_a_reader_inserts_are_acknowledged_and_lost_and_its_flush_never_returns(
    client: Any, standin_factory: Any, standin_db_dir: Path, milvus_meta: Any
) -> None:
    rw = standin_factory.start("a", "rw", standin_db_dir)
    made = client()
    made.write_to("a", rw.host, rw.grpc_port)
    wait_until(lambda: made.ledger.flushed, 30, lambda: made.ledger.last_error)
    made.process.stop(10)
    assert rw.stop() == 0
    ro = standin_factory.start("b", "ro", standin_db_dir)
    c = client(flush_every=5, flush_timeout_s=1.0, first_id=10_000)
    c.write_to("b", ro.host, ro.grpc_port)
    wait_until(lambda: c.seen("error", op="flush"), 20, lambda: f"a flush that timed out ({c.ledger.last_error})")
    (timeout,) = c.seen("error", op="flush")[:1]
    assert timeout["code"] == "DEADLINE_EXCEEDED"
    on_reader = {i for i in c.ledger.acknowledged if i >= 10_000}
    assert len(on_reader) >= 5 and not c.ledger.flushed  # Milvus 1.0 acknowledged them: no role check on Insert
    assert not on_reader & durable_ids(milvus_meta.connect, standin_db_dir, "client_test")
