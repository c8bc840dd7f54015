"""Facts about the node for the doctor, refreshed by the loop (never by the report thread: a hung Docker engine
must not delay a report, which renews the writer's lease): the Docker engine's runtimes, the NVIDIA container
toolkit's binaries, the meta database and its CREATE right, and the WAL recovery of the rw config."""

from __future__ import annotations

import time

from jfsmilvus.common.atomicfile import read_text
from jfsmilvus.common.milvus1 import MILVUS_HTTP_PORT, MILVUS_PORT
from jfsmilvus.common.secrets import Secret, SecretError, SecretRef

from agent.config import MilvusSettings
from agent.milvus.container import DockerUnavailable, MilvusDocker
from agent.milvus.metaright import MetaRightWatch
from agent.milvus.metauri import MetaUri, MetaUriError, parse_meta_uri
from agent.milvus.milvusfacts import WalRecovery, meta_target, wal_recovery
from agent.milvus.nvidiatoolkit import probe_nvidia_toolkit
from agent.milvus.server_config import BaseConfigError, RoleSettings, parse_base_config, render_server_config
from agent.observation import MilvusMeta, MilvusWal

REFRESH_S = 300.0  # the runtimes and the toolkit are looked for again this often

# (the inputs it was rendered from, None when the base file could not be read; the facts; the error)
_WalFound = tuple[tuple[str, tuple[MetaUri, Secret]] | None, WalRecovery | None, str]


def meta_login(uri: str | None, password: SecretRef | None) -> tuple[MetaUri, Secret] | None:
    """milvus.meta_uri and its password, what general.meta_uri is rendered from; None when either is unusable
    (the render says why)."""
    if not uri or password is None:
        return None
    try:
        return parse_meta_uri(uri), password.load()
    except (MetaUriError, SecretError):
        return None


class NodeFacts:
    def __init__(self, docker: MilvusDocker) -> None:
        self.docker = docker
        self.meta_right = MetaRightWatch()
        self.runtimes: tuple[float, list[str]] | None = None
        self.nvidia_toolkit: tuple[float, dict[str, str]] | None = None
        self._meta_login: tuple[MetaUri, Secret] | None = None
        self._wal_recovery: _WalFound | None = None

    def refresh_docker_runtimes(self) -> None:
        """Ask the engine for its runtimes every 5 minutes."""
        now = time.monotonic()
        if self.runtimes is not None and now - self.runtimes[0] < REFRESH_S:
            return
        try:
            self.runtimes = (now, self.docker.runtimes())
        except DockerUnavailable:
            return

    def refresh_nvidia_toolkit(self) -> None:
        """Look for the NVIDIA container toolkit's binaries every 5 minutes (a few stat calls on local disk)."""
        now = time.monotonic()
        if self.nvidia_toolkit is None or now - self.nvidia_toolkit[0] >= REFRESH_S:
            self.nvidia_toolkit = (now, probe_nvidia_toolkit())

    def refresh_milvus(self, milvus: MilvusSettings) -> None:
        """The meta database and its CREATE right (probed in the background, MetaRightWatch), and the WAL
        recovery of the rw config this agent would render now (rendered again only when the base file or the
        meta login changed)."""
        login = meta_login(milvus.meta_uri, milvus.meta_password)
        self._meta_login = login
        if login is None:
            self._wal_recovery = None
            return
        self.meta_right.refresh(*login)
        try:
            base_text = read_text(milvus.base_config) or ""
        except OSError as exc:
            path = milvus.base_config
            self._wal_recovery = (None, None, f"milvus.base_config {path}: cannot be read: {exc.strerror or exc}")
            return
        key = (base_text, login)
        if self._wal_recovery is not None and self._wal_recovery[0] == key:
            return
        settings = RoleSettings(
            role="rw",
            meta_uri=login[0],
            meta_password=login[1],
            port=MILVUS_PORT,
            http_port=MILVUS_HTTP_PORT,
            gpu_count=None,  # the GPU lists do not touch the WAL
        )
        try:
            base = parse_base_config(base_text, milvus.base_config)
            self._wal_recovery = (key, wal_recovery(base, render_server_config(base, settings)), "")
        except (BaseConfigError, MetaUriError) as exc:
            self._wal_recovery = (key, None, str(exc))

    def docker_runtimes(self) -> tuple[str, ...]:
        return tuple(self.runtimes[1]) if self.runtimes else ()

    def nvidia_toolkit_found(self) -> dict[str, str] | None:
        return dict(self.nvidia_toolkit[1]) if self.nvidia_toolkit else None

    def milvus_meta(self) -> MilvusMeta | None:
        """The meta database milvus.meta_uri names, and its CREATE right as last probed; None when unusable."""
        login = self._meta_login
        if login is None:
            return None
        return MilvusMeta(meta_target(login[0]), self.meta_right.latest(*login))

    def milvus_wal(self) -> MilvusWal | None:
        found = self._wal_recovery
        if found is None:
            return None
        _, recovery, error = found
        return MilvusWal(render_error=error, recovery=recovery)
