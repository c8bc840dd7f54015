"""MountManager against real JuiceFS mounts: a redis-server, a `juicefs format`ed volume, and mount(8)."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from agent import mounthelper
from agent.mount import CODE_DIR, MountError, MountManager
from agent.mount.fstab import escape_field
from tests.plugin_juicefs import REDIS_PASSWORD, JfsTestVolume, juicefs_pids, signal_all

pytestmark = pytest.mark.root

ALL_LOGS = "jfs_milvus.agent.mount"


def manager(v: JfsTestVolume) -> MountManager:
    return MountManager(v.volume, v.settings, node_name="node-a")


def read_config(mountpoint: str) -> dict:  # type: ignore[type-arg]
    with open(os.path.join(mountpoint, ".config"), encoding="utf-8") as f:
        return json.load(f)


def test_configure_writes_the_helper_env_file_and_fstab_once(
    jfs_volume: JfsTestVolume, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=ALL_LOGS)
    m = manager(jfs_volume)
    s = jfs_volume.settings
    actions = m.configure()
    assert [a.split(" ", 1)[0] for a in actions[-2:]] == ["wrote", "fstab"]  # the env file before the line

    with open(s.fstab, encoding="utf-8") as f:
        fstab_text = f.read()
    escaped = {p: p.replace(" ", "\\040") for p in (jfs_volume.volume.cache_dir, m.env_file)}
    assert fstab_text.endswith(
        f" {m.fstype} _netdev,nofail,ro,cache-dir={escaped[jfs_volume.volume.cache_dir]},cache-size=100,"
        f"jfs-milvus.env-file={escaped[m.env_file]},jfs-milvus.juicefs={s.binary} 0 0\n"
    )
    assert m.fstype == os.path.basename(s.mount_helper).removeprefix("mount.")
    assert "mnt\\040point" in fstab_text

    assert m.unit_name.endswith("-mnt\\x20point.mount")
    assert not os.path.exists(m.dropin_file)  # the helper gives juicefs the password, on every path

    assert stat.S_IMODE(os.stat(m.env_file).st_mode) == 0o600
    with open(m.env_file, encoding="utf-8") as f:
        env_text = f.read()
    assert "META_PASSWORD=" in env_text and "REDIS_PASSWORD=" in env_text
    assert 'cr\\"3t\\$x\\\\y' in env_text  # the password, quoted
    assert mounthelper.parse_env_file(env_text) == {"META_PASSWORD": REDIS_PASSWORD, "REDIS_PASSWORD": REDIS_PASSWORD}

    with open(s.mount_helper, encoding="utf-8") as f:
        helper_text = f.read()
    assert helper_text == mounthelper.launcher_text(sys.executable, CODE_DIR, os.path.basename(s.mount_helper))
    assert stat.S_IMODE(os.stat(s.mount_helper).st_mode) == 0o755

    secret_bits = ('cr"3t', "3t$x")
    for text in (fstab_text, helper_text, caplog.text, "\n".join(actions)):
        assert REDIS_PASSWORD not in text
        assert not any(bit in text for bit in secret_bits)

    mtimes = [os.stat(p).st_mtime_ns for p in (s.fstab, s.mount_helper, m.env_file)]
    assert m.configure() == []
    assert [os.stat(p).st_mtime_ns for p in (s.fstab, s.mount_helper, m.env_file)] == mtimes


def test_configure_replaces_what_older_agents_wrote_and_repairs_hand_edits(
    jfs_volume: JfsTestVolume,
    tmp_path,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    helper = tmp_path / "sbin" / "mount.juicefs-jfsmilvus"
    helper.parent.mkdir()
    helper.symlink_to("/bin/false")
    settings = dataclasses.replace(jfs_volume.settings, mount_helper=str(helper))
    m = MountManager(jfs_volume.volume, settings, "node-a")
    # What an agent before the mount helper left: a juicefs line, the password drop-in.
    old_line = f"{jfs_volume.volume.meta_url} {escape_field(m.mountpoint)} juicefs _netdev,nofail,ro 0 0\n"
    with open(settings.fstab, "w", encoding="utf-8") as f:
        f.write("# keep me\n" + old_line)
    os.makedirs(os.path.dirname(m.dropin_file))
    with open(m.dropin_file, "w", encoding="utf-8") as f:
        f.write(f"[Mount]\nEnvironmentFile={m.env_file}\n")
    actions = m.configure()
    assert any("fixed line 2" in a and "fstype 'juicefs' -> 'juicefs-jfsmilvus'" in a for a in actions), actions
    assert any(a.startswith(f"removed {m.dropin_file}") for a in actions), actions
    assert not os.path.lexists(m.dropin_file) and not os.path.exists(os.path.dirname(m.dropin_file))
    assert not helper.is_symlink() and "from agent.mounthelper import main" in helper.read_text()
    with open(settings.fstab, encoding="utf-8") as f:
        good = f.read()
    assert good.startswith("# keep me\n") and good.count("\n") == 2

    with open(settings.fstab, "w", encoding="utf-8") as f:
        f.write(good.replace(",ro,", ",") + good.splitlines()[1] + "\n")
    caplog.clear()
    caplog.set_level(logging.INFO, logger=ALL_LOGS)
    actions = m.configure()
    assert len(actions) == 1 and "fixed line 2" in actions[0] and "removed duplicate line 3" in actions[0]
    with open(settings.fstab, encoding="utf-8") as f:
        assert f.read() == good
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()


def test_observe_unmounted(jfs_volume: JfsTestVolume) -> None:
    status = manager(jfs_volume).observe()
    assert status.state == "unmounted" and not status.mounted and not status.configured_in_fstab
    d = status.to_dict()
    json.dumps(d)
    assert d["meta_engine"]["reachable"] is True and d["meta_engine"]["latency_ms"] is not None


def test_ensure_ro_then_rw(jfs_volume: JfsTestVolume, capsys: pytest.CaptureFixture[str]) -> None:
    m = manager(jfs_volume)
    mp = jfs_volume.mountpoint
    t0 = time.monotonic()
    actions = m.ensure("ro")
    ro_s = time.monotonic() - t0
    assert any(a.startswith("mounted volume testvol") and " ro " in a for a in actions), actions
    assert read_config(mp)["Meta"]["ReadOnly"] is True
    with pytest.raises(OSError) as info, open(os.path.join(mp, "x"), "w") as f:
        f.write("no")
    assert info.value.errno == errno.EROFS
    status = m.observe()
    assert (status.state, status.mode, status.mounted, status.configured_in_fstab) == ("healthy", "ro", True, True)
    assert status.write_probe_ms is None
    assert m.ensure("ro") == []

    t0 = time.monotonic()
    actions = m.ensure("rw")
    rw_s = time.monotonic() - t0
    assert any(a.startswith("unmounted") and "from ro to rw" in a for a in actions), actions
    assert any(a.startswith("mounted volume testvol") and " rw " in a for a in actions), actions
    assert read_config(mp)["Meta"]["ReadOnly"] is False
    status = m.observe()
    assert (status.state, status.mode) == ("healthy", "rw"), status.reasons
    assert status.write_probe_ms is not None and 0 < status.write_probe_ms < 2000
    assert status.session_id and status.session_id > 0
    assert os.path.exists(os.path.join(mp, ".jfs-milvus", "probe-node-a"))
    assert status.to_dict()["meta_engine"]["reachable"] is True
    with capsys.disabled():
        print(
            f"\n[timing] ensure(ro) from unmounted {ro_s:.2f}s, ensure(rw) remount {rw_s:.2f}s, "
            f"write probe {status.write_probe_ms:.1f} ms, redis {status.meta_engine.latency_ms} ms"
        )


def test_the_write_probe_runs_every_interval_and_at_once_on_a_new_mount(jfs_volume: JfsTestVolume) -> None:
    m = manager(jfs_volume)
    assert m.settings.write_probe_interval_s >= 5
    m.ensure("rw")
    probe_file = os.path.join(jfs_volume.mountpoint, ".jfs-milvus", "probe-node-a")
    first = m.observe()
    written = os.stat(probe_file).st_ino
    second = m.observe()  # within the interval: stat and .config only, the last write's result stands
    assert os.stat(probe_file).st_ino == written
    assert (second.state, second.write_probe_ms) == ("healthy", first.write_probe_ms)
    m.ensure("ro")
    m.ensure("rw")  # a new mount is probed at once
    third = m.observe()
    assert third.write_probe_ms is not None and os.stat(probe_file).st_ino != written
    every_cycle = MountManager(
        jfs_volume.volume, dataclasses.replace(jfs_volume.settings, write_probe_interval_s=0), node_name="node-a"
    )
    every_cycle.observe()
    again = os.stat(probe_file).st_ino
    every_cycle.observe()
    assert os.stat(probe_file).st_ino != again


def test_busy_unmount_is_reported_not_forced(jfs_volume: JfsTestVolume) -> None:
    m = manager(jfs_volume)
    m.ensure("rw")
    with open(os.path.join(jfs_volume.mountpoint, "held"), "w") as held:
        with pytest.raises(MountError, match="busy"):
            m.ensure("ro")
        held.write("still writable")
    assert m.observe().mode == "rw"


def test_killed_juicefs_is_failed_then_recovered(jfs_volume: JfsTestVolume, capsys: pytest.CaptureFixture[str]) -> None:
    m = manager(jfs_volume)
    m.ensure("rw")
    pids = juicefs_pids(jfs_volume.mountpoint)
    assert pids
    signal_all(pids, signal.SIGKILL)  # the supervisor too, or it restarts the client
    deadline = time.monotonic() + 5
    while juicefs_pids(jfs_volume.mountpoint) and time.monotonic() < deadline:
        time.sleep(0.05)
    status = m.observe()
    assert status.state == "failed" and status.mounted and status.not_connected, status.reasons
    assert any("not connected" in r for r in status.reasons)
    t0 = time.monotonic()
    actions = m.ensure("rw")
    took = time.monotonic() - t0
    assert any(a.startswith("lazily unmounted") for a in actions), actions
    assert any(a.startswith("mounted volume") and "had died" in a for a in actions), actions
    status = m.observe()
    assert (status.state, status.mode) == ("healthy", "rw"), status.reasons
    with capsys.disabled():
        print(f"\n[timing] ENOTCONN recovery (umount -l + mount rw) {took:.2f}s")


def stopped_rw_mount(v: JfsTestVolume) -> tuple[MountManager, list[int]]:
    """A rw mount whose juicefs processes are SIGSTOPped (the caller SIGCONTs them), once the kernel's
    attribute cache (1 s) has expired, so that the next probe really reaches the hung daemon."""
    m = manager(v)
    m.ensure("rw")
    pids = juicefs_pids(v.mountpoint)
    signal_all(pids, signal.SIGSTOP)
    time.sleep(1.5)
    return m, pids


def test_stopped_juicefs_is_reported_hung_without_blocking(
    make_volume: Callable[..., JfsTestVolume], capsys: pytest.CaptureFixture[str]
) -> None:
    v = make_volume(probe_timeout_s=1.0)
    m, pids = stopped_rw_mount(v)
    try:
        t0 = time.monotonic()
        first = m.observe()
        t1 = time.monotonic()
        second = m.observe()
        t2 = time.monotonic()
        assert t1 - t0 < 2.0 and t2 - t1 < 2.0, (t1 - t0, t2 - t1)
        assert first.state == "failed" and first.hung_since is not None, first
        assert second.hung_since == first.hung_since
        assert any("hung since" in r for r in second.reasons)
        with pytest.raises(MountError, match="hung"):
            m.ensure("rw")
        with capsys.disabled():
            print(f"\n[timing] hung observe {t1 - t0:.2f}s, second {t2 - t1:.3f}s (probe_timeout_s=1)")
    finally:
        signal_all(pids, signal.SIGCONT)
    deadline = time.monotonic() + 10
    status = m.observe()
    while status.state != "healthy" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = m.observe()
    assert status.state == "healthy", status.reasons


def test_a_hung_juicefs_is_killed_from_proc_and_the_mount_recovered(
    make_volume: Callable[..., JfsTestVolume], capsys: pytest.CaptureFixture[str]
) -> None:
    v = make_volume(probe_timeout_s=1.0)
    m, pids = stopped_rw_mount(v)
    try:
        m.observe()
        time.sleep(1.0)
        hung = m.observe()
        assert hung.hung_since is not None and hung.hung_for_s is not None and hung.hung_for_s >= 1.0, hung
        assert hung.meta_engine.reachable is True  # the hang is the client's own, not Redis's
        t0 = time.monotonic()
        actions = m.kill_hung()
        assert actions and "killed juicefs process" in actions[0] and "whose mount was hung" in actions[0]
        assert m.kill_hung() == []  # nothing left to kill is not an error
        deadline = time.monotonic() + 10
        status = m.observe()
        while not status.not_connected and time.monotonic() < deadline:
            time.sleep(0.2)
            status = m.observe()
        assert status.not_connected and status.hung_since is None, status
        m.ensure("rw")
        took = time.monotonic() - t0
        status = m.observe()
        assert (status.state, status.mode) == ("healthy", "rw"), status.reasons
        assert not set(juicefs_pids(v.mountpoint)) & set(pids)
        with capsys.disabled():
            print(f"\n[timing] hung juicefs killed and the mount recovered in {took:.2f}s")
    finally:
        signal_all(pids, signal.SIGCONT)


def test_redis_down_is_reported_and_observe_does_not_hang(
    make_volume: Callable[..., JfsTestVolume],
    redis_factory: Callable[..., object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = redis_factory()
    v = make_volume(server=server, probe_timeout_s=1.0)
    m = manager(v)
    m.ensure("rw")
    assert m.observe().state == "healthy"
    server.stop(save=True)  # type: ignore[attr-defined]
    try:
        for _ in range(2):
            t0 = time.monotonic()
            status = m.observe()
            assert time.monotonic() - t0 < 2.0
            assert status.state == "failed"
            assert status.meta_engine.reachable is False and status.meta_engine.error
            assert "Connection" in status.meta_engine.error, status.meta_engine.error
            assert any("metadata engine unreachable" in r for r in status.reasons)
    finally:
        server.start()  # type: ignore[attr-defined]
    t0 = time.monotonic()
    deadline = t0 + 20
    status = m.observe()
    while status.state != "healthy" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = m.observe()
    assert status.state == "healthy", status.reasons
    with capsys.disabled():
        print(f"\n[timing] healthy again {time.monotonic() - t0:.2f}s after Redis came back")


def test_another_filesystem_on_the_mountpoint_is_left_alone(jfs_volume: JfsTestVolume) -> None:
    m = manager(jfs_volume)
    os.makedirs(jfs_volume.mountpoint)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", jfs_volume.mountpoint], check=True)
    status = m.observe()
    assert status.state == "failed" and any("not fuse.juicefs" in r for r in status.reasons)
    with pytest.raises(MountError, match="leaving it alone"):
        m.ensure("ro")
