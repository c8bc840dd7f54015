"""coordinatorctl on the coordinator's own host finds it from the coordinator config: where the API really
listens (loopback without TLS, whatever `listen` says), never `advertise`; check-config prints that address."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from coordinator.config import load_coordinator_config
from coordinator.connection import coordinator_addresses
from coordinator.ctl import build_parser
from tests.plugin_agent import wait_until
from tests.plugin_coordinator import REPO, CoordinatorProcess

# An address no client here reaches (TEST-NET-1): what `advertise` is in effect on a host whose name resolves
# to another address than the loopback one the API listens on.
UNREACHABLE = "192.0.2.1"


def write_config(tmp_path: Path, coordinator: dict[str, object] | None = None, tls: bool = False) -> Path:
    password = tmp_path / "coordinator-mysql-password"
    password.write_text("pw\n")
    password.chmod(0o600)
    data: dict[str, object] = {"cluster": "milvus-test", "mysql": {"host": "127.0.0.1", "password_file": str(password)}}
    if coordinator is not None:
        data["coordinator"] = coordinator
    if tls:
        for name in ("ca.pem", "c.pem", "c.key"):
            (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")  # PEM-shaped
            (tmp_path / name).chmod(0o600)
        data["tls"] = {"ca": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "c.pem"), "key": str(tmp_path / "c.key")}
    path = tmp_path / "coordinator.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def addresses(path: Path, *extra: str) -> list[str]:
    return coordinator_addresses(build_parser().parse_args(["--config", str(path), *extra, "status"]))


@pytest.mark.parametrize(
    ("coordinator", "tls", "listens", "ctl_asks"),
    [
        (None, False, "127.0.0.1:19800", "127.0.0.1:19800"),  # the README's minimal config
        ({"listen": "0.0.0.0:19900", "advertise": f"{UNREACHABLE}:19900"}, False, "127.0.0.1:19900", "127.0.0.1:19900"),
        ({"listen": "10.0.0.5:19800"}, False, "127.0.0.1:19800", "127.0.0.1:19800"),  # no TLS: loopback only
        ({"listen": "127.0.0.2:19800"}, False, "127.0.0.2:19800", "127.0.0.2:19800"),
        ({"listen": "10.0.0.5:19800", "advertise": f"{UNREACHABLE}:1"}, True, "10.0.0.5:19800", "10.0.0.5:19800"),
        ({"listen": "0.0.0.0:19800"}, True, "0.0.0.0:19800", "127.0.0.1:19800"),
    ],
)
def test_the_address_is_where_the_coordinator_listens(
    tmp_path: Path, coordinator: dict[str, object] | None, tls: bool, listens: str, ctl_asks: str
) -> None:
    path = write_config(tmp_path, coordinator, tls)
    config = load_coordinator_config(str(path))
    assert config.listen_address == listens
    assert addresses(path) == [ctl_asks]
    assert addresses(path, "--coordinator", "10.9.9.9:1,10.9.9.8:1") == ["10.9.9.9:1", "10.9.9.8:1"]
    check = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "check-config", str(path)], capture_output=True, text=True, cwd=REPO
    )
    assert check.returncode == 0, check.stderr
    assert f"listens on {listens} (" in check.stdout
    assert f"advertised as {config.advertise})" in check.stdout


def test_the_minimal_config_prints_the_loopback_address_and_the_hostname_it_advertises(tmp_path: Path) -> None:
    check = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "check-config", str(write_config(tmp_path))],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    host = os.uname().nodename
    assert check.stdout.endswith(
        f"listens on 127.0.0.1:19800 (plaintext: without tls, loopback only), advertised as {host}:19800)\n"
    ), check.stdout


@pytest.mark.root
def test_ctl_without_an_address_finds_and_acts_on_a_coordinator_of_the_minimal_config(
    coordinator_factory: Callable[..., CoordinatorProcess],
) -> None:
    c = coordinator_factory("unused-id", startup_wait_s=0.5)
    # The README's minimal config (cluster and mysql), with ports of its own for this test, listening on every
    # address (no TLS: the API binds 127.0.0.1) and advertising one this host does not answer at.
    c.data = {
        "cluster": c.data["cluster"],
        "coordinator": {
            "listen": f"0.0.0.0:{c.port}",
            "metrics_port": c.metrics_port,
            "advertise": f"{UNREACHABLE}:{c.port}",
        },
        "mysql": c.data["mysql"],
        "timing": {"startup_wait_s": 0.5},
    }
    c.start()
    wait_until(c.leads, 30, "the coordinator leads")

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "JFS_MILVUS_COORDINATOR"}
        return subprocess.run(
            [sys.executable, "-m", "coordinator.ctl", "--config", str(c.config_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    status = ctl("status")
    assert status.returncode == 0, status.stderr
    assert "Cluster: test" in status.stdout and f"({UNREACHABLE}:{c.port})" in status.stdout
    # An action goes to the leader: the coordinator that answered here names itself, at its advertised address.
    paused = ctl("pause", "--reason", "local ctl")
    assert paused.returncode == 0, paused.stderr
    assert "Paused: yes (local ctl)" in paused.stdout
    assert ctl("resume").returncode == 0
    assert "Paused: no" in ctl("status").stdout
