"""The writer's MySQL reachability probe: a real TCP connect, bounded, and never on a loopback host."""

from __future__ import annotations

import socket

import pytest

from agent.milvus.metareach import probe_meta_reach


def test_a_listening_port_is_reachable_and_a_closed_one_is_not() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.2", 0))
        server.listen()
        port = server.getsockname()[1]
        assert probe_meta_reach(f"mysql://milvus@127.0.0.2:{port}/milvus").reachable is None  # loopback: unchecked
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen()
        port = server.getsockname()[1]
        host = _non_loopback_address()
        got = probe_meta_reach(f"mysql://milvus@{host}:{port}/milvus")
        assert got.reachable is True and got.target == f"{host}:{port}"
    closed = probe_meta_reach(f"mysql://milvus@{host}:{port}/milvus")
    assert closed.reachable is False and closed.error and closed.target == f"{host}:{port}"


def test_an_unparsable_uri_is_not_checked() -> None:
    assert probe_meta_reach("not a uri").reachable is None


def _non_loopback_address() -> str:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent: it picks the outgoing address
            return s.getsockname()[0]
    except OSError as exc:
        pytest.skip(f"this machine has no non-loopback IPv4 address: {exc}")
