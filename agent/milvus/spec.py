"""What the Milvus container is made of: its server_config.yaml for a role, its GPUs, and its ContainerSpec.

The agent's config in, the rendered file and the spec out; the base file and the meta password are read here,
the rendering is `agent.milvus.server_config`'s, the GPU choice `agent.milvus.gpuchoice`'s.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from jfsmilvus.common.atomicfile import read_text
from jfsmilvus.common.milvus1 import MILVUS_HTTP_PORT, MILVUS_PORT
from jfsmilvus.common.secrets import SecretError

from agent.config import AgentConfig, MilvusSettings, VolumeSettings
from agent.gpu import GpuReport
from agent.milvus.container import ContainerSpec
from agent.milvus.gpuchoice import GpuChoice, choose_gpus
from agent.milvus.leasewatch import LEASE_FILE_NAME
from agent.milvus.metauri import MetaUriError, parse_meta_uri
from agent.milvus.server_config import (
    CONTAINER_CONF_DIR,
    BaseConfigError,
    RoleSettings,
    base_config_warnings,
    parse_base_config,
    render_server_config,
)
from agent.milvus.situation import Want
from agent.milvus.waldir import WriterWal

log = logging.getLogger("jfs_milvus.agent")


def conf_dir(milvus: MilvusSettings) -> str:
    """Where server_config.yaml and the writer's lease file live on the host (mounted as the container's conf)."""
    return os.path.join(milvus.data_dir, "conf")


class MilvusSpec:
    """The Milvus container this node's config describes; the rendered config is cached by its inputs."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._render_cache: tuple[tuple[str, RoleSettings], str] | None = None
        self._base_warned: set[str] = set()

    @property
    def conf_dir(self) -> str:
        return conf_dir(self.config.milvus)

    @property
    def config_file(self) -> str:
        return os.path.join(self.conf_dir, "server_config.yaml")

    @property
    def writer_wal(self) -> WriterWal:
        return WriterWal(self.config.milvus.data_dir)

    @property
    def leasewatch_path(self) -> str:
        return os.path.join(self.config.milvus.data_dir, "leasewatch")

    def db_dir(self, volume: VolumeSettings) -> str:
        return os.path.join(volume.mountpoint, self.config.milvus.db_subdir)

    def gpu_choice(self, report: GpuReport | None) -> GpuChoice:
        milvus = self.config.milvus
        return choose_gpus(milvus.flavor, milvus.gpus, milvus.gpu_indexes, milvus.set_gpu_devices, report)

    def rendered_config(self, role: str, gpus: GpuChoice) -> tuple[str | None, str | None]:
        """(server_config.yaml text, error); rendered again only when one of its inputs changed."""
        milvus = self.config.milvus
        if not milvus.meta_uri or milvus.meta_password is None:
            return None, "milvus.meta_uri and milvus.meta_password_file (or _env) must be set in the agent config"
        try:
            base_text = read_text(milvus.base_config) or ""
        except OSError as exc:
            return None, f"milvus.base_config {milvus.base_config}: cannot be read: {exc.strerror or exc}"
        try:
            password = milvus.meta_password.load()
        except SecretError as exc:
            return None, f"milvus.meta_password: {exc}"
        try:
            settings = RoleSettings(
                role=role,
                meta_uri=parse_meta_uri(milvus.meta_uri),
                meta_password=password,
                # Inside the container Milvus listens on its standard ports; the host ports are mapped onto them.
                port=MILVUS_PORT,
                http_port=MILVUS_HTTP_PORT,
                gpu_count=gpus.render_count,
            )
        except MetaUriError as exc:
            return None, f"milvus.meta_uri: {exc}"
        key = (base_text, settings)
        if self._render_cache is not None and self._render_cache[0] == key:
            return self._render_cache[1], None
        try:
            base = parse_base_config(base_text, milvus.base_config)
            text = render_server_config(base, settings)
        except (BaseConfigError, MetaUriError) as exc:
            return None, str(exc)
        self._warn_about_base(base)
        self._render_cache = (key, text)
        return text, None

    def _warn_about_base(self, base: dict[str, Any]) -> None:
        """Each warning about the base file once per agent process (Milvus itself would say nothing)."""
        for warning in base_config_warnings(base, self.config.milvus.base_config):
            if warning not in self._base_warned:
                self._base_warned.add(warning)
                log.warning("base server_config: %s", warning)

    def container_spec(
        self, want: Want, gpus: tuple[str, ...] | None, volume: VolumeSettings, coordinated: bool
    ) -> ContainerSpec:
        milvus = self.config.milvus
        return ContainerSpec(
            name=milvus.container_name,
            image=milvus.image,
            node=self.config.node_name,
            role=want.role,
            epoch=want.epoch,
            config_sha256=want.config_sha256,
            bind_address=self.config.address,
            port=milvus.port,
            http_port=milvus.http_port,
            db_dir=self.db_dir(volume),
            conf_dir=self.conf_dir,
            logs_dir=os.path.join(milvus.data_dir, "logs"),
            wal_dir=self.writer_wal.wal_dir if want.role == "rw" else None,
            gpu_uuids=gpus,
            environment={
                "JFS_MILVUS_NODE": self.config.node_name,
                "JFS_MILVUS_EPOCH": str(want.epoch),
                "JFS_MILVUS_ROLE": want.role,
                "JFS_MILVUS_LEASE_FILE": f"{CONTAINER_CONF_DIR}/{LEASE_FILE_NAME}",
            },
            # Under a coordinator a writer runs under the lease wrapper; readers need none.
            leasewatch=self.leasewatch_path if want.role == "rw" and coordinated else None,
            config_version=want.config_version,
        )
