"""The agent's fstab line: rendering, escaping, and editing a file without disturbing anything else."""

from __future__ import annotations

import pytest

from agent.config import VolumeSettings
from agent.mount.fstab import (
    FstabEntry,
    apply_entry,
    entry_for_volume,
    escape_field,
    parse,
    parse_line,
    redact,
    render,
    unescape_field,
)

VOLUME = VolumeSettings(
    name="milvus",
    meta_url="redis://10.0.0.5:6379/1",
    mountpoint="/mnt/jfs",
    cache_dir="/var/jfsCache",
    cache_size_mib=2048,
    options=("writeback", "max-uploads=50"),
)
ENV_FILE = "/etc/jfs-milvus/secrets/juicefs-milvus.env"
JUICEFS = "/usr/lib/jfs-milvus/agent/bin/juicefs"
LINE = (
    "redis://10.0.0.5:6379/1 /mnt/jfs juicefs-jfsmilvus "
    "_netdev,nofail,ro,cache-dir=/var/jfsCache,cache-size=2048,writeback,max-uploads=50,"
    f"jfs-milvus.env-file={ENV_FILE},jfs-milvus.juicefs={JUICEFS} 0 0"
)
# The line agents wrote before the mount helper.
OLD_LINE = (
    "redis://10.0.0.5:6379/1 /mnt/jfs juicefs "
    "_netdev,nofail,ro,cache-dir=/var/jfsCache,cache-size=2048,writeback,max-uploads=50 0 0"
)


def agent_entry(volume: VolumeSettings = VOLUME) -> FstabEntry:
    return entry_for_volume(volume, env_file=ENV_FILE, juicefs=JUICEFS)


OTHER = (
    "# /etc/fstab: static file system information.\n"
    "#\n"
    "UUID=1234-abcd  /          ext4    errors=remount-ro 0       1\n"
    "\n"
    "/dev/sdb1\t/data\txfs\tdefaults,noatime\t0\t2   \n"
    "   # an indented comment with trailing spaces   \n"
    "tmpfs /mnt/jfs tmpfs defaults 0 0\n"
)


def test_entry_for_volume_renders_the_documented_line() -> None:
    entry = agent_entry()
    assert render(entry) == LINE
    assert parse_line(LINE) == entry


def test_entry_refuses_a_password_in_the_url() -> None:
    bad = VolumeSettings(name="v", meta_url="redis://:pw@host:6379/1", mountpoint="/mnt/x")
    with pytest.raises(ValueError, match="password"):
        entry_for_volume(bad)


@pytest.mark.parametrize("field", ["env_file", "juicefs"])
@pytest.mark.parametrize("bad", ["/etc/a,b/x", '/etc/a"b/x'])
def test_entry_refuses_a_path_that_would_split_the_options(field: str, bad: str) -> None:
    with pytest.raises(ValueError, match="comma or a double quote"):
        entry_for_volume(VOLUME, **{field: bad})  # type: ignore[arg-type]


def test_the_line_of_an_older_agent_is_replaced_in_place() -> None:
    text = "# head\n" + OLD_LINE + "\n# tail\n"
    new, change = apply_entry(text, agent_entry())
    assert new == "# head\n" + LINE + "\n# tail\n"
    assert change is not None and "fstype 'juicefs' -> 'juicefs-jfsmilvus'" in change


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("/mnt/plain", "/mnt/plain"),
        ("/mnt/my vol", "/mnt/my\\040vol"),
        ("/mnt/a\tb", "/mnt/a\\011b"),
        ("/mnt/a\nb", "/mnt/a\\012b"),
        ("/mnt/a\\b", "/mnt/a\\134b"),
        ("/mnt/ü é", "/mnt/ü\\040é"),
    ],
)
def test_escape_round_trip(raw: str, escaped: str) -> None:
    assert escape_field(raw) == escaped
    assert unescape_field(escaped) == raw


def test_unescape_reads_escaped_utf8_bytes() -> None:
    assert unescape_field("/mnt/\\303\\274") == "/mnt/ü"


def test_paths_with_spaces_survive_render_and_parse() -> None:
    vol = VolumeSettings(name="v", meta_url="redis://h/1", mountpoint="/mnt/my vol", cache_dir="/var/cache dir")
    entry = entry_for_volume(vol)
    line = render(entry)
    assert len(line.split()) == 6
    assert "/mnt/my\\040vol" in line and "cache-dir=/var/cache\\040dir" in line
    assert parse_line(line) == entry


def test_added_to_a_file_keeping_every_other_byte() -> None:
    new, change = apply_entry(OTHER, agent_entry())
    assert new == OTHER + LINE + "\n"
    assert change is not None and change.startswith("added line for /mnt/jfs")


def test_added_after_a_last_line_without_newline() -> None:
    new, _ = apply_entry("proc /proc proc defaults 0 0", agent_entry())
    assert new == "proc /proc proc defaults 0 0\n" + LINE + "\n"


def test_empty_file() -> None:
    assert apply_entry("", agent_entry())[0] == LINE + "\n"


def test_idempotent() -> None:
    entry = agent_entry()
    once, _ = apply_entry(OTHER, entry)
    twice, change = apply_entry(once, entry)
    assert change is None and twice == once


def test_same_entry_with_other_spacing_is_left_alone() -> None:
    text = OTHER + LINE.replace(" ", "\t") + "\n"
    assert apply_entry(text, agent_entry()) == (text, None)


def test_hand_edited_entry_is_fixed_in_place_with_a_one_line_diff() -> None:
    edited = LINE.replace(",ro,", ",").replace("cache-size=2048", "cache-size=10")
    text = "# head\n" + edited + "\n# tail\r\n"
    new, change = apply_entry(text, agent_entry())
    assert new == "# head\n" + LINE + "\n# tail\r\n"
    assert change is not None and "\n" not in change
    assert "fixed line 2 for /mnt/jfs: options" in change and "cache-size=10" in change


def test_hand_edited_source_is_fixed_and_a_password_in_it_is_not_repeated() -> None:
    text = LINE.replace("redis://10.0.0.5:6379/1", "redis://:hunter2@10.0.0.9:6379/1") + "\r\n"
    new, change = apply_entry(text, agent_entry())
    assert new == LINE + "\r\n"
    assert change is not None and "hunter2" not in change and "10.0.0.9" in change


def test_duplicates_for_the_mountpoint_are_removed_keeping_the_first() -> None:
    text = "# a\n" + LINE + "\n# b\n" + LINE + "\nredis://x/2 /mnt/jfs/ fuse.juicefs ro 0 0\n# c\n"
    new, change = apply_entry(text, agent_entry())
    assert new == "# a\n" + LINE + "\n# b\n# c\n"
    assert change is not None and change.count("removed duplicate line") == 2 and "line 4" in change


def test_other_filesystems_on_the_same_mountpoint_and_other_juicefs_lines_are_kept() -> None:
    other_jfs = "redis://h/3 /mnt/other juicefs _netdev,ro 0 0\n"
    text = OTHER + other_jfs
    new, _ = apply_entry(text, agent_entry())
    assert new.startswith(text)
    assert "tmpfs /mnt/jfs tmpfs defaults 0 0\n" in new


def test_parse_skips_comments_blanks_and_junk() -> None:
    entries = parse(OTHER + "junk\n" + LINE + "\n")
    assert [e.mountpoint for e in entries] == ["/", "/data", "/mnt/jfs", "/mnt/jfs"]
    assert entries[1] == FstabEntry("/dev/sdb1", "/data", "xfs", ("defaults", "noatime"), 0, 2)


def test_redact() -> None:
    assert redact("redis://user:p%40ss@h:1/2 and rediss://:x@h") == "redis://user:***@h:1/2 and rediss://:***@h"
    assert redact("redis://h:6379/1") == "redis://h:6379/1"
