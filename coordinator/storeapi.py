"""What the coordinator needs of its durable store: the calls, their errors, and the leadership they are made under.

`ClusterStore` (coordinator/store.py) is the one in MySQL. Any other (the tests' in-memory one) must keep the
semantics the coordinator relies on (DESIGN.md, "The safety model"):

- `acquire_or_renew` grants a lease on the cluster row that no other coordinator can take while it is valid; a
  renewal keeps the term, a new lead gets term + 1.
- Every write names the leadership it is made under, and raises `NotLeader` when that leadership is no longer
  the one with a valid lease (a deposed coordinator cannot write).
- `change_writer` commits the new writer and epoch at once, only from the expected epoch and only upward.
- A `StoreError` from a write means the outcome is unknown: reload with `load()` before acting on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from coordinator.model import Durable, Event

if TYPE_CHECKING:
    from coordinator.configstore import CommitOutcome, ConfigCommit, ConfigState, ConfigVersion
    from coordinator.rollout import Rollout


class StoreError(Exception):
    """The store was unreachable, failed, or holds something this coordinator must not run against."""


class NotLeader(StoreError):
    """A conditional write matched no row: this coordinator no longer leads, or the epoch moved."""


@dataclass(frozen=True)
class Leadership:
    """This coordinator leads with `term` until `valid_until` on its own time.monotonic() clock."""

    coordinator: str
    address: str
    term: int
    valid_until: float

    def valid(self, now: float) -> bool:
        return now < self.valid_until

    def left_s(self, now: float) -> float:
        return self.valid_until - now


@runtime_checkable
class ClusterStoreApi(Protocol):
    """The calls `coordinator.daemon.Coordinator` (and the runner and the gRPC server through it) makes."""

    def migrate(self) -> int: ...

    def acquire_or_renew(
        self, coordinator: str, address: str, lease_s: float, current: Leadership | None
    ) -> Leadership | None: ...

    def release(self, leadership: Leadership) -> bool: ...

    def leader_info(self) -> tuple[str | None, str, int, float]: ...

    def load(self) -> Durable: ...

    def events(
        self, limit: int = 50, kinds: tuple[str, ...] | None = None, after_id: int = 0, node: str | None = None
    ) -> list[Event]: ...

    def change_writer(
        self, leadership: Leadership, expected_epoch: int, new_writer: str | None, new_epoch: int | None = None
    ) -> int: ...

    def set_paused(self, leadership: Leadership, paused: bool, reason: str) -> None: ...

    def upsert_node(self, leadership: Leadership, name: str, address: str, hosts_mishards: bool) -> None: ...

    def set_priority(self, leadership: Leadership, name: str, priority: int) -> None: ...

    def set_maintenance(self, leadership: Leadership, name: str, on: bool, reason: str) -> None: ...

    def forget_node(self, leadership: Leadership, name: str) -> bool: ...

    def add_event(self, leadership: Leadership, event: Event) -> int: ...

    def update_event(
        self,
        leadership: Leadership,
        event_id: int,
        phases: Sequence[tuple[str, float]],
        reason: str | None = None,
    ) -> None: ...

    # the cluster config (coordinator/configstore.py)
    def config_state(self) -> ConfigState: ...

    def read_config_version(self, version: int) -> ConfigVersion | None: ...

    def read_config_versions(self, versions: list[int]) -> dict[int, ConfigVersion]: ...

    def config_history(self, limit: int = 50) -> list[ConfigVersion]: ...

    def commit_config(self, leadership: Leadership, commit: ConfigCommit) -> CommitOutcome: ...

    def set_config_pin(self, leadership: Leadership, node: str, version: int | None) -> None: ...

    # the rollouts (coordinator/rolloutstore.py)
    def create_rollout(self, leadership: Leadership, rollout: Rollout) -> Rollout: ...

    def save_rollout(self, leadership: Leadership, rollout: Rollout) -> None: ...

    def active_rollout(self) -> Rollout | None: ...

    def latest_rollout(self) -> Rollout | None: ...

    def get_rollout(self, rollout_id: int) -> Rollout | None: ...
