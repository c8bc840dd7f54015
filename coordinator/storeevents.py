"""The events table: what the coordinator decided and did, read by anyone, written under the leader clause."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from coordinator.model import Event
from coordinator.mysqlsession import LEADS, LOG, MysqlSession
from coordinator.storeapi import Leadership, StoreError


def _phases_json(phases: Sequence[tuple[str, float]]) -> str:
    return json.dumps([[str(name), float(at)] for name, at in phases])


def _phases_from_json(text: str | None) -> tuple[tuple[str, float], ...]:
    try:
        items = json.loads(text or "[]")
        return tuple((str(name), float(at)) for name, at in items)
    except (ValueError, TypeError):
        LOG.warning("events: unreadable phases %r ignored", (text or "")[:80])
        return ()


class EventStatements(MysqlSession):
    """Read, add and update events."""

    def events(
        self, limit: int = 50, kinds: tuple[str, ...] | None = None, after_id: int = 0, node: str | None = None
    ) -> list[Event]:
        """The newest `limit` events with id > after_id (of `kinds`, about `node`, if given), newest last. No
        leadership needed."""
        if limit <= 0 or kinds == ():
            return []
        where = "id > %s"
        params: list[Any] = [after_id]
        if kinds:
            where += " AND kind IN (" + ", ".join(["%s"] * len(kinds)) + ")"
            params.extend(kinds)
        if node is not None:
            where += " AND node = %s"
            params.append(node)
        params.append(limit)
        sql = (
            "SELECT id, UNIX_TIMESTAMP(at), kind, node, epoch, reason, phases FROM events"
            f" WHERE {where} ORDER BY id DESC LIMIT %s"
        )

        def body(cur: Any) -> list[Event]:
            cur.execute(sql, params)
            rows = cur.fetchall()
            return [
                Event(
                    kind=kind,
                    reason=reason,
                    node=node,
                    epoch=int(epoch),
                    phases=_phases_from_json(phases),
                    at_unix=float(at),
                    id=int(event_id),
                )
                for event_id, at, kind, node, epoch, reason, phases in reversed(rows)
            ]

        return self._call("events", body)

    def add_event(self, leadership: Leadership, event: Event) -> int:
        """Record an event under our leadership (`at` is now when event.at_unix is 0); returns its id."""

        def body(cur: Any) -> int:
            cur.execute(
                "INSERT INTO events (at, kind, node, epoch, reason, phases, leader_term)"
                f" SELECT COALESCE(FROM_UNIXTIME(%s), NOW(6)), %s, %s, %s, %s, %s, %s FROM cluster WHERE {LEADS}",
                (
                    event.at_unix or None,
                    event.kind,
                    event.node,
                    event.epoch,
                    event.reason,
                    _phases_json(event.phases),
                    leadership.term,
                    *self._leads_params(leadership),
                ),
            )
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                raise StoreError(f"add_event {event.kind!r} matched nothing")
            return int(cur.lastrowid)

        return self._call("add_event", body)

    def update_event(
        self,
        leadership: Leadership,
        event_id: int,
        phases: Sequence[tuple[str, float]],
        reason: str | None = None,
    ) -> None:
        """Replace an event's phases (and its reason unless None), e.g. as a failover progresses."""

        def body(cur: Any) -> None:
            cur.execute(
                "UPDATE events, cluster SET events.phases = %s, events.reason = COALESCE(%s, events.reason)"
                f" WHERE events.id = %s AND {LEADS}",
                (_phases_json(phases), reason, event_id, *self._leads_params(leadership)),
            )
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                raise StoreError(f"update_event: event {event_id} does not exist")

        self._call("update_event", body)
