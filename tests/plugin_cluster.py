"""The `local_cluster` fixture: a whole cluster on this machine (tests/localcluster/cluster.py).

Its Milvus nodes keep their metadata on `milvus_mariadb`, a MariaDB of the session that also listens on
Docker's bridge (the containers reach it there), one fresh database per cluster; the coordinators keep their
state on `mysql_db` as everywhere else.
"""

from __future__ import annotations

import atexit
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.localcluster.cluster import ClusterSetupError, LocalCluster, WriteClient, ensure_net_cls
from tests.localcluster.milvusmeta import BaseConfig, BridgedMariaDB, bridge_gateway, grant_milvus_meta
from tests.plugin_coordinator import CoordinatorProcess
from tests.plugin_juicefs import JfsTestVolume
from tests.plugin_mysql import MysqlDatabase, mariadbd_binary

__all__ = ["LocalCluster", "WriteClient", "local_cluster"]
_meta_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def milvus_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgedMariaDB]:
    binary = mariadbd_binary()
    if binary is None:
        pytest.skip("mariadbd is not installed (apt-get install mariadb-server)")
    server = BridgedMariaDB(tmp_path_factory.mktemp("milvus-mariadb"), binary, bridge_gateway())
    atexit.register(server.stop)
    try:
        server.install()
        server.start()
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


@pytest.fixture
def local_cluster(
    make_volume: Callable[..., JfsTestVolume],
    mysql_db: MysqlDatabase,
    milvus_mariadb: BridgedMariaDB,
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
        size: int = 3,
        nvml_lib: Path | None = None,
        publish: bool = False,
        coordinators: int = 1,
        base_config: BaseConfig | None = None,
        image: str | None = None,  # the nodes' milvus.image (default: the stand-in)
        **timing: Any,
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
        milvus_mariadb.start()  # a no-op unless a test left it stopped
        meta = grant_milvus_meta(milvus_mariadb, f"milvus_{next(_meta_numbers)}", milvus_mariadb.bridge)
        cluster = LocalCluster(
            root,
            volume,
            mysql_db,
            meta,
            image or standin_image,
            made_coordinators,
            size,
            nvml_lib,
            base_config=base_config,
        )
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.cleanup()
