"""How Mishards reads its settings (`mishards/settings.py:1-12`, `discovery/plugins/static_provider.py:32-34`).

- `FROM_EXAMPLE` is read from the real environment only (before any file): true makes it load
  `./mishards/.env.example` relative to the working directory; otherwise environs' `read_env()` finds `.env`
  walking up from the settings module's folder (`/source/mishards/.env` in the image).
- Neither load overrides: a key of the real environment (a compose `environment:` block) beats the file.
- python-dotenv 0.10.3 expands `${VAR}` in every value, single-quoted ones too (`dotenv/main.py:184-207`),
  from the real environment first, then the file's earlier keys, else "".

Pure functions of (environment, file texts); `load_settings` does the file reads.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

EXAMPLE_FILE = "./mishards/.env.example"
TRUTHY = {"t", "true", "1", "on", "y", "yes"}  # marshmallow's Boolean, as environs' env.bool parses
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")
_POSIX_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class SettingsError(RuntimeError):
    """A setting Mishards needs is missing or unusable: it dies at import (environs' EnvError)."""


def parse_dotenv(text: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The key/values python-dotenv 0.10.3 takes from `text`, `${VAR}` expanded even inside single quotes."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = _LINE.match(raw)
        if not match:
            continue
        key, value = match.group(1), match.group(2)
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = codecs.decode(value[1:-1], "unicode-escape")
        else:
            value = value.split(" #", 1)[0].strip()
        values[key] = _POSIX_VARIABLE.sub(lambda m: environ.get(m.group(1), values.get(m.group(1), "")), value)
    return values


def merged_environment(environ: Mapping[str, str], file_text: str | None) -> dict[str, str]:
    """What `os.environ` holds after the load: the file's keys only where the environment has none."""
    loaded = parse_dotenv(file_text or "", environ)
    return {**loaded, **environ}


def env_file_path(environ: Mapping[str, str], cwd: Path, module_dir: Path) -> Path | None:
    """The file Mishards loads: the example (FROM_EXAMPLE) or the first `.env` up from the module's folder."""
    if environ.get("FROM_EXAMPLE", "").strip().lower() in TRUTHY:
        return cwd / EXAMPLE_FILE
    for folder in (module_dir, *module_dir.parents):
        if (folder / ".env").is_file():
            return folder / ".env"
    return None


@dataclass(frozen=True)
class Settings:
    woserver: str  # tcp://host:port as written
    woserver_host: str
    woserver_port: int
    hosts: tuple[tuple[str, int], ...]  # DISCOVERY_STATIC_HOSTS, each with DISCOVERY_STATIC_PORT unless it has one
    server_port: int
    database_uri: str
    max_retry: int  # MAX_RETRY (settings.py:17): tries of each connection
    connect_timeout_s: float  # the stand-in's knob for pymilvus's 30 s connect timeout (pool.py:228-235)
    env_file: str | None

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(f"{h}:{p}" for h, p in self.hosts)


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError as exc:
        raise SettingsError(f'Environment variable "{key}" invalid: {raw!r} is not an integer') from exc


def settings_from(env: Mapping[str, str], env_file: str | None = None) -> Settings:
    """Settings from the merged environment; raises SettingsError as environs would (a required key missing)."""
    for key in ("WOSERVER", "SQLALCHEMY_DATABASE_URI"):
        if not env.get(key):
            raise SettingsError(f'Environment variable "{key}" not set')
    if env.get("DISCOVERY_CLASS_NAME", "static") != "static":
        raise SettingsError("the stand-in models the static discovery only (DISCOVERY_CLASS_NAME=static)")
    url = urlparse(env["WOSERVER"])
    if not url.hostname:
        raise SettingsError(f"WOSERVER {env['WOSERVER']!r} names no host")
    port = _int(env, "DISCOVERY_STATIC_PORT", 19530)
    hosts = []
    for item in (h.strip() for h in env.get("DISCOVERY_STATIC_HOSTS", "").split(",")):  # env.list + str.strip
        if not item:
            continue
        name, _, own_port = item.partition(":")
        hosts.append((name, int(own_port) if own_port else port))
    timeout = env.get("STANDIN_CONNECT_TIMEOUT_S", "30")
    try:
        connect_timeout_s = float(timeout)
    except ValueError as exc:
        raise SettingsError(f"STANDIN_CONNECT_TIMEOUT_S {timeout!r} is not a number") from exc
    return Settings(
        woserver=env["WOSERVER"],
        woserver_host=url.hostname,
        woserver_port=url.port or 80,  # server.py:58: `url.port or 80`
        hosts=tuple(hosts),
        server_port=_int(env, "SERVER_PORT", 19530),
        database_uri=env["SQLALCHEMY_DATABASE_URI"],
        max_retry=_int(env, "MAX_RETRY", 3),
        connect_timeout_s=connect_timeout_s,
        env_file=env_file,
    )


def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    path = env_file_path(env, cwd or Path.cwd(), Path(__file__).resolve().parent)
    text = None
    if path is not None:
        try:
            text = path.read_text()
        except OSError:
            text = None  # load_dotenv on a missing file loads nothing
    return settings_from(merged_environment(env, text), str(path) if path else None)
