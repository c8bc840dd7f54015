"""Mishards's gRPC service: every call to the writer, searches to the listed readers (`service_handler.py`).

- Writes and metadata calls (Create, Insert, Flush, Describe, Count, Show..., Cmd) go to WOSERVER through a
  pymilvus-like connection (`router.connection()`, `service_handler.py:176-745`); `Cmd "version"` too
  (`:535-536`), so new clients cannot connect while the writer is down.
- `Search` reads the collection's schema from the writer (cached, `:332-343`), its visible files from the meta
  database, hashes them onto the listed hosts, calls `ReloadSegments` for files a host has not seen at their
  `updated_time`, then `SearchInFiles` on each host, and merges (`:104-173`); with no files it searches on the
  writer (`:133-140`).
- `SearchInFiles` and `ReloadSegments` sent to Mishards itself fail (`:378-380`, `:597-598`).
- A host that does not answer is retried MAX_RETRY times, each try waiting up to the connect timeout
  (pymilvus `pool.py:228-235`): a dead listed reader makes each search fail after about 3 x 30 s.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import symbol_database
from milvus_grpc import milvus_pb2 as pb
from milvus_grpc import milvus_pb2_grpc as pb_grpc
from milvus_grpc import status_pb2

from .metadb import MetaLogin, MetaReadError, visible_files
from .routing import merge_topk, route, to_reload
from .settings import Settings

SERVICE = pb.DESCRIPTOR.services_by_name["MilvusService"]
METRIC_IP = 2
SUPPORTED_VERSION = re.compile(r"1\.0\.\d+$")  # settings.py:15 SERVER_VERSIONS = ['1.0.x']
RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def log(line: str) -> None:
    print(f"mishards: {line}", file=sys.stderr, flush=True)


class NotConnected(Exception):
    """pymilvus's NotConnectError: no answer after every try."""


class Connection:
    """One Milvus address, as a pymilvus pool: retried tries, each bounded by the connect timeout."""

    def __init__(self, address: str, retries: int, timeout_s: float) -> None:
        self.address, self.retries, self.timeout_s = address, max(1, retries), timeout_s
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        self.channel = grpc.insecure_channel(address, options=options)
        self.stub = pb_grpc.MilvusServiceStub(self.channel)

    def call(self, method: str, request: Any) -> Any:
        last: Exception | None = None
        for _ in range(self.retries):
            try:
                return getattr(self.stub, method)(request, timeout=self.timeout_s, wait_for_ready=True)
            except grpc.RpcError as exc:
                if exc.code() not in RETRIED:
                    raise
                last = exc
        raise NotConnected(f"Fail connecting to server on {self.address}. Timeout: {last}")

    def version(self) -> str:
        reply = self.call("Cmd", pb.Command(cmd="version"))
        if reply.status.error_code != 0:
            raise NotConnected(f"{self.address} answered {reply.status.reason!r} to Cmd version")
        return str(reply.string_reply)


def _reply_class(method: str) -> Any:
    return symbol_database.Default().GetSymbol(SERVICE.methods_by_name[method].output_type.full_name)


def error_reply(method: str, code: int, reason: str) -> Any:
    cls = _reply_class(method)
    status = status_pb2.Status(error_code=code, reason=reason)
    return status if cls is status_pb2.Status else cls(status=status)


class MishardsService(pb_grpc.MilvusServiceServicer):
    def __init__(self, settings: Settings, writer: Connection, readers: dict[str, Connection]) -> None:
        self.settings, self.writer, self.readers = settings, writer, readers
        self.login = MetaLogin.parse(settings.database_uri)
        self.schemas: dict[str, Any] = {}
        self.seen: dict[str, dict[str, int]] = {name: {} for name in readers}
        self._lock = threading.Lock()

    def forward(self, method: str, request: Any) -> Any:
        try:
            return self.writer.call(method, request)
        except NotConnected as exc:
            return error_reply(method, status_pb2.CONNECT_FAILED, str(exc))

    def Search(self, request: Any, context: Any) -> Any:
        if not request.extra_params:
            return error_reply("Search", status_pb2.ILLEGAL_ARGUMENT, "Search param loss")
        json.loads(request.extra_params[0].value or "{}")
        try:
            schema = self.schemas.get(request.collection_name)
            if schema is None:
                schema = self.writer.call(
                    "DescribeCollection", pb.CollectionName(collection_name=request.collection_name)
                )
                if schema.status.error_code != 0:
                    return error_reply("Search", status_pb2.COLLECTION_NOT_EXISTS, request.collection_name)
                self.schemas[request.collection_name] = schema
            files = visible_files(self.login, request.collection_name, list(request.partition_tag_array))
            routes = route(list(self.readers), files)
            if not routes:
                return self.writer.call("Search", request)
            log(f"Routing: { {h: [f.id for f in fs] for h, fs in routes.items()} }")
            answers = []
            for host, host_files in routes.items():
                conn = self.readers[host]
                with self._lock:
                    reload = to_reload(self.seen[host], host_files)
                if reload:
                    log(f"ReloadSegments on {host}: {reload}")
                    conn.call(
                        "ReloadSegments",
                        pb.ReLoadSegmentsParam(collection_name=request.collection_name, segment_id_array=reload),
                    )
                found = conn.call(
                    "SearchInFiles",
                    pb.SearchInFilesParam(file_id_array=[str(f.id) for f in host_files], search_param=request),
                )
                if found.status.error_code != 0:
                    return found
                answers.append((found.row_num, list(found.ids), list(found.distances)))
        except NotConnected as exc:
            return error_reply("Search", status_pb2.CONNECT_FAILED, str(exc))
        except MetaReadError as exc:
            return error_reply("Search", status_pb2.COLLECTION_NOT_EXISTS, str(exc))
        row_num, ids, distances = merge_topk(answers, request.topk, schema.metric_type == METRIC_IP)
        return pb.TopKQueryResult(
            status=status_pb2.Status(error_code=0, reason="Success"), row_num=row_num, ids=ids, distances=distances
        )

    def SearchInFiles(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNKNOWN, "Exception calling application: NotImplemented")

    def ReloadSegments(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNKNOWN, "Exception calling application: Not implemented in mishards")


def _forwarder(method: str) -> Callable[[Any, Any, Any], Any]:
    def forward(self: MishardsService, request: Any, context: Any) -> Any:
        return self.forward(method, request)

    forward.__name__ = method
    return forward


for _method in SERVICE.methods_by_name:
    if _method not in ("Search", "SearchInFiles", "ReloadSegments"):
        setattr(MishardsService, _method, _forwarder(_method))
