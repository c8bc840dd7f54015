"""Creating and migrating the coordinator's MySQL schema (the statements are in coordinator/schema.py)."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pymysql

from coordinator.mysqlsession import LOG, MysqlSession, close_quietly, connect, describe, quoted_database
from coordinator.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_TABLE
from coordinator.storeapi import StoreError

# Migrations run DDL, which may take longer than an ordinary statement.
MIGRATE_STATEMENT_TIMEOUT_S = 30.0
MIGRATE_LOCK_WAIT_S = 10


class SchemaMigration(MysqlSession):
    """`migrate`: the one call that may run before the database holds this cluster's migrated schema."""

    def migrate(self) -> int:
        """Create the database and tables if missing, apply pending migrations in order, insert the cluster row.

        Idempotent; concurrent callers serialize on a named lock. Returns the schema version.
        """
        database = self.settings.database
        quoted = quoted_database(database)
        lock_name = f"jfs_milvus.migrate.{database}"
        if len(lock_name) > 64:
            lock_name = "jfs_milvus.migrate." + hashlib.sha256(database.encode()).hexdigest()[:40]
        with self._lock:
            self._drop()  # the next call re-checks the schema on a fresh connection
            conn = None
            try:
                conn = connect(
                    self.settings,
                    database=None,
                    read_timeout_s=max(self.settings.read_timeout_s, MIGRATE_STATEMENT_TIMEOUT_S),
                )
                with conn.cursor() as cur:
                    cur.execute("SELECT GET_LOCK(%s, %s)", (lock_name, MIGRATE_LOCK_WAIT_S))
                    if cur.fetchone()[0] != 1:
                        raise StoreError(
                            f"migrate: another coordinator held the migration lock on {self.settings.where()} "
                            f"for {MIGRATE_LOCK_WAIT_S} s"
                        )
                    try:
                        return self._migrate_locked(cur, conn, quoted)
                    finally:
                        with contextlib.suppress(Exception):
                            cur.execute("SELECT RELEASE_LOCK(%s)", (lock_name,))
            except StoreError:
                raise
            except (pymysql.err.Error, OSError) as exc:
                raise StoreError(f"migrate {self.settings.where()}: {describe(exc, self.settings.password)}") from None
            finally:
                if conn is not None:
                    close_quietly(conn)

    def _migrate_locked(self, cur: Any, conn: Any, quoted_database: str) -> int:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quoted_database} CHARACTER SET utf8mb4")
        conn.select_db(self.settings.database)
        cur.execute(SCHEMA_VERSION_TABLE)
        cur.execute(
            "INSERT INTO schema_version (version) SELECT 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM schema_version)"
        )
        cur.execute("SELECT MAX(version) FROM schema_version")
        version = int(cur.fetchone()[0] or 0)
        if version > LATEST_VERSION:
            raise StoreError(
                f"{self.settings.where()} has schema version {version}, newer than this coordinator's "
                f"{LATEST_VERSION}: upgrade the coordinator"
            )
        for target, statements in MIGRATIONS:
            if target <= version:
                continue
            LOG.info("migrating %s from schema version %d to %d", self.settings.where(), version, target)
            for statement in statements:
                cur.execute(statement)
            cur.execute("UPDATE schema_version SET version = %s", (target,))
            version = target
        cur.execute(
            "INSERT INTO cluster (id, name, epoch, updated_at) VALUES (1, %s, 0, NOW(6))"
            " ON DUPLICATE KEY UPDATE id = id",
            (self.cluster_name,),
        )
        cur.execute("SELECT name FROM cluster WHERE id = 1")
        name = cur.fetchone()[0]
        if name != self.cluster_name:
            raise StoreError(
                f"{self.settings.where()} belongs to cluster {name!r}, not {self.cluster_name!r}: refusing to use it"
            )
        return version
