"""This node's clock against the leader's, estimated as NTP does from the round trip of each report. Pure.

A report is sent at `sent_unix` (this node's clock) and its answer arrives `rtt_s` later (monotonic clock, so a
clock step in between does not count); the leader wrote its clock into the answer (`now_unix`) somewhere in
between. Taking it at the middle of the round trip, this node's clock minus the leader's is
`sent_unix + rtt_s / 2 - now_unix`, off by at most `rtt_s / 2`. Of the last few samples the one with the
shortest round trip is kept (NTP's clock filter): a report that waited in a queue says least.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jfsmilvus.common.wirecheck import MAX_RTT_S  # a longer round trip says nothing useful about a clock

KEEP_SAMPLES = 8


@dataclass(frozen=True)
class ClockSample:
    coordinator: str  # the leader that answered
    offset_s: float  # this node's clock minus the leader's
    rtt_s: float

    def to_dict(self) -> dict[str, float | str]:
        return {"coordinator": self.coordinator, "offset_s": self.offset_s, "rtt_s": self.rtt_s}


def clock_sample(coordinator: str, sent_unix: float, rtt_s: float, leader_unix: float) -> ClockSample | None:
    """One round trip's estimate; None when the answer carries no clock (an older coordinator) or the numbers
    cannot be one (not finite, a negative or very long round trip)."""
    numbers = (sent_unix, rtt_s, leader_unix)
    if not all(math.isfinite(n) for n in numbers) or leader_unix <= 0 or not 0 <= rtt_s <= MAX_RTT_S:
        return None
    return ClockSample(coordinator, sent_unix + rtt_s / 2 - leader_unix, rtt_s)


def with_sample(samples: tuple[ClockSample, ...], new: ClockSample | None) -> tuple[ClockSample, ...]:
    """The last KEEP_SAMPLES samples against the leader of `new` (another coordinator's clock is another clock)."""
    if new is None:
        return samples
    same = tuple(s for s in samples if s.coordinator == new.coordinator)
    return (*same, new)[-KEEP_SAMPLES:]


def best_estimate(samples: tuple[ClockSample, ...]) -> ClockSample | None:
    """The sample with the shortest round trip, whose offset is the least uncertain."""
    return min(samples, key=lambda s: s.rtt_s, default=None)
