"""Parsing /proc/self/mountinfo (pure): which filesystem is mounted where, from what source."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(value: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as \\NNN octal escapes."""
    if "\\" not in value:
        return value
    raw = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), value)
    # Each escape stands for one byte; re-decode so escaped UTF-8 bytes come back as characters.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


@dataclass(frozen=True)
class MountInfo:
    mount_id: int
    parent_id: int
    device: str
    root: str
    mountpoint: str
    mount_options: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]


def parse_line(line: str) -> MountInfo | None:
    """One mountinfo line; None when it is malformed."""
    fields = line.split()
    try:
        sep = fields.index("-", 6)
    except ValueError:
        return None
    if len(fields) < sep + 3:
        return None
    try:
        mount_id, parent_id = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return MountInfo(
        mount_id=mount_id,
        parent_id=parent_id,
        device=fields[2],
        root=unescape(fields[3]),
        mountpoint=unescape(fields[4]),
        mount_options=tuple(fields[5].split(",")),
        fstype=fields[sep + 1],
        source=unescape(fields[sep + 2]),
        super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else (),
    )


def parse(text: str) -> list[MountInfo]:
    return [m for m in (parse_line(line) for line in text.splitlines()) if m is not None]


def find(mounts: list[MountInfo], mountpoint: str) -> MountInfo | None:
    """The mount visible at `mountpoint`: the last one listed there (mounts stack in order)."""
    target = os.path.normpath(mountpoint)
    found = None
    for m in mounts:
        if m.mountpoint == target:
            found = m
    return found


def device_at(text: str, path: str) -> str | None:
    """The device (major:minor) of the mount visible at `path` in a mountinfo text; None when none is there."""
    found = find(parse(text), path)
    return found.device if found is not None else None


def escape(value: str) -> str:
    """A path as the kernel writes it in mountinfo (the inverse of `unescape` for the characters it escapes)."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in value)


def find_in_text(text: str, mountpoint: str) -> MountInfo | None:
    """`find` on mountinfo text, parsing only the lines that may name `mountpoint` (a Docker host lists many):
    those holding it as the kernel escapes it, and any line with an escape in it."""
    needle = f" {escape(os.path.normpath(mountpoint))} "
    return find(parse("\n".join(line for line in text.splitlines() if needle in line or "\\" in line)), mountpoint)


def is_juicefs(m: MountInfo, volume_name: str) -> bool:
    return m.fstype == "fuse.juicefs" and m.source == f"JuiceFS:{volume_name}"
