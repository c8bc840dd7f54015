"""Mishards's start (`mishards/main.py`, `mishards/server.py:54-126`): the image runs `python3 mishards/main.py`
in /source, as PID 1.

1. settings as `mishards/settings.py` reads them (a missing WOSERVER or SQLALCHEMY_DATABASE_URI: exit 1);
2. WOSERVER resolved once (`server.py:54-62`, `socket.gethostbyname`, IPv4 only) and probed; then each
   listed host in order (`static_provider.py:36-43`): MAX_RETRY tries, each waiting up to
   STANDIN_CONNECT_TIMEOUT_S (30 s, pymilvus `pool.py:228-235`) for the host to answer `Cmd version`; a host
   that never answers ends the start with an uncaught NotConnectError (exit 1); one reporting a version other
   than 1.0.x, or an empty host list, ends it with "Terminate server" (exit 1);
3. serve on `[::]:SERVER_PORT` (0.0.0.0 where the host has no IPv6), then sleep until KeyboardInterrupt.

No SIGTERM handler is installed (`server.py:122-126` catches only KeyboardInterrupt): as PID 1 the kernel
ignores SIGTERM, so `docker stop` waits its whole timeout; under an init process SIGTERM kills it at once.
SIGINT stops it (exit 0).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc
from milvus_grpc import milvus_pb2_grpc as pb_grpc
from mishards.proxy import SUPPORTED_VERSION, Connection, MishardsService, NotConnected, log
from mishards.settings import SettingsError, load_settings


def connect(address: str, retries: int, timeout_s: float) -> tuple[Connection, str]:
    """A connection to `address` and the version it reports; raises NotConnected after every try."""
    conn = Connection(address, retries, timeout_s)
    return conn, conn.version()


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        traceback.print_exc()
        log(f"environs.EnvError: {exc}")
        return 1
    log(
        f"settings from {settings.env_file or 'the environment only'}: WOSERVER={settings.woserver} "
        f"DISCOVERY_STATIC_HOSTS={','.join(settings.host_names)} SERVER_PORT={settings.server_port}"
    )
    began = time.monotonic()
    try:
        writer_ip = socket.gethostbyname(settings.woserver_host)
        writer, version = connect(
            f"{writer_ip}:{settings.woserver_port}", settings.max_retry, settings.connect_timeout_s
        )
        readers: dict[str, Connection] = {}
        for host, port in settings.hosts:
            name = f"{socket.gethostbyname(host)}:{port}"
            conn, version = connect(name, settings.max_retry, settings.connect_timeout_s)
            if not SUPPORTED_VERSION.match(version):
                log(f"Cannot connect to server of version: {version}. Only ['1.0.x'] supported")
                log("Terminate server due to error found in on_pre_run")
                return 1
            readers[name] = conn
            log(f'StaticDiscovery Add Static Group "{name}" Of 1 Address: {name}')
    except NotConnected as exc:
        log(f"milvus.client.exceptions.NotConnectError: {exc} (after {time.monotonic() - began:.1f}s)")
        return 1
    except OSError as exc:  # socket.gaierror
        log(f"{type(exc).__name__}: {exc}")
        return 1
    if not readers:
        log("No address is specified")
        log("Terminate server due to error found in on_pre_run")
        return 1
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=50), options=options)
    pb_grpc.add_MilvusServiceServicer_to_server(MishardsService(settings, writer, readers), server)
    bound = 0
    for address in (f"[::]:{settings.server_port}", f"0.0.0.0:{settings.server_port}"):
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if bound:
            break
    if not bound:
        log(f"cannot bind port {settings.server_port}")
        return 1
    server.start()
    log(
        f"Listening on port {settings.server_port}; writer {writer.address}, readers {','.join(readers)} "
        f"(pid {os.getpid()}, started in {time.monotonic() - began:.1f}s)"
    )
    try:
        while True:
            time.sleep(5)
    except KeyboardInterrupt:
        log("Server is shuting down ......")
        server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
