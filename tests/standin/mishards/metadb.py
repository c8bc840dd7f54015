"""The Milvus meta database as Mishards reads it for a search (`file_based_hash_ring_router.py:55-103`).

SQLALCHEMY_DATABASE_URI (`mysql+pymysql://user:password@host:port/db?...`, user and password percent-encoded
as SQLAlchemy 1.3 decodes them), read with PyMySQL at each search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pymysql

from .routing import SegmentRow

TABLE_TO_DELETE = 1
VISIBLE_FILE_TYPES = (1, 2, 3)  # RAW, TO_INDEX, INDEX


class MetaReadError(RuntimeError):
    pass


@dataclass(frozen=True)
class MetaLogin:
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, uri: str) -> MetaLogin:
        parts = urlsplit(uri)
        if not parts.scheme.startswith("mysql"):
            raise MetaReadError(f"the stand-in reads MySQL meta only, not {parts.scheme!r}")
        return cls(
            parts.hostname or "localhost",
            parts.port or 3306,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            parts.path.lstrip("/"),
        )


def visible_files(login: MetaLogin, collection: str, partition_tags: list[str]) -> list[SegmentRow]:
    """The RAW/TO_INDEX/INDEX files of the collection (and its partitions); [] when none; raises when the
    collection is unknown to the meta database (CollectionNotFoundError)."""
    try:
        conn = pymysql.connect(
            host=login.host,
            port=login.port,
            user=login.user,
            password=login.password,
            database=login.database,
            connect_timeout=5,
            read_timeout=10,
        )
    except pymysql.MySQLError as exc:
        raise MetaReadError(f"meta database: {exc}") from exc
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_id, partition_tag FROM Tables WHERE (table_id = %s OR owner_table = %s) AND state != %s",
                (collection, collection, TABLE_TO_DELETE),
            )
            tables = cur.fetchall()
            if not tables:
                raise MetaReadError(f"{collection}:{partition_tags} not found in metadata")
            if partition_tags:
                # A tag selects its partition; `_default` the collection itself (router lines 60-97).
                names = [
                    t
                    for t, tag in tables
                    if (t == collection and "_default" in partition_tags)
                    or (t != collection and any(re.match(p, tag) for p in partition_tags))
                ]
            else:
                names = [t for t, _ in tables]
            if not names:
                return []
            marks = ", ".join(["%s"] * len(names))
            types = ", ".join(str(t) for t in VISIBLE_FILE_TYPES)
            cur.execute(
                f"SELECT id, updated_time FROM TableFiles WHERE table_id IN ({marks}) AND file_type IN ({types})",
                tuple(names),
            )
            return [SegmentRow(int(i), int(u)) for i, u in cur.fetchall()]
    except pymysql.MySQLError as exc:
        raise MetaReadError(f"meta database: {exc}") from exc
    finally:
        conn.close()
