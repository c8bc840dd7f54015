"""Reading a YAML mapping into typed settings while collecting every problem at once.

Each problem names the file, the dotted key, the bad value and what is allowed, so an operator can
fix all of them in one edit. Unknown keys are problems too, with a did-you-mean. Values of keys that
look like secrets are never echoed back.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

from jfsmilvus.common.atomicfile import read_utf8
from jfsmilvus.common.secrets import SecretRef, secret_file_problem, secret_text_problem

T = TypeVar("T")

_REQUIRED: Any = object()
_SECRET_WORDS = ("password", "passwd", "secret", "token")


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    key: str
    value: object
    allowed: str

    def __str__(self) -> str:
        if self.value is _MISSING:
            return f"{self.file}: {self.key}: missing: {self.allowed}"
        return f"{self.file}: {self.key} = {_show(self.key, self.value)}: {self.allowed}"


class ConfigError(Exception):
    """Raised by a loader with every problem it found."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def looks_secret(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1].lower()
    return any(word in leaf for word in _SECRET_WORDS) and not leaf.endswith(("_file", "_env"))


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")


def redact(text: str) -> str:
    """Hide the password of any URL in `text` (scheme://user:PASSWORD@host)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _show(key: str, value: object) -> str:
    if looks_secret(key):
        return "'***'"
    text = redact(repr(value))
    # A path is shown whole (up to PATH_MAX): the line must name the file.
    limit = 4096 if isinstance(value, str) and value.startswith("/") else 80
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


class Section:
    """A view of one mapping in the file; getters record problems instead of raising."""

    def __init__(self, file: str, path: str, data: object, problems: list[ConfigProblem]):
        self.file = file
        self.path = path
        self.problems = problems
        self._seen: set[str] = set()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.problem("", data, "must be a mapping of keys to values")
            data = {}
        self.data: dict[str, Any] = data

    # -- bookkeeping -------------------------------------------------------------------------------
    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path and name else (self.path or name)

    def problem(self, name: str, value: object, allowed: str) -> None:
        self.problems.append(ConfigProblem(self.file, self.key(name) or "(top level)", value, allowed))

    def missing(self, name: str, why: str) -> None:
        """A required key is absent; `why` says what it must hold and why it is needed."""
        self.problems.append(ConfigProblem(self.file, self.key(name), _MISSING, why))

    def has(self, name: str) -> bool:
        return name in self.data

    def finish(self) -> None:
        """Report every key that no getter asked for."""
        known = sorted(self._seen)
        for name in self.data:
            if name in self._seen:
                continue
            hint = did_you_mean(str(name), known)
            if looks_secret(str(name)):
                allowed = (
                    "secrets never go in this file: put the value in a file of mode 0600 and name it "
                    f"with '{name}_file', or name an environment variable with '{name}_env'"
                )
            elif hint:
                allowed = f"unknown key; did you mean '{hint}'? (allowed here: {', '.join(known)})"
            else:
                allowed = f"unknown key (allowed here: {', '.join(known) or 'none'})"
            self.problem(str(name), self.data[name], allowed)

    def _raw(self, name: str, default: Any) -> Any:
        self._seen.add(name)
        if name not in self.data or self.data[name] is None:
            if default is _REQUIRED:
                self.problems.append(ConfigProblem(self.file, self.key(name), _MISSING, "this key is required"))
            return _MISSING
        return self.data[name]

    # -- typed getters -----------------------------------------------------------------------------
    def section(self, name: str, required: bool = False) -> Section:
        raw = self._raw(name, _REQUIRED if required else None)
        return Section(self.file, self.key(name), None if raw is _MISSING else raw, self.problems)

    def sections(self, name: str) -> list[Section]:
        raw = self._raw(name, [])
        if raw is _MISSING:
            return []
        if not isinstance(raw, list):
            self.problem(name, raw, "must be a list of mappings")
            return []
        return [Section(self.file, f"{self.key(name)}[{i}]", item, self.problems) for i, item in enumerate(raw)]

    def string(
        self,
        name: str,
        default: Any = _REQUIRED,
        *,
        pattern: str | None = None,
        allowed: str = "",
        check: Callable[[str], str | None] | None = None,
    ) -> Any:
        raw = self._raw(name, default)
        if raw is _MISSING:
            return None if default is _REQUIRED else default
        if not isinstance(raw, str) or not raw:
            self.problem(name, raw, "must be a non-empty string" + (f" ({allowed})" if allowed else ""))
            return None if default is _REQUIRED else default
        if pattern and not re.fullmatch(pattern, raw):
            self.problem(name, raw, allowed or f"must match {pattern}")
            return None if default is _REQUIRED else default
        if check:
            complaint = check(raw)
            if complaint:
                self.problem(name, raw, complaint)
                return None if default is _REQUIRED else default
        return raw

    def path_(self, name: str, default: Any = _REQUIRED) -> Any:
        return self.string(name, default, check=lambda v: None if v.startswith("/") else "must be an absolute path")

    def choice(self, name: str, choices: Iterable[str], default: Any = _REQUIRED) -> Any:
        options = list(choices)
        raw = self._raw(name, default)
        if raw is _MISSING:
            return None if default is _REQUIRED else default
        if raw not in options:
            hint = did_you_mean(str(raw), options)
            more = f"; did you mean '{hint}'?" if hint else ""
            self.problem(name, raw, f"must be one of: {', '.join(options)}{more}")
            return None if default is _REQUIRED else default
        return raw

    def boolean(self, name: str, default: Any = _REQUIRED) -> Any:
        raw = self._raw(name, default)
        if raw is _MISSING:
            return None if default is _REQUIRED else default
        if not isinstance(raw, bool):
            self.problem(name, raw, "must be true or false")
            return None if default is _REQUIRED else default
        return raw

    def number(
        self,
        name: str,
        default: Any = _REQUIRED,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
    ) -> Any:
        raw = self._raw(name, default)
        if raw is _MISSING:
            return None if default is _REQUIRED else default
        kind = "an integer" if integer else "a number"
        ok_type = isinstance(raw, int) if integer else isinstance(raw, int | float)
        bounds = []
        if minimum is not None:
            bounds.append(f">= {minimum:g}")
        if maximum is not None:
            bounds.append(f"<= {maximum:g}")
        allowed = f"must be {kind}" + (f" {' and '.join(bounds)}" if bounds else "")
        if (
            isinstance(raw, bool)
            or not ok_type
            or (minimum is not None and raw < minimum)
            or (maximum is not None and raw > maximum)
        ):
            self.problem(name, raw, allowed)
            return None if default is _REQUIRED else default
        return raw

    def string_list(
        self,
        name: str,
        default: Any = _REQUIRED,
        *,
        check: Callable[[str], str | None] | None = None,
    ) -> Any:
        raw = self._raw(name, default)
        if raw is _MISSING:
            return None if default is _REQUIRED else default
        if not isinstance(raw, list):
            self.problem(name, raw, "must be a list of strings")
            return None if default is _REQUIRED else default
        out: list[str] = []
        for i, item in enumerate(raw):
            complaint = "must be a non-empty string" if not isinstance(item, str) or not item else None
            if complaint is None and check:
                complaint = check(item)
            if complaint:
                self.problem(f"{name}[{i}]", item, complaint)
            else:
                out.append(item)
        return out

    def int_list(self, name: str, default: Any = _REQUIRED, *, minimum: int = 0) -> Any:
        raw = self._raw(name, default)
        if raw is _MISSING:
            return None if default is _REQUIRED else default
        if not isinstance(raw, list) or any(isinstance(i, bool) or not isinstance(i, int) or i < minimum for i in raw):
            self.problem(name, raw, f"must be a list of integers >= {minimum}")
            return None if default is _REQUIRED else default
        return list(raw)


# -- checks shared by both daemons' configs ----------------------------------------------------------
def check_ipv4(value: str) -> str | None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return "must be an IPv4 address (Mishards cannot route to IPv6 or names that change)"
    return None


def check_host_port(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be HOST:PORT with a port from 1 to 65535"
    if "[" in host or host.count(":"):
        return "must be HOST:PORT with an IPv4 address or a name (no IPv6)"
    return None


NAME_PATTERN = r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?"
NAME_ALLOWED = "must be 1-63 lower-case letters, digits, '.' or '-', starting and ending with a letter or digit"


# -- whole files ---------------------------------------------------------------------------------------------
def load_config_file(path: str, read: Callable[[Section], T | None]) -> T:
    """Read `path` and hand its top-level mapping to `read`; ConfigError with every problem found."""
    try:
        text = read_utf8(path)
    except OSError as exc:
        raise ConfigError([ConfigProblem(path, "(file)", path, f"cannot be read: {exc.strerror}")]) from exc
    return parse_config_text(text, path, read)


def parse_config_text(text: str, path: str, read: Callable[[Section], T | None]) -> T:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError([ConfigProblem(path, where, "(YAML)", f"is not valid YAML: {exc}")]) from exc
    problems: list[ConfigProblem] = []
    top = Section(path, "", data, problems)
    config = read(top)
    top.finish()
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def pem_file_problem(path: str) -> str | None:
    """Why a TLS file (CA, certificate, key) cannot be used, or None; a file this process may not read is left to
    the daemon's user, who may. Never shows a byte of it: a key is a secret."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return "does not exist"
    except IsADirectoryError:
        return "is a directory"
    except OSError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"is not a PEM file: not UTF-8 text (byte {exc.start})"
    if "-----BEGIN " not in text:
        return "is not a PEM file (it has no -----BEGIN line)"
    return None


def check_tls_files(sec: Section, files: dict[str, str | None]) -> None:
    """A problem for each TLS file (`{"ca": path, ...}`) that cannot be used."""
    for key, path in files.items():
        problem = pem_file_problem(path) if path else None
        if problem:
            sec.problem(key, path, f"the TLS file {problem}")


def secret_ref(sec: Section, stem: str, required: bool = False) -> SecretRef | None:
    """Read `<stem>_file` or `<stem>_env`; exactly one when required, at most one otherwise."""
    file_ = sec.path_(f"{stem}_file", None)
    env = sec.string(f"{stem}_env", None, pattern=r"[A-Za-z_][A-Za-z0-9_]*", allowed="an environment variable name")
    if file_ and env:
        sec.problem(f"{stem}_env", env, f"give either {stem}_file or {stem}_env, not both")
        return None
    if file_:
        problem = secret_file_problem(file_) or secret_text_problem(file_)
        if problem:
            sec.problem(f"{stem}_file", file_, f"the secret file {problem}")
        return SecretRef(file=file_)
    if env:
        return SecretRef(env=env)
    if required:
        sec.missing(f"{stem}_file", f"a secret is required; set {stem}_file (a file of mode 0600) or {stem}_env")
    return None
