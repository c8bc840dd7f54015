"""systemd unit names for paths, as `systemd-escape --path --suffix=mount` computes them (pure)."""

from __future__ import annotations

_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")


def _escape_char(c: str) -> str:
    return "".join(f"\\x{b:02x}" for b in c.encode("utf-8"))


def escape_path(path: str) -> str:
    """The escaped form of an absolute path: '/' is '-', '/mnt/my-vol' is 'mnt-my\\x2dvol'.

    Like systemd, the path is simplified first (repeated and trailing slashes, '.' components);
    a relative path or one with '..' is refused, since its name would not map back to it.
    """
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{path!r} is not a normalized path (contains '..')")
    if not parts:
        return "-"
    joined = "/".join(parts)
    out = []
    for i, c in enumerate(joined):
        if c == "/":
            out.append("-")
        elif i == 0 and c == ".":
            out.append("\\x2e")
        elif c in _ALLOWED:
            out.append(c)
        else:
            out.append(_escape_char(c))
    return "".join(out)


def mount_unit_name(path: str) -> str:
    return escape_path(path) + ".mount"
