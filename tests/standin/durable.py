"""What a reader would see of a collection: the checker's view of durable data (host side).

Durable = in a segment file on the shared volume whose TableFiles row is visible (RAW, TO_INDEX or INDEX), the
collection's own rows and its partitions', minus deleted ids. Exactly what the stand-in's readers search.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pymysql

from tests.standin.meta import MetaStore
from tests.standin.segments import read_rows, segment_dir


def durable_ids(connect: Callable[[], pymysql.connections.Connection], db_dir: Path, collection: str) -> set[int]:
    conn = connect()
    try:
        store = MetaStore.of_connection(conn)
        if store.collection(collection) is None:
            return set()
        tables = [collection, *(p.table_id for p in store.partitions(collection))]
        files = store.files(tables)
    finally:
        conn.close()
    found: set[int] = set()
    for f in files:
        found.update(read_rows(segment_dir(db_dir, f.table_id, f.segment_id), f.file_id))
    return found
