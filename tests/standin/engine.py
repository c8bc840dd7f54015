"""The stand-in's database: what Milvus 1.x's DBImpl and its request classes do, at the depth the product relies on.

Modelled on server/delivery/request/*.cpp and db/DBImpl.cpp (v1.0.0); README.md has the table with lines.
- A writer acknowledges an insert once it is in the local WAL (wal.py) and applies it to its memory table; the
  rows reach the shared db/ at a flush: `Flush`, every `storage.auto_flush_interval` s, a graceful stop.
- Searches, GetVectorsByID and counts read only flushed segments: the TableFiles rows in MySQL and the segment
  files on the volume, on every node alike.
- A reader (CLUSTER_READONLY) has no WAL thread: an insert is appended to its local WAL and acknowledged but
  never applied, and a Flush after it blocks (DBImpl::Flush waits on flush_req_swn_ forever). Collection
  creation runs on MySQL and then fails to mkdir on the read-only mount (the row stays).
- Per-collection Flush moves that collection's flush_lsn only; flush-all also moves the global LSN
  (insert/MemManagerImpl.cpp:143 against :168-192).

Every public method returns (ErrorCode, message, result); codes are milvus.grpc.ErrorCode values.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .meta import (
    FILE_NEW,
    FILE_RAW,
    FLAG_MASK_HAS_USERID,
    FLAG_MASK_NO_USERID,
    Collection,
    MetaError,
    MetaStore,
    SegmentFile,
)
from .segments import append_deleted, make_segment_dir, read_rows, segment_dir, write_rows
from .wal import LocalWal, recovery_range

# milvus.grpc.ErrorCode (status.proto)
SUCCESS, UNEXPECTED_ERROR, PERMISSION_DENIED, COLLECTION_NOT_EXISTS, ILLEGAL_ARGUMENT = 0, 1, 3, 4, 5
ILLEGAL_DIMENSION, ILLEGAL_COLLECTION_NAME, ILLEGAL_TOPK, ILLEGAL_ROWRECORD, ILLEGAL_VECTOR_ID = 7, 9, 10, 11, 12
META_FAILED, CANNOT_CREATE_FOLDER = 15, 17
METRIC_L2, METRIC_IP = 1, 2
DEFAULT_PARTITION = "_default"
MAX_TOPK = 16384
Reply = tuple[int, str, Any]
OK: Reply = (SUCCESS, "", None)


def not_exist(name: str) -> str:  # BaseRequest::CollectionNotExistMsg
    return (
        f"Collection {name} does not exist. Use milvus.has_collection to verify whether the collection exists. "
        "You also can check whether the collection name exists."
    )


def valid_name(name: str) -> str | None:
    """ValidationUtil::ValidateCollectionName: the reason it is refused, or None."""
    if not name:
        return "Collection name should not be empty."
    if len(name) > 255:
        return f"Collection name size exceed the limitation of 255: {name}"
    if not (name[0] == "_" or name[0].isalpha()):
        return f"The first character of a collection name must be an underscore or letter: {name}"
    if not all(c == "_" or c == "$" or c.isalnum() for c in name):
        return f"Collection name can only contain numbers, letters, and underscores: {name}"
    return None


def distance(metric: int, a: list[float], b: list[float]) -> float:
    if metric == METRIC_IP:
        return sum(x * y for x, y in zip(a, b, strict=False))
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=False))


class IdGenerator:
    """SafeIDGenerator: time-based, increasing (microseconds shifted, a counter below)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def take(self, n: int) -> list[int]:
        with self._lock:
            base = max(time.time_ns() // 1000 << 8, self._last + 1)
            self._last = base + n - 1
            return list(range(base, base + n))


@dataclass
class MemTable:
    rows: dict[int, list[float]] = field(default_factory=dict)
    deletes: set[int] = field(default_factory=set)
    lsn: int = 0  # the last record applied to it


class Database:
    def __init__(
        self,
        meta: MetaStore,
        db_dir: Path,
        wal: LocalWal | None,
        writable: bool,
        log: Callable[[str], None],
        on_flush: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.meta, self.db_dir, self.wal, self.writable, self.log = meta, db_dir, wal, writable, log
        self.on_flush = on_flush
        self.mem: dict[str, MemTable] = {}
        self.ids = IdGenerator()
        self._lock = threading.RLock()  # one writer at a time through the memory tables
        self.stopping = threading.Event()
        self.flushes = 0

    # -- start: WAL init and replay (DBImpl::Start) -------------------------------------------------
    def recover(self, error_ignore: bool) -> int:
        """Replay what the WAL range says; the number of records replayed. Raises WalInitError."""
        if self.wal is None:
            return 0
        lsns = []
        for c in self.meta.collections():
            lsns.append(c.flush_lsn)
            lsns.extend(p.flush_lsn for p in self.meta.partitions(c.table_id))
        span = recovery_range(self.meta.global_lsn(), lsns, self.wal.applied)
        replay = self.wal.init(span, error_ignore)
        for record in replay:
            self._apply(record)
        if replay:
            self.log(f"replayed {len(replay)} WAL records (LSN {span.start + 1}..{span.end})")
            if not self.writable:
                self._drop_unwritable()
        return len(replay)

    def _drop_unwritable(self, tables: list[str] | None = None) -> None:
        """A reader serializes its memory tables (replayed WAL records, or inserts taken with the WAL off) into
        files it cannot create: MemTableFile writes the NEW row in MySQL, then mkdir fails on the read-only mount,
        and the rows are dropped."""
        for name in list(self.mem) if tables is None else [t for t in tables if t in self.mem]:
            table = self.mem.pop(name)
            if table.rows:
                self._write_segment(name, table)

    # -- collections ----------------------------------------------------------------------------------
    def create_collection(self, name: str, dimension: int, index_file_size: int, metric: int) -> Reply:
        bad = valid_name(name)
        if bad:
            return ILLEGAL_COLLECTION_NAME, bad, None
        if not 0 < dimension <= 32768:
            return ILLEGAL_DIMENSION, f"Invalid dimension: {dimension}. Should be in range 1 ~ 32768.", None
        if not 0 < index_file_size <= 4096:
            return ILLEGAL_ARGUMENT, f"Invalid index file size: {index_file_size}. Should be in range 1 ~ 4096 MB", None
        if metric not in (1, 2, 3, 4, 5, 6, 7, 8, 9):
            return ILLEGAL_ARGUMENT, f"Invalid metric type: {metric}", None
        flush_lsn = self.wal.last_lsn if self.wal is not None else 0  # DBImpl.cpp:234
        try:
            self.meta.create_collection(name, dimension, index_file_size * 1024 * 1024, metric, flush_lsn)
        except MetaError as exc:
            return ILLEGAL_ARGUMENT if "already exists" in str(exc) else META_FAILED, str(exc), None
        try:  # MySQLMetaImpl::CreateCollection ends with utils::CreateCollectionPath
            (self.db_dir / "tables" / name).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return CANNOT_CREATE_FOLDER, f"Failed to create collection path: {exc}", None
        return OK

    def _collection(self, name: str) -> tuple[Collection | None, Reply | None]:
        bad = valid_name(name)
        if bad:
            return None, (ILLEGAL_COLLECTION_NAME, bad, None)
        try:
            found = self.meta.collection(name)
        except MetaError as exc:
            return None, (META_FAILED, str(exc), None)
        if found is None or found.owner_table:
            return None, (COLLECTION_NOT_EXISTS, not_exist(name), None)
        return found, None

    def has_collection(self, name: str) -> Reply:
        found, error = self._collection(name)
        if error and error[0] != COLLECTION_NOT_EXISTS:
            return error
        return SUCCESS, "", found is not None

    def describe_collection(self, name: str) -> Reply:
        found, error = self._collection(name)
        return error or (SUCCESS, "", found)

    def show_collections(self) -> Reply:
        try:
            return SUCCESS, "", [c.table_id for c in self.meta.collections()]
        except MetaError as exc:
            return META_FAILED, str(exc), None

    def drop_collection(self, name: str) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        with self._lock:
            for table in [name, *(p.table_id for p in self.meta.partitions(name))]:
                self.mem.pop(table, None)
        self.meta.drop_collection(name)
        return OK

    def _tables(self, name: str, tags: list[str] | None = None) -> list[str]:
        partitions = self.meta.partitions(name)
        if tags:
            return [p.table_id for p in partitions if p.partition_tag in tags] + (
                [name] if DEFAULT_PARTITION in tags else []
            )
        return [name, *(p.table_id for p in partitions)]

    def _visible(self, tables: list[str]) -> list[SegmentFile]:
        return self.meta.files(tables)

    def count(self, name: str) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        return SUCCESS, "", sum(f.row_count for f in self._visible(self._tables(name)))

    def collection_info(self, name: str) -> Reply:
        """DBImpl::GetCollectionInfo's JSON: row count, and each partition's segments."""
        _found, error = self._collection(name)
        if error:
            return error
        partitions = [(DEFAULT_PARTITION, name)] + [(p.partition_tag, p.table_id) for p in self.meta.partitions(name)]
        parts, total = [], 0
        for tag, table in partitions:
            files = self._visible([table])
            rows = sum(f.row_count for f in files)
            total += rows
            segments = [
                {"data_size": f.file_size, "index_name": "IDMAP", "name": f.segment_id, "row_count": f.row_count}
                for f in files
            ]
            parts.append({"row_count": rows, "segments": segments, "tag": tag})
        return SUCCESS, "", json.dumps({"partitions": parts, "row_count": total})

    # -- partitions ------------------------------------------------------------------------------------
    def create_partition(self, name: str, tag: str) -> Reply:
        found, error = self._collection(name)
        if error:
            return error
        assert found is not None
        if not tag or tag == DEFAULT_PARTITION:
            return ILLEGAL_ARGUMENT, f"Invalid partition tag: {tag}", None
        if any(p.partition_tag == tag for p in self.meta.partitions(name)):
            return ILLEGAL_ARGUMENT, f"Duplicate partition is not allowed: {tag}", None
        table = f"{name}_{time.time_ns() // 1000}"
        lsn = self.wal.last_lsn if self.wal is not None else 0
        try:
            self.meta.create_collection(
                table,
                found.dimension,
                found.index_file_size // (1024 * 1024) * 1024 * 1024,
                found.metric_type,
                lsn,
                owner=name,
                tag=tag,
            )
        except MetaError as exc:
            return META_FAILED, str(exc), None
        return OK

    def has_partition(self, name: str, tag: str) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        if tag == DEFAULT_PARTITION:
            return SUCCESS, "", True
        return SUCCESS, "", any(p.partition_tag == tag for p in self.meta.partitions(name))

    def show_partitions(self, name: str) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        return SUCCESS, "", [DEFAULT_PARTITION, *(p.partition_tag for p in self.meta.partitions(name))]

    def drop_partition(self, name: str, tag: str) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        match = [p for p in self.meta.partitions(name) if p.partition_tag == tag]
        if tag == DEFAULT_PARTITION or not match:
            return ILLEGAL_ARGUMENT, f"Invalid partition tag: {tag}", None
        self.meta.drop_collection(match[0].table_id)
        return OK

    # -- writes ---------------------------------------------------------------------------------------
    def insert(self, name: str, tag: str, ids: list[int], vectors: list[list[float]]) -> Reply:
        """InsertRequest::OnExecute's checks, then DBImpl::InsertVectors: the WAL append is the acknowledgement."""
        found, error = self._collection(name)
        if error:
            return error
        assert found is not None
        if not vectors:
            return ILLEGAL_ROWRECORD, "The vector array is empty. Make sure you have entered vector records.", None
        if ids and len(ids) != len(vectors):
            return ILLEGAL_VECTOR_ID, "The size of vector ID array must be equal to the size of the vector.", None
        if found.flag & FLAG_MASK_HAS_USERID and not ids:
            return (
                ILLEGAL_VECTOR_ID,
                ("Entities IDs are user-defined. Please provide IDs for all entities of the collection."),
                None,
            )
        if found.flag & FLAG_MASK_NO_USERID and ids:
            return (
                ILLEGAL_VECTOR_ID,
                ("Entities IDs are auto-generated. All vectors of this collection must use auto-generated IDs."),
                None,
            )
        if any(len(v) != found.dimension for v in vectors):
            return (
                ILLEGAL_DIMENSION,
                (
                    f"The vector dimension must be equal to the collection dimension. collection dimension is "
                    f"{found.dimension}"
                ),
                None,
            )
        table = name
        if tag and tag != DEFAULT_PARTITION:
            match = [p.table_id for p in self.meta.partitions(name) if p.partition_tag == tag]
            if not match:
                return ILLEGAL_ARGUMENT, f"Partition not exist: {tag}", None
            table = match[0]
        if found.flag == 0:  # the first insert fixes the id mode (a MySQL UPDATE, on a reader too)
            self.meta.set_flag(name, FLAG_MASK_HAS_USERID if ids else FLAG_MASK_NO_USERID)
        ids = list(ids) or self.ids.take(len(vectors))
        record = {"op": "insert", "collection": name, "table": table, "ids": ids, "vectors": vectors}
        with self._lock:
            if self.wal is None:
                self._apply({**record, "lsn": 0})
            else:
                record["lsn"] = self.wal.append(record)
                if self.writable:  # the WAL thread applies it; a reader has none
                    self._apply(record)
                    self.wal.set_applied(record["lsn"])
        return SUCCESS, "", ids

    def delete(self, name: str, ids: list[int]) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        if not ids:
            return ILLEGAL_ARGUMENT, "No vector id specified", None
        record = {"op": "delete", "collection": name, "table": name, "ids": ids}
        with self._lock:
            if self.wal is None:
                self._apply({**record, "lsn": 0})
            else:
                record["lsn"] = self.wal.append(record)
                if self.writable:
                    self._apply(record)
                    self.wal.set_applied(record["lsn"])
        return OK

    def _apply(self, record: dict[str, Any]) -> None:
        """ExecWalRecord: into the memory table of its target."""
        if record["op"] == "insert":
            table = self.mem.setdefault(record["table"], MemTable())
            for i, v in zip(record["ids"], record["vectors"], strict=True):
                table.rows[int(i)] = [float(x) for x in v]
                table.deletes.discard(int(i))
            table.lsn = int(record["lsn"])
        elif record["op"] == "delete":
            tables = [record["collection"], *(p.table_id for p in self.meta.partitions(record["collection"]))]
            for name in tables:
                table = self.mem.setdefault(name, MemTable())
                for i in record["ids"]:
                    table.rows.pop(int(i), None)
                    table.deletes.add(int(i))
                table.lsn = int(record["lsn"])

    def flush(self, names: list[str]) -> Reply:
        """DBImpl::Flush(collection) for each name, or DBImpl::Flush() for all when `names` is empty."""
        for name in names:
            _found, error = self._collection(name)
            if error:
                return error
        if not self.writable:
            if self.wal is None:
                # WAL off: DBImpl::Flush runs InternalFlush at once (db/DBImpl.cpp:1044-1047, :1075-1078), which
                # serializes on the read-only mount. Answered OK all the same.
                with self._lock:
                    self._drop_unwritable([t for n in names for t in self._tables(n)] if names else None)
                return OK
            if self.wal.unapplied():
                # wal_mgr_->Flush returns an LSN, and flush_req_swn_.Wait() is never notified: no WAL thread.
                self.log("Flush on a read-only node with WAL records: blocks (no WAL thread to serve it)")
                self.stopping.wait()
                return UNEXPECTED_ERROR, "server is stopping", None
            return OK
        with self._lock:
            if names:
                tables = [t for n in names for t in self._tables(n)]
                self._flush_tables([t for t in tables if t in self.mem], flush_all=False)
            else:
                self._flush_tables(list(self.mem), flush_all=True)
        return OK

    def flush_all(self) -> None:
        """The auto flush and the flush at a graceful stop."""
        if self.writable:
            with self._lock:
                self._flush_tables(list(self.mem), flush_all=True)

    def _flush_tables(self, tables: list[str], flush_all: bool) -> None:
        """MemManagerImpl::Flush: each table with data is serialized with flush_lsn = the highest LSN among those
        flushed together; a flush-all then raises the global LSN to it (SetGlobalLastLSN only ever raises it).
        Tables with nothing in memory keep their flush_lsn (MemManagerImpl.cpp:143-192). A segment that cannot
        be written ends the flush (MemTable::Serialize returns before UpdateCollectionFlushLSN, MemTable.cpp:
        140-166): its table and those not yet serialized keep their flush_lsn and the global LSN stays, so the
        rows are gone from memory but still in the WAL, where a restart on this node replays them. The client's
        Flush is answered OK all the same (DBImpl::Flush returns the status of its HasCollection check)."""
        flushed = {t: self.mem.pop(t) for t in tables if t in self.mem}
        max_lsn = max((m.lsn for m in flushed.values()), default=0)
        for name, table in flushed.items():
            if table.rows and not self._write_segment(name, table):
                return
            if table.deletes:
                self._apply_deletes(name, table.deletes)
            self.meta.set_flush_lsn(name, max_lsn)
        if flush_all and flushed and self.writable:
            if max_lsn > self.meta.global_lsn():
                self.meta.set_global_lsn(max_lsn)
            if self.wal is not None:
                self.wal.forget_flushed(min(max_lsn, self.meta.global_lsn()))

    def _write_segment(self, table: str, mem: MemTable) -> bool:
        segment = f"{time.time_ns() // 1000}"
        file = SegmentFile(table, segment, segment, FILE_NEW, 0, 0, mem.lsn)
        try:
            self.meta.add_file(file)  # the NEW row first, then the directory (MemTableFile.cpp:34,52)
            directory = make_segment_dir(self.db_dir, table, segment)
            size = write_rows(directory, segment, sorted(mem.rows.items()))
        except (OSError, MetaError) as exc:
            self.log(f"Failed to create collection file {table}/{segment}: {exc}; {len(mem.rows)} rows dropped")
            return False
        self.meta.update_file(segment, FILE_RAW, row_count=len(mem.rows), file_size=size)
        self.flushes += 1
        if self.on_flush is not None:
            self.on_flush({"table": table, "segment": segment, "rows": len(mem.rows), "lsn": mem.lsn, "bytes": size})
        return True

    def _apply_deletes(self, table: str, ids: set[int]) -> None:
        for f in self._visible([table]):
            directory = segment_dir(self.db_dir, f.table_id, f.segment_id)
            rows = read_rows(directory, f.file_id)
            gone = sorted(ids & rows.keys())
            if gone:
                try:
                    append_deleted(directory, f.file_id, gone)
                except OSError as exc:
                    self.log(f"Failed to apply deletes to {f.file_id}: {exc}")
                    continue
                self.meta.update_file(f.file_id, f.file_type, row_count=len(rows) - len(gone))

    # -- reads ----------------------------------------------------------------------------------------
    def _rows_of(self, files: list[SegmentFile]) -> dict[int, list[float]]:
        rows: dict[int, list[float]] = {}
        for f in files:
            rows.update(read_rows(segment_dir(self.db_dir, f.table_id, f.segment_id), f.file_id))
        return rows

    def get_vectors(self, name: str, ids: list[int]) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        if not ids:
            return ILLEGAL_ARGUMENT, "No vector id specified", None
        rows = self._rows_of(self._visible(self._tables(name)))
        return SUCCESS, "", [rows.get(i) for i in ids]

    def vector_ids(self, name: str, segment: str) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        files = [f for f in self._visible(self._tables(name)) if f.segment_id == segment]
        if not files:
            return ILLEGAL_ARGUMENT, f"Segment {segment} not found", None
        return SUCCESS, "", sorted(self._rows_of(files))

    def search(self, name: str, tags: list[str], queries: list[list[float]], topk: int) -> Reply:
        found, error = self._collection(name)
        if error:
            return error
        assert found is not None
        return self._search(found, self._visible(self._tables(name, tags)), queries, topk)

    def search_in_files(self, file_ids: list[str], name: str, queries: list[list[float]], topk: int) -> Reply:
        found, error = self._collection(name)
        if error:
            return error
        assert found is not None
        files = [f for f in self.meta.files_by_id(file_ids) if f.file_type in (1, 2, 3)]
        if not files:
            return ILLEGAL_ARGUMENT, "Invalid file id", None
        return self._search(found, files, queries, topk)

    def _search(self, found: Collection, files: list[SegmentFile], queries: list[list[float]], topk: int) -> Reply:
        if not 0 < topk <= MAX_TOPK:
            return ILLEGAL_TOPK, f"Invalid topk: {topk}. The topk must be within the range of 1 ~ {MAX_TOPK}.", None
        if not queries:
            return ILLEGAL_ROWRECORD, "The vector array is empty. Make sure you have entered vector records.", None
        if any(len(q) != found.dimension for q in queries):
            return ILLEGAL_DIMENSION, "The vector dimension must be equal to the collection dimension.", None
        rows = self._rows_of(files)
        results = []
        for q in queries:
            scored = sorted(
                ((distance(found.metric_type, q, v), i) for i, v in rows.items()),
                reverse=found.metric_type == METRIC_IP,
            )[:topk]
            scored += [(math.inf if found.metric_type != METRIC_IP else -math.inf, -1)] * (topk - len(scored))
            results.append(scored)
        return SUCCESS, "", results

    def reload_segments(self, name: str, segments: list[str]) -> Reply:
        """ReLoadSegmentsRequest: a writer (or a single node) does nothing; a reader drops cached deletes."""
        _found, error = self._collection(name)
        return error or OK

    def compact(self, name: str) -> Reply:
        _found, error = self._collection(name)
        return error or OK

    def create_index(self, name: str, index_type: int, params: str) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        self.meta.set_index(name, index_type, params)
        return OK

    def describe_index(self, name: str) -> Reply:
        found, error = self._collection(name)
        return error or (SUCCESS, "", (found.engine_type, found.index_params) if found else (1, "{}"))

    def drop_index(self, name: str) -> Reply:
        _found, error = self._collection(name)
        if error:
            return error
        self.meta.set_index(name, 1, "{}")
        return OK

    def pending_rows(self) -> int:
        with self._lock:
            return sum(len(t.rows) for t in self.mem.values())
