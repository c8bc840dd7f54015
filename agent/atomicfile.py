"""Writing a file so that readers see the old content or the new, never a torn one."""

from __future__ import annotations

import contextlib
import os
import tempfile


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_atomic(path: str, content: str, mode: int = 0o644) -> bool:
    """Replace `path` with `content` (temp file, fsync, rename, fsync dir).

    Returns False and leaves the file untouched (mtime included) when it already holds exactly
    `content` with `mode`. The new file keeps the owner of the old one when there was one.
    """
    data = content.encode("utf-8")
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            same = f.read() == data
        if same and (st.st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        st = None
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        if st is not None:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, st.st_uid, st.st_gid)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
    return True


def fsync_dir(path: str) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
