"""Registering the nodes that report: a node seen in reports but not in the store (or with a new address) is
written there before a decision may name it."""

from __future__ import annotations

import logging
import time

from coordinator.coordstate import CoordinatorState
from coordinator.model import Durable, Report
from coordinator.storeapi import NotLeader, StoreError

log = logging.getLogger("jfs_milvus.coordinator")


class NodeRegistration(CoordinatorState):
    """Write the reporting nodes' rows, leaving out (and logging once) any whose write failed."""

    def _register_nodes(self, durable: Durable, reports: dict[str, Report]) -> tuple[Durable, set[str]]:
        """Nodes seen in reports but not in MySQL (or with a new address) are written there; returns the state
        and the nodes whose write failed (each logged once per reason), which must not stop the others."""
        assert self.leadership is not None
        changed = False
        failed: set[str] = set()
        nodes = durable.nodes
        for name, report in reports.items():
            record = nodes.get(name)
            if record is None or record.address != report.address or record.hosts_mishards != report.hosts_mishards:
                address, hosts = report.address, report.hosts_mishards
                self._invalidate_durable()
                try:
                    self.store.upsert_node(self.leadership, name, address, hosts)
                except NotLeader:
                    raise
                except StoreError as exc:
                    failed.add(name)
                    if self._unregistered.get(name) != str(exc):
                        log.error("cannot register node %s; deciding for the others without it: %s", name, exc)
                    self._unregistered[name] = str(exc)
                    continue
                self._unregistered.pop(name, None)
                log.info("registered node %s at %s%s", name, address, " (hosts Mishards)" if hosts else "")
                changed = True
        return (self._load_durable(time.monotonic()) if changed else durable), failed
