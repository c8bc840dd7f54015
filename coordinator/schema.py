"""The coordinator's MySQL schema as numbered migrations, applied in order by `ClusterStore.migrate()`.

MySQL commits DDL implicitly, so a migration interrupted half way is re-run from its first statement:
every statement here must be safe to run twice (CREATE ... IF NOT EXISTS, ALTER guarded by the caller).
Times are DATETIME(6) in UTC (the store sets the session time zone to +00:00).
Append new migrations; never edit a released one.
"""

from __future__ import annotations

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

# One row per rolling upgrade (coordinator/rolloutstore.py).
ROLLOUTS_TABLE = """
CREATE TABLE IF NOT EXISTS rollouts (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    from_version BIGINT NOT NULL,
    to_version BIGINT NOT NULL,
    image VARCHAR(512) NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    started_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    leader_term BIGINT UNSIGNED NOT NULL DEFAULT 0,
    KEY rollouts_status (status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """
            CREATE TABLE IF NOT EXISTS cluster (
                id TINYINT NOT NULL PRIMARY KEY,
                name VARCHAR(64) NOT NULL,
                writer VARCHAR(63) NULL,
                epoch BIGINT UNSIGNED NOT NULL DEFAULT 0,
                paused BOOL NOT NULL DEFAULT 0,
                paused_reason VARCHAR(255) NOT NULL DEFAULT '',
                leader VARCHAR(255) NULL,
                leader_address VARCHAR(255) NOT NULL DEFAULT '',
                leader_term BIGINT UNSIGNED NOT NULL DEFAULT 0,
                leader_until DATETIME(6) NULL,
                updated_at DATETIME(6) NULL,
                CONSTRAINT cluster_single_row CHECK (id = 1)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
            """,
            """
            CREATE TABLE IF NOT EXISTS nodes (
                name VARCHAR(63) NOT NULL PRIMARY KEY,
                address VARCHAR(64) NOT NULL DEFAULT '',
                priority INT NOT NULL DEFAULT 1,
                maintenance BOOL NOT NULL DEFAULT 0,
                maintenance_reason VARCHAR(255) NOT NULL DEFAULT '',
                hosts_mishards BOOL NOT NULL DEFAULT 0,
                first_seen DATETIME(6) NULL,
                last_seen DATETIME(6) NULL
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
            """,
            """
            CREATE TABLE IF NOT EXISTS events (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                at DATETIME(6) NOT NULL,
                kind VARCHAR(32) NOT NULL,
                node VARCHAR(63) NULL,
                epoch BIGINT UNSIGNED NOT NULL DEFAULT 0,
                reason TEXT NOT NULL,
                phases TEXT NOT NULL,
                leader_term BIGINT UNSIGNED NOT NULL DEFAULT 0,
                KEY events_kind (kind, id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
            """,
        ),
    ),
)


def _add_column(table: str, column: str, definition: str) -> tuple[str, ...]:
    """ALTER TABLE ... ADD COLUMN, skipped when the column exists (MySQL has no ADD COLUMN IF NOT EXISTS)."""
    return (
        "SET @jfs_milvus_ddl = IF((SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
        f" AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{column}') = 0,"
        f" 'ALTER TABLE {table} ADD COLUMN {column} {definition}', 'DO 0')",
        "PREPARE jfs_milvus_ddl FROM @jfs_milvus_ddl",
        "EXECUTE jfs_milvus_ddl",
        "DEALLOCATE PREPARE jfs_milvus_ddl",
    )


# 2: the cluster config (coordinator/configstore.py): its versions, the cluster's current one, each node's pin
# (NULL: follow the current version).
MIGRATIONS += (
    (
        2,
        (
            """
            CREATE TABLE IF NOT EXISTS cluster_config_versions (
                cluster VARCHAR(64) NOT NULL,
                version BIGINT UNSIGNED NOT NULL,
                body MEDIUMTEXT NOT NULL,
                author VARCHAR(255) NOT NULL DEFAULT '',
                reason VARCHAR(255) NOT NULL DEFAULT '',
                restart_needed BOOL NOT NULL DEFAULT 1,
                created_at DATETIME(6) NOT NULL,
                PRIMARY KEY (cluster, version)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
            """,
            *_add_column("cluster", "config_version", "BIGINT UNSIGNED NULL"),
            *_add_column("nodes", "config_version", "BIGINT UNSIGNED NULL"),
        ),
    ),
)

# 3: the rolling upgrade (coordinator/rollout.py, rolloutstore.py): one row per rollout.
MIGRATIONS += ((3, (ROLLOUTS_TABLE,)),)

LATEST_VERSION = MIGRATIONS[-1][0]
