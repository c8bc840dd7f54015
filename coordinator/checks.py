"""One finding of `coordinatorctl doctor`: PASS, WARN or FAIL, where, what, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    where: str
    result: str  # PASS | WARN | FAIL
    detail: str
    fix: str = ""
