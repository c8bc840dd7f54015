"""The /metrics exposition and its HTTP server, for both daemons.

The families are prometheus_client's, written by its `generate_latest` (text format 0.0.4); `process=True`
adds its `process_*` metrics of this process (resident memory, CPU seconds, open files). `MetricsServer`
serves any such text on `/metrics` over HTTP, and a few JSON routes beside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric

_PROCESS = ProcessCollector(registry=None)


def family(name: str, help_: str, kind: str, samples: Iterable[tuple[dict[str, object], float]]) -> list[Metric]:
    """One family (none when it has no sample). A counter is named with its `_total`, as it is exported."""
    base = name.removesuffix("_total") if kind == "counter" else name
    metric = Metric(base, help_, kind)
    for labels, value in samples:
        metric.add_sample(name, {k: str(v) for k, v in labels.items()}, float(value))
    return [metric] if metric.samples else []


class _Families:
    def __init__(self, metrics: Iterable[Metric]):
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics


def exposition(metrics: Iterable[Metric], process: bool = False) -> str:
    """The text format of `metrics`, with the process_* metrics of this process when `process`."""
    if process:
        metrics = [*metrics, *_PROCESS.collect()]
    return generate_latest(_Families(metrics)).decode()  # type: ignore[arg-type]


class MetricsServer:
    """`GET /metrics` on (address, port), in a daemon thread."""

    def __init__(
        self,
        address: str,
        port: int,
        render: Callable[[], str],
        json_routes: Mapping[str, Callable[[], tuple[int, bytes]]] | None = None,
    ):
        handler = self._handler(render, dict(json_routes or {}))
        self.httpd = ThreadingHTTPServer((address, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    @staticmethod
    def _handler(
        render: Callable[[], str], json_routes: dict[str, Callable[[], tuple[int, bytes]]]
    ) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in json_routes:
                    code, answer = json_routes[path]()
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                if path != "/metrics":
                    self.send_error(404, f"served here: /metrics {' '.join(sorted(json_routes))}".strip())
                    return
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
