"""Committing a cluster config version on the leader: validate, compare with the current one, commit.

The shell around coordinator/configstore.py for the CommitClusterConfig RPC: a body that does not parse is
refused with every problem (as `check-config` says them) and nothing changes; a body that means the same as
the current version's is no change at all; otherwise a new version (pins as configstore says).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jfsmilvus.common.clusterconfig import ClusterConfig, parse_cluster_config, render_cluster_config, restart_needed
from jfsmilvus.common.configschema import ConfigError

from coordinator.configstore import CommitOutcome, ConfigCommit, ConfigConflict
from coordinator.requests import with_asker
from coordinator.storeapi import NotLeader

if TYPE_CHECKING:
    from coordinator.daemon import Coordinator

log = logging.getLogger("jfs_milvus.coordinator.config")

PROPOSAL_HEADER = (
    "# No cluster config version exists yet. This one is proposed from what the nodes report (the image and\n"
    "# flavor most of them run; the base server_config is left to each node until you set it here).\n"
    "# Nothing is committed: save it to a file, edit it, and commit it with\n"
    "#   coordinatorctl config edit --file FILE --reason 'first version'\n"
)


@dataclass(frozen=True)
class CommitResult:
    committed: bool
    version: int
    restart_needed: bool
    message: str
    nodes_pinned: int = 0


def proposed_config(c: Coordinator) -> str:
    """The first version offered when none exists: the image and flavor most reporting nodes run."""
    images: Counter[str] = Counter()
    flavors: Counter[str] = Counter()
    for observation, _ in list(c.observations.values()):
        image = getattr(observation, "milvus_image", "")
        if image:
            images[image] += 1
            flavors[getattr(observation, "milvus_flavor", "") or "gpu"] += 1
    cfg = ClusterConfig()
    if images:
        cfg = ClusterConfig(image=images.most_common(1)[0][0], flavor=flavors.most_common(1)[0][0])
    return PROPOSAL_HEADER + render_cluster_config(cfg)


def commit_cluster_config(
    c: Coordinator, body: str, reason: str, expected_current: int, rollback_of: int, by: str
) -> CommitResult:
    """ConfigError: the body does not parse (nothing changed); NotLeader, ConfigConflict, StoreError else."""
    leadership = c.leadership
    if leadership is None:
        raise NotLeader("this coordinator does not lead")
    new = parse_cluster_config(body, "the new cluster config")
    current = c.store.read_config_version(expected_current) if expected_current else None
    old: ClusterConfig | None = None
    if current is not None:
        try:
            old = parse_cluster_config(current.body, f"cluster config version {current.version}")
        except ConfigError:
            old = None  # a version an older coordinator accepted: any new one is a change
    if old is not None and old == new:
        return CommitResult(False, expected_current, False, f"no change: the body means the same as version "
                            f"{expected_current}, which stays current")  # fmt: skip
    restart = restart_needed(old, new)
    what = f"rollback to version {rollback_of}" if rollback_of else "edit"
    pins = "nodes pinned to the versions they run, for a rollout" if restart else "applies to every node now"
    event_reason = with_asker(
        f"cluster config version {{version}} ({what}, {'restart needed' if restart else 'no restart'}: {pins})"
        + (f": {reason}" if reason else ""),
        by,
    )
    epoch = c.published.durable.cluster.epoch if c.published.durable else 0
    commit = ConfigCommit(
        body=body,
        author=by or "a local caller (no TLS)",
        reason=reason,
        expected_current=expected_current,
        restart=restart,
        event_reason=event_reason,
        epoch=epoch,
    )
    with c.tick_lock:  # a rollout starts under it too: none starts between the check and the commit
        active = c.store.active_rollout()
        if active is not None:
            # Any new version would move the pins under it (a restart: pinned again; none: unpinned).
            raise ConfigConflict(
                f"rollout {active.id} to config version {active.to_version} is {active.status}: commit a new "
                "version when it is done or rolled back (coordinatorctl rollout status); nothing was changed"
            )
        outcome: CommitOutcome = c.store.commit_config(leadership, commit)
    c.cluster_config.invalidate()
    log.info("cluster config version %d committed by %s (%s)", outcome.version, by or "a local caller", what)
    if restart:
        message = (
            f"version {outcome.version} committed; it needs a restart, so {outcome.nodes_pinned} node(s) stay "
            "pinned to the version they run: `coordinatorctl rollout` rolls it out, readers one by one, then a planned "
            "switchover, then the old writer"
        )
    else:
        message = f"version {outcome.version} committed; it needs no restart and applies to every node now"
    return CommitResult(True, outcome.version, restart, message, outcome.nodes_pinned)
