"""Milvus 1.x's metadata in MySQL, as the stand-in keeps it: the same four tables, columns and values.

Modelled on db/meta/MySQLMetaImpl.cpp (v1.0.0): the schemas at :83-131, `Initialize` at :224-345 (every
start, rw or ro, runs `CREATE TABLE IF NOT EXISTS` for Tables, TableFiles, Environment and Fields, so an
account without CREATE fails a reader's start too), file types and flags from db/meta/MetaTypes.h. Mishards
reads Tables and TableFiles directly, so the columns must be Milvus's own. The login takes the meta URI's
parts byte for byte (MySQLMetaImpl.cpp:236-262): no URL decoding anywhere.

Imported by the stand-in server in the image and by the checker on the host (pymysql in both).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql

# db/meta/MetaTypes.h
TABLE_NORMAL, TABLE_TO_DELETE = 0, 1
FILE_NEW, FILE_RAW, FILE_TO_INDEX, FILE_INDEX, FILE_TO_DELETE, FILE_NEW_MERGE, FILE_NEW_INDEX, FILE_BACKUP = range(8)
VISIBLE_FILE_TYPES = (FILE_RAW, FILE_TO_INDEX, FILE_INDEX)  # what a search reads
FLAG_MASK_NO_USERID, FLAG_MASK_HAS_USERID = 0x1, 0x2
ENGINE_FAISS_IDMAP = 1
CURRENT_VERSION = "1.0.0"

SCHEMAS = {  # MySQLMetaImpl.cpp:83-131, column for column, in the order Initialize creates them (:291-342)
    "Tables": (
        "id BIGINT PRIMARY KEY AUTO_INCREMENT, table_id VARCHAR(255) UNIQUE NOT NULL, state INT NOT NULL, "
        "dimension SMALLINT NOT NULL, created_on BIGINT NOT NULL, flag BIGINT DEFAULT 0 NOT NULL, "
        "index_file_size BIGINT DEFAULT 1024 NOT NULL, engine_type INT DEFAULT 1 NOT NULL, "
        "index_params VARCHAR(512) NOT NULL, metric_type INT DEFAULT 1 NOT NULL, owner_table VARCHAR(255) NOT NULL, "
        f"partition_tag VARCHAR(255) NOT NULL, version VARCHAR(64) DEFAULT '{CURRENT_VERSION}', "
        "flush_lsn BIGINT DEFAULT 0 NOT NULL"
    ),
    "TableFiles": (
        "id BIGINT PRIMARY KEY AUTO_INCREMENT, table_id VARCHAR(255) NOT NULL, segment_id VARCHAR(255) NOT NULL, "
        "engine_type INT DEFAULT 1 NOT NULL, file_id VARCHAR(255) NOT NULL, file_type INT DEFAULT 0 NOT NULL, "
        "file_size BIGINT DEFAULT 0 NOT NULL, row_count BIGINT DEFAULT 0 NOT NULL, updated_time BIGINT NOT NULL, "
        "created_on BIGINT NOT NULL, date INT DEFAULT -1 NOT NULL, flush_lsn BIGINT DEFAULT 0 NOT NULL"
    ),
    "Environment": "global_lsn BIGINT NOT NULL",
    "Fields": (
        "collection_id VARCHAR(255) NOT NULL, field_name VARCHAR(255) NOT NULL, field_type INT DEFAULT 0 NOT NULL, "
        "field_params VARCHAR(255) NOT NULL"
    ),
}


class MetaError(RuntimeError):
    """A meta operation failed; Milvus answers META_FAILED (or exits, at start)."""


@dataclass(frozen=True)
class Collection:
    table_id: str
    dimension: int
    index_file_size: int  # bytes, as stored (the request's MB x 1 MiB)
    metric_type: int
    flag: int
    flush_lsn: int
    owner_table: str  # "" for a collection, the collection for a partition
    partition_tag: str
    engine_type: int
    index_params: str
    created_on: int


@dataclass(frozen=True)
class SegmentFile:
    table_id: str
    segment_id: str
    file_id: str
    file_type: int
    file_size: int
    row_count: int
    flush_lsn: int


def now_us() -> int:
    return time.time_ns() // 1000


class MetaStore:
    """One connection, used under a lock (the stand-in's load is a test's, not a production node's)."""

    def __init__(self, host: str, port: int, user: str, password: str, database: str, timeout_s: float = 5) -> None:
        self._lock = threading.RLock()
        try:
            self._conn = pymysql.connect(
                host=host or "localhost",
                port=port,
                user=user,
                password=password,
                database=database,
                autocommit=True,
                connect_timeout=timeout_s,
                read_timeout=30,
                write_timeout=30,
                charset="utf8mb4",
            )
        except pymysql.MySQLError as exc:
            raise MetaError(f"Failed to connect to MySQL meta server: {host}:{port}, {_reason(exc)}") from exc

    @classmethod
    def of_connection(cls, conn: pymysql.connections.Connection) -> MetaStore:
        store = cls.__new__(cls)
        store._lock = threading.RLock()
        store._conn = conn
        return store

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            try:
                try:
                    self._conn.ping()
                except pymysql.MySQLError:
                    self._conn.connect()
                with self._conn.cursor() as cur:
                    yield cur
            except pymysql.MySQLError as exc:
                raise MetaError(_reason(exc)) from exc

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._cursor() as cur:
            return int(cur.execute(sql, args))

    # -- MySQLMetaImpl::Initialize, steps 7-10: run by every start, ro included --------------------------
    def initialize(self) -> None:
        for name, columns in SCHEMAS.items():
            try:
                self._exec(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
            except MetaError as exc:
                raise MetaError(f"Failed to create meta collection '{name}' in MySQL: {exc}") from exc

    # -- Environment --------------------------------------------------------------------------------
    def global_lsn(self) -> int:
        rows = self._rows("SELECT global_lsn FROM Environment")
        return int(rows[0][0]) if rows else 0

    def set_global_lsn(self, lsn: int) -> None:
        if self._exec("UPDATE Environment SET global_lsn = %s", (lsn,)) == 0 and not self._rows(
            "SELECT global_lsn FROM Environment"
        ):
            self._exec("INSERT INTO Environment (global_lsn) VALUES (%s)", (lsn,))

    # -- Tables -------------------------------------------------------------------------------------
    _COLLECTION_COLUMNS = (
        "table_id, dimension, index_file_size, metric_type, flag, flush_lsn, owner_table, partition_tag, "
        "engine_type, index_params, created_on"
    )

    def _collections(self, where: str, args: tuple[Any, ...]) -> list[Collection]:
        rows = self._rows(
            f"SELECT {self._COLLECTION_COLUMNS} FROM Tables WHERE state <> %s AND {where} ORDER BY id",
            (TABLE_TO_DELETE, *args),
        )
        return [
            Collection(
                str(r[0]),
                int(r[1]),
                int(r[2]),
                int(r[3]),
                int(r[4]),
                int(r[5]),
                str(r[6]),
                str(r[7]),
                int(r[8]),
                str(r[9]),
                int(r[10]),
            )
            for r in rows
        ]

    def collection(self, name: str) -> Collection | None:
        found = self._collections("table_id = %s", (name,))
        return found[0] if found else None

    def collections(self) -> list[Collection]:
        """Every collection (not partitions), as AllCollections returns them."""
        return self._collections("owner_table = ''", ())

    def partitions(self, collection: str) -> list[Collection]:
        return self._collections("owner_table = %s", (collection,))

    def create_collection(
        self,
        name: str,
        dimension: int,
        index_file_size: int,
        metric_type: int,
        flush_lsn: int,
        owner: str = "",
        tag: str = "",
    ) -> None:
        """Milvus refuses a name it has, even one being deleted (MySQLMetaImpl::CreateCollection)."""
        rows = self._rows("SELECT state FROM Tables WHERE table_id = %s", (name,))
        if rows:
            state = int(rows[0][0])
            raise MetaError(
                f"Collection already exists and it is in delete state, please wait a second: {name}"
                if state == TABLE_TO_DELETE
                else f"Collection already exists: {name}"
            )
        self._exec(
            "INSERT INTO Tables (table_id, state, dimension, created_on, flag, index_file_size, engine_type, "
            "index_params, metric_type, owner_table, partition_tag, version, flush_lsn) "
            "VALUES (%s, %s, %s, %s, 0, %s, %s, '{}', %s, %s, %s, %s, %s)",
            (
                name,
                TABLE_NORMAL,
                dimension,
                now_us(),
                index_file_size,
                ENGINE_FAISS_IDMAP,
                metric_type,
                owner,
                tag,
                CURRENT_VERSION,
                flush_lsn,
            ),
        )

    def drop_collection(self, name: str) -> None:
        """Soft delete, as DropCollection does: the rows go TO_DELETE, the files TO_DELETE."""
        self._exec(
            "UPDATE Tables SET state = %s WHERE table_id = %s OR owner_table = %s", (TABLE_TO_DELETE, name, name)
        )
        self._exec(
            "UPDATE TableFiles SET file_type = %s, updated_time = %s WHERE table_id = %s OR table_id IN "
            "(SELECT table_id FROM Tables WHERE owner_table = %s)",
            (FILE_TO_DELETE, now_us(), name, name),
        )

    def set_flag(self, table_id: str, flag: int) -> None:
        self._exec("UPDATE Tables SET flag = %s WHERE table_id = %s", (flag, table_id))

    def set_flush_lsn(self, table_id: str, lsn: int) -> None:
        self._exec("UPDATE Tables SET flush_lsn = %s WHERE table_id = %s", (lsn, table_id))

    def set_index(self, table_id: str, engine_type: int, index_params: str) -> None:
        self._exec(
            "UPDATE Tables SET engine_type = %s, index_params = %s WHERE table_id = %s OR owner_table = %s",
            (engine_type, index_params, table_id, table_id),
        )

    # -- TableFiles ---------------------------------------------------------------------------------
    def add_file(self, file: SegmentFile) -> None:
        now = now_us()
        self._exec(
            "INSERT INTO TableFiles (table_id, segment_id, engine_type, file_id, file_type, file_size, row_count, "
            "updated_time, created_on, date, flush_lsn) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, -1, %s)",
            (
                file.table_id,
                file.segment_id,
                ENGINE_FAISS_IDMAP,
                file.file_id,
                file.file_type,
                file.file_size,
                file.row_count,
                now,
                now,
                file.flush_lsn,
            ),
        )

    def update_file(self, file_id: str, file_type: int, row_count: int | None = None, file_size: int = -1) -> None:
        if file_size >= 0:
            self._exec("UPDATE TableFiles SET file_size = %s WHERE file_id = %s", (file_size, file_id))
        if row_count is None:
            self._exec(
                "UPDATE TableFiles SET file_type = %s, updated_time = %s WHERE file_id = %s",
                (file_type, now_us(), file_id),
            )
        else:
            self._exec(
                "UPDATE TableFiles SET file_type = %s, row_count = %s, updated_time = %s WHERE file_id = %s",
                (file_type, row_count, now_us(), file_id),
            )

    def files(self, table_ids: list[str], types: tuple[int, ...] = VISIBLE_FILE_TYPES) -> list[SegmentFile]:
        if not table_ids or not types:
            return []
        rows = self._rows(
            "SELECT table_id, segment_id, file_id, file_type, file_size, row_count, flush_lsn FROM TableFiles "
            f"WHERE table_id IN ({', '.join(['%s'] * len(table_ids))}) "
            f"AND file_type IN ({', '.join(['%s'] * len(types))}) ORDER BY id",
            (*table_ids, *types),
        )
        return [SegmentFile(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows]

    def files_by_id(self, file_ids: list[str]) -> list[SegmentFile]:
        """By TableFiles.id, the number SearchInFiles takes (DBImpl.cpp:1876-1883 `std::stoul`, then
        MySQLMetaImpl.cpp:2285-2296 `WHERE (id = N OR ...)`); an id that is not a number matches nothing."""
        ids = [int(i) for i in file_ids if i.isdigit()]
        if not ids:
            return []
        rows = self._rows(
            "SELECT table_id, segment_id, file_id, file_type, file_size, row_count, flush_lsn FROM TableFiles "
            f"WHERE id IN ({', '.join(['%s'] * len(ids))}) ORDER BY id",
            tuple(ids),
        )
        return [SegmentFile(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows]


def _reason(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return f"{args[1]} ({args[0]})"
    return str(exc) or type(exc).__name__
