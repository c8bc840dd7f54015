"""The writer's WAL directory per writer stint: reused at the same epoch, set aside at another (walplan, waldir)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.milvus.waldir import WriterWal
from agent.milvus.walplan import WalAction, WalStint, parse_stint, plan_writer_wal

NOW = 1_700_000_000


# --- pure: the plan ---


def test_the_same_epoch_reuses_the_wal_so_a_restart_in_place_replays_it() -> None:
    plan = plan_writer_wal(WalStint(7), wal_has_files=True, epoch=7, now_unix=NOW)
    assert plan.action is WalAction.REUSE and plan.set_aside_as is None and plan.prune == ()


@pytest.mark.parametrize(
    ("marker", "name"),
    [(WalStint(6), "epoch-6-1700000000"), (WalStint(9), "epoch-9-1700000000"), (None, "epoch-unknown-1700000000")],
)
def test_another_epoch_or_no_marker_sets_the_wal_aside(marker: WalStint | None, name: str) -> None:
    plan = plan_writer_wal(marker, wal_has_files=True, epoch=7, now_unix=NOW)
    assert plan.action is WalAction.SET_ASIDE and plan.set_aside_as == name
    assert "never replayed" in plan.reason


def test_a_reader_marker_is_never_reused_as_a_writers_wal() -> None:
    assert plan_writer_wal(WalStint(7, "ro"), True, 7, NOW).action is WalAction.SET_ASIDE


@pytest.mark.parametrize("marker", [None, WalStint(3), WalStint(7)])
def test_an_empty_wal_is_fresh_whatever_the_marker(marker: WalStint | None) -> None:
    assert plan_writer_wal(marker, wal_has_files=False, epoch=7, now_unix=NOW).action is WalAction.FRESH


def test_the_newest_three_set_aside_are_kept_and_the_oldest_pruned() -> None:
    old = ("epoch-1-100", "epoch-3-300", "epoch-2-200", "notes.txt")
    plan = plan_writer_wal(WalStint(4), True, 5, NOW, set_aside=old)
    assert plan.set_aside_as == "epoch-4-1700000000"
    assert plan.prune == ("epoch-1-100",)  # by time, never the one just set aside, never a name not ours
    assert plan_writer_wal(WalStint(4), True, 5, NOW, set_aside=old[:2]).prune == ()


def test_a_taken_name_gets_a_counter() -> None:
    plan = plan_writer_wal(None, True, 5, NOW, set_aside=("epoch-unknown-1700000000",))
    assert plan.set_aside_as == "epoch-unknown-1700000000-2"


@pytest.mark.parametrize(
    ("text", "stint"),
    [
        ('{"epoch": 4, "role": "rw"}', WalStint(4)),
        ('{"epoch": 4}', WalStint(4)),
        ("", None),
        (None, None),
        ("{not json", None),
        ('{"epoch": "4"}', None),
        ('{"epoch": true}', None),
        ('{"epoch": -1}', None),
        ('{"epoch": 4, "role": "master"}', None),
        ("[4]", None),
    ],
)
def test_the_marker_is_read_strictly(text: str | None, stint: WalStint | None) -> None:
    assert parse_stint(text) == stint


# --- the edge, on a real directory ---


def wal_with_records(wal_dir: Path, text: str = "records") -> None:
    wal_dir.mkdir(parents=True, exist_ok=True)
    (wal_dir / "1.wal").write_text(text)


def test_prepare_reuses_sets_aside_and_writes_the_marker_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal = WriterWal(str(tmp_path))
    assert wal.prepare(3, NOW).action is WalAction.FRESH
    assert json.loads((tmp_path / "wal.stint").read_text()) == {"epoch": 3, "role": "rw"}
    wal_with_records(tmp_path / "wal", "epoch 3")
    assert wal.prepare(3, NOW + 1).action is WalAction.REUSE  # a restart in place keeps its own WAL
    assert (tmp_path / "wal" / "1.wal").read_text() == "epoch 3"

    with caplog.at_level(logging.WARNING, logger="jfs_milvus.agent.wal"):
        plan = wal.prepare(5, NOW + 2)  # promoted again after others wrote at epoch 4
    assert plan.action is WalAction.SET_ASIDE
    assert list((tmp_path / "wal").iterdir()) == []  # Milvus starts on an empty WAL
    assert (tmp_path / "wal.set-aside" / f"epoch-3-{NOW + 2}" / "1.wal").read_text() == "epoch 3"
    assert json.loads((tmp_path / "wal.stint").read_text())["epoch"] == 5
    assert f"epoch-3-{NOW + 2}" in caplog.text and "never replayed" in caplog.text


def test_prepare_keeps_three_and_says_what_it_deletes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wal = WriterWal(str(tmp_path))
    for epoch in range(1, 6):
        wal.prepare(epoch, NOW + epoch)
        wal_with_records(tmp_path / "wal", f"epoch {epoch}")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jfs_milvus.agent.wal"):
        wal.prepare(6, NOW + 6)
    kept = sorted(p.name for p in (tmp_path / "wal.set-aside").iterdir())
    assert kept == [f"epoch-{e}-{NOW + 6 if e == 5 else NOW + e + 1}" for e in (3, 4, 5)]
    deleted = [r.getMessage() for r in caplog.records if "deleted the set-aside WAL" in r.getMessage()]
    assert len(deleted) == 1 and f"epoch-2-{NOW + 3}" in deleted[0] and "only copy" in deleted[0]


def test_a_crash_after_the_rename_before_the_marker_starts_fresh(tmp_path: Path) -> None:
    """The rename comes first: an old marker beside an empty (or missing) WAL never reuses anything."""
    wal = WriterWal(str(tmp_path))
    wal.prepare(3, NOW)
    wal_with_records(tmp_path / "wal")
    (tmp_path / "wal").rename(tmp_path / "elsewhere")  # as if the agent died right after its rename
    assert wal.prepare(3, NOW + 1).action is WalAction.FRESH
