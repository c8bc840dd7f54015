"""The `local_cluster` fixture: a whole cluster on this machine (tests/localcluster/cluster.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.localcluster.cluster import ClusterSetupError, LocalCluster, WriteClient, ensure_net_cls
from tests.plugin_coordinator import CoordinatorProcess
from tests.plugin_juicefs import JfsTestVolume
from tests.plugin_mysql import MysqlDatabase

__all__ = ["LocalCluster", "WriteClient", "local_cluster"]


@pytest.fixture
def local_cluster(
    make_volume: Callable[..., JfsTestVolume],
    mysql_db: MysqlDatabase,
    standin_image: str,
    coordinator_factory: Callable[..., CoordinatorProcess],
    tmp_path: Path,
) -> Iterator[Callable[..., LocalCluster]]:
    made: list[LocalCluster] = []
    try:
        ensure_net_cls()
    except ClusterSetupError as exc:
        pytest.skip(str(exc))

    def make(
        size: int = 3, nvml_lib: Path | None = None, publish: bool = False, coordinators: int = 1, **timing: Any
    ) -> LocalCluster:
        volume = make_volume(probe_timeout_s=2.0)
        made_coordinators = [coordinator_factory(**timing) for _ in range(coordinators)]
        if publish:
            password = tmp_path / "publish-redis-password"
            password.write_text((volume.redis.password or "") + "\n")
            password.chmod(0o600)
            for c in made_coordinators:
                c.data["publish"] = {
                    "redis_url": f"redis://127.0.0.1:{volume.redis.port}/0",
                    "password_file": str(password),
                    "channel": "jfs-milvus:writer",
                }
        root = tmp_path / f"cluster{len(made)}"
        root.mkdir()
        cluster = LocalCluster(root, volume, mysql_db, standin_image, made_coordinators, size, nvml_lib)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.cleanup()
