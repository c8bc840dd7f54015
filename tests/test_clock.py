"""The doctor's clock check is right within 50 ms: each agent estimates its clock against the leader's as NTP
does, from its reports' round trips (the leader's clock in the answer against the middle of the round trip),
where it used to compare the leader's receive time with an observation taken up to a cycle earlier (+0.5 s
between two processes on one machine). The rules, and a real agent reporting to a real coordinator."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from jfsmilvus.common.wirecheck import report_problem
from jfsmilvus.v1 import coordinator_pb2, node_pb2

from agent.clock import KEEP_SAMPLES, ClockSample, best_estimate, clock_sample, with_sample
from coordinator.doctor import judge_clock
from tests.bare_agent import leader_and_agent
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import CoordinatorProcess, ctl


def test_the_offset_is_taken_at_the_middle_of_the_round_trip() -> None:
    # Sent at 100.000 by this node, answered 40 ms later; the leader wrote 99.520 as it answered: this node's
    # clock is 0.5 s ahead (100.020 - 99.520), give or take 20 ms.
    sample = clock_sample("c1", 100.0, 0.040, 99.52)
    assert sample is not None and sample.offset_s == pytest.approx(0.5) and sample.rtt_s == 0.040
    assert clock_sample("c1", 100.0, 0.040, 0.0) is None  # an older coordinator sends no clock
    assert clock_sample("c1", 100.0, -0.001, 99.0) is None
    assert clock_sample("c1", 100.0, 0.01, float("nan")) is None


def test_the_shortest_round_trip_of_the_last_few_against_the_same_leader_wins() -> None:
    samples: tuple[ClockSample, ...] = ()
    for i, rtt in enumerate([0.2, 0.005, 0.9, 0.05]):
        samples = with_sample(samples, ClockSample("c1", offset_s=0.1 * i, rtt_s=rtt))
    best = best_estimate(samples)
    assert best is not None and best.rtt_s == 0.005 and best.offset_s == pytest.approx(0.1)
    for _ in range(KEEP_SAMPLES):
        samples = with_sample(samples, ClockSample("c1", 0.0, 0.5))
    assert len(samples) == KEEP_SAMPLES and best_estimate(samples).rtt_s == 0.5  # the old ones are gone
    other = with_sample(samples, ClockSample("c2", 3.0, 0.7))
    assert other == (ClockSample("c2", 3.0, 0.7),)  # another leader, another clock
    assert best_estimate(()) is None


def test_the_doctor_judges_the_estimate_and_falls_back_for_an_older_agent() -> None:
    ok = judge_clock("n", offset_s=0.004, rtt_s=0.002, received_unix=0, observed_at_unix=0, max_skew=1.0)
    assert ok.result == "PASS" and ok.detail.startswith("+0.004s from the leader's (on a 2.0 ms round trip")
    assert judge_clock("n", 1.2, 0.002, 0, 0, 1.0).result == "WARN"
    assert judge_clock("n", -7.0, 0.002, 0, 0, 1.0).result == "FAIL"
    older = judge_clock("n", 0.0, 0.0, received_unix=1000.6, observed_at_unix=1000.0, max_skew=1.0)
    assert older.result == "PASS" and older.detail.startswith("-0.60s") and "does not estimate it" in older.detail


def test_a_report_with_a_clock_out_of_bounds_is_refused() -> None:
    obs = node_pb2.NodeObservation(node="n", address="10.0.0.1", clock_rtt_s=-1.0)
    assert "clock_rtt_s" in (report_problem(coordinator_pb2.ReportRequest(observation=obs)) or "")
    obs = node_pb2.NodeObservation(node="n", address="10.0.0.1", clock_offset_s=1e12, clock_rtt_s=0.01)
    assert "clock_offset_s" in (report_problem(coordinator_pb2.ReportRequest(observation=obs)) or "")


@pytest.mark.slow
def test_on_one_machine_the_doctor_says_the_clocks_agree_within_50_ms(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    c, node = leader_and_agent(coordinator_factory, tmp_path, coordination={"report_interval_s": 1})
    try:
        wait_until(lambda: node.status().clock_rtt_s > 0, 20, "a clock estimate in the agent's status")
        time.sleep(3)  # a few more samples, and a report that carries them

        def clock_finding() -> dict | None:
            run = ctl(c.address, "doctor", "-o", "json", "--config", str(c.config_path))
            found = [f for f in json.loads(run.stdout) if f["name"] == "clock" and f["where"] == node.name]
            return found[0] if found and "round trip" in found[0]["detail"] else None

        finding = wait_until(clock_finding, 20, "the doctor's clock finding from the estimate")
        skew = float(re.match(r"([+-][0-9.]+)s from the leader's", finding["detail"]).group(1))
        assert finding["result"] == "PASS" and abs(skew) < 0.050, finding
        print(finding)
    finally:
        node.stop()
