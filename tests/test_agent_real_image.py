"""The agent starts the real image right, shown against the faithful stand-in (tests/standin/README.md).

The stand-in parses `general.meta_uri` with Milvus's greedy regex and logs in to MariaDB with the pieces byte
for byte (exit 1 on "Access denied"), binds gRPC on `network.bind.address` (exit 1 when it cannot), exits 0
on SIGINT and 1 on SIGTERM, and, built as the GPU flavour, cannot load without a GPU device request. Each test
below fails if the agent's side of that behaviour is reverted.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import yaml

from tests.plugin_agent import AgentNode, wait_until
from tests.plugin_gpu import FakeNvml, two_gpus
from tests.test_agent_daemon import prepared

pytestmark = [pytest.mark.root, pytest.mark.slow]


def rendered(node: AgentNode) -> dict:
    return yaml.safe_load((node.data_dir / "conf" / "server_config.yaml").read_text())


def die_exit_codes(container_id: str, since: float) -> list[str]:
    """The exit codes Docker recorded for the container's deaths since `since` (its `die` events)."""
    client = docker.from_env()
    events = client.events(
        since=int(since), until=int(time.time()) + 1, filters={"container": container_id, "event": "die"}, decode=True
    )
    return [e["Actor"]["Attributes"].get("exitCode", "?") for e in events]


def test_a_password_with_special_characters_reaches_mysql_and_the_node_runs(
    agent_node: Callable[..., AgentNode],
) -> None:
    node = prepared(agent_node)
    assert node.meta is not None and all(c in node.meta.password for c in "!#@/%")
    node.assign("rw", 1)
    node.start()
    first = node.wait_role("rw")
    code, answer = node.http("GET", "/state")
    assert code == 200 and answer == {"message": "Success", "code": 0}
    config_file = node.data_dir / "conf" / "server_config.yaml"
    assert rendered(node)["general"]["meta_uri"] == (
        f"mysql://{node.meta.user}:{node.meta.password}@{node.meta.host}:{node.meta.server.port}/{node.meta.database}"
    )
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600  # it holds the raw password
    conn = node.meta.connect()  # the stand-in logged in and ran Milvus's CREATE TABLE IF NOT EXISTS
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    assert {"Tables", "TableFiles"} <= tables, tables
    # The agent's own probe of the account's CREATE right, with that password, for the doctor.
    wait_until(lambda: node.status().milvus_meta.create_right == "granted", 20, lambda: str(node.status().milvus_meta))
    assert node.meta.password not in node.log()

    # Stopped for a role change with SIGINT, Milvus flushes and exits 0 (SIGTERM would be "critical", exit 1).
    (container,) = node.containers()
    assert container.attrs["Config"]["StopSignal"] == "SIGINT"
    switched = time.time() - 1
    node.assign("ro", 2)
    node.wait_role("ro")
    assert die_exit_codes(first.container.id, switched) == ["0"]

    # The control: a password MySQL refuses ends the start as on Milvus, and the agent counts the crash.
    Path(node.milvus["meta_password_file"]).write_text("wrong!#@/%password\n")
    wait_until(lambda: "after a crash" in node.log(), 60, lambda: f"a refused login\n{node.log()[-3000:]}")
    assert node.status().container.restarts >= 1


def test_an_operator_bind_address_does_not_crash_milvus(agent_node: Callable[..., AgentNode]) -> None:
    """The seed guide's base sets bind.address to the host IP; inside the container that address does not
    exist, and Milvus's gRPC server crashes on the failed bind. The agent renders 0.0.0.0 and says so."""
    node = prepared(agent_node)
    node.write_base_config(network={"bind.address": "10.0.0.11"}, cache={"cache_sise": "1GB"})
    node.assign("ro", 1)
    node.start()
    node.wait_role("ro")
    time.sleep(3)  # a failed gRPC bind would have ended it by now
    status = node.wait_role("ro")
    assert status.container.restarts == 0 and len(node.containers()) == 1, node.log()[-3000:]
    assert rendered(node)["network"]["bind.address"] == "0.0.0.0"
    log = node.log()
    assert log.count("network.bind.address = '10.0.0.11' is replaced by '0.0.0.0'") == 1
    assert log.count("key 'cache.cache_sise' is not one Milvus 1.x reads; it is ignored; did you mean") == 1


@pytest.mark.parametrize("case", ["gpus none", "monitor off", "none healthy"])
def test_a_gpu_image_is_not_started_without_gpus(
    agent_node: Callable[..., AgentNode], standin_gpu_image: str, fake_nvml: FakeNvml, case: str
) -> None:
    node = prepared(agent_node)
    node.milvus.update(image=standin_gpu_image, flavor="gpu")
    if case == "gpus none":
        node.milvus["gpus"] = "none"
        why = "not starting Milvus: the GPU image needs GPUs and milvus.gpus is none"
    elif case == "monitor off":
        node.milvus["gpus"] = "all"
        why = "not starting Milvus: the GPU image needs GPUs and GPU monitoring is off"
    else:
        gpus = two_gpus()
        for gpu in gpus.gpus:
            gpu.ecc_uncorrected_volatile = 1
        fake_nvml.write(gpus)
        node.env.update(fake_nvml.env())
        node.milvus["gpus"] = "all"
        node.write_config(gpu={"enabled": True, "poll_interval_s": 0.5})
        why = "not starting Milvus: the GPU image needs GPUs and NVML reports none healthy (gpu 0: "
    node.write_config()
    node.assign("rw", 1)
    node.start()
    wait_until(lambda: why in node.status().container.error, 30, lambda: f"{why!r}\n{node.log()[-3000:]}")
    time.sleep(2)  # several loops: still waiting, said once, nothing started
    status = node.status()
    assert why in status.container.error and status.container.state == "absent"
    assert node.containers() == []
    assert node.log().count(why) == 1, node.log()[-3000:]
