"""The env file the mount helper hands JuiceFS its metadata password from, and the mount unit's runtime drop-in
(pure rendering)."""

from __future__ import annotations

from urllib.parse import urlsplit

HEADER = "# Written by jfs-milvus-agent; edits are overwritten.\n"
_NEEDS_BACKSLASH = '"\\`$'


def quote_value(value: str) -> str:
    """`value` double-quoted for systemd's EnvironmentFile= parser (and a POSIX shell alike)."""
    if any(c in value for c in "\n\r\0"):
        raise ValueError("an environment value may not contain a newline, carriage return or NUL")
    return '"' + "".join("\\" + c if c in _NEEDS_BACKSLASH else c for c in value) + '"'


def password_variables(meta_url: str) -> tuple[str, ...]:
    """The variables JuiceFS reads the metadata password from, for this META-URL's scheme."""
    scheme = urlsplit(meta_url).scheme
    if scheme in ("redis", "rediss", "unix"):
        return ("META_PASSWORD", "REDIS_PASSWORD")
    return ("META_PASSWORD",)


def render_env_file(variables: dict[str, str]) -> str:
    lines = [HEADER]
    for name, value in variables.items():
        lines.append(f"{name}={quote_value(value)}\n")
    return "".join(lines)


def render_mode_dropin(options: tuple[str, ...], volume_name: str) -> str:
    """A runtime drop-in (in /run, gone at boot) that mounts the fstab line's unit with `options` instead."""
    # '%' starts a systemd specifier; a literal one is written '%%'.
    joined = ",".join(options).replace("%", "%%")
    if any(c in joined for c in "\n\r\0"):
        raise ValueError("mount options may not contain a newline, carriage return or NUL")
    return (
        HEADER
        + f"# The mount of volume {volume_name} with the options this node's role needs, until the next boot.\n"
        + "[Mount]\n"
        + f"Options={joined}\n"
    )
