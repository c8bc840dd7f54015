"""The Mishards `.env` file (python-dotenv format): render it from a discovery config, refusing bad values.

Mishards resolves `WOSERVER` once at start and its static discovery reads `DISCOVERY_STATIC_HOSTS` once, so
the file must be right before Mishards starts: a host with a newline, quote, comma or space, an IPv6
address, or an empty host list is refused and the old file stays. Keys we do not own are kept as they are.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from jfsmilvus.common.milvus1 import MILVUS_PORT
from jfsmilvus.common.secrets import Secret

OWNED_KEYS = (
    "WOSERVER",
    "DISCOVERY_CLASS_NAME",
    "DISCOVERY_STATIC_HOSTS",
    "DISCOVERY_STATIC_PORT",
    "SERVER_PORT",
    "SQLALCHEMY_DATABASE_URI",
)
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_LINE_KEY = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


class MishardsEnvError(ValueError):
    """A value cannot go into the Mishards env file; the message names it and says why."""


@dataclass(frozen=True)
class MishardsDiscovery:
    writer_host: str
    writer_port: int
    hosts: tuple[str, ...]
    discovery_port: int = MILVUS_PORT


def check_host(host: str, what: str) -> None:
    """Refuse anything Mishards' static discovery or WOSERVER cannot take as one plain host."""
    if not host:
        raise MishardsEnvError(f"{what} is empty")
    if any(c in host for c in "\n\r\t ,\"'`$\\#=") or not host.isprintable():
        raise MishardsEnvError(
            f"{what} {host!r} contains a newline, quote, comma, space or other character Mishards cannot parse"
        )
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if (address is not None and address.version == 6) or ":" in host:
        raise MishardsEnvError(f"{what} {host!r} is IPv6; Mishards' static discovery cannot use IPv6 addresses")
    if address is None and not _HOSTNAME.fullmatch(host):
        raise MishardsEnvError(f"{what} {host!r} is neither an IPv4 address nor a host name")


def check_port(port: int, what: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise MishardsEnvError(f"{what} {port!r} is not a port number from 1 to 65535")


def database_uri_with_password(uri: str, password: Secret | None) -> str:
    if password is None:
        return uri
    parts = urlsplit(uri)
    netloc = f"{quote(parts.username or 'root', safe='')}:{quote(password.reveal(), safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def owned_values(
    discovery: MishardsDiscovery, server_port: int, database_uri: str, database_password: Secret | None
) -> dict[str, str]:
    """The keys this agent owns, validated; raises MishardsEnvError naming the first bad value."""
    check_host(discovery.writer_host, "writer address")
    check_port(discovery.writer_port, "writer port")
    check_port(discovery.discovery_port, "discovery port")
    check_port(server_port, "Mishards server port")
    if not discovery.hosts:
        raise MishardsEnvError("the discovery host list is empty; Mishards would refuse to start")
    for host in discovery.hosts:
        check_host(host, "discovery host")
    if len(set(discovery.hosts)) != len(discovery.hosts):
        raise MishardsEnvError(f"the discovery host list {list(discovery.hosts)} names a host twice")
    uri = database_uri_with_password(database_uri, database_password)
    if any(c in uri for c in "\n\r\"'\\"):
        raise MishardsEnvError("the database URI contains a newline, quote or backslash")
    return {
        "WOSERVER": f"tcp://{discovery.writer_host}:{discovery.writer_port}",
        "DISCOVERY_CLASS_NAME": "static",
        "DISCOVERY_STATIC_HOSTS": ",".join(discovery.hosts),
        "DISCOVERY_STATIC_PORT": str(discovery.discovery_port),
        "SERVER_PORT": str(server_port),
        "SQLALCHEMY_DATABASE_URI": uri,
    }


def render_env_file(existing: str | None, values: dict[str, str]) -> str:
    """`existing` with our keys set to `values`: other lines (comments, the operator's keys) kept as they are.

    Each owned key keeps its position if it was there; new ones are appended; duplicates of an owned key
    are dropped (python-dotenv would let the last one win, which is how a hand edit could override us).
    """
    out: list[str] = []
    written: set[str] = set()
    for line in (existing or "").splitlines(keepends=True):
        match = _LINE_KEY.match(line)
        key = match.group(1) if match else None
        if key in values:
            if key not in written:
                out.append(f"{key}={_quote(values[key])}\n")
                written.add(key)
            continue
        out.append(line if line.endswith("\n") else line + "\n")
    missing = [k for k in OWNED_KEYS if k in values and k not in written]
    if missing and not out:
        out.append("# Written by jfs-milvus-agent; the keys below are replaced on every writer change.\n")
    out.extend(f"{key}={_quote(values[key])}\n" for key in missing)
    return "".join(out)


def _quote(value: str) -> str:
    # Single quotes: python-dotenv takes the content literally (no escapes, no ${} expansion).
    return f"'{value}'"


def parse_env_values(text: str) -> dict[str, str]:
    """The keys and values of an env file as python-dotenv would read our lines (last one wins)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE_KEY.match(line)
        if not match:
            continue
        raw = line[match.end() :].strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        values[match.group(1)] = raw
    return values
