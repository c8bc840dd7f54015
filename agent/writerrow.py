"""Read the cluster row (who writes, at which epoch) straight from MySQL, with a read-only account.

Used by a writer to renew its lease while no coordinator answers. The row is the coordinator's (its schema in
coordinator/schema.py; tests/test_store.py reads it back with this query); the agent package does not import the
coordinator package.
"""

from __future__ import annotations

import pymysql
from jfsmilvus.common.secrets import SecretError

from agent.config import MysqlReadSettings

WRITER_ROW_QUERY = "SELECT writer, epoch FROM cluster WHERE id = 1"


class WriterRowError(Exception):
    """The row could not be read; the message says why in one line."""


def read_writer_row(settings: MysqlReadSettings) -> tuple[str | None, int]:
    """(writer, epoch) of the cluster row; raises WriterRowError when MySQL does not answer in time."""
    try:
        password = settings.password.load().reveal() if settings.password else ""
    except SecretError as exc:
        raise WriterRowError(str(exc)) from exc
    try:
        connection = pymysql.connect(
            host=settings.host,
            port=settings.port,
            user=settings.user,
            password=password,
            database=settings.database,
            connect_timeout=settings.timeout_s,
            read_timeout=settings.timeout_s,
            write_timeout=settings.timeout_s,
            autocommit=True,
        )
    except pymysql.MySQLError as exc:
        raise WriterRowError(
            f"cannot connect to MySQL {settings.host}:{settings.port} as {settings.user}: {exc}"
        ) from exc
    try:
        with connection.cursor() as cursor:
            cursor.execute(WRITER_ROW_QUERY)
            row = cursor.fetchone()
    except pymysql.MySQLError as exc:
        raise WriterRowError(f"MySQL {settings.host}:{settings.port}: {WRITER_ROW_QUERY} failed: {exc}") from exc
    finally:
        connection.close()
    if row is None:
        raise WriterRowError(f"MySQL {settings.host}:{settings.port}/{settings.database} has no cluster row id 1")
    writer, epoch = row
    return (str(writer) if writer else None), int(epoch)
