"""The artifact tables: their names, their DDL, and the numbered migrations to them.

Four tables:

- ``files``: one row per artifact file (app, user, session, filename) while it
  has versions; ``next_version`` is the number its next save takes. A save bumps
  it with ``INSERT ... ON CONFLICT DO UPDATE``, which locks the row and reads
  its latest committed value, so concurrent saves of one file take distinct,
  consecutive versions without a retry.
- ``artifacts`` (the main table): one row per version: the part as JSON with
  its content taken out, the SHA-256 of that content, ADK's metadata. Its rows
  go with their file row (``ON DELETE CASCADE``).
- ``blobs``: one row per distinct content, keyed by its SHA-256, with its size.
- ``chunks``: a blob's bytes in pieces of at most 1 MiB, in order. From
  version 2 they are compressed with LZ4 where the server has it, and stored
  uncompressed where it has not: PostgreSQL's default (pglz) spent two thirds
  of a 1 MiB save trying to compress incompressible bytes (a PNG, a PDF),
  where LZ4 gives up at once and still compresses text.

A user-scoped file (``user:`` filename) has the empty string as its session:
ADK refuses an empty session id, so it names no session.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from sqlspec.adapters.psycopg.adk._statement import (
    Statement,
    derived_name,
    scalar,
    validate_identifier,
)
from sqlspec.adapters.psycopg.adk._values import ID_MAX_LENGTH
from sqlspec.adapters.psycopg.adk._versions import VersionStatements
from sqlspec.exceptions import ImproperConfigurationError

__all__ = ["FILENAME_MAX_BYTES", "SCHEMA_VERSION", "ArtifactSchema"]

#: The schema version this code writes.
SCHEMA_VERSION = 2
#: The longest filename stored, in UTF-8 bytes: the key of a b-tree row must fit a page.
FILENAME_MAX_BYTES = 1024


class ArtifactSchema:
    """The DDL of one set of artifact tables, by version, and what it creates."""

    def __init__(self, artifacts: str, files: str, blobs: str, chunks: str) -> None:
        names = {
            "artifact_table": artifacts,
            "file_table": files,
            "blob_table": blobs,
            "chunk_table": chunks,
        }
        for what, name in names.items():
            validate_identifier(name, what)
        if len(set(names.values())) != len(names):
            raise ImproperConfigurationError(f"the artifact tables need four names, got {names}")
        self.table, self.files, self.blobs, self.chunks = artifacts, files, blobs, chunks
        self.versions = VersionStatements(artifacts)
        #: The secondary indexes the schema creates: index name -> table name.
        self.index_names = {derived_name(artifacts, "blob"): artifacts}
        ddl_names: dict[str, Any] = {
            "artifacts": sql.Identifier(artifacts),
            "files": sql.Identifier(files),
            "blobs": sql.Identifier(blobs),
            "chunks": sql.Identifier(chunks),
            "id": sql.SQL("VARCHAR({})").format(ID_MAX_LENGTH),
            "filename_bytes": sql.Literal(FILENAME_MAX_BYTES),
            "idx_blob": sql.Identifier(derived_name(artifacts, "blob")),
        }
        #: Every statement is idempotent, so running them all again recreates what was dropped.
        self.migrations: dict[int, tuple[Statement[Any], ...]] = {
            1: tuple(scalar(sql.SQL(ddl).format(**ddl_names)) for ddl in _VERSION_1),
            2: (scalar(sql.SQL(_LZ4_CHUNKS).format(**ddl_names)),),
        }


_VERSION_1 = (
    """CREATE TABLE IF NOT EXISTS {blobs} (
        sha256 BYTEA PRIMARY KEY CHECK (octet_length(sha256) = 32),
        size BIGINT NOT NULL CHECK (size >= 0),
        create_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS {chunks} (
        sha256 BYTEA NOT NULL REFERENCES {blobs} (sha256) ON DELETE CASCADE,
        seq INTEGER NOT NULL CHECK (seq >= 0),
        data BYTEA NOT NULL,
        PRIMARY KEY (sha256, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS {files} (
        app_name {id} NOT NULL,
        user_id {id} NOT NULL,
        session_id {id} NOT NULL,
        filename TEXT NOT NULL CHECK (octet_length(filename) <= {filename_bytes}),
        next_version INTEGER NOT NULL,
        PRIMARY KEY (app_name, user_id, session_id, filename)
    )""",
    """CREATE TABLE IF NOT EXISTS {artifacts} (
        app_name {id} NOT NULL,
        user_id {id} NOT NULL,
        session_id {id} NOT NULL,
        filename TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 0),
        part JSON NOT NULL,
        content_kind TEXT CHECK (content_kind IN ('inline_data', 'text')),
        sha256 BYTEA REFERENCES {blobs} (sha256),
        mime_type TEXT,
        custom_metadata JSON NOT NULL,
        create_time DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (app_name, user_id, session_id, filename, version),
        FOREIGN KEY (app_name, user_id, session_id, filename)
            REFERENCES {files} (app_name, user_id, session_id, filename) ON DELETE CASCADE,
        CHECK ((content_kind IS NULL) = (sha256 IS NULL))
    )""",
    "CREATE INDEX IF NOT EXISTS {idx_blob} ON {artifacts} (sha256)",
)

# A server built without LZ4 refuses the method (feature_not_supported).
_LZ4_CHUNKS = """DO $$ BEGIN
    ALTER TABLE {chunks} ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE {chunks} ALTER COLUMN data SET STORAGE EXTERNAL;
END $$"""
