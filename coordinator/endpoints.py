"""Where a node's Milvus answers: the one lookup of a node's (and the writer's) address."""

from __future__ import annotations

from collections.abc import Mapping

from jfsmilvus.common.milvus1 import MILVUS_PORT

from coordinator.model import Durable, Report


def node_endpoint(durable: Durable, reports: Mapping[str, Report], node: str | None) -> tuple[str, int] | None:
    """Where a node's Milvus answers: the address and port of its latest report, else its MySQL row's address
    and the default port; None when neither knows it. The one lookup of a node's (and the writer's) address."""
    if not node:
        return None
    report = reports.get(node)
    record = durable.nodes.get(node)
    address = report.address if report else (record.address if record else "")
    if not address:
        return None
    return address, (report.milvus_port if report else MILVUS_PORT)


def writer_endpoint(durable: Durable, reports: Mapping[str, Report]) -> tuple[str, int] | None:
    return node_endpoint(durable, reports, durable.cluster.writer)


def woserver(durable: Durable, reports: Mapping[str, Report]) -> str:
    """The writer's address as Mishards' WOSERVER says it (tcp://address:port); empty when unknown."""
    found = writer_endpoint(durable, reports)
    return f"tcp://{found[0]}:{found[1]}" if found else ""
