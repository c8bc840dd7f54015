"""Stand-in for a Milvus 1.x server: Milvus's gRPC API, its MySQL meta, its WAL, its start and its stop.

The image's command (`python3 -m standin.server`; the generated modules of milvus.proto come from pymilvus
1.0.1's wheel as the package `milvus_grpc`). README.md says what is modelled, from which Milvus file and line.
Environment: JFS_MILVUS_NODE (node name, default the host name) and JFS_MILVUS_EPOCH (the agent sets both;
they name the write log), JFS_MILVUS_CONFIG (default /var/lib/milvus/conf/server_config.yaml),
JFS_MILVUS_STANDIN_FLAVOR (gpu | cpu, baked into the image), NVIDIA_VISIBLE_DEVICES (set by Docker's nvidia
device driver for a GPU device request).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from milvus_grpc import milvus_pb2 as pb
from milvus_grpc import milvus_pb2_grpc as pb_grpc
from milvus_grpc import status_pb2

from .engine import SUCCESS, UNEXPECTED_ERROR, Database
from .meta import MetaError, MetaStore
from .milvusconf import ConfigCheckError, MilvusSettings, read_settings, unknown_gpu_devices
from .wal import LocalWal, WalInitError
from .writelog import WRITELOG_DIR, encode, entry, file_name

DEFAULT_CONFIG = "/var/lib/milvus/conf/server_config.yaml"
# What `Cmd version` answers; a version image (build.ensure_version_images) sets another, as 1.1.1 answers "1.1.1".
MILVUS_VERSION = os.environ.get("JFS_MILVUS_STANDIN_VERSION", "1.0.0")
SUCCESS_JSON = {"message": "Success", "code": 0}
LOADER_EXIT = 127  # ld.so could not load the binary's libraries
MILVUS_BINARY = "/var/lib/milvus/bin/milvus_server"


def log(line: str) -> None:
    print(f"standin: {line}", file=sys.stderr, flush=True)


class WriteLog:
    """This writer incarnation's lines on the shared volume (start, tick, flush, stop), each fsynced."""

    def __init__(self, db_dir: Path, node: str, epoch: int) -> None:
        self.node, self.epoch = node, epoch
        log_dir = db_dir / WRITELOG_DIR
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = file_name(node, epoch, time.time_ns())
        fd = os.open(log_dir / self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._file: BinaryIO | None = os.fdopen(fd, "ab")
        dir_fd = os.open(log_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._lock = threading.Lock()
        self._seq = 0
        self.append("start", pid=os.getpid())

    def append(self, kind: str, **fields: Any) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.write(encode(entry(kind, self.node, self.epoch, self._seq, time.time_ns(), **fields)))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._seq += 1

    def close(self, reason: str) -> None:
        self.append("stop", reason=reason)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def status(code: int = SUCCESS, reason: str = "") -> status_pb2.Status:
    return status_pb2.Status(error_code=code, reason=reason)


def _params(pairs: Any) -> str:
    return next((p.value for p in pairs if p.key == "params"), "{}")


class MilvusService(pb_grpc.MilvusServiceServicer):
    """milvus.grpc.MilvusService over the Database; the hybrid calls stay UNIMPLEMENTED."""

    def __init__(self, db: Database, flavor: str) -> None:
        self.db, self.flavor = db, flavor

    def CreateCollection(self, request: Any, context: Any) -> Any:
        code, reason, _ = self.db.create_collection(
            request.collection_name, request.dimension, request.index_file_size, request.metric_type
        )
        return status(code, reason)

    def HasCollection(self, request: Any, context: Any) -> Any:
        code, reason, has = self.db.has_collection(request.collection_name)
        return pb.BoolReply(status=status(code, reason), bool_reply=bool(has))

    def DescribeCollection(self, request: Any, context: Any) -> Any:
        code, reason, found = self.db.describe_collection(request.collection_name)
        if code != SUCCESS or found is None:
            return pb.CollectionSchema(status=status(code, reason))
        return pb.CollectionSchema(
            status=status(),
            collection_name=found.table_id,
            dimension=found.dimension,
            index_file_size=found.index_file_size // (1024 * 1024),
            metric_type=found.metric_type,
        )

    def CountCollection(self, request: Any, context: Any) -> Any:
        code, reason, count = self.db.count(request.collection_name)
        return pb.CollectionRowCount(status=status(code, reason), collection_row_count=count or 0)

    def ShowCollections(self, request: Any, context: Any) -> Any:
        code, reason, names = self.db.show_collections()
        return pb.CollectionNameList(status=status(code, reason), collection_names=names or [])

    def ShowCollectionInfo(self, request: Any, context: Any) -> Any:
        code, reason, info = self.db.collection_info(request.collection_name)
        return pb.CollectionInfo(status=status(code, reason), json_info=info or "")

    def DropCollection(self, request: Any, context: Any) -> Any:
        return status(*self.db.drop_collection(request.collection_name)[:2])

    def CreateIndex(self, request: Any, context: Any) -> Any:
        code, reason, _ = self.db.create_index(
            request.collection_name, request.index_type, _params(request.extra_params)
        )
        return status(code, reason)

    def DescribeIndex(self, request: Any, context: Any) -> Any:
        code, reason, found = self.db.describe_index(request.collection_name)
        if code != SUCCESS:
            return pb.IndexParam(status=status(code, reason))
        engine, params = found
        return pb.IndexParam(
            status=status(),
            collection_name=request.collection_name,
            index_type=engine,
            extra_params=[pb.KeyValuePair(key="params", value=params)],
        )

    def DropIndex(self, request: Any, context: Any) -> Any:
        return status(*self.db.drop_index(request.collection_name)[:2])

    def CreatePartition(self, request: Any, context: Any) -> Any:
        return status(*self.db.create_partition(request.collection_name, request.tag)[:2])

    def HasPartition(self, request: Any, context: Any) -> Any:
        code, reason, has = self.db.has_partition(request.collection_name, request.tag)
        return pb.BoolReply(status=status(code, reason), bool_reply=bool(has))

    def ShowPartitions(self, request: Any, context: Any) -> Any:
        code, reason, tags = self.db.show_partitions(request.collection_name)
        return pb.PartitionList(status=status(code, reason), partition_tag_array=tags or [])

    def DropPartition(self, request: Any, context: Any) -> Any:
        return status(*self.db.drop_partition(request.collection_name, request.tag)[:2])

    def Insert(self, request: Any, context: Any) -> Any:
        if any(r.binary_data for r in request.row_record_array):
            return pb.VectorIds(status=status(11, "The stand-in models float vectors only"))
        vectors = [list(r.float_data) for r in request.row_record_array]
        code, reason, ids = self.db.insert(
            request.collection_name, request.partition_tag, list(request.row_id_array), vectors
        )
        return pb.VectorIds(status=status(code, reason), vector_id_array=ids or [])

    def GetVectorsByID(self, request: Any, context: Any) -> Any:
        code, reason, found = self.db.get_vectors(request.collection_name, list(request.id_array))
        if code != SUCCESS:
            return pb.VectorsData(status=status(code, reason))
        return pb.VectorsData(status=status(), vectors_data=[pb.RowRecord(float_data=v or []) for v in found])

    def GetVectorIDs(self, request: Any, context: Any) -> Any:
        code, reason, ids = self.db.vector_ids(request.collection_name, request.segment_name)
        return pb.VectorIds(status=status(code, reason), vector_id_array=ids or [])

    def _topk(self, reply: tuple[int, str, Any]) -> Any:
        code, reason, results = reply
        if code != SUCCESS:
            return pb.TopKQueryResult(status=status(code, reason))
        ids = [i for row in results for _d, i in row]
        distances = [d for row in results for d, _i in row]
        return pb.TopKQueryResult(status=status(), row_num=len(results), ids=ids, distances=distances)

    def Search(self, request: Any, context: Any) -> Any:
        queries = [list(r.float_data) for r in request.query_record_array]
        return self._topk(
            self.db.search(request.collection_name, list(request.partition_tag_array), queries, request.topk)
        )

    def SearchByID(self, request: Any, context: Any) -> Any:
        code, reason, found = self.db.get_vectors(request.collection_name, list(request.id_array))
        if code != SUCCESS:
            return pb.TopKQueryResult(status=status(code, reason))
        queries = [v for v in found if v is not None]
        return self._topk(
            self.db.search(request.collection_name, list(request.partition_tag_array), queries, request.topk)
        )

    def SearchInFiles(self, request: Any, context: Any) -> Any:
        param = request.search_param
        queries = [list(r.float_data) for r in param.query_record_array]
        return self._topk(
            self.db.search_in_files(list(request.file_id_array), param.collection_name, queries, param.topk)
        )

    def Cmd(self, request: Any, context: Any) -> Any:  # CmdRequest::OnExecute
        answers = {"version": MILVUS_VERSION, "status": "OK", "mode": self.flavor.upper(), "build_commit_id": "standin"}
        return pb.StringReply(status=status(), string_reply=answers.get(request.cmd, "Unknown command"))

    def DeleteByID(self, request: Any, context: Any) -> Any:
        return status(*self.db.delete(request.collection_name, list(request.id_array))[:2])

    def PreloadCollection(self, request: Any, context: Any) -> Any:
        code, reason, _ = self.db.describe_collection(request.collection_name)
        return status(code, reason)

    def ReloadSegments(self, request: Any, context: Any) -> Any:
        return status(*self.db.reload_segments(request.collection_name, list(request.segment_id_array))[:2])

    def Flush(self, request: Any, context: Any) -> Any:
        return status(*self.db.flush(list(request.collection_name_array))[:2])

    def Compact(self, request: Any, context: Any) -> Any:
        return status(*self.db.compact(request.collection_name)[:2])


class Handler(BaseHTTPRequestHandler):
    server_version = "milvus-standin/2"
    timeout = 5
    info: Callable[[], dict[str, Any]]  # set on the subclass made per server

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/state":  # WebController.hpp:65-69: the StatusDto defaults, whatever the role
            self._send(200, SUCCESS_JSON)
        elif path == "/standin":  # test-only: what the checker and tests ask of the model
            self._send(200, {**SUCCESS_JSON, **type(self).info()})
        else:
            self._send(404, {"code": UNEXPECTED_ERROR, "message": f"no such endpoint: {path}"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Exit(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Lifecycle:
    """Server::Start and Server::Stop, with the stand-in's delays."""

    def __init__(self, settings: MilvusSettings, env: dict[str, str]) -> None:
        self.settings = settings
        self.node = env.get("JFS_MILVUS_NODE") or socket.gethostname()
        self.epoch = int(env.get("JFS_MILVUS_EPOCH", "0") or 0)
        self.flavor = env.get("JFS_MILVUS_STANDIN_FLAVOR", "cpu")
        self.signals: list[int] = []
        self.signalled = threading.Event()
        self.db: Database | None = None
        self.writelog: WriteLog | None = None
        self.grpc_server: Any = None
        self.http: ThreadingHTTPServer | None = None
        self.lock_file: BinaryIO | None = None
        self.started_at = time.time()
        self.serving_at: float | None = None
        self.replayed = 0

    def wait(self, seconds: float) -> None:
        """A start phase that takes time; a signal meanwhile ends the start (Milvus's handler stops and exits)."""
        if self.signalled.wait(max(0.0, seconds)):
            raise Exit(0 if self.signals[0] == signal.SIGINT else 1, "stopped while starting")

    def info(self) -> dict[str, Any]:
        db, s = self.db, self.settings
        return {
            "node": self.node,
            "epoch": self.epoch,
            "role": s.role,
            "writable": s.writable,
            "flavor": self.flavor,
            "pid": os.getpid(),
            "started_unix": self.started_at,
            "serving_unix": self.serving_at,
            "replayed": self.replayed,
            "wal_last_lsn": db.wal.last_lsn if db and db.wal else None,
            "wal_applied_lsn": db.wal.applied if db and db.wal else None,
            "pending_rows": db.pending_rows() if db else 0,
            "flushes": db.flushes if db else 0,
            "writelog": self.writelog.name if self.writelog else None,
        }

    def start(self) -> None:
        s, knobs = self.settings, self.settings.knobs
        self._check_storage()
        self.wait(knobs.start_s / 2)  # KnowhereResource::Initialize (GPU resources), config, logs
        db_dir = Path(s.storage_path) / "db"
        try:  # DBWrapper.cpp:209 and MySQLMetaImpl::Initialize step 1: create <storage>/db if it is missing
            db_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise Exit(1, f"Failed to create db directory {db_dir}: {exc}") from exc
        meta = self._meta()
        wal = LocalWal.open(Path(s.wal_path)) if s.wal_enable else None
        if s.writable:
            self.writelog = WriteLog(db_dir, self.node, self.epoch)
        on_flush = (lambda f: self.writelog.append("flush", **f)) if self.writelog else None
        self.db = Database(meta, db_dir, wal, s.writable, log, on_flush)
        try:
            self.replayed = self.db.recover(s.wal_recovery_error_ignore)
        except WalInitError as exc:
            raise Exit(1, f"{exc} (wal.recovery_error_ignore: false)") from exc
        except MetaError as exc:
            raise Exit(1, f"Wal init error! {exc}") from exc
        self.wait(knobs.start_s / 2 + knobs.replay_s_per_1000 * self.replayed / 1000)
        self._serve()
        self.serving_at = time.time()
        if s.writable:
            threading.Thread(target=self._tick, name="tick", daemon=True).start()
            if s.auto_flush_interval > 0 and wal is not None:
                threading.Thread(target=self._auto_flush, name="wal_thread", daemon=True).start()
        log(
            f"node={self.node} epoch={self.epoch} role={s.role} writable={s.writable} flavor={self.flavor} "
            f"grpc={s.bind_address}:{s.bind_port} http=0.0.0.0:{s.http_port} replayed={self.replayed} "
            f"writelog={self.writelog.name if self.writelog else None}"
        )

    def _check_storage(self) -> None:
        """StorageChecker (logs.path writable; for a writer also db and WAL), InstanceLockCheck for a writer."""
        s = self.settings
        try:
            os.makedirs(s.logs_path, exist_ok=True)
        except OSError as exc:
            raise Exit(1, f"Cannot create logs path {s.logs_path}: {exc}") from exc
        if not os.access(s.logs_path, os.W_OK):
            raise Exit(1, f"logs path {s.logs_path} is not writable")
        if not s.writable:
            return  # StorageChecker.cpp:53-55: a reader's db and WAL paths are not checked
        for path in (s.storage_path, s.wal_path):
            os.makedirs(path, exist_ok=True)
            if not os.access(path, os.W_OK):
                raise Exit(1, f"{path} is not writable")
        self.lock_file = open(os.path.join(s.storage_path, "lock"), "ab")  # noqa: SIM115 (held until exit)
        try:
            fcntl.lockf(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise Exit(1, f"{s.role} instance lock db path failed. {exc}") from exc

    def _meta(self) -> MetaStore:
        uri = self.settings.meta_uri
        if uri.dialect.lower() != "mysql":
            raise Exit(1, f"the stand-in models the MySQL meta only, not {uri.dialect!r} (cluster roles need MySQL)")
        try:
            port = int(uri.port) if uri.port else 0
        except ValueError as exc:  # std::stoi throws: Milvus dies on it
            raise Exit(1, f"Invalid meta uri port: {uri.port!r}") from exc
        try:
            store = MetaStore(uri.host, port or 3306, uri.username, uri.password, uri.database)
            store.initialize()
        except MetaError as exc:
            raise Exit(1, str(exc)) from exc
        return store

    def _serve(self) -> None:
        s = self.settings
        if s.http_enable:  # AppComponent.hpp:43: the web server binds by port only, every address
            handler = type("BoundHandler", (Handler,), {"info": staticmethod(self.info)})
            self.http = ThreadingHTTPServer(("0.0.0.0", s.http_port), handler)
            self.http.daemon_threads = True
            threading.Thread(target=self.http.serve_forever, name="http", daemon=True).start()
        assert self.db is not None
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=[("grpc.so_reuseport", 0)])
        pb_grpc.add_MilvusServiceServicer_to_server(MilvusService(self.db, self.flavor), server)
        try:
            bound = server.add_insecure_port(f"{s.bind_address}:{s.bind_port}")
        except RuntimeError:
            bound = 0
        if not bound:
            # GrpcServer.cpp:101-115: BuildAndStart() returns null and Wait() dereferences it.
            time.sleep(0.2)
            raise Exit(1, f"Server received critical signal: 11 (gRPC could not bind {s.bind_address}:{s.bind_port})")
        server.start()
        self.grpc_server = server

    def _tick(self) -> None:
        while not self.signalled.wait(self.settings.knobs.tick_ms / 1000):
            if self.writelog is not None:
                try:
                    self.writelog.append("tick")
                except OSError as exc:
                    log(f"tick failed: {exc}")

    def _auto_flush(self) -> None:
        """BackgroundWalThread's auto flush: flush-all every auto_flush_interval seconds."""
        while not self.signalled.wait(self.settings.auto_flush_interval):
            try:
                assert self.db is not None
                self.db.flush_all()
            except (OSError, MetaError) as exc:
                log(f"auto flush failed: {exc}")

    def stop(self, reason: str) -> None:
        """Server::Stop: no new requests, drain, flush everything, wait for the background threads."""
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=2).wait(5)
        if self.db is not None:
            self.db.stopping.set()
            try:
                self.db.flush_all()
            except (OSError, MetaError) as exc:
                log(f"final flush failed: {exc}")
        if self.settings.writable:
            # DBImpl::Stop joins the WAL, merge and index threads of a writer only (db/DBImpl.cpp:179-208); a
            # reader has none, so its stop is quick.
            time.sleep(self.settings.knobs.stop_s)
        if self.writelog is not None:
            self.writelog.close(reason)
        if self.http is not None:
            self.http.shutdown()


def gpu_loader_check(flavor: str, env: dict[str, str]) -> str | None:
    """The GPU build links libnvidia-ml.so.1, of which the image holds a placeholder: without the NVIDIA hook
    (which a GPU device request brings, and which sets NVIDIA_VISIBLE_DEVICES) ld.so fails before main."""
    visible = env.get("NVIDIA_VISIBLE_DEVICES", "")
    if flavor == "gpu" and visible.strip().lower() in ("", "void", "none"):
        return f"{MILVUS_BINARY}: error while loading shared libraries: libnvidia-ml.so.1: file too short"
    return None


def visible_gpus(env: dict[str, str]) -> int:
    visible = env.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    if visible.lower() in ("", "void", "none"):
        return 0
    return 8 if visible.lower() == "all" else len([v for v in visible.split(",") if v.strip()])


def main() -> int:
    env = dict(os.environ)
    loader_error = gpu_loader_check(env.get("JFS_MILVUS_STANDIN_FLAVOR", "cpu"), env)
    if loader_error:
        print(loader_error, file=sys.stderr, flush=True)
        return LOADER_EXIT
    config_path = env.get("JFS_MILVUS_CONFIG", DEFAULT_CONFIG)
    try:
        settings = read_settings(Path(config_path).read_text())
        if env.get("JFS_MILVUS_STANDIN_FLAVOR") == "gpu" and settings.gpu_enable:
            bad = unknown_gpu_devices(settings.gpu_devices, visible_gpus(env))
            if bad:
                raise ConfigCheckError(f"Invalid gpu search resource: {bad[0]}. gpu does not match with the hardware")
    except OSError as exc:
        print(f"Failed to load config file {config_path}: {exc}", file=sys.stderr, flush=True)
        return 1
    except ConfigCheckError as exc:  # Server.cpp:381-384
        print(f"Config check fail: {exc}", file=sys.stderr, flush=True)
        return 1
    life = Lifecycle(settings, env)

    def on_signal(signum: int, _frame: object) -> None:  # SignalUtil::HandleSignal
        if signum == signal.SIGINT:
            log("Server received signal: 2")
        else:
            log(f"Server received critical signal: {signum}")
            log("Call stack: (the stand-in has none to print)")
        life.signals.append(signum)
        life.signalled.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(signum, on_signal)
    try:
        life.start()
    except Exit as exc:
        log(str(exc))
        if exc.code:
            log("Milvus server exit...")
        return exc.code
    life.signalled.wait()
    first = life.signals[0]
    life.stop(signal.Signals(first).name)
    log("Milvus server is going to shutdown ...")
    # SIGINT and SIGUSR2 exit 0; every other signal goes through the "critical signal" branch: exit 1.
    return 0 if first in (signal.SIGINT, signal.SIGUSR2) else 1


if __name__ == "__main__":
    sys.exit(main())
