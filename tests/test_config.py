"""Agent config: every mistake is named with file, key, value and what is allowed; secrets never echo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import DEFAULT_FATAL_XIDS, load_agent_config
from agent.configschema import ConfigError

AGENT = [sys.executable, "-m", "agent.cli"]


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def secret(tmp_path: Path, value: str = "pw", mode: int = 0o600, name: str = "meta-password") -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(mode)
    return str(path)


def good_config(tmp_path: Path) -> str:
    pw = secret(tmp_path)
    return f"""
node:
  name: gpu-node-1
  address: 10.0.0.11
coordinators: ["10.0.0.5:19800", "coord-2.example:19800"]
gpu:
  poll_interval_s: 2
juicefs:
  volumes:
    - name: milvus
      meta_url: redis://10.0.0.5:6379/1
      mountpoint: /mnt/jfs/
      password_file: {pw}
      cache_size_mib: 2048
      options: [writeback, max-uploads=50]
milvus:
  meta_uri: mysql://root@10.0.0.5:3306/milvus
  meta_password_file: {pw}
  gpus: [0, 1]
mishards:
  enabled: true
  database_uri: mysql+pymysql://root@10.0.0.5:3306/milvus?charset=utf8mb4
  database_password_env: MISHARDS_DB_PASSWORD
"""


def problems_of(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    return [str(p) for p in info.value.problems]


def test_a_good_config_loads_with_its_values_and_defaults(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, good_config(tmp_path)))
    assert config.node_name == "gpu-node-1"
    assert config.coordinators == ("10.0.0.5:19800", "coord-2.example:19800")
    assert config.gpu.poll_interval_s == 2
    assert config.gpu.fatal_xids == DEFAULT_FATAL_XIDS
    (vol,) = config.juicefs.volumes
    assert vol.mountpoint == "/mnt/jfs"  # normalised
    assert vol.options == ("writeback", "max-uploads=50")
    assert vol.password is not None and vol.password.load().reveal() == "pw"
    assert config.milvus.volume == "milvus"  # the only volume is the default
    assert config.milvus.gpu_indexes == (0, 1)
    assert (
        config.mishards.database_password is not None
        and config.mishards.database_password.env == "MISHARDS_DB_PASSWORD"
    )
    assert os.path.isabs(config.juicefs.binary)
    assert config.juicefs.write_probe_interval_s == 5.0


def test_three_mistakes_are_all_named_and_check_config_exits_2(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
node:
  name: gpu-node-1
  address: 10.0.0.300
gpu:
  poll_intervall_s: 2
milvus:
  port: 70000
""",
    )
    run = subprocess.run([*AGENT, "check-config", path], capture_output=True, text=True)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 3, run.stderr
    assert f"{path}: node.address = '10.0.0.300': must be an IPv4 address" in lines[0]
    assert f"{path}: gpu.poll_intervall_s = 2: unknown key; did you mean 'poll_interval_s'?" in run.stderr
    assert f"{path}: milvus.port = 70000: must be an integer >= 1 and <= 65535" in run.stderr


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, good_config(tmp_path))
    run = subprocess.run([*AGENT, "check-config", path], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout and "gpu-node-1" in run.stdout


def test_a_password_in_the_yaml_is_refused_and_never_echoed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
node: {name: n1, address: 10.0.0.1}
juicefs:
  volumes:
    - {name: milvus, meta_url: "redis://:hunter2@10.0.0.5:6379/1", mountpoint: /mnt/jfs}
milvus:
  meta_password: hunter2
""",
    )
    text = "\n".join(problems_of(path))
    assert "hunter2" not in text
    assert "juicefs.volumes[0].meta_url" in text and "must not carry a password" in text
    assert "milvus.meta_password = '***': secrets never go in this file" in text


def test_secret_files_readable_by_others_are_refused(tmp_path: Path) -> None:
    pw = secret(tmp_path, mode=0o644)
    path = write(
        tmp_path,
        f"""
node: {{name: n1, address: 10.0.0.1}}
juicefs:
  volumes:
    - {{name: milvus, meta_url: "redis://10.0.0.5:6379/1", mountpoint: /mnt/jfs, password_file: {pw}}}
""",
    )
    (line,) = problems_of(path)
    assert "juicefs.volumes[0].password_file" in line and "mode 0644" in line and "chmod 600" in line


def test_missing_required_keys_and_wrong_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
node: {name: n1}
gpu: {enabled: "yes", fatal_xids: [79, -1]}
juicefs:
  write_probe_interval_s: -1
  volumes:
    - {name: milvus, mountpoint: relative/path, meta_url: "http://x"}
    - {name: milvus, meta_url: "redis://h/1", mountpoint: /mnt/b, options: ["ro"]}
tls: {ca: /etc/ca.pem}
milvus: {volume: other, gpus: some}
""",
    )
    text = "\n".join(problems_of(path))
    for expected in (
        "node.address: missing: this key is required",
        "gpu.enabled = 'yes': must be true or false",
        "gpu.fatal_xids = [79, -1]: must be a list of integers >= 1",
        "juicefs.write_probe_interval_s = -1",
        "juicefs.volumes[0].mountpoint = 'relative/path': must be an absolute path",
        "juicefs.volumes[0].meta_url = 'http://x': must be a URL with one of the schemes",
        "juicefs.volumes[1].name = 'milvus': each volume needs its own name",
        "juicefs.volumes[1].options[0] = 'ro': 'ro' is set by the agent",
        "tls = {'ca': '/etc/ca.pem'}: set all three of ca, cert and key, or none",
        "milvus.volume = 'other': must name a volume in juicefs.volumes",
        "milvus.gpus = 'some': must be one of: all, none",
    ):
        assert expected in text, f"{expected!r} not in:\n{text}"


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "node:\n  name: [unclosed\n")
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: line ") and "not valid YAML" in line


def test_an_unreadable_file_is_one_clear_problem(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    run = subprocess.run([*AGENT, "check-config", missing], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip() == f"{missing}: (file) = '{missing}': cannot be read: No such file or directory"


def test_coordinator_timing_that_would_break_the_fence_or_the_writer_is_refused(tmp_path: Path) -> None:
    from coordinator.config import load_coordinator_config

    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    base = (
        "cluster: prod\n"
        "coordinator: {id: coord-1, listen: '127.0.0.1:19800'}\n"
        f"mysql: {{host: 127.0.0.1, user: u, database: d, password_file: {secret}}}\n"
    )
    good = load_coordinator_config(write(tmp_path, base + "timing: {row_lease_s: 2.0}\n", "c.yaml"))
    assert good.timing.row_lease_s == 2.0 and good.timing.lease_s == 3.0
    assert load_coordinator_config(write(tmp_path, base, "d.yaml")).timing.row_lease_s == 1.0
    shorter = base + "timing: {lease_s: 0.8, report_interval_s: 0.2}\n"
    short = load_coordinator_config(write(tmp_path, shorter, "e.yaml"))
    assert short.timing.row_lease_s == 0.8  # unset, it follows a shorter lease down
    path = write(tmp_path, base + "timing: {lease_s: 2, row_lease_s: 2.5, detect_after_s: 0.5}\n", "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_coordinator_config(path)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "bad.yaml" in text and "timing.row_lease_s" in text and "2.5" in text and "at most lease_s (2)" in text
    assert "timing.detect_after_s" in text and "longer than report_interval_s" in text
