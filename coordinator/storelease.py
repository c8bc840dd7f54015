"""The leader lease on the cluster row, judged by MySQL's own clock (DESIGN.md, "The safety model").

`acquire_or_renew` is one conditional UPDATE; the caller's local view of the lease (`Leadership.valid_until`)
starts from the monotonic time just *before* that statement was sent and is shortened by a drift margin, so it
always ends before MySQL's.
"""

from __future__ import annotations

import time
from typing import Any

from coordinator.mysqlsession import LEADS, LOG, MysqlSession, check_length
from coordinator.storeapi import Leadership, StoreError

COORDINATOR_ID_MAX = 255


class LeaseStatements(MysqlSession):
    """Take, renew, release and read the leader lease."""

    def acquire_or_renew(
        self, coordinator: str, address: str, lease_s: float, current: Leadership | None
    ) -> Leadership | None:
        """Take the lead if no lease is valid by MySQL's clock, or renew ours; None while another leads.

        A renewal (same coordinator and term still on the row) keeps the term; a new lead gets term + 1, and a
        caller that gets a term other than `current.term` must treat it as a new leadership (reload state).
        A coordinator that starts with `current=None` waits out any lease still on the row, even its own name.
        """
        check_length("coordinator id", coordinator, COORDINATOR_ID_MAX)
        if len(address) > 255:
            raise StoreError("coordinator address must be at most 255 characters")
        if not lease_s > 0:
            raise ValueError("lease_s must be > 0")
        renewing = current is not None and current.coordinator == coordinator
        params = {
            "me": coordinator,
            "address": address,
            "renewing": renewing,
            "term": current.term if current is not None and renewing else 0,
            "lease_us": round(lease_s * 1_000_000),
            "cluster": self.cluster_name,
        }
        # MySQL assigns left to right: leader_term is computed from the row's old leader and term.
        # LAST_INSERT_ID(expr) hands the resulting term back with the statement's answer.
        sql = (
            "UPDATE cluster SET"
            " leader_term = LAST_INSERT_ID(IF(%(renewing)s AND leader <=> %(me)s AND leader_term = %(term)s,"
            " leader_term, leader_term + 1)),"
            " leader = %(me)s, leader_address = %(address)s,"
            " leader_until = NOW(6) + INTERVAL %(lease_us)s MICROSECOND"
            " WHERE id = 1 AND name = %(cluster)s AND (leader_until IS NULL OR leader_until <= NOW(6)"
            " OR (%(renewing)s AND leader <=> %(me)s AND leader_term = %(term)s))"
        )

        def body(cur: Any) -> Leadership | None:
            sent_at = time.monotonic()
            cur.execute(sql, params)
            if cur.rowcount != 1:
                return None
            term = int(cur.lastrowid or 0)
            if term <= 0:
                raise StoreError(f"acquire_or_renew: {self.settings.where()} did not return the leader term")
            return Leadership(
                coordinator=coordinator,
                address=address,
                term=term,
                valid_until=sent_at + lease_s * (1.0 - self.lease_margin_fraction),
            )

        leadership = self._call("acquire_or_renew", body)
        if leadership is not None and (current is None or leadership.term != current.term):
            LOG.info("coordinator %s leads cluster %s with term %d", coordinator, self.cluster_name, leadership.term)
        return leadership

    def release(self, leadership: Leadership) -> bool:
        """End our lease now (clean shutdown) so another coordinator need not wait it out; False if not ours."""

        def body(cur: Any) -> bool:
            cur.execute(f"UPDATE cluster SET leader_until = NOW(6) WHERE {LEADS}", self._leads_params(leadership))
            return bool(cur.rowcount == 1)

        return self._call("release", body)

    def leader_info(self) -> tuple[str | None, str, int, float]:
        """(leader id, its address, term, seconds of lease left by MySQL's clock, <= 0 when expired)."""

        def body(cur: Any) -> tuple[str | None, str, int, float]:
            cur.execute(
                "SELECT leader, leader_address, leader_term, TIMESTAMPDIFF(MICROSECOND, NOW(6), leader_until)"
                " FROM cluster WHERE id = 1"
            )
            row = cur.fetchone()
            if row is None:
                raise StoreError(f"{self.settings.where()} has no cluster row")
            leader, address, term, left_us = row
            return leader, address, int(term), (int(left_us) / 1_000_000 if left_us is not None else 0.0)

        return self._call("leader_info", body)
