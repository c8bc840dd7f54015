"""Reading a text file with one clear error when it is not UTF-8; writing one so that readers see the old
content or the new, never a torn one."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile


class NotUtf8Error(OSError):
    """A file holds bytes that are not UTF-8 text. An OSError (EILSEQ, "illegal byte sequence"), so every caller
    that handles a file it cannot read handles this one too; `str()` is one line naming the file."""

    def __init__(self, path: str, offset: int, byte: int):
        super().__init__(errno.EILSEQ, f"not UTF-8 text (byte {offset} is 0x{byte:02x})", path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def not_utf8(path: str, data: bytes) -> NotUtf8Error | None:
    """The error to raise for `data` read from `path`, None when it is UTF-8 text."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return NotUtf8Error(path, exc.start, data[exc.start])
    return None


def read_utf8(path: str, errors: str = "strict") -> str:
    """The file's text; NotUtf8Error when it is not UTF-8 (unless `errors` is "surrogateescape": a file shared
    with others, whose bytes are kept as they are when written back), FileNotFoundError when it is missing."""
    try:
        with open(path, encoding="utf-8", errors=errors) as f:
            return f.read()
    except UnicodeDecodeError:
        pass
    # Decoded in chunks, the error's offset is within a chunk: find the first bad byte of the whole file.
    with open(path, "rb") as f:
        error = not_utf8(path, f.read())
    raise error or NotUtf8Error(path, 0, 0)


def read_text(path: str, errors: str = "strict") -> str | None:
    """`read_utf8`, but None when the file does not exist."""
    try:
        return read_utf8(path, errors)
    except FileNotFoundError:
        return None


def line_not_utf8(text: str) -> int | None:
    """The first line (from 1) of a text read with errors="surrogateescape" that held bytes that are not UTF-8;
    None when every byte was UTF-8."""
    for number, line in enumerate(text.splitlines(), 1):
        if any("\udc80" <= c <= "\udcff" for c in line):
            return number
    return None


def file_sha256(path: str) -> str | None:
    """The SHA-256 of the file's bytes (whatever they are), None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def write_atomic(path: str, content: str, mode: int = 0o644, errors: str = "strict") -> bool:
    """Replace `path` with `content` (temp file, fsync, rename, fsync dir); `errors="surrogateescape"` writes back
    the bytes a `read_text(..., errors="surrogateescape")` kept.

    Returns False and leaves the file untouched (mtime included) when it already holds exactly
    `content` with `mode`. The new file keeps the owner of the old one when there was one.
    """
    data = content.encode("utf-8", errors=errors)
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
