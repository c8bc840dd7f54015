"""Secrets come from a file of mode 0600/0400 or from an environment variable, never from agent.yaml.

A `Secret` never shows its value in repr, str, logs or error messages; call `reveal()` at the one
place that hands it to a child process or a client library.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass


class SecretError(Exception):
    """A secret could not be read; the message names where it was looked for, never its value."""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: a file path or an environment variable name (exactly one)."""

    file: str | None = None
    env: str | None = None

    def describe(self) -> str:
        return f"file {self.file}" if self.file else f"environment variable {self.env}"

    def load(self) -> Secret:
        if self.file:
            return Secret(read_secret_file(self.file))
        assert self.env is not None
        value = os.environ.get(self.env)
        if value is None:
            raise SecretError(f"environment variable {self.env} is not set")
        return Secret(value)


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str):
        if "\n" in value or "\r" in value or "\0" in value:
            raise SecretError("a secret may not contain a newline or NUL")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def secret_file_problem(path: str) -> str | None:
    """Why a secret file is unfit (missing, not a file, readable by others), or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "file does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_mode & 0o077:
        return f"has mode {stat.S_IMODE(st.st_mode):04o}; secrets must not be readable by group or others (chmod 600)"
    return None


_read_cache: dict[str, tuple[tuple[int, int, int, int], str]] = {}


def secret_text(data: bytes) -> str:
    """The secret a file's bytes hold (one trailing line ending is what `echo pw > file` leaves; anything else is
    part of the secret); SecretError saying why they cannot be one, never showing a byte of it."""
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SecretError(f"is not UTF-8 text (byte {exc.start})") from None
    for ending in ("\r\n", "\n", "\r"):
        if value.endswith(ending):
            value = value[: -len(ending)]
            break
    if "\n" in value or "\r" in value or "\0" in value:
        raise SecretError("holds a line break or NUL inside the secret (one trailing newline is allowed)")
    return value


def secret_text_problem(path: str) -> str | None:
    """Why the content of a secret file cannot be a secret, or None (also when this process may not read it: the
    daemon's user may)."""
    try:
        with open(path, "rb") as f:
            secret_text(f.read())
    except OSError:
        return None
    except SecretError as exc:
        return str(exc)
    return None


def read_secret_file(path: str) -> str:
    """The secret in `path`; its mode is checked on every call, its content read again only when it changed."""
    problem = secret_file_problem(path)
    if problem:
        raise SecretError(f"secret file {path}: {problem}")
    st = os.stat(path)
    key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
    cached = _read_cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    with open(path, "rb") as f:
        data = f.read()
    try:
        value = secret_text(data)
    except SecretError as exc:
        raise SecretError(f"secret file {path} {exc}") from None
    _read_cache[path] = (key, value)
    return value
