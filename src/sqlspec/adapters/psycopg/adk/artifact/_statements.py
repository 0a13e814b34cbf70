"""Every statement of the artifact stores, each a named unit beside the record it returns.

A file is keyed by ``%(app_name)s``, ``%(user_id)s``, ``%(session_id)s`` (the
empty string for the user's scope) and ``%(filename)s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from sqlspec.adapters.psycopg.adk._statement import Statement, record_row, scalar
from sqlspec.adapters.psycopg.adk.artifact._schema import ArtifactSchema

__all__ = [
    "COPY_STAGING",
    "CREATE_STAGING",
    "EXPORT_KINDS",
    "ArtifactStatements",
    "ImportedArtifacts",
    "LoadedChunk",
    "PrunedBlobs",
    "VersionRow",
]

#: One file's rows (alias ``a``).
_FILE = sql.SQL(
    "a.app_name = %(app_name)s AND a.user_id = %(user_id)s "
    "AND a.session_id = %(session_id)s AND a.filename = %(filename)s"
)


#: Where a streamed save's chunks wait, in its transaction, until their hash is known.
STAGING = sql.Identifier("sqlspec_artifact_staging")
#: Chunks sent with the statement, as one ``bytea[]`` parameter.
_SENT_CHUNKS = sql.SQL(
    "SELECT b.sha256, c.seq - 1, c.data FROM blob b, "
    "unnest(%(chunks)b::bytea[]) WITH ORDINALITY AS c(data, seq)"
)
#: Chunks a streamed save copied into the staging table.
_STAGED_CHUNKS = sql.SQL("SELECT b.sha256, c.seq, c.data FROM blob b, {} c").format(STAGING)


def save(s: ArtifactSchema) -> Statement[int]:
    """Store the next version of a file and its content (once per SHA-256); returns the version.

    The file row's ``next_version`` is bumped by ``ON CONFLICT DO UPDATE``, which
    waits for a concurrent save of the same file and reads what it committed:
    versions are consecutive, none lost or taken twice. The blob and its chunks
    (``%(chunks)b``, a ``bytea[]``) are written only when no blob has that hash;
    with ``%(sha256)s`` null (a ``file_data`` part) nothing is. The chunks travel
    in binary: psycopg would send a list as a text array, hex-escaping every byte
    (1 MiB took 43 ms that way, 6 ms in binary).
    """
    return _save(s, _SENT_CHUNKS)


def save_staged(s: ArtifactSchema) -> Statement[int]:
    """:func:`save`, the chunks taken from the staging table a streamed save filled by COPY."""
    return _save(s, _STAGED_CHUNKS)


def _save(s: ArtifactSchema, chunks: sql.Composable) -> Statement[int]:
    return scalar(
        sql.SQL(
            """WITH head AS (
                INSERT INTO {files} AS f (app_name, user_id, session_id, filename, next_version)
                VALUES (%(app_name)s, %(user_id)s, %(session_id)s, %(filename)s, 1)
                ON CONFLICT (app_name, user_id, session_id, filename)
                    DO UPDATE SET next_version = f.next_version + 1
                RETURNING f.next_version - 1 AS version
            ), blob AS (
                INSERT INTO {blobs} (sha256, size)
                SELECT %(sha256)s::bytea, %(size)s::bigint WHERE %(sha256)s::bytea IS NOT NULL
                ON CONFLICT (sha256) DO NOTHING
                RETURNING sha256
            ), chunk AS (
                INSERT INTO {chunks} (sha256, seq, data) {chunk_rows}
            )
            INSERT INTO {artifacts} (app_name, user_id, session_id, filename, version, part,
                content_kind, sha256, mime_type, custom_metadata, create_time)
            SELECT %(app_name)s, %(user_id)s, %(session_id)s, %(filename)s, h.version,
                %(part)s::json, %(content_kind)s, %(sha256)s::bytea, %(mime_type)s,
                %(custom_metadata)s::json, %(create_time)s
            FROM head h
            RETURNING version"""
        ).format(
            files=sql.Identifier(s.files),
            blobs=sql.Identifier(s.blobs),
            chunks=sql.Identifier(s.chunks),
            artifacts=sql.Identifier(s.table),
            chunk_rows=chunks,
        )
    )


#: A streamed save's first statement: chunks stored as they come (not compressed: a
#: second copy of them goes into the chunk table, compressed there if LZ4 is on).
CREATE_STAGING = (
    scalar(
        sql.SQL(
            "CREATE TEMP TABLE {} (seq integer PRIMARY KEY, data bytea NOT NULL) ON COMMIT DROP"
        ).format(STAGING)
    ),
    scalar(sql.SQL("ALTER TABLE {} ALTER COLUMN data SET STORAGE EXTERNAL").format(STAGING)),
)
COPY_STAGING = sql.SQL("COPY {} (seq, data) FROM STDIN (FORMAT BINARY)").format(STAGING)


def prune_blobs(s: ArtifactSchema) -> Statement[PrunedBlobs]:
    """Delete the contents no version holds; returns how many, and their bytes.

    ``delete`` removes a file's contents as it goes, but two deletes of files
    sharing a content, running at once, each see the other's version still
    holding it and both leave it. A content a save is taking at that moment is
    locked by it and skipped (``SKIP LOCKED``).
    """
    return Statement(
        sql.SQL(
            """WITH swept AS (
                DELETE FROM {blobs} b WHERE b.sha256 IN (
                    SELECT o.sha256 FROM {blobs} o
                    WHERE NOT EXISTS (SELECT 1 FROM {artifacts} a WHERE a.sha256 = o.sha256)
                    FOR UPDATE SKIP LOCKED)
                RETURNING b.size
            )
            SELECT count(*) AS blobs, coalesce(sum(size), 0)::bigint AS bytes FROM swept"""
        ).format(blobs=sql.Identifier(s.blobs), artifacts=sql.Identifier(s.table)),
        record_row(PrunedBlobs),
    )


@dataclass(frozen=True, slots=True)
class PrunedBlobs:
    """The row of :func:`prune_blobs`."""

    blobs: int
    bytes: int


@dataclass(frozen=True, slots=True)
class LoadedChunk:
    """One row of :func:`load`: the version's part, and one chunk of its content in order."""

    part: str
    content_kind: str | None
    #: The content's size in bytes (``None``: the part has none).
    size: int | None
    chunk: bytes | None


def load(s: ArtifactSchema) -> Statement[LoadedChunk]:
    """Version ``%(version)s`` of a file (the latest if null), a row per chunk of its content.

    Content without chunks (empty, or none) gives one row with a null chunk.
    Rows come in binary: a 1 MiB chunk in text would be 2 MiB of hex to decode.
    """
    return Statement(
        sql.SQL(
            """SELECT a.part::text AS part, a.content_kind, b.size, c.data AS chunk
            FROM {artifacts} a
                LEFT JOIN {blobs} b ON b.sha256 = a.sha256
                LEFT JOIN {chunks} c ON c.sha256 = a.sha256
            WHERE {file} AND a.version = (
                SELECT a.version FROM {artifacts} a
                WHERE {file} AND (%(version)s::integer IS NULL OR a.version = %(version)s)
                ORDER BY a.version DESC LIMIT 1
            )
            ORDER BY c.seq"""
        ).format(
            artifacts=sql.Identifier(s.table),
            blobs=sql.Identifier(s.blobs),
            chunks=sql.Identifier(s.chunks),
            file=_FILE,
        ),
        record_row(LoadedChunk),
        binary=True,
    )


def list_keys(s: ArtifactSchema) -> Statement[str]:
    """The filenames of a user's scope (session ``''``) and of session ``%(session_id)s``."""
    return scalar(
        sql.SQL(
            """SELECT f.filename FROM {files} f
            WHERE f.app_name = %(app_name)s AND f.user_id = %(user_id)s
              AND f.session_id IN ('', %(session_id)s)"""
        ).format(files=sql.Identifier(s.files))
    )


def delete(s: ArtifactSchema) -> Statement[int]:
    """Delete a file's versions, and the blobs no other version holds; returns how many versions.

    The file row goes too (its versions with it, by cascade: that also takes a
    version a concurrent save committed meanwhile), so the next save is version 0
    again, as in ADK's in-memory service. The blob sweep sees the statement's
    snapshot, where the deleted versions still stand: it leaves them out by key.
    """
    return scalar(
        sql.SQL(
            """WITH head AS (
                DELETE FROM {files} a WHERE {file} RETURNING 1
            ), gone AS (
                DELETE FROM {artifacts} a WHERE {file} RETURNING a.sha256
            ), swept AS (
                DELETE FROM {blobs} b
                WHERE b.sha256 IN (SELECT g.sha256 FROM gone g)
                  AND NOT EXISTS (
                      SELECT 1 FROM {artifacts} o
                      WHERE o.sha256 = b.sha256 AND NOT (o.app_name = %(app_name)s
                          AND o.user_id = %(user_id)s AND o.session_id = %(session_id)s
                          AND o.filename = %(filename)s))
                RETURNING 1
            )
            SELECT count(*) FROM gone"""
        ).format(
            files=sql.Identifier(s.files),
            artifacts=sql.Identifier(s.table),
            blobs=sql.Identifier(s.blobs),
            file=_FILE,
        )
    )


def list_versions(s: ArtifactSchema) -> Statement[int]:
    """A file's version numbers, ascending."""
    return scalar(
        sql.SQL("SELECT a.version FROM {artifacts} a WHERE {file} ORDER BY a.version").format(
            artifacts=sql.Identifier(s.table), file=_FILE
        )
    )


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One row of :func:`version_infos` and :func:`scope_versions`."""

    session_id: str
    filename: str
    version: int
    mime_type: str | None
    custom_metadata: str
    create_time: float


def version_infos(s: ArtifactSchema, *, latest_only: bool) -> Statement[VersionRow]:
    """A file's versions' metadata, ascending; only ``%(version)s`` unless null.

    With ``latest_only``, the latest version alone.
    """
    return Statement(
        sql.SQL(
            """SELECT {columns}
            FROM {artifacts} a
            WHERE {file} AND (%(version)s::integer IS NULL OR a.version = %(version)s)
            ORDER BY a.version {order}"""
        ).format(
            columns=_VERSION_COLUMNS,
            artifacts=sql.Identifier(s.table),
            file=_FILE,
            order=sql.SQL("DESC LIMIT 1" if latest_only else "ASC"),
        ),
        record_row(VersionRow),
    )


def scope_versions(s: ArtifactSchema) -> Statement[VersionRow]:
    """Every version's metadata of the user's files and of session ``%(session_id)s``'s.

    By filename, then version; the user's scope is session ``''``.
    """
    return Statement(
        sql.SQL(
            """SELECT {columns}
            FROM {artifacts} a
            WHERE a.app_name = %(app_name)s AND a.user_id = %(user_id)s
              AND a.session_id IN ('', %(session_id)s)
            ORDER BY a.filename, a.version"""
        ).format(columns=_VERSION_COLUMNS, artifacts=sql.Identifier(s.table)),
        record_row(VersionRow),
    )


_VERSION_COLUMNS = sql.SQL(
    "a.session_id, a.filename, a.version, a.mime_type, "
    "a.custom_metadata::text AS custom_metadata, a.create_time"
)


#: The versions an export takes (alias ``a``): in an app, and a user, if given.
_EXPORTED = sql.SQL(
    "(%(app_name)s::text IS NULL OR a.app_name = %(app_name)s) "
    "AND (%(user_id)s::text IS NULL OR a.user_id = %(user_id)s)"
)
#: An export's kinds of line, in the order written.
EXPORT_KINDS = ("artifact_blob", "artifact_chunk", "artifact")


def export(s: ArtifactSchema) -> tuple[tuple[str, Statement[str]], ...]:
    """The exported versions' contents, their chunks (base64), then the versions, as JSON lines.

    A content is written once however many versions hold it; a version names
    its content by SHA-256 (hex), so an import stores each content once too.
    """
    artifacts = sql.Identifier(s.table)

    def held(blob: str) -> sql.Composable:
        """Whether an exported version holds the content whose hash is column ``blob``."""
        return sql.SQL("EXISTS (SELECT 1 FROM {} a WHERE a.sha256 = {} AND {})").format(
            artifacts, sql.SQL(blob), _EXPORTED
        )

    blobs = sql.SQL(
        """SELECT json_build_object('kind', 'artifact_blob',
            'sha256', encode(b.sha256, 'hex'), 'size', b.size)::text
        FROM {blobs} b WHERE {held} ORDER BY b.sha256"""
    ).format(blobs=sql.Identifier(s.blobs), held=held("b.sha256"))
    chunks = sql.SQL(
        """SELECT json_build_object('kind', 'artifact_chunk', 'sha256', encode(c.sha256, 'hex'),
            'seq', c.seq, 'data', translate(encode(c.data, 'base64'), E'\\n', ''))::text
        FROM {chunks} c WHERE {held} ORDER BY c.sha256, c.seq"""
    ).format(chunks=sql.Identifier(s.chunks), held=held("c.sha256"))
    versions = sql.SQL(
        """SELECT json_build_object('kind', 'artifact', 'app_name', a.app_name,
            'user_id', a.user_id, 'session_id', NULLIF(a.session_id, ''),
            'filename', a.filename, 'version', a.version, 'part', a.part,
            'content_kind', a.content_kind, 'sha256', encode(a.sha256, 'hex'),
            'mime_type', a.mime_type, 'custom_metadata', a.custom_metadata,
            'create_time', a.create_time)::text
        FROM {artifacts} a WHERE {exported}
        ORDER BY a.app_name, a.user_id, a.session_id, a.filename, a.version"""
    ).format(artifacts=artifacts, exported=_EXPORTED)
    return tuple(
        (kind, scalar(text))
        for kind, text in zip(EXPORT_KINDS, (blobs, chunks, versions), strict=True)
    )


@dataclass(frozen=True, slots=True)
class ImportedArtifacts:
    """What :func:`import_staged` returns: versions stored, staged, and refused."""

    imported: int
    staged: int
    rejected: int


def import_staged(s: ArtifactSchema) -> Statement[ImportedArtifacts]:
    """Store the staged artifact lines (as :func:`export` writes them); others are left.

    A version already stored is kept as it is (and its file's next version is
    not lowered). A content comes in only whole and true: its chunks numbered
    from 0 without a gap, adding up to its size, and hashing to its SHA-256 (a
    content is shared by every version that holds the same bytes, so one taken
    on trust would change what other saves read back). A line given twice counts
    once. ``rejected`` counts the version lines that cannot come in: a field
    missing, or their content neither stored nor brought whole and true.
    """
    return Statement(
        sql.SQL(
            """WITH chunk_lines AS MATERIALIZED (
                SELECT DISTINCT ON (1, 2) decode(st.line ->> 'sha256', 'hex') AS sha256,
                    (st.line ->> 'seq')::integer AS seq,
                    decode(st.line ->> 'data', 'base64') AS data
                FROM sqlspec_staging st WHERE st.line ->> 'kind' = 'artifact_chunk'
                ORDER BY 1, 2
            ), blob_lines AS (
                SELECT DISTINCT ON (1) decode(st.line ->> 'sha256', 'hex') AS sha256,
                    (st.line ->> 'size')::bigint AS size
                FROM sqlspec_staging st WHERE st.line ->> 'kind' = 'artifact_blob'
                ORDER BY 1
            ), sums AS (
                SELECT c.sha256, count(*) AS n, min(c.seq) AS first, max(c.seq) AS last,
                    sum(octet_length(c.data)) AS size,
                    sha256(string_agg(c.data, ''::bytea ORDER BY c.seq)) AS digest
                FROM chunk_lines c GROUP BY c.sha256
            ), complete AS (
                SELECT b.sha256, b.size FROM blob_lines b LEFT JOIN sums m USING (sha256)
                WHERE (m.sha256 IS NULL AND b.size = 0 AND b.sha256 = sha256(''::bytea))
                   OR (m.first = 0 AND m.last = m.n - 1 AND m.size = b.size
                       AND m.digest = b.sha256)
            ), new_blobs AS (
                INSERT INTO {blobs} (sha256, size)
                SELECT c.sha256, c.size FROM complete c
                ON CONFLICT (sha256) DO NOTHING
                RETURNING sha256
            ), new_chunks AS (
                INSERT INTO {chunks} (sha256, seq, data)
                SELECT c.sha256, c.seq, c.data FROM chunk_lines c JOIN new_blobs n USING (sha256)
            ), lines AS (
                SELECT st.line ->> 'app_name' AS app_name, st.line ->> 'user_id' AS user_id,
                    COALESCE(st.line ->> 'session_id', '') AS session_id,
                    st.line ->> 'filename' AS filename, (st.line ->> 'version')::integer AS version,
                    st.line -> 'part' AS part, st.line ->> 'content_kind' AS content_kind,
                    decode(st.line ->> 'sha256', 'hex') AS sha256,
                    st.line ->> 'mime_type' AS mime_type,
                    st.line -> 'custom_metadata' AS custom_metadata,
                    (st.line ->> 'create_time')::float8 AS create_time
                FROM sqlspec_staging st WHERE st.line ->> 'kind' = 'artifact'
            ), versions AS (
                SELECT l.* FROM lines l
                WHERE l.app_name IS NOT NULL AND l.user_id IS NOT NULL
                  AND l.filename IS NOT NULL AND l.version >= 0
                  AND json_typeof(l.part) = 'object'
                  AND json_typeof(l.custom_metadata) = 'object'
                  AND l.create_time IS NOT NULL
                  AND ((l.content_kind IS NULL AND l.sha256 IS NULL)
                       OR (l.content_kind IN ('inline_data', 'text') AND (
                           l.sha256 IN (SELECT c.sha256 FROM complete c)
                           OR EXISTS (SELECT 1 FROM {blobs} b WHERE b.sha256 = l.sha256))))
            ), files AS (
                INSERT INTO {files} AS f (app_name, user_id, session_id, filename, next_version)
                SELECT v.app_name, v.user_id, v.session_id, v.filename, max(v.version) + 1
                FROM versions v GROUP BY v.app_name, v.user_id, v.session_id, v.filename
                ON CONFLICT (app_name, user_id, session_id, filename) DO UPDATE
                    SET next_version = greatest(f.next_version, excluded.next_version)
            ), added AS (
                INSERT INTO {artifacts} (app_name, user_id, session_id, filename, version, part,
                    content_kind, sha256, mime_type, custom_metadata, create_time)
                SELECT v.app_name, v.user_id, v.session_id, v.filename, v.version, v.part,
                    v.content_kind, v.sha256, v.mime_type, v.custom_metadata, v.create_time
                FROM versions v
                ON CONFLICT (app_name, user_id, session_id, filename, version) DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM added) AS imported,
                (SELECT count(*) FROM lines) AS staged,
                (SELECT count(*) FROM lines) - (SELECT count(*) FROM versions) AS rejected"""
        ).format(
            artifacts=sql.Identifier(s.table),
            files=sql.Identifier(s.files),
            blobs=sql.Identifier(s.blobs),
            chunks=sql.Identifier(s.chunks),
        ),
        record_row(ImportedArtifacts),
    )


class ArtifactStatements:
    """Every statement of one set of artifact tables, built once per store."""

    def __init__(self, schema: ArtifactSchema) -> None:
        self.save = save(schema)
        self.save_staged = save_staged(schema)
        self.prune_blobs = prune_blobs(schema)
        self.export = export(schema)
        self.import_staged = import_staged(schema)
        self.load = load(schema)
        self.list_keys = list_keys(schema)
        self.delete = delete(schema)
        self.list_versions = list_versions(schema)
        self.version_infos = version_infos(schema, latest_only=False)
        self.latest_version_info = version_infos(schema, latest_only=True)
        self.scope_versions = scope_versions(schema)
        #: Distinct contents stored (for tests and doctor).
        self.count_blobs = scalar(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema.blobs))
        )
