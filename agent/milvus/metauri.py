"""`general.meta_uri` as Milvus 1.x reads it: one greedy regex, no URL decoding.

Milvus splits the URI with `(.*)://(.*):(.*)@(.*):(.*)/(.*)` (core/src/db/Utils.cpp ParseMetaUri; the same
regex validates it in utils/ValidationUtil.cpp ValidateDbURI) and hands the pieces byte for byte to MySQL. So
the password goes into the URI raw: a percent-encoded one reaches MySQL as `p%40ss` and the login is refused.
A raw `@` or `/` still parses (the groups are greedy); a `:` never can (the user group takes it); a URI with
no password or no port does not match at all ("Invalid meta uri").

The operator writes `milvus.meta_uri` without the password (`mysql://USER@HOST:PORT/DB`); the password comes
from its secret. Nothing here ever puts the password in a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jfsmilvus.common.secrets import Secret

MILVUS_META_URI = re.compile(r"(.*)://(.*):(.*)@(.*):(.*)/(.*)")
# The operator's URI: the user is everything up to the last '@' (it may hold one); host, port and database
# are what follows.
_OPERATOR_URI = re.compile(r"(?P<scheme>[^:/@]+)://(?P<user>.*)@(?P<host>[^@:/]*)(?::(?P<port>[^/]*))?/(?P<db>.*)")
FORMAT = "mysql://USER@HOST:PORT/DATABASE (no password: it comes from milvus.meta_password_file or _env)"


class MetaUriError(ValueError):
    """The meta URI cannot be written so that Milvus reads it back; the message never holds the password."""


@dataclass(frozen=True)
class MetaUri:
    scheme: str
    user: str
    host: str
    port: str
    database: str


def parse_meta_uri(value: str) -> MetaUri:
    """The operator's `milvus.meta_uri`, checked against what Milvus can parse once the password is added."""
    match = _OPERATOR_URI.fullmatch(value)
    if match is None:
        raise MetaUriError(f"must look like {FORMAT}")
    scheme, user, host, port, db = (match.group(k) or "" for k in ("scheme", "user", "host", "port", "db"))
    if scheme != "mysql":
        raise MetaUriError(
            f"the scheme must be mysql (Milvus nodes in cluster roles keep their metadata in MySQL): {FORMAT}"
        )
    if ":" in user:
        raise MetaUriError(
            "must not carry a password (it would land in world-readable files); use milvus.meta_password_file"
        )
    if not user:
        raise MetaUriError(f"names no MySQL user: {FORMAT}")
    if not host:
        raise MetaUriError(f"names no host: {FORMAT}")
    if not port:
        raise MetaUriError(
            f"names no port: Milvus's meta_uri regex needs HOST:PORT, a URI without one is 'Invalid meta uri': {FORMAT}"
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise MetaUriError(f"the port must be a number from 1 to 65535: {FORMAT}")
    if not db or "/" in db or "?" in db:
        raise MetaUriError(
            f"must end in one database name, with no '/' and no '?options' (Milvus reads none): {FORMAT}"
        )
    return MetaUri(scheme, user, host, port, db)


def password_problem(password: str) -> str | None:
    """Why Milvus cannot use this MySQL password in its meta_uri, or None."""
    if not password:
        return "is empty: Milvus's meta_uri needs a MySQL password (the regex wants USER:PASSWORD@)"
    if ":" in password:
        return (
            "holds a ':', which Milvus's meta_uri regex gives to the user name (core/src/db/Utils.cpp "
            "ParseMetaUri), so MySQL would be sent a wrong user and password; choose a password without ':'"
        )
    return None


def meta_uri_with_password(uri: MetaUri, password: Secret) -> str:
    """`general.meta_uri` for server_config.yaml: the password raw, and proven to read back as Milvus splits it."""
    raw = password.reveal()
    problem = password_problem(raw)
    if problem:
        raise MetaUriError(f"the MySQL password for milvus.meta_uri {problem}")
    text = f"{uri.scheme}://{uri.user}:{raw}@{uri.host}:{uri.port}/{uri.database}"
    match = MILVUS_META_URI.fullmatch(text)
    if match is None or match.groups() != (uri.scheme, uri.user, raw, uri.host, uri.port, uri.database):
        raise MetaUriError(
            "with its password, milvus.meta_uri would not read back as the same user, password, host, port and "
            "database under Milvus's regex (.*)://(.*):(.*)@(.*):(.*)/(.*)"
        )
    return text
