"""The lease rules the agent loop used to carry itself, now agent.lease's (pure): a writer without coordinators,
a graceful stop bounded by the lease, what a load balancer's /writer check asks, and why a lease lapsed."""

from __future__ import annotations

from agent.lease import Lease, holds_writer_lease, lapse_text, manual_writer_may_run, stop_timeout_s

NOW = 1000.0


def test_without_coordinators_a_lease_free_writer_runs_and_a_demoted_one_until_its_last_deadline() -> None:
    assert manual_writer_may_run("rw", None, None, NOW)  # the local file grants no lease: the operator's rule
    assert not manual_writer_may_run("rw", NOW - 1, None, NOW)
    assert manual_writer_may_run("ro", None, None, NOW)  # no rw seen since the start: lease-free, stopped gracefully
    assert manual_writer_may_run("ro", 0.0, (NOW + 5,), NOW) and not manual_writer_may_run("ro", 0.0, (NOW - 5,), NOW)
    assert not manual_writer_may_run("ro", 0.0, None, NOW)


def test_a_writers_graceful_stop_ends_within_its_lease_and_lasts_a_second_at_least() -> None:
    lease = Lease(epoch=3, lease_ms=5000, deadline=NOW + 2.5, renewed_by="coordinator c1")
    assert stop_timeout_s(30.0, lease, True, NOW) == 2.5
    assert stop_timeout_s(30.0, Lease(3, 5000, NOW + 0.2, "c1"), True, NOW) == 1.0
    assert stop_timeout_s(30.0, lease, False, NOW) == 30.0  # a reader, or no coordinator: the configured bound


def test_only_a_valid_lease_for_the_assigned_epoch_answers_writer() -> None:
    lease = Lease(epoch=3, lease_ms=5000, deadline=NOW + 1, renewed_by="c1")
    assert holds_writer_lease(True, "rw", 3, lease, None, NOW)
    assert not holds_writer_lease(True, "rw", 4, lease, None, NOW)  # a lease of another epoch
    assert not holds_writer_lease(True, "ro", 3, lease, None, NOW)
    assert holds_writer_lease(False, "rw", 3, None, None, NOW)  # without coordinators: a lease-free source
    assert not holds_writer_lease(False, "rw", 3, None, 1.0, NOW)


def test_a_lapse_says_since_when_and_why() -> None:
    lease = Lease(epoch=3, lease_ms=5000, deadline=NOW - 1.25, renewed_by="MySQL cluster row")
    assert lapse_text(lease, "", NOW) == "lease expired 1.2s ago (last renewed by MySQL cluster row)"
    assert lapse_text(lease, "no coordinator answered for 6.0s", NOW).endswith("(no coordinator answered for 6.0s)")
    assert lapse_text(None, "", NOW) == "holding no writer lease"
