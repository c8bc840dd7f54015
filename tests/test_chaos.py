"""The whole chaos suite on a whole local cluster (tests/localcluster): up, every fault, the checker, down.

The same suite runs with `scripts/cluster chaos` (its `--ci` is a short selection for a quick look); this runs
every scenario, as CI does on every change, and then proves that `down` leaves nothing of the cluster behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.localcluster.chaos import SCENARIOS, run_suite, table
from tests.localcluster.down import leftovers, tear_down
from tests.localcluster.up import ClusterSpec, bring_up, missing_prerequisites

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_the_whole_chaos_suite_then_down_leaves_nothing(tmp_path: Path) -> None:
    missing = missing_prerequisites()
    if missing:
        pytest.skip("a local cluster needs " + ", ".join(missing))
    spec = ClusterSpec(
        root=tmp_path / "chaos",
        timing={"failover_window_s": 0},
        name_suffix=str(os.getpid() % 1000),
        subnet=11,
    )
    chosen = list(SCENARIOS)
    try:
        rc = bring_up(spec, print)
        results = run_suite(rc, chosen, print)
    finally:
        left = tear_down(spec.root, print)
    print("\n" + table(results))
    assert [r.outcome for r in results] == ["ok"] * len(chosen), [(r.scenario, r.problems) for r in results]
    assert all(r.flushed_lost == 0 and r.overlap == "none" for r in results)
    assert all(r.writes_flushed > 0 for r in results), [(r.scenario, r.writes_flushed) for r in results]
    healing = [r for r in results if next(s for s in chosen if s.name == r.scenario).heals]
    assert healing and all(r.healed_s is not None for r in healing), [(r.scenario, r.healed_s) for r in healing]
    failovers = [r for r in results if r.writer_after != r.writer_before]
    assert failovers and all(r.epoch_after > r.epoch_before for r in failovers)
    assert left == [] and leftovers(spec.root) == []
