"""The parent's end of the write client: start writer.py under .venv-milvus1, send it ops, hear its events."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tests.milvusclient import protocol

REPO = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = REPO / ".venv-milvus1" / "bin" / "python"
WRITER = Path(__file__).resolve().parent / "writer.py"


class ClientMissing(RuntimeError):
    """The client's virtual environment is not there; the message says how to make it."""


@dataclass(frozen=True)
class ClientSettings:
    collection: str
    period_s: float = 0.05  # one insert this often
    flush_every: int = 20  # a Flush after this many acknowledged inserts
    search_every: int = 25  # a search after this many inserts
    timeout_s: float = 2.0  # deadline of every RPC but Flush
    flush_timeout_s: float = 5.0
    first_id: int = 1

    def argv(self) -> list[str]:
        return [
            str(WRITER),
            f"--collection={self.collection}",
            f"--period-s={self.period_s}",
            f"--flush-every={self.flush_every}",
            f"--search-every={self.search_every}",
            f"--timeout-s={self.timeout_s}",
            f"--flush-timeout-s={self.flush_timeout_s}",
            f"--first-id={self.first_id}",
        ]


class ClientProcess:
    """One writer.py child. `on_event` runs on the reader thread for every event, in order."""

    def __init__(self, settings: ClientSettings, on_event: Callable[[dict[str, Any]], None], log: Path) -> None:
        if not CLIENT_PYTHON.exists():
            raise ClientMissing(f"{CLIENT_PYTHON} is missing: run scripts/setup-test-env (it makes .venv-milvus1)")
        self.settings = settings
        self.on_event = on_event
        self.log = log
        self._send_lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        with open(self.log, "a") as stderr:
            self._process = subprocess.Popen(
                [str(CLIENT_PYTHON), *self.settings.argv()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
            )
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: TextIO) -> None:
        for line in stdout:
            event = protocol.decode(line)
            if event is not None and "ev" in event:
                self.on_event(event)

    def send(self, op: dict[str, Any]) -> bool:
        """Send one op; False when the child is gone."""
        process = self._process
        if process is None or process.stdin is None or process.poll() is not None:
            return False
        with self._send_lock, contextlib.suppress(BrokenPipeError, ValueError):
            process.stdin.write(protocol.encode(op))
            process.stdin.flush()
            return True
        return False

    def stop(self, timeout_s: float) -> int | None:
        """Ask it to stop (after the RPC in flight), then kill it if it has not within `timeout_s`."""
        process = self._process
        if process is None:
            return None
        self.send({"op": "stop"})
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        with contextlib.suppress(OSError, ValueError):
            if process.stdin is not None:
                process.stdin.close()
        return process.returncode
