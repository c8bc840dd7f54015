"""The mount helper (agent/mounthelper.py): mount(8) runs it for the agent's fstab line, by hand (`mount DIR`,
`mount -a`), from systemd's mount unit and from the agent, and it alone gives juicefs the password, from the
volume's env file into juicefs' environment: on no command line, in no process title."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jfsmilvus.common.configschema import ConfigError

import agent.mount
from agent import mounthelper
from agent.config import parse_agent_config
from agent.mount import MountManager, envfile, runner
from tests.plugin_juicefs import (
    JfsTestVolume,
    RedisServer,
    cleanup_mounts_under,
    format_volume,
    juicefs_pids,
    require_fuse_mounts,
)

# What an operator types, with what a shell or a systemd file would expand: ! and $, quotes, a backslash.
PASSWORD = 'pa!ss$word "q" \\x `id` $(id) %h'
FRAGMENTS = ("pa!ss", "ss$word", "$(id)")


# -- pure --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [PASSWORD, "plain", "", "#not a comment", "a=b=c", "ü \\\\ \\$"])
def test_the_env_file_the_agent_writes_reads_back_whole(value: str) -> None:
    text = envfile.render_env_file({"META_PASSWORD": value, "REDIS_PASSWORD": value})
    assert mounthelper.parse_env_file(text) == {"META_PASSWORD": value, "REDIS_PASSWORD": value}


def test_a_bad_env_file_line_is_refused_without_repeating_it() -> None:
    assert mounthelper.parse_env_file("# c\n\nA=bare\n") == {"A": "bare"}
    for bad in ('META_PASSWORD="unterminated\n', "META_PASSWORD=two words\n", "not an assignment s3cr3t\n"):
        with pytest.raises(mounthelper.HelperError) as info:
            mounthelper.parse_env_file(bad)
        assert str(info.value) == 'line 1 is not NAME="VALUE"'


def test_the_plan_strips_the_helpers_options_and_names_juicefs_the_way_it_parses_mounts(tmp_path: Path) -> None:
    juicefs = tmp_path / "juicefs"
    juicefs.write_text("#!/bin/sh\n")
    juicefs.chmod(0o755)
    options = f"ro,cache-dir=/var/c d,jfs-milvus.env-file=/etc/s/j.env,jfs-milvus.juicefs={juicefs},_netdev"
    binary, argv, env_file = mounthelper.plan(["redis://h:1/2", "/mnt/a b", "-v", "-o", options, "-t", "x.y"])
    assert binary == str(juicefs) and env_file == "/etc/s/j.env"
    assert argv == ["/sbin/mount.juicefs", "redis://h:1/2", "/mnt/a b", "-v", "-o", "ro,cache-dir=/var/c d,_netdev"]
    _, argv, env_file = mounthelper.plan(["s", "/m", f"-ojfs-milvus.juicefs={juicefs}"])
    assert argv == ["/sbin/mount.juicefs", "s", "/m"] and env_file is None
    for bad, code in (
        (["s", "/m", "-o", "ro"], mounthelper.EXIT_USAGE),  # not the agent's line: no juicefs named
        (["s", "/m", "-o", f"jfs-milvus.juicefs={juicefs},jfs-milvus.env-file"], mounthelper.EXIT_USAGE),
        (["s", "-o", f"jfs-milvus.juicefs={juicefs}"], mounthelper.EXIT_USAGE),
        (["s", "/m", "-o", "jfs-milvus.juicefs=/nonexistent/juicefs"], mounthelper.EXIT_FAILURE),
    ):
        with pytest.raises(mounthelper.HelperError) as info:
            mounthelper.plan(bad)
        assert info.value.code == code


def test_an_env_file_others_may_read_or_replace_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "juicefs-v.env"
    path.write_text(envfile.render_env_file({"META_PASSWORD": PASSWORD}))
    path.chmod(0o600)
    assert mounthelper.read_env_file(str(path)) == {"META_PASSWORD": PASSWORD}
    path.chmod(0o640)
    with pytest.raises(mounthelper.HelperError, match="mode 0640: only its owner may read it"):
        mounthelper.read_env_file(str(path))
    link = tmp_path / "link.env"
    link.symlink_to(path)
    with pytest.raises(mounthelper.HelperError, match="cannot open"):
        mounthelper.read_env_file(str(link))
    with pytest.raises(mounthelper.HelperError, match="not a regular file"):
        mounthelper.read_env_file(str(tmp_path))


def test_the_helper_says_what_is_wrong_in_one_line_and_exits_as_mount_helpers_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert mounthelper.main(["s", "/m", "-o", "ro"]) == mounthelper.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("mount.juicefs-jfsmilvus: no jfs-milvus.juicefs=PATH option") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("helper", "problem"),
    [
        ("/sbin/mount.juicefs-jfsmilvus", None),
        ("/usr/sbin/mount.juicefs-site2", None),
        ("/sbin/mount.juicefs", "mount.juicefs is JuiceFS's own"),
        ("/opt/bin/mount.juicefs-x", "a directory mount(8) looks in"),
    ],
)
def test_the_mount_helper_setting(helper: str, problem: str | None) -> None:
    text = (
        "node: {name: n1, address: 10.0.0.1}\nmilvus: {meta_uri: 'mysql://m@h:1/d', meta_password_env: PW}\n"
        f"juicefs: {{binary: /bin/true, mount_helper: {helper}}}\n"
    )
    if problem is None:
        assert parse_agent_config(text, "agent.yaml").juicefs.mount_helper == helper
        return
    with pytest.raises(ConfigError) as info:
        parse_agent_config(text, "agent.yaml")
    assert "juicefs.mount_helper" in str(info.value) and problem in str(info.value)


# -- real mounts -------------------------------------------------------------------------------------
@pytest.fixture
def protected_volume(tmp_path: Path) -> Iterator[JfsTestVolume]:
    """A volume on a private redis-server whose password holds ! and $, configured by the agent."""
    binary = require_fuse_mounts()
    server = RedisServer(tmp_path / "redis", PASSWORD)
    server.start()
    try:
        volume = format_volume(binary, tmp_path / "vol", server, db=1)
        MountManager(volume.volume, volume.settings, "node-a").configure()
        yield volume
    finally:
        cleanup_mounts_under(str(tmp_path))
        server.stop()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("META_PASSWORD", "REDIS_PASSWORD")}


def read_only(mountpoint: str) -> bool:
    with open(os.path.join(mountpoint, ".config"), encoding="utf-8") as f:
        return bool(json.load(f)["Meta"]["ReadOnly"])


def assert_password_only_in_the_environment(mountpoint: str) -> None:
    """No process shows the password on its command line; juicefs has it in its environment."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert PASSWORD not in cmdline and not any(f in cmdline for f in FRAGMENTS), f"pid {entry}: {cmdline!r}"
    pids = juicefs_pids(mountpoint)
    assert pids
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        # juicefs parses mount(8)'s arguments under the name the helper gives it; the helper's options are gone.
        assert "jfs-milvus." not in " ".join(argv), argv
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"META_PASSWORD={PASSWORD}".encode() in environ
    assert any(Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/sbin/mount.juicefs ") for pid in pids)


@pytest.mark.root
def test_mount_by_hand_and_mount_a_work_with_the_password(protected_volume: JfsTestVolume) -> None:
    v = protected_volume
    mp, table = v.mountpoint, v.settings.fstab
    with open(table, encoding="utf-8") as f:
        line = f.read()
    assert f" {os.path.basename(v.settings.mount_helper).removeprefix('mount.')} " in line
    assert PASSWORD not in line and not any(f in line for f in FRAGMENTS)

    by_hand = subprocess.run(["mount", "-T", table, mp], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert by_hand.returncode == 0, by_hand.stderr
    assert read_only(mp)  # the line says ro
    assert_password_only_in_the_environment(mp)
    subprocess.run(["umount", mp], check=True, timeout=30)

    every = subprocess.run(["mount", "-a", "-T", table], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert every.returncode == 0, every.stderr
    assert read_only(mp)
    assert_password_only_in_the_environment(mp)


@pytest.mark.root
def test_a_wrong_env_file_fails_the_mount_with_the_helpers_line(protected_volume: JfsTestVolume) -> None:
    env_file = MountManager(protected_volume.volume, protected_volume.settings, "node-a").env_file
    os.chmod(env_file, 0o644)
    run = subprocess.run(
        ["mount", "-T", protected_volume.settings.fstab, protected_volume.mountpoint],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == mounthelper.EXIT_FAILURE
    assert f"mount.juicefs-jfsmilvus: the env file {env_file} is mode 0644" in run.stderr
    assert PASSWORD not in run.stderr


@pytest.mark.root
def test_the_agent_mounts_through_the_same_helper(
    protected_volume: JfsTestVolume, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], object]] = []
    real_run = runner.run

    def recording_run(argv: list[str], timeout_s: float, extra_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        calls.append((list(argv), extra_env))
        return real_run(argv, timeout_s, extra_env)

    monkeypatch.setattr(runner, "run", recording_run)
    for name in ("META_PASSWORD", "REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    m = MountManager(protected_volume.volume, protected_volume.settings, "node-a")
    assert not m._systemd_mounts()  # no systemd on this machine: the agent runs mount(8) itself
    actions = m.ensure("rw")
    assert any("with mount -T" in a for a in actions), actions
    mounts = [(argv, env) for argv, env in calls if argv[0] == "mount"]
    assert mounts == [(["mount", "-T", m.settings.fstab, "-o", "rw", m.mountpoint], None)]
    assert not read_only(m.mountpoint)
    assert_password_only_in_the_environment(m.mountpoint)


FAKE_SYSTEMCTL = """\
#!{python}
# systemctl as far as the agent uses it: records each call; `start UNIT` mounts the fstab line as systemd's
# mount unit does, `mount SOURCE DIR -t TYPE -o OPTIONS`, with a runtime drop-in's Options= when there is one.
import os, subprocess, sys
sys.path[:0] = [{code!r}]
from agent.mount import fstab
with open({log!r}, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["show"]:
    print("inactive")
if sys.argv[1:2] == ["start"]:
    entry = fstab.parse(open({fstab!r}).read())[0]
    options = ",".join(entry.options)
    dropin = os.path.join({units!r}, sys.argv[2] + ".d", "jfs-milvus-mode.conf")
    if os.path.exists(dropin):
        options = [l for l in open(dropin).read().splitlines() if l.startswith("Options=")][0][8:]
    options = options.replace("%%", "%")
    sys.exit(subprocess.run(["mount", entry.source, entry.mountpoint, "-t", entry.fstype, "-o", options]).returncode)
"""


@pytest.mark.root
def test_with_systemd_the_agent_starts_the_mount_unit_and_rw_lasts_until_boot(
    protected_volume: JfsTestVolume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    units, bin_dir, log = tmp_path / "run-systemd-system", tmp_path / "bin", tmp_path / "systemctl.log"
    units.mkdir()
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(
        FAKE_SYSTEMCTL.format(
            python=sys.executable, code=agent.mount.CODE_DIR, log=str(log), fstab=protected_volume.settings.fstab,
            units=str(units),
        )
    )  # fmt: skip
    fake.chmod(0o755)
    (bin_dir / "journalctl").write_text("#!/bin/sh\necho 'the last line of the unit'\n")
    (bin_dir / "journalctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(agent.mount, "RUNTIME_UNIT_DIR", str(units))
    monkeypatch.setattr(agent.mount, "SYSTEMD_FSTAB", os.path.realpath(protected_volume.settings.fstab))
    m = MountManager(protected_volume.volume, protected_volume.settings, "node-a")
    assert m._systemd_mounts()
    unit = m.unit_name

    actions = m.ensure("ro")
    assert any(f"by starting {unit}" in a for a in actions), actions
    assert read_only(m.mountpoint)
    assert log.read_text().splitlines()[-3:] == [
        f"reset-failed {unit}",
        f"show -p ActiveState --value {unit}",
        f"start {unit}",
    ]
    assert not os.path.exists(m.mode_dropin_file)
    assert_password_only_in_the_environment(m.mountpoint)

    log.write_text("")
    m.ensure("rw")
    assert not read_only(m.mountpoint)
    with open(m.mode_dropin_file, encoding="utf-8") as f:
        dropin = f.read()
    options = ",".join("rw" if o == "ro" else o for o in m.wanted_entry().options)
    assert dropin.endswith(f"[Mount]\nOptions={options}\n")
    assert stat.S_IMODE(os.stat(m.mode_dropin_file).st_mode) == 0o644 and PASSWORD not in dropin
    assert log.read_text().splitlines() == [
        "daemon-reload",
        f"reset-failed {unit}",
        f"show -p ActiveState --value {unit}",
        f"start {unit}",
    ]
    with open(m.settings.fstab, encoding="utf-8") as f:
        assert ",ro," in f.read()  # a reboot mounts read-only

    m.ensure("ro")
    assert read_only(m.mountpoint) and not os.path.exists(m.mode_dropin_file)

    # A start that fails says why with the unit's last journal line.
    subprocess.run(["umount", m.mountpoint], check=True, timeout=30)
    fake.write_text("#!/bin/sh\n[ \"$1\" = start ] && { echo 'Job for the unit failed.' >&2; exit 1; }\nexit 0\n")
    with pytest.raises(agent.mount.MountError, match=re.escape(f"Job for the unit failed.; {unit}: the last line")):
        m.ensure("ro")
