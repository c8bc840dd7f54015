"""Forgetting a node that is gone: its row in the store, its report, observation and memory in the leader."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from coordinator.actions import OperatorActions
from coordinator.requests import forget_refusal, without_node
from coordinator.storeapi import NotLeader


class ForgetRefused(Exception):
    """A node must not be forgotten now; the message is the one-line reason."""


class UnknownNode(ForgetRefused):
    """The node to forget is neither in MySQL nor heard from, and was never forgotten."""


@dataclass(frozen=True)
class ForgetOutcome:
    forgotten: bool  # False: it was forgotten already, nothing changed
    message: str


class NodeForgetting(OperatorActions):
    """`forget_node`, refused while the core says the node must not be forgotten now."""

    def forget_node(self, node: str, reason: str, by: str = "") -> ForgetOutcome:
        """Remove a node that is gone: its row in MySQL, its report, observation and memory here.

        ForgetRefused (UnknownNode for a name never known) with the one-line reason; StoreError when MySQL
        failed or holds it as the writer; NotLeader when this coordinator does not lead."""
        with self.tick_lock:
            leadership, memory = self.leadership, self.memory
            if leadership is None or memory is None:
                raise NotLeader("this coordinator does not lead")
            durable = self.store.load()
            reports = self.snapshot_reports()
            if node not in durable.nodes and node not in reports:
                earlier = self.store.events(limit=1, kinds=("forget",), node=node)
                if not earlier:
                    raise UnknownNode(f"{node} is not a known node")
                at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(earlier[-1].at_unix))
                return ForgetOutcome(False, f"{node} was already forgotten at {at}: {earlier[-1].reason}")
            with self._state_lock:
                pending = self.pending_request
            why_not = forget_refusal(durable, memory, reports, node, time.monotonic(), self.config.timing, pending)
            if why_not is not None:
                raise ForgetRefused(why_not)
            self._leader_action(lambda lead: self.store.forget_node(lead, node))
            with self._state_lock:
                self.reports.pop(node, None)
            self.observations.pop(node, None)
            self._unregistered.pop(node, None)
            with self.answer_lock:
                if self.memory is not None:
                    self.memory = without_node(self.memory, node)
                # What status and the Report handler read until the next tick must not hold it either.
                published = self.published
                kept_durable = published.durable
                if kept_durable is not None:
                    kept_nodes = {name: rec for name, rec in kept_durable.nodes.items() if name != node}
                    kept_durable = replace(kept_durable, nodes=kept_nodes)
                kept = {name: a for name, a in published.assignments.items() if name != node}
                self.published = replace(published, durable=kept_durable, assignments=kept)
            self._log_event("forget", f"{node} forgotten: {reason or 'no reason given'}", node, by)
        return ForgetOutcome(True, f"{node} forgotten; if its agent reports again it is registered as a new node")
