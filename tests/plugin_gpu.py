"""Fixtures for the fake NVML library (owned by the GPU work).

`fake_nvml` gives a test a `FakeNvml`: write the GPU description (`FakeNvmlConfig`), get an environment
with the fake libnvidia-ml.so.1 first on LD_LIBRARY_PATH, and run the GPU monitor in a child process
(`start_monitor()`, `probe()`), since the loader reads LD_LIBRARY_PATH only at process start.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakenvml.build import build_fake_nvml

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVER_MODULE = "tests.fakenvml.drive_monitor"
REPLY_TIMEOUT_S = 15.0


@dataclass
class FakeGpu:
    """One GPU of the fake library; field names are the file's keys (tests/fakenvml/README.md)."""

    uuid: str
    name: str = "NVIDIA A100-SXM4-80GB"
    memory_total: int = 80 * 2**30
    memory_used: int = 0
    utilization: int = 0
    temperature: int = 40
    power_mw: int = 60_000
    ecc_uncorrected_volatile: int = 0
    remapped_pending: int = 0
    remapped_failure: int = 0
    retired_pages_pending: int = 0
    clocks_event_reasons: int = 0
    # "major.minor" from nvmlDeviceGetCudaComputeCapability; 7.0 (a V100's) is one the Milvus 1.x GPU image runs on,
    # whatever `name` says: a test that wants an A100 (8.0) or H100 (9.0) says so.
    compute_capability: str = "7.0"
    lost: bool = False
    errors: dict[str, int] = field(default_factory=dict)  # NVML function -> return code


@dataclass(frozen=True)
class FakeXid:
    seq: int
    gpu: int
    xid: int


@dataclass
class FakeNvmlConfig:
    gpus: list[FakeGpu] = field(default_factory=list)
    xids: list[FakeXid] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # for every device and device-less calls
    driver_version: str = "550.54.15"

    def render(self) -> str:
        lines = [f"driver_version {self.driver_version}"]
        lines += [f"error {call} {code}" for call, code in self.errors.items()]
        lines += [f"xid {x.seq} {x.gpu} {x.xid}" for x in self.xids]
        for index, gpu in enumerate(self.gpus):
            lines.append(f"gpu {index}")
            for key, value in vars(gpu).items():
                if key == "errors":
                    lines += [f"  error {call} {code}" for call, code in value.items()]
                else:
                    lines.append(f"  {key} {int(value) if isinstance(value, bool) else value}")
        return "\n".join(lines) + "\n"


def two_gpus() -> FakeNvmlConfig:
    """A node with two healthy GPUs, the starting point of most tests."""
    return FakeNvmlConfig(
        gpus=[
            FakeGpu(uuid="GPU-11111111-2222-3333-4444-555555555555", memory_used=10 * 2**30, utilization=37),
            FakeGpu(uuid="GPU-66666666-7777-8888-9999-000000000000", memory_used=0, utilization=0),
        ]
    )


class MonitorProcess:
    """A child process running GpuMonitor (tests/fakenvml/drive_monitor.py), driven over stdin/stdout."""

    def __init__(self, args: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", DRIVER_MODULE, *args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def expect(self, event: str, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {event!r} from the monitor in {timeout}s; stderr:\n{self.stderr()}") from None
        if line is None:
            raise AssertionError(f"monitor exited ({self.proc.wait()}) before {event!r}; stderr:\n{self.stderr()}")
        message: dict[str, Any] = json.loads(line)
        assert message.get("event") == event, f"expected {event!r}, got {message}"
        return message

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def snapshot(self) -> dict[str, Any]:
        self.send("snapshot")
        report: dict[str, Any] = self.expect("snapshot")["report"]
        return report

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """Snapshots until one satisfies `predicate`; that snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.snapshot()
            if predicate(report):
                return report
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout}s; last report: {report}")
            time.sleep(0.1)

    def stop(self) -> dict[str, Any]:
        """Ask for a clean stop; the 'stopped' message (with stop_s). The process must exit 0."""
        self.send("stop")
        message = self.expect("stopped")
        rc = self.proc.wait(timeout=REPLY_TIMEOUT_S)
        assert rc == 0, f"monitor exited {rc}; stderr:\n{self.stderr()}"
        return message

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive:
            self.proc.kill()
        self.proc.wait(timeout=REPLY_TIMEOUT_S)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()


class FakeNvml:
    def __init__(self, lib_dir: Path, work_dir: Path) -> None:
        self.lib_dir = lib_dir
        self.work_dir = work_dir
        self.config_path = work_dir / "fake-nvml.conf"
        self._processes: list[MonitorProcess] = []

    def write(self, config: FakeNvmlConfig | str) -> None:
        """Replace the GPU description atomically (the library rereads it on every call)."""
        text = config if isinstance(config, str) else config.render()
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def env(self, lib_dir: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        first = str(lib_dir or self.lib_dir)
        rest = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = f"{first}:{rest}" if rest else first
        env["FAKE_NVML_CONFIG"] = str(self.config_path)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def env_without_library(self) -> dict[str, str]:
        """An environment whose LD_LIBRARY_PATH holds no libnvidia-ml.so.1 (nor does this machine)."""
        empty = self.work_dir / "no-nvml"
        empty.mkdir(exist_ok=True)
        env = self.env(empty)
        env["LD_LIBRARY_PATH"] = str(empty)
        return env

    def _settings_args(self, settings: dict[str, Any] | None) -> list[str]:
        return ["--settings", json.dumps(settings)] if settings else []

    def start_monitor(
        self, settings: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> MonitorProcess:
        """A monitor child process, started and ready (its XID event set registered)."""
        name = f"monitor-{len(self._processes)}.stderr"
        process = MonitorProcess(self._settings_args(settings), env or self.env(), self.work_dir / name)
        self._processes.append(process)
        process.expect("ready")
        return process

    def probe(self, settings: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
        """probe_gpus() in a child process; its report. The process must exit 0."""
        result = subprocess.run(
            [sys.executable, "-m", DRIVER_MODULE, "--probe", *self._settings_args(settings)],
            cwd=REPO_ROOT,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=REPLY_TIMEOUT_S * 2,
            check=False,
        )
        assert result.returncode == 0, f"probe exited {result.returncode}; stderr:\n{result.stderr}"
        message: dict[str, Any] = json.loads(result.stdout)
        report: dict[str, Any] = message["report"]
        return report

    def close(self) -> None:
        for process in self._processes:
            process.close()


@pytest.fixture(scope="session")
def fake_nvml_lib_dir() -> Path:
    """The directory holding the fake libnvidia-ml.so.1, built (or reused) once per session."""
    if not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("no C compiler to build the fake libnvidia-ml.so.1 (install gcc)")
    return build_fake_nvml()


@pytest.fixture
def fake_nvml(fake_nvml_lib_dir: Path, tmp_path: Path) -> Iterator[FakeNvml]:
    fake = FakeNvml(fake_nvml_lib_dir, tmp_path)
    fake.write(two_gpus())
    yield fake
    fake.close()
