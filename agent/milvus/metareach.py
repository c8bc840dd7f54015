"""Can the writer's Milvus reach its MySQL right now? A TCP connect to `general.meta_uri`'s host and port.

Why the writer is stopped while it cannot (converge rule 5c): Milvus 1.x's flush takes the memory tables out
of their list before it serializes them (insert/MemManagerImpl.cpp:143-190, `immu_mem_list_.swap`), and a
serialization that fails on MySQL returns with them in a local list that is then dropped (MemTable.cpp:
140-166): the rows are gone from memory, kept only in the WAL, whose replay starts at the last `flush_lsn`. The
next flush that succeeds moves `flush_lsn` past them, and from then on they are lost for good, though a
client's Flush had answered OK. A writer stopped while MySQL is down replays them when it starts again.

The probe runs in the loop, bounded by `timeout_s`; a loopback host is not probed (from the host, 127.0.0.1
is not the container's MySQL), nor is an unparsable URI: both are "not checked" (None).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from agent.milvus.metauri import MetaUriError, parse_meta_uri

LOOPBACK = ("localhost", "127.", "::1")


@dataclass(frozen=True)
class MetaReach:
    reachable: bool | None  # None: not checked
    target: str = ""
    error: str = ""


def probe_meta_reach(meta_uri: str, timeout_s: float = 0.5) -> MetaReach:
    try:
        uri = parse_meta_uri(meta_uri)
    except MetaUriError:
        return MetaReach(None)
    host = uri.host
    if not host or host.startswith(LOOPBACK):
        return MetaReach(None, host)
    try:
        port = int(uri.port or 3306)
    except ValueError:
        return MetaReach(None, host)
    target = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return MetaReach(True, target)
    except OSError as exc:
        return MetaReach(False, target, exc.strerror or type(exc).__name__)
