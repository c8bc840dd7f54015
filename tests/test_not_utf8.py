"""A file with bytes that are not UTF-8 gets the one clear line naming it that its other defects get, never a
`UnicodeDecodeError` traceback: every file either daemon reads, through the real command lines (and, for what
only the running agent reads, a real agent daemon). A secret's or a key's bytes are never shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.milvus.waldir import WriterWal
from tests.agentconf import write_agent_yaml
from tests.bare_agent import REPO, BareAgent
from tests.plugin_agent import wait_until
from tests.plugin_juicefs import MOUNT_HELPER

GARBAGE = b"\xff\xfe not text \x80\n"
AGENT = [sys.executable, "-m", "agent.cli"]
COORDINATOR = [sys.executable, "-m", "coordinator.cli"]
CTL = [sys.executable, "-m", "coordinator.ctl"]
PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL)


def one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The command exited `code` with one line on stderr holding `words`, and no traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, (result.returncode, result.stderr)
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def garbage(path: Path, mode: int = 0o600) -> str:
    path.write_bytes(GARBAGE)
    path.chmod(mode)
    return str(path)


def secret(path: Path, value: str = "pw") -> str:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def agent_yaml(tmp_path: Path, **sections: object) -> str:
    path = tmp_path / "agent.yaml"
    sections.setdefault("state_dir", str(tmp_path / "state"))
    sections.setdefault("gpu", {"enabled": False})
    return write_agent_yaml(path, "node-a", "127.0.0.1", None, **sections)


def coordinator_yaml(tmp_path: Path, password_file: str | None = None, tls: dict[str, str] | None = None) -> str:
    path = tmp_path / "coordinator.yaml"
    text = (
        "cluster: test\ncoordinator: {id: coord-1, listen: '127.0.0.1:19800'}\n"
        f"mysql: {{host: 127.0.0.1, user: u, database: d, password_file: "
        f"{password_file or secret(tmp_path / 'coordinator-password')}}}\n"
    )
    if tls:
        text += "tls: " + json.dumps(tls) + "\n"
    path.write_text(text)
    return str(path)


def tls_files(tmp_path: Path, bad: str) -> dict[str, str]:
    """ca, cert and key files; the one named `bad` holds garbage (the key is mode 0600 either way)."""
    files = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        if name == bad:
            garbage(path)
        else:
            path.write_text(PEM)
            path.chmod(0o600)
        files[name] = str(path)
    return files


# -- the configs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [("check-config", "{}"), ("status", "--config", "{}"), ("run", "--config", "{}")])
def test_agent_yaml(tmp_path: Path, command: tuple[str, ...]) -> None:
    path = garbage(tmp_path / "agent.yaml", 0o644)
    argv = [arg.format(path) for arg in command]
    line = one_line(run(*AGENT, *argv), 2, path, "cannot be read: not UTF-8 text (byte 0 is 0xff)")
    assert line == f"{path}: (file) = '{path}': cannot be read: not UTF-8 text (byte 0 is 0xff)"


@pytest.mark.parametrize(
    "argv",
    [(*COORDINATOR, "check-config", "{}"), (*COORDINATOR, "run", "--config", "{}"), (*CTL, "config", "validate", "{}")],
)
def test_coordinator_yaml(tmp_path: Path, argv: tuple[str, ...]) -> None:
    path = garbage(tmp_path / "coordinator.yaml", 0o644)
    one_line(run(*(arg.format(path) for arg in argv)), 2, f"{path}: (file)", "not UTF-8 text (byte 0 is 0xff)")


def test_a_byte_further_in_is_named_by_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(b"node:\n  name: n" + b"#" * 20000 + b"\xc3(\n")
    one_line(run(*AGENT, "check-config", str(path)), 2, "not UTF-8 text (byte 20015 is 0xc3)")


# -- secrets -------------------------------------------------------------------------------------------------
def test_an_agent_secret_file_is_named_and_none_of_its_bytes_shown(tmp_path: Path) -> None:
    password = garbage(tmp_path / "mysql-password")
    config = agent_yaml(tmp_path, milvus={"meta_uri": "mysql://m@10.0.0.5:3306/milvus", "meta_password_file": password})
    line = one_line(run(*AGENT, "check-config", config), 2, "milvus.meta_password_file", password)
    assert line.endswith("the secret file is not UTF-8 text (byte 0)") and "0xff" not in line
    line = one_line(run(*AGENT, "run", "--config", config), 2, password, "not UTF-8 text (byte 0)")


def test_a_coordinator_secret_file(tmp_path: Path) -> None:
    password = garbage(tmp_path / "coordinator-mysql-password")
    config = coordinator_yaml(tmp_path, password_file=password)
    for argv in ((*COORDINATOR, "check-config", config), (*COORDINATOR, "run", "--config", config)):
        line = one_line(run(*argv), 2, "mysql.password_file", password, "the secret file is not UTF-8 text (byte 0)")
        assert "0xff" not in line


# -- TLS files -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["ca", "cert", "key"])
def test_tls_files_of_either_daemon_and_of_coordinatorctl(tmp_path: Path, bad: str) -> None:
    files = tls_files(tmp_path, bad)
    said = "the TLS file is not a PEM file: not UTF-8 text (byte 0)"
    agent = agent_yaml(tmp_path, tls=files)
    one_line(run(*AGENT, "check-config", agent), 2, f"tls.{bad} = '{files[bad]}'", said)
    one_line(run(*AGENT, "run", "--config", agent), 2, f"tls.{bad}", said)
    coordinator = coordinator_yaml(tmp_path, tls=files)
    one_line(run(*COORDINATOR, "check-config", coordinator), 2, f"tls.{bad} = '{files[bad]}'", said)
    one_line(run(*COORDINATOR, "run", "--config", coordinator), 2, f"tls.{bad}", said)
    ctl = (*CTL, "--coordinator", "127.0.0.1:1", "--ca", files["ca"], "--cert", files["cert"], "--key", files["key"])
    line = one_line(run(*ctl, "status"), 2, f"--{bad} {files[bad]}: {said}")
    assert "0xff" not in line


def test_a_tls_file_that_is_text_but_no_pem_is_named_too(tmp_path: Path) -> None:
    files = tls_files(tmp_path, "")
    Path(files["cert"]).write_text("not a certificate\n")
    one_line(run(*AGENT, "check-config", agent_yaml(tmp_path, tls=files)), 2, "tls.cert", "no -----BEGIN line")


# -- what the agent reads besides its config -------------------------------------------------------------------
def test_the_base_server_config(tmp_path: Path) -> None:
    base = garbage(tmp_path / "server_config.yaml", 0o644)
    config = agent_yaml(tmp_path, milvus={"base_config": base})
    one_line(run(*AGENT, "check-config", config), 2, f"{base} (milvus.base_config): cannot be read", "0xff")


def test_the_state_file_stops_the_agent_with_what_to_do_and_no_restart(tmp_path: Path) -> None:
    config = agent_yaml(tmp_path)
    (tmp_path / "state").mkdir()
    state = garbage(tmp_path / "state" / "agent-state.json")
    line = one_line(run(*AGENT, "run", "--config", config), 2, state, "not UTF-8 text (byte 0 is 0xff)")
    assert "coordinatorctl status" in line and '{"highest_epoch": EPOCH}' in line
    assert one_line(run(*AGENT, "check-config", config), 2) == line.removeprefix("jfs-milvus-agent run: ")
    one_line(run(*AGENT, "assign", "ro", "--epoch", "3", "--config", config), 1, state, "not UTF-8 text")
    # Not JSON at all, or JSON of another shape: the same line, the same exit code.
    Path(state).write_text('["highest_epoch", 3]\n')
    one_line(run(*AGENT, "run", "--config", config), 2, state, "not the agent's JSON", "coordinatorctl status")


def test_the_wal_marker_is_a_wal_of_unknown_stint(tmp_path: Path) -> None:
    wal = WriterWal(str(tmp_path))
    (tmp_path / "wal").mkdir()
    (tmp_path / "wal" / "1.wal").write_bytes(b"records")
    garbage(Path(wal.marker_file), 0o644)
    plan = wal.prepare(epoch=4, now_unix=1000)
    assert (tmp_path / "wal.set-aside").is_dir() and not list((tmp_path / "wal").iterdir()), plan
    assert json.loads(Path(wal.marker_file).read_text())["epoch"] == 4


def test_a_running_agent_reads_a_garbage_assignment_fstab_and_mishards_env_file(tmp_path: Path) -> None:
    """What only the daemon reads: the local assignment (an error it says and keeps in its status), and the two
    files it shares with others, /etc/fstab and the Mishards env file, whose bytes it keeps as they are (said
    once)."""
    fstab = tmp_path / "fstab"
    fstab.write_bytes(b"# a comment in Latin-1: caf\xe9\n/dev/sdb1 /data ext4 defaults 0 2\n")
    volume = {
        "name": "milvus",
        "meta_url": "redis://127.0.0.1:1/1",
        "mountpoint": str(tmp_path / "jfs"),
        "cache_dir": str(tmp_path / "cache"),
    }
    juicefs = {
        "fstab": str(fstab),
        "mount_helper": MOUNT_HELPER,  # in /sbin, where mount(8) looks, one per source tree
        "systemd_dir": str(tmp_path / "systemd"),
        "secrets_dir": str(tmp_path / "secrets"),
        "volumes": [volume],
    }
    node = BareAgent(tmp_path, juicefs=juicefs)
    node.state_dir.mkdir()
    assignment = garbage(node.state_dir / "assignment.json")
    node.start()
    try:
        wanted = f"{assignment}: cannot be read: not UTF-8 text (byte 0 is 0xff)"
        wait_until(lambda: wanted in node.status().last_errors, 20, "the assignment file's error in the status")
        log = node.log()
        assert "Traceback" not in log, log
        assert len([line for line in log.splitlines() if f"local assignment ignored: {wanted}" in line]) == 1, log
        assert [line for line in log.splitlines() if "holds bytes that are not UTF-8" in line] == [
            line for line in log.splitlines() if f"{fstab}: line 1 holds bytes that are not UTF-8" in line
        ]
        kept = fstab.read_bytes()
        assert kept.startswith(b"# a comment in Latin-1: caf\xe9\n/dev/sdb1 /data ext4 defaults 0 2\n")
        assert b"juicefs" in kept  # its own line added beside them
    finally:
        node.stop()

    env_file = tmp_path / "mishards.env"
    env_file.write_bytes(b"OPERATOR_NOTE='d\xe9j\xe0 vu'\n")
    mishards = {
        "enabled": True,
        "image": "milvusdb/mishards:1.0.0",
        "env_file": str(env_file),
        "database_uri": "mysql+pymysql://root@127.0.0.1:3306/milvus",
        "database_password_file": secret(tmp_path / "mishards-password"),
    }
    (tmp_path / "second").mkdir()
    node = BareAgent(tmp_path / "second", mishards=mishards)
    assigned = node.cli(
        "assign", "none", "--epoch", "1", "--mishards-writer", "127.0.0.2:19530", "--mishards-hosts", "127.0.0.3"
    )
    assert assigned.returncode == 0, assigned.stderr
    node.start()
    try:
        wait_until(lambda: b"WOSERVER=" in env_file.read_bytes(), 20, "the Mishards settings in the env file")
        assert env_file.read_bytes().startswith(b"OPERATOR_NOTE='d\xe9j\xe0 vu'\n")
        log = node.log()
        assert f"{env_file}: line 1 holds bytes that are not UTF-8; kept byte for byte" in log
        assert "Traceback" not in log, log
    finally:
        node.stop()
