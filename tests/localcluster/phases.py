"""A failover's phases, from the coordinator's event and the client's first acknowledged write."""

from __future__ import annotations

from typing import Any

# The coordinator's phase names, then what the client saw. Each phase ends where the next begins.
PHASES = ("detect", "decide", "fence", "promote", "healthy", "mishards")


def phase_times(event: Any, fault_unix: float) -> dict[str, float]:
    """Seconds from the fault to the start of each phase the event records."""
    return {p.name: round(p.at_unix - fault_unix, 3) for p in event.phases}


def phase_durations(at: dict[str, float]) -> dict[str, float]:
    """How long each step took: detect from the fault, then each phase until the next one began."""
    durations = {}
    previous = 0.0
    for name, ends in (
        ("detect", "detect"),
        ("decide", "fence"),
        ("fence", "promote"),
        ("promote", "healthy"),
        ("mishards", "mishards"),
    ):
        if ends in at:
            durations[name] = round(at[ends] - previous, 3)
            previous = at[ends]
    return durations


def failover_event(events: list[Any], after_id: int, new_writer: str) -> Any | None:
    done = [e for e in events if e.id > after_id and e.kind == "failover" and e.node == new_writer and e.phases]
    return done[-1] if done else None
