"""Where each wing records its schema version, and how a migration is planned.

One table, ``sqlspec_adk_schema``, holds a row per table set: keyed by the name
of the set's main table, with the version its schema is at. Every schema change
runs under one transaction-scoped advisory lock, because table sets share this
table (and may share the state tables).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg import sql

from sqlspec.adapters.psycopg.adk._statement import Statement, record_row, scalar
from sqlspec.exceptions import SchemaVersionError

__all__ = [
    "SCHEMA_TABLE",
    "SchemaTables",
    "VersionStatements",
    "WingSchema",
    "pending_versions",
    "recorded_version",
]

#: The table recording the schema version of every table set.
SCHEMA_TABLE = "sqlspec_adk_schema"

#: Serializes schema changes in a database.
LOCK_KEY = int.from_bytes(hashlib.sha1(b"sqlspec.adk.schema").digest()[:8], "big", signed=True)


class WingSchema(Protocol):
    """What a wing's schema module gives its store: where its version is recorded, its DDL."""

    @property
    def versions(self) -> VersionStatements: ...

    @property
    def migrations(self) -> Mapping[int, tuple[Statement[Any], ...]]: ...


@dataclass(frozen=True, slots=True)
class SchemaTables:
    """Whether the version table and a set's main table exist."""

    schema_table_exists: bool
    main_table_exists: bool


class VersionStatements:
    """The statements that read and write one table set's recorded version."""

    def __init__(self, main_table: str) -> None:
        self.main_table = main_table
        schema_table = sql.Identifier(SCHEMA_TABLE)
        #: Serialize schema changes: first statement of a migration's transaction.
        self.lock = scalar(sql.SQL("SELECT pg_advisory_xact_lock({})").format(LOCK_KEY))
        self.create_table = scalar(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                    session_table VARCHAR(63) PRIMARY KEY,
                    version INTEGER NOT NULL,
                    migrated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
                )"""
            ).format(schema_table)
        )
        # to_regclass() parses its argument as SQL: the (validated) names are quoted.
        self.tables_exist = Statement(
            sql.SQL(
                "SELECT to_regclass({}) IS NOT NULL AS schema_table_exists, "
                "to_regclass({}) IS NOT NULL AS main_table_exists"
            ).format(sql.Literal(f'"{SCHEMA_TABLE}"'), sql.Literal(f'"{main_table}"')),
            record_row(SchemaTables),
        )
        self.read = scalar(
            sql.SQL("SELECT version FROM {} WHERE session_table = {}").format(
                schema_table, sql.Literal(main_table)
            )
        )
        #: Record ``%(version)s`` as this set's version.
        self.write = scalar(
            sql.SQL(
                """INSERT INTO {} (session_table, version) VALUES ({}, %(version)s)
                ON CONFLICT (session_table) DO UPDATE
                    SET version = EXCLUDED.version, migrated_at = CURRENT_TIMESTAMP"""
            ).format(schema_table, sql.Literal(main_table))
        )


def recorded_version(recorded: int | None, tables: SchemaTables) -> int:
    """The version a table set is at: recorded, 1 for unrecorded tables, 0 for none."""
    if recorded is not None:
        return recorded
    return 1 if tables.main_table_exists else 0


def pending_versions(current: int, latest: int) -> range:
    """The migrations to run from ``current``; refuses a version from a newer library."""
    if current > latest:
        raise SchemaVersionError(
            f"the database schema is at version {current}, newer than the {latest} "
            "this version of sqlspec knows; upgrade sqlspec instead of migrating"
        )
    return range(current + 1, latest + 1)
