"""Rollouts in MySQL (table `rollouts`, schema.py's migration 3): one row per rollout, written only under the
leadership, so a coordinator restart or a change of leader continues the rollout where it was.

The row keeps the columns one looks for by hand (status, versions, image) and the whole `Rollout` as JSON in
`state`; at most one rollout is active (running or halted) at a time, which the insert itself checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from coordinator.mysqlsession import LEADS, MysqlSession
from coordinator.rollout import HALTED, RUNNING, STATUSES, Rollout
from coordinator.storeapi import Leadership, StoreError

ACTIVE = (RUNNING, HALTED)
_SELECT = "SELECT id, state FROM rollouts"


class RolloutConflict(StoreError):
    """Another rollout is active: the one-line message names it."""


def rollout_json(r: Rollout) -> str:
    return json.dumps(asdict(r), sort_keys=True)


def rollout_from_json(row_id: int, text: str) -> Rollout:
    """The stored rollout; keys it does not know (a newer coordinator's) are ignored, missing ones default."""
    data = json.loads(text)
    known = {f.name for f in fields(Rollout)}
    kept: dict[str, Any] = {k: v for k, v in data.items() if k in known}
    kept["id"] = row_id
    kept["done"] = tuple(kept.get("done", ()))
    kept["phases"] = tuple((str(name), float(at)) for name, at in kept.get("phases", ()))
    if kept.get("status") not in STATUSES:
        raise StoreError(f"rollout {row_id} has an unknown status {kept.get('status')!r}")
    return Rollout(**kept)


class RolloutStatements(MysqlSession):
    """The `rollouts` table, a part of `coordinator.store.ClusterStore`."""

    def create_rollout(self, leadership: Leadership, rollout: Rollout) -> Rollout:
        """Insert a new rollout (its id from MySQL); RolloutConflict while another one is active."""

        def body(cur: Any) -> Rollout:
            cur.execute(
                "INSERT INTO rollouts (kind, status, from_version, to_version, image, state, started_at, updated_at,"
                " leader_term) SELECT %s, %s, %s, %s, %s, '{}', FROM_UNIXTIME(%s), NOW(6), %s FROM cluster"
                f" WHERE {LEADS} AND NOT EXISTS (SELECT 1 FROM rollouts WHERE status IN (%s, %s))",
                (
                    rollout.kind, rollout.status, rollout.from_version, rollout.to_version, rollout.image[:512],
                    rollout.started_at, leadership.term, *self._leads_params(leadership), *ACTIVE,
                ),
            )  # fmt: skip
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                cur.execute(f"{_SELECT} WHERE status IN (%s, %s) ORDER BY id DESC LIMIT 1", ACTIVE)
                row = cur.fetchone()
                if row is not None:
                    active = rollout_from_json(int(row[0]), row[1])
                    raise RolloutConflict(
                        f"rollout {active.id} to version {active.to_version} is {active.status}: resume it or roll "
                        "it back first"
                    )
                raise StoreError("creating the rollout matched nothing")
            stored = Rollout(**{**asdict(rollout), "id": int(cur.lastrowid), "done": rollout.done})
            cur.execute("UPDATE rollouts SET state = %s WHERE id = %s", (rollout_json(stored), stored.id))
            return stored

        return self._call("create rollout", body)

    def save_rollout(self, leadership: Leadership, rollout: Rollout) -> None:
        """Store the rollout as it is now (under our leadership)."""

        def body(cur: Any) -> None:
            cur.execute(
                "UPDATE rollouts, cluster SET rollouts.status = %s, rollouts.state = %s, rollouts.updated_at = NOW(6),"
                f" rollouts.leader_term = %s WHERE rollouts.id = %s AND {LEADS}",
                (rollout.status, rollout_json(rollout), leadership.term, rollout.id, *self._leads_params(leadership)),
            )
            if cur.rowcount == 0:
                self._not_leader_or_ok(cur, leadership)
                cur.execute("SELECT 1 FROM rollouts WHERE id = %s", (rollout.id,))
                if cur.fetchone() is None:
                    raise StoreError(f"rollout {rollout.id} does not exist")

        self._call("save rollout", body)

    def active_rollout(self) -> Rollout | None:
        """The rollout running or halted, if any (no leadership needed)."""
        return self._one_rollout(f"{_SELECT} WHERE status IN (%s, %s) ORDER BY id DESC LIMIT 1", ACTIVE)

    def latest_rollout(self) -> Rollout | None:
        return self._one_rollout(f"{_SELECT} ORDER BY id DESC LIMIT 1", ())

    def get_rollout(self, rollout_id: int) -> Rollout | None:
        return self._one_rollout(f"{_SELECT} WHERE id = %s", (rollout_id,))

    def _one_rollout(self, sql: str, params: tuple[Any, ...]) -> Rollout | None:
        def body(cur: Any) -> Rollout | None:
            cur.execute(sql, params)
            row = cur.fetchone()
            return rollout_from_json(int(row[0]), row[1]) if row is not None else None

        return self._call("read rollouts", body)
