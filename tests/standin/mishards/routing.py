"""Which reader searches which segment files, and how their answers merge (pure).

Follows `mishards/router/plugins/file_based_hash_ring_router.py:45-140` and `mishards/hash_ring.py`: the
visible files (RAW, TO_INDEX, INDEX) of the collection and its partitions are hashed by their `id` onto a ring
of every listed host (40 points per host, 3 keys per point, md5), so each file goes to one host and every
listed host gets files; a file whose `updated_time` moved since that host last saw it is reloaded there first
(`filter_file_to_update`); the per-host top-k answers are merged by distance (`service_handler.py:29-101`).
"""

from __future__ import annotations

import hashlib
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass

POINTS_PER_HOST = 40
KEYS_PER_POINT = 3


def _key(digest: bytes, i: int) -> int:
    return int.from_bytes(digest[i * 4 : i * 4 + 4], "little")


@dataclass(frozen=True)
class Ring:
    keys: tuple[int, ...]
    owners: tuple[str, ...]

    @classmethod
    def of(cls, hosts: Sequence[str]) -> Ring:
        points: list[tuple[int, str]] = []
        for host in hosts:
            for j in range(POINTS_PER_HOST):
                digest = hashlib.md5(f"{host}-{j}".encode()).digest()
                points.extend((_key(digest, i), host) for i in range(KEYS_PER_POINT))
        points.sort()
        return cls(tuple(k for k, _ in points), tuple(h for _, h in points))

    def host_of(self, item: str) -> str | None:
        if not self.keys:
            return None
        pos = bisect(self.keys, _key(hashlib.md5(item.encode()).digest(), 0))
        return self.owners[pos % len(self.keys)]


@dataclass(frozen=True)
class SegmentRow:
    id: int  # TableFiles.id: what SearchInFiles and ReloadSegments take
    updated_time: int


def route(hosts: Sequence[str], files: Sequence[SegmentRow]) -> dict[str, list[SegmentRow]]:
    ring = Ring.of(hosts)
    routes: dict[str, list[SegmentRow]] = {}
    for f in files:
        host = ring.host_of(str(f.id))
        if host is not None:
            routes.setdefault(host, []).append(f)
    return routes


def to_reload(seen: dict[str, int], files: Sequence[SegmentRow]) -> list[str]:
    """Files newer than what this host saw; `seen` (file id -> updated_time, one per host) is updated."""
    out = []
    for f in files:
        if seen.get(str(f.id), 0) < f.updated_time:
            seen[str(f.id)] = f.updated_time
            out.append(str(f.id))
    return out


def merge_topk(
    answers: Sequence[tuple[int, Sequence[int], Sequence[float]]], topk: int, larger_is_closer: bool
) -> tuple[int, list[int], list[float]]:
    """(row_num, ids, distances) of every host merged per query row, the best `topk` kept."""
    rows: list[list[tuple[float, int]]] = []
    for row_num, ids, distances in answers:
        if not row_num:
            continue
        width = len(ids) // row_num
        for r in range(row_num):
            batch = list(zip(distances[r * width : (r + 1) * width], ids[r * width : (r + 1) * width], strict=True))
            if len(rows) == r:
                rows.append(batch)
            else:
                rows[r].extend(batch)
    merged_ids: list[int] = []
    merged_distances: list[float] = []
    for row in rows:
        best = sorted(row, key=lambda p: p[0], reverse=larger_is_closer)[:topk]
        merged_ids.extend(i for _, i in best)
        merged_distances.extend(d for d, _ in best)
    return len(rows), merged_ids, merged_distances
