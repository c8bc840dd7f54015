"""The agent's one fstab line per JuiceFS volume: parse, render, and apply it to a file's text (pure).

Only JuiceFS lines (juicefs, fuse.juicefs, juicefs-*) whose mountpoint is ours are touched; every other line,
comment and blank keeps its bytes. Fields are escaped the fstab way: space, tab, newline and backslash become
\\040, \\011, \\012 and \\134.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from agent.config import VolumeSettings
from agent.mounthelper import ENV_OPTION, FSTYPE, JUICEFS_OPTION

# Lines of these types (and juicefs-*, as the agent's own, juicefs-jfsmilvus) are JuiceFS lines: one for the
# agent's mountpoint is replaced by the agent's, whichever of them it is.
JUICEFS_FSTYPES = ("juicefs", "fuse.juicefs")
_ESCAPES = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}
_OCTAL = re.compile(r"\\([0-7]{3})")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def redact(text: str) -> str:
    """`text` with any password inside a URL (scheme://user:PASSWORD@host) replaced by ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def escape_field(value: str) -> str:
    if value == "":
        raise ValueError("an fstab field cannot be empty")
    return "".join(_ESCAPES.get(c, c) for c in value)


def unescape_field(value: str) -> str:
    """Undo \\NNN octal escapes (bytes, so UTF-8 written escaped comes back whole)."""
    if "\\" not in value:
        return value
    out = bytearray()
    pos = 0
    for m in _OCTAL.finditer(value):
        out += value[pos : m.start()].encode("utf-8")
        out.append(int(m.group(1), 8) & 0xFF)
        pos = m.end()
    out += value[pos:].encode("utf-8")
    return out.decode("utf-8", errors="surrogateescape")


@dataclass(frozen=True)
class FstabEntry:
    source: str
    mountpoint: str
    fstype: str = "juicefs"
    options: tuple[str, ...] = field(default_factory=tuple)
    freq: int = 0
    passno: int = 0

    def same_target(self, other: FstabEntry) -> bool:
        return (
            os.path.normpath(self.mountpoint) == os.path.normpath(other.mountpoint)
            and is_juicefs_fstype(self.fstype)
            and is_juicefs_fstype(other.fstype)
        )


def is_juicefs_fstype(fstype: str) -> bool:
    return fstype in JUICEFS_FSTYPES or fstype.startswith("juicefs-")


def parse_line(line: str) -> FstabEntry | None:
    """One fstab line (without or with its newline) as an entry; None for comments, blanks and junk."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    fields = stripped.split()
    if len(fields) < 3:
        return None
    try:
        freq = int(fields[4]) if len(fields) > 4 else 0
        passno = int(fields[5]) if len(fields) > 5 else 0
    except ValueError:
        return None
    options = tuple(o for o in unescape_field(fields[3]).split(",") if o) if len(fields) > 3 else ()
    return FstabEntry(
        source=unescape_field(fields[0]),
        mountpoint=unescape_field(fields[1]),
        fstype=unescape_field(fields[2]),
        options=options,
        freq=freq,
        passno=passno,
    )


def parse(text: str) -> list[FstabEntry]:
    return [e for e in (parse_line(line) for line in text.splitlines()) if e is not None]


def render(entry: FstabEntry) -> str:
    """The entry as one line, without a newline."""
    return " ".join(
        (
            escape_field(entry.source),
            escape_field(entry.mountpoint),
            escape_field(entry.fstype),
            escape_field(",".join(entry.options) or "defaults"),
            str(entry.freq),
            str(entry.passno),
        )
    )


def entry_for_volume(
    volume: VolumeSettings, fstype: str = FSTYPE, env_file: str | None = None, juicefs: str | None = None
) -> FstabEntry:
    """What the agent wants in fstab for `volume`: read-only by default, so a rebooted node never writes.

    The type's helper (agent/mounthelper.py) reads `env_file` (the password, never in fstab) into the
    environment of `juicefs`; both paths are options of the line, for it and for the package's purge.
    """
    if urlsplit(volume.meta_url).password:
        raise ValueError(f"volume {volume.name}: the META-URL carries a password; it must not go into fstab")
    named = {"cache_dir": volume.cache_dir, "the env file": env_file, "the juicefs binary": juicefs}
    for what, path in named.items():
        if path is not None and ("," in path or '"' in path):
            raise ValueError(f"volume {volume.name}: {what} {path!r} contains a comma or a double quote")
    options = (
        "_netdev",
        "nofail",
        "ro",
        f"cache-dir={volume.cache_dir}",
        f"cache-size={volume.cache_size_mib}",
        *volume.options,
        *((f"{ENV_OPTION}={env_file}",) if env_file is not None else ()),
        *((f"{JUICEFS_OPTION}={juicefs}",) if juicefs is not None else ()),
    )
    return FstabEntry(
        source=volume.meta_url,
        mountpoint=os.path.normpath(volume.mountpoint),
        fstype=fstype,
        options=options,
    )


def describe_difference(old: FstabEntry, new: FstabEntry) -> str:
    parts = []
    for name in ("source", "mountpoint", "fstype", "options", "freq", "passno"):
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            if name == "options":
                a, b = ",".join(a), ",".join(b)
            parts.append(redact(f"{name} {a!r} -> {b!r}"))
    return "; ".join(parts)


def apply_entry(text: str, entry: FstabEntry) -> tuple[str, str | None]:
    """`text` with exactly one line for `entry`'s mountpoint, and what changed (None: nothing).

    The first juicefs line for the mountpoint is kept (left byte for byte when it already says the
    same) or rewritten in place; further ones are removed; with none, the line is appended.
    """
    lines = text.splitlines(keepends=True)
    wanted = render(entry)
    out: list[str] = []
    changes: list[str] = []
    found = False
    for number, line in enumerate(lines, start=1):
        parsed = parse_line(line)
        if parsed is None or not parsed.same_target(entry):
            out.append(line)
            continue
        if found:
            changes.append(f"removed duplicate line {number} for {entry.mountpoint} ({redact(line.rstrip())!r})")
            continue
        found = True
        if parsed == entry:
            out.append(line)
            continue
        ending = line[len(line.rstrip("\r\n")) :] or "\n"
        out.append(wanted + ending)
        changes.append(f"fixed line {number} for {entry.mountpoint}: {describe_difference(parsed, entry)}")
    if not found:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(wanted + "\n")
        changes.append(f"added line for {entry.mountpoint}: {wanted}")
    if not changes:
        return text, None
    return "".join(out), "; ".join(changes)
