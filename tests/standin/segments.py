"""Segment files on the shared volume: what a flush leaves in `<storage.path>/db/tables/`.

Milvus keeps one directory per segment, `db/tables/<table_id>/<segment_id>/` (db/Utils.cpp:141-153, created
with `mkdir` after the TableFiles row is written, so on a read-only mount the row stays and the mkdir fails:
MemTableFile.cpp:34,52). The stand-in writes one rows file per segment and a deleted-ids file beside it:

    <file_id>.rows   one JSON object a line: {"id": 7, "v": [0.1, ...]}; written whole, fsynced, then renamed
    <file_id>.del    one deleted id a line, appended and fsynced by a flush that applies deletes

Pure reads and writes of files: no MySQL here (the meta row decides whether a reader sees a segment).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

TABLES_DIR = "tables"


def segment_dir(db_dir: Path, table_id: str, segment_id: str) -> Path:
    return Path(db_dir) / TABLES_DIR / table_id / segment_id


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_segment_dir(db_dir: Path, table_id: str, segment_id: str) -> Path:
    """mkdir -p, as Milvus's CreateCollectionFilePath; raises OSError (EROFS on a reader's mount)."""
    path = segment_dir(db_dir, table_id, segment_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_rows(directory: Path, file_id: str, rows: Iterable[tuple[int, list[float]]]) -> int:
    """Write the segment's rows durably (temp file, fsync, rename, fsync dir); the bytes written."""
    data = "".join(json.dumps({"id": i, "v": v}, separators=(",", ":")) + "\n" for i, v in rows).encode()
    tmp = directory / f".{file_id}.rows.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / f"{file_id}.rows")
    _fsync_dir(directory)
    return len(data)


def append_deleted(directory: Path, file_id: str, ids: Iterable[int]) -> None:
    with open(directory / f"{file_id}.del", "a") as f:
        f.write("".join(f"{i}\n" for i in ids))
        f.flush()
        os.fsync(f.fileno())


def read_rows(directory: Path, file_id: str) -> dict[int, list[float]]:
    """The segment's live rows (deleted ids removed); {} when its rows file is missing."""
    try:
        text = (directory / f"{file_id}.rows").read_text()
    except FileNotFoundError:
        return {}
    rows: dict[int, list[float]] = {}
    for line in text.splitlines():
        if line:
            item = json.loads(line)
            rows[int(item["id"])] = [float(x) for x in item["v"]]
    for gone in read_deleted(directory, file_id):
        rows.pop(gone, None)
    return rows


def read_deleted(directory: Path, file_id: str) -> set[int]:
    try:
        text = (directory / f"{file_id}.del").read_text()
    except FileNotFoundError:
        return set()
    return {int(line) for line in text.splitlines() if line.strip().isdigit()}
