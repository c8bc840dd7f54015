"""Stand-in for Mishards: reads its `.env` once at start, as Mishards does, and says what it routes to.

Mishards resolves `WOSERVER` and its static discovery hosts when it starts; a change needs a restart, which is
why the agent restarts the Mishards container when it rewrites the file. This stand-in keeps that behaviour
and answers `GET /routes` with `{"writer": WOSERVER, "readers": [...], "port": N, "started_unix": T}` on
`SERVER_PORT` (HTTP here, gRPC in Mishards). Environment: MISHARDS_ENV (default /source/mishards/.env).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENV_FILE = os.environ.get("MISHARDS_ENV", "/source/mishards/.env")


def parse_env(text: str) -> dict[str, str]:
    """python-dotenv's plain subset: KEY=value, KEY='value', KEY="value", comments and blank lines."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def routes(values: dict[str, str], started_unix: float) -> dict[str, Any]:
    hosts = [h for h in values.get("DISCOVERY_STATIC_HOSTS", "").split(",") if h]
    return {
        "writer": values.get("WOSERVER", ""),
        "readers": hosts,
        "port": int(values.get("DISCOVERY_STATIC_PORT", "19530") or 19530),
        "started_unix": started_unix,
    }


def main() -> int:
    with open(ENV_FILE, encoding="utf-8") as f:
        values = parse_env(f.read())
    if not values.get("WOSERVER") or not values.get("DISCOVERY_STATIC_HOSTS"):
        print(f"mishards: {ENV_FILE} names no WOSERVER or no DISCOVERY_STATIC_HOSTS", file=sys.stderr, flush=True)
        return 1
    answer = json.dumps(routes(values, time.time())).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = (200, answer) if self.path == "/routes" else (404, b'{"error": "not found"}')
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", int(values.get("SERVER_PORT", "19531") or 19531)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"mishards: writer {values['WOSERVER']}, readers {values['DISCOVERY_STATIC_HOSTS']}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
