"""Agent config: every mistake is named with file, key, value and what is allowed; secrets never echo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from jfsmilvus.common.configschema import ConfigError

from agent.config import DEFAULT_FATAL_XIDS, load_agent_config

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


def meta(tmp_path: Path, password: str = "pw") -> str:
    """The milvus keys every agent config needs (indented for a `milvus:` block)."""
    pw = secret(tmp_path, password, name="milvus-meta-password")
    return f"  meta_uri: mysql://milvus@10.0.0.5:3306/milvus\n  meta_password_file: {pw}\n"


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
  image: milvusdb/mishards:1.0.0
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
"""
        + meta(tmp_path),
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
milvus:
{meta(tmp_path)}""",
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


# -- milvus: what Milvus 1.x itself can use -----------------------------------------------------------------
def milvus_config(tmp_path: Path, milvus: str, base: str | None = None) -> str:
    extra = f"  base_config: {write(tmp_path, base, 'server_config.yaml')}\n" if base is not None else ""
    return write(tmp_path, f"node: {{name: n1, address: 10.0.0.1}}\nmilvus:\n{milvus}{extra}")


def test_milvus_defaults_flavor_gpu_and_a_start_timeout_of_ten_minutes(tmp_path: Path) -> None:
    config = load_agent_config(milvus_config(tmp_path, meta(tmp_path)))
    assert config.milvus.flavor == "gpu" and config.milvus.start_timeout_s == 600.0
    assert config.milvus.health_timeout_s == 120.0 and config.milvus.stop_timeout_s == 30.0
    cpu = load_agent_config(milvus_config(tmp_path, meta(tmp_path) + "  flavor: cpu\n  start_timeout_s: 1800\n"))
    assert cpu.milvus.flavor == "cpu" and cpu.milvus.start_timeout_s == 1800


def test_a_flavor_other_than_gpu_or_cpu_is_refused(tmp_path: Path) -> None:
    (line,) = problems_of(milvus_config(tmp_path, meta(tmp_path) + "  flavor: gpus\n"))
    assert line.endswith("milvus.flavor = 'gpus': must be one of: gpu, cpu; did you mean 'gpu'?"), line


def test_meta_uri_and_its_password_are_required_in_cluster_roles(tmp_path: Path) -> None:
    lines = problems_of(milvus_config(tmp_path, "  port: 19530\n"))
    text = "\n".join(lines)
    assert len(lines) == 2, text
    assert f"{tmp_path}/agent.yaml: milvus.meta_uri: missing: required;" in text and "SQLite" in text
    assert "milvus.meta_password_file" in text and "a secret is required" in text


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("mysql://milvus@10.0.0.5/milvus", "names no port"),
        ("mysql://milvus:hunter2@10.0.0.5:3306/milvus", "must not carry a password"),
        ("sqlite://:@:/", "the scheme must be mysql"),
        ("mysql://10.0.0.5:3306/milvus", "must look like mysql://USER@HOST:PORT/DATABASE"),
    ],
)
def test_a_meta_uri_milvus_cannot_parse_is_refused(tmp_path: Path, uri: str, words: str) -> None:
    pw = secret(tmp_path)
    (line,) = problems_of(milvus_config(tmp_path, f"  meta_uri: '{uri}'\n  meta_password_file: {pw}\n"))
    assert line.startswith(f"{tmp_path}/agent.yaml: milvus.meta_uri = ") and words in line, line
    assert "hunter2" not in line


def test_a_colon_in_the_mysql_password_is_refused_by_check_config_without_showing_it(tmp_path: Path) -> None:
    """Milvus's greedy regex gives everything up to the password's ':' to the user: the login can never work."""
    path = milvus_config(tmp_path, meta(tmp_path, password="se:cr3t!#@/%"))
    run = subprocess.run([*AGENT, "check-config", path], capture_output=True, text=True)
    assert run.returncode == 2, run.stdout
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"{path}: milvus.meta_password_file = '/"), line  # the file's path (shortened), and:
    assert "holds a ':'" in line and "user name" in line
    assert "se:cr3t" not in run.stderr + run.stdout and "cr3t" not in run.stderr
    env = dict(os.environ, MILVUS_META_PW="a:b")
    by_env = write(
        tmp_path,
        "node: {name: n1, address: 10.0.0.1}\nmilvus:\n  meta_uri: mysql://m@h:1/d\n"
        "  meta_password_env: MILVUS_META_PW\n",
        "env.yaml",
    )
    run = subprocess.run([*AGENT, "check-config", by_env], capture_output=True, text=True, env=env)
    assert (
        run.returncode == 2 and "milvus.meta_password_env = 'MILVUS_META_PW'" in run.stderr and "a:b" not in run.stderr
    )


def test_a_password_with_the_characters_milvus_reads_raw_is_accepted(tmp_path: Path) -> None:
    config = load_agent_config(milvus_config(tmp_path, meta(tmp_path, password="p@ss!#/%w")))
    assert config.milvus.meta_password is not None and config.milvus.meta_password.load().reveal() == "p@ss!#/%w"


def test_check_config_warns_about_base_keys_milvus_ignores_and_refuses_a_wrong_version(tmp_path: Path) -> None:
    base = "version: 0.5\nnetwork:\n  bind.address: 10.0.0.11\ncache:\n  cache_sise: 4GB\n"
    path = milvus_config(tmp_path, meta(tmp_path), base)
    run = subprocess.run([*AGENT, "check-config", path], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    base_path = f"{tmp_path}/server_config.yaml"
    assert f"warning: {base_path}: key 'cache.cache_sise' is not one Milvus 1.x reads" in run.stdout
    assert "did you mean 'cache_size'?" in run.stdout
    assert f"warning: {base_path}: network.bind.address = '10.0.0.11' is replaced by '0.0.0.0'" in run.stdout
    assert run.stdout.strip().splitlines()[-1].startswith(f"{path}: OK")

    bad = milvus_config(tmp_path, meta(tmp_path), "version: 0.4\n")
    run = subprocess.run([*AGENT, "check-config", bad], capture_output=True, text=True)
    assert run.returncode == 2
    assert f"{base_path}: version = 0.4: Milvus 1.x reads only config version 0.5" in run.stderr


def test_check_config_says_a_gpu_image_with_no_gpus_will_never_start(tmp_path: Path) -> None:
    path = milvus_config(tmp_path, meta(tmp_path) + "  gpus: none\n")
    run = subprocess.run([*AGENT, "check-config", path], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "warning: milvus.flavor is gpu and milvus.gpus is none" in run.stdout
    cpu = milvus_config(tmp_path, meta(tmp_path) + "  gpus: none\n  flavor: cpu\n")
    assert "milvus.flavor" not in subprocess.run([*AGENT, "check-config", cpu], capture_output=True, text=True).stdout
