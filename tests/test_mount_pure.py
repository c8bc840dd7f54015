"""Pure parts of the mount code: unit names, mountinfo, env file quoting, health classification, probes."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest

from agent.mount import envfile, mountinfo
from agent.mount.health import MetaObservation, Observations, WriteProbeResult, classify, write_probe_due
from agent.mount.probes import BoundedProbe, Progress, parse_config
from agent.mount.unitname import escape_path, mount_unit_name

UNIT_NAMES = [
    ("/", "-.mount"),
    ("/mnt/jfs", "mnt-jfs.mount"),
    ("/mnt/jfs/", "mnt-jfs.mount"),
    ("//mnt//a", "mnt-a.mount"),
    ("/mnt/./x", "mnt-x.mount"),
    ("/mnt/my vol", "mnt-my\\x20vol.mount"),
    ("/mnt/.hidden", "mnt-.hidden.mount"),
    ("/.x", "\\x2ex.mount"),
    ("/mnt/a-b", "mnt-a\\x2db.mount"),
    ("/mnt/-x", "mnt-\\x2dx.mount"),
    ("/mnt/a_b:c.d", "mnt-a_b:c.d.mount"),
    ("/mnt/ü", "mnt-\\xc3\\xbc.mount"),
    ("/mnt/a\\b", "mnt-a\\x5cb.mount"),
    ("/mnt/a%b", "mnt-a\\x25b.mount"),
    ("/a/.b/..c", "a-.b-..c.mount"),
    ("/var/lib/jfs-milvus/mnt", "var-lib-jfs\\x2dmilvus-mnt.mount"),
]


@pytest.mark.parametrize(("path", "unit"), UNIT_NAMES)
def test_mount_unit_name(path: str, unit: str) -> None:
    assert mount_unit_name(path) == unit


@pytest.mark.parametrize("path", ["relative/x", "/mnt/../x", ""])
def test_unit_name_refuses_unnormalized_paths(path: str) -> None:
    with pytest.raises(ValueError):
        escape_path(path)


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="systemd-escape is not installed")
@pytest.mark.parametrize(("path", "unit"), UNIT_NAMES)
def test_unit_name_agrees_with_systemd_escape(path: str, unit: str) -> None:
    out = subprocess.run(
        ["systemd-escape", "--path", "--suffix=mount", "--", path], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == unit


MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "42 22 0:39 / /tmp/x/mnt\\040point rw,nosuid,nodev,relatime shared:7 - fuse.juicefs JuiceFS:testvol "
    "rw,user_id=0,group_id=0,default_permissions,allow_other\n"
    "43 22 0:40 / /tmp/x/mnt\\040point rw,relatime - tmpfs tmp\\134fs rw\n"
    "44 22 0:41 / /tmp/\\303\\274 rw - fuse.juicefs JuiceFS:other rw\n"
    "garbage line\n"
)


def test_mountinfo_parse() -> None:
    mounts = mountinfo.parse(MOUNTINFO)
    assert len(mounts) == 4
    jfs = mounts[1]
    assert jfs.mountpoint == "/tmp/x/mnt point"
    assert (jfs.fstype, jfs.source, jfs.mount_id, jfs.parent_id) == ("fuse.juicefs", "JuiceFS:testvol", 42, 22)
    assert jfs.super_options[0] == "rw" and "nosuid" in jfs.mount_options
    assert mountinfo.is_juicefs(jfs, "testvol") and not mountinfo.is_juicefs(jfs, "other")
    assert mounts[2].source == "tmp\\fs"
    assert mounts[3].mountpoint == "/tmp/ü"


def test_mountinfo_find_takes_the_top_of_the_stack() -> None:
    mounts = mountinfo.parse(MOUNTINFO)
    top = mountinfo.find(mounts, "/tmp/x/mnt point/")
    assert top is not None and top.fstype == "tmpfs"
    assert mountinfo.find(mounts, "/tmp/x") is None


@pytest.mark.parametrize("path", ["/tmp/x/mnt point", "/tmp/x/mnt point/", "/tmp/ü", "/tmp/x", "/", "/nowhere"])
def test_mountinfo_find_in_text_agrees_with_find(path: str) -> None:
    assert mountinfo.find_in_text(MOUNTINFO, path) == mountinfo.find(mountinfo.parse(MOUNTINFO), path)
    assert mountinfo.find_in_text(MOUNTINFO.replace("\\303\\274", "ü"), path) == mountinfo.find(
        mountinfo.parse(MOUNTINFO), path
    )


def test_mountinfo_escape_is_what_unescape_undoes() -> None:
    assert mountinfo.escape("/a b\tc\\d\ne") == "/a\\040b\\011c\\134d\\012e"
    assert mountinfo.unescape(mountinfo.escape("/a b\tc\\d\neü")) == "/a b\tc\\d\neü"


def test_write_probe_runs_on_a_new_mount_after_a_problem_and_every_interval() -> None:
    ok = WriteProbeResult(mount_id=42, at=100.0, write_ms=20.0, write_error=None)
    assert write_probe_due(None, 42, 100.5, 5.0, 2000.0)
    assert not write_probe_due(ok, 42, 104.9, 5.0, 2000.0)
    assert write_probe_due(ok, 42, 105.0, 5.0, 2000.0)
    assert write_probe_due(ok, 43, 100.5, 5.0, 2000.0)  # remounted
    assert write_probe_due(ok, 42, 100.5, 0.0, 2000.0)  # interval 0: every observation
    slow = WriteProbeResult(mount_id=42, at=100.0, write_ms=2500.0, write_error=None)
    failed = WriteProbeResult(mount_id=42, at=100.0, write_ms=None, write_error="EIO")
    assert write_probe_due(slow, 42, 100.5, 5.0, 2000.0) and write_probe_due(failed, 42, 100.5, 5.0, 2000.0)


def test_mountinfo_of_this_machine_parses() -> None:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        assert mountinfo.find(mountinfo.parse(f.read()), "/") is not None


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ('a "b" $c `d` \\e', '"a \\"b\\" \\$c \\`d\\` \\\\e"'),
        ("it's # not a comment", '"it\'s # not a comment"'),
    ],
)
def test_env_quoting(value: str, quoted: str) -> None:
    assert envfile.quote_value(value) == quoted


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"])
def test_env_quoting_refuses_newlines(value: str) -> None:
    with pytest.raises(ValueError):
        envfile.quote_value(value)


def test_env_file_reads_back_through_a_shell(tmp_path) -> None:  # type: ignore[no-untyped-def]
    value = "s3 cr\"3t$x\\y%z@w `id` 'q' #h"
    path = tmp_path / "e.env"
    path.write_text(envfile.render_env_file({"META_PASSWORD": value}))
    out = subprocess.run(
        ["bash", "-c", f'set -a; . "{path}"; printf %s "$META_PASSWORD"'], capture_output=True, text=True, check=True
    )
    assert out.stdout == value


def test_password_variables() -> None:
    assert envfile.password_variables("redis://h/1") == ("META_PASSWORD", "REDIS_PASSWORD")
    assert envfile.password_variables("rediss://h/1") == ("META_PASSWORD", "REDIS_PASSWORD")
    assert envfile.password_variables("mysql://u@(h:3306)/jfs") == ("META_PASSWORD",)


def test_mode_dropin_escapes_percent() -> None:
    text = envfile.render_mode_dropin(("rw", "cache-dir=/var/c%d"), "v")
    assert text.endswith("[Mount]\nOptions=rw,cache-dir=/var/c%%d\n")


def _obs(**kw: object) -> Observations:
    base: dict[str, object] = dict(
        mountpoint="/mnt/jfs",
        volume_name="v",
        mounted=True,
        fstype="fuse.juicefs",
        source="JuiceFS:v",
        config_read=True,
        read_only=False,
        write_probe_ms=12.0,
        write_limit_ms=100.0,
    )
    base.update(kw)
    return Observations(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "state", "reason"),
    [
        ({}, "healthy", None),
        ({"read_only": True, "write_probe_ms": None}, "healthy", None),
        ({"mounted": False}, "unmounted", "nothing is mounted"),
        ({"fstype": "tmpfs", "source": "tmpfs"}, "failed", "not fuse.juicefs"),
        ({"source": "JuiceFS:other"}, "failed", "JuiceFS:v"),
        ({"not_connected": True}, "failed", "not connected"),
        ({"hung_since": "2026-01-01T00:00:00+00:00", "hung_during": "stat"}, "failed", "hung since 2026"),
        ({"config_read": False}, "failed", ".config did not answer"),
        ({"write_probe_error": "EIO"}, "failed", "write probe failed: EIO"),
        ({"write_probe_ms": 250.0}, "degraded", "250 ms, over the 100 ms limit"),
        ({"meta": MetaObservation(reachable=False, error="refused")}, "failed", "unreachable: refused"),
        ({"meta": MetaObservation(reachable=True, warnings=("lru",))}, "healthy", None),
    ],
)
def test_classify(kw: dict[str, object], state: str, reason: str | None) -> None:
    got_state, reasons = classify(_obs(**kw))
    assert got_state == state
    if reason is None:
        assert reasons == []
    else:
        assert any(reason in r for r in reasons), reasons


def test_parse_config_reads_only_what_is_reported() -> None:
    text = '{"Meta": {"ReadOnly": true, "Sid": 0}, "Format": {"Name": "v", "SecretKey": "x"}}'
    assert parse_config(text) == {"read_only": True, "session_id": 0, "volume_name": "v"}


def test_bounded_probe_reports_hung_and_starts_no_second_probe() -> None:
    release = threading.Event()
    calls: list[int] = []

    def stuck(p: Progress) -> None:
        calls.append(1)
        p.step = "waiting"
        release.wait()

    probe = BoundedProbe("t")
    t0 = time.monotonic()
    first = probe.start(stuck).wait(time.monotonic() + 0.2)
    second = probe.start(stuck).wait(time.monotonic() + 5)
    assert time.monotonic() - t0 < 1.0
    assert first.hung_since is not None and second.hung_since == first.hung_since
    assert second.progress.step == "waiting" and calls == [1]
    release.set()
    time.sleep(0.1)
    assert probe.stuck_since() is None
    third = probe.start(lambda p: p.values.update(ok=True)).wait(time.monotonic() + 1)
    assert third.finished and third.progress.values == {"ok": True}


def test_bounded_probe_records_errors() -> None:
    def boom(p: Progress) -> None:
        p.step = "stat"
        raise OSError(5, "Input/output error")

    out = BoundedProbe("e").start(boom).wait(time.monotonic() + 1)
    assert out.finished and out.progress.error is not None and out.progress.error.startswith("stat:")
