"""Every statement of the memory stores, each a named unit beside the record it returns."""

from __future__ import annotations

from dataclasses import dataclass

from google.adk.memory.memory_entry import MemoryEntry
from psycopg import sql

from sqlspec.adapters.psycopg.adk._statement import INDEX_ONLY, Statement, record_row, scalar
from sqlspec.extensions.adk.memory import _codec
from sqlspec.extensions.adk.session._codec import decode_state

__all__ = ["FoundMemory", "ImportedMemories", "MemoryStatements"]


def add(m: sql.Composable, *, vectors: bool) -> Statement[int]:
    """Store ``%(records)s`` (a JSON array of memories) for a user; returns how many were new.

    A memory whose id the user has already (even deleted) is left as it is. With
    ``vectors``, each record's ``embedding`` (a JSON array) goes to the vector column.
    """
    return scalar(
        sql.SQL(
            """WITH added AS (
                INSERT INTO {m} (app_name, user_id, id, session_id, author, event_time,
                    "timestamp", content, custom_metadata, search_config, search_text
                    {embedding_column})
                SELECT %(app_name)s, %(user_id)s, r.id, r.session_id, r.author, r.event_time,
                    r."timestamp", r.content, COALESCE(r.custom_metadata, '{{}}'::jsonb),
                    %(config)s::regconfig, r.text {embedding_value}
                FROM json_to_recordset(%(records)s::json) AS r(id text, session_id text,
                    author text, event_time float8, "timestamp" text, content json,
                    custom_metadata jsonb, text text, embedding json)
                ON CONFLICT (key) DO NOTHING
                RETURNING 1
            ) SELECT count(*) FROM added"""
        ).format(
            m=m,
            embedding_column=sql.SQL(", embedding" if vectors else ""),
            embedding_value=sql.SQL(", r.embedding::text::vector" if vectors else ""),
        )
    )


@dataclass(frozen=True, slots=True)
class FoundMemory:
    """One row of :func:`search`."""

    id: str
    session_id: str | None
    author: str | None
    event_time: float | None
    timestamp: str | None
    content: str
    custom_metadata: str

    def to_entry(self) -> MemoryEntry:
        return _codec.entry(
            memory_id=self.id,
            session_id=self.session_id,
            author=self.author,
            event_time=self.event_time,
            timestamp=self.timestamp,
            content=self.content,
            custom_metadata=decode_state(self.custom_metadata),
        )


#: A user's live memories (alias ``m``).
_LIVE = sql.SQL("m.app_name = %(app_name)s AND m.user_id = %(user_id)s AND m.delete_time IS NULL")
#: The columns a found memory is read from, for :class:`FoundMemory`.
_FOUND = sql.SQL(
    """m.id, m.session_id, m.author, m.event_time, m."timestamp",
    m.content::text AS content, m.custom_metadata::text AS custom_metadata"""
)


#: The text query, written where it is used: a generic plan (psycopg prepares a
#: statement after a few runs) keeps it in the index condition only then; from a
#: FROM item it became a join filter over all of a user's memories.
_QUERY = sql.SQL("websearch_to_tsquery(%(config)s::regconfig, %(query)s)")


def search(m: sql.Composable) -> Statement[FoundMemory]:
    """A user's live memories matching the text query ``%(query)s``, best ranked first.

    ``websearch_to_tsquery`` reads any text without a syntax error; the query is
    stemmed with the store's configuration, as the memories were.
    """
    return Statement(
        sql.SQL(
            """SELECT {found}
            FROM {m} m
            WHERE {live} AND m.search_vector @@ {query}
            ORDER BY ts_rank(m.search_vector, {query}) DESC, m.event_time DESC NULLS LAST, m.id
            LIMIT %(limit)s"""
        ).format(m=m, found=_FOUND, live=_LIVE, query=_QUERY),
        record_row(FoundMemory),
        planner=INDEX_ONLY,
    )


#: Reciprocal rank fusion's constant: how much a top rank outweighs the next ones.
RRF_K = 60


def hybrid_search(m: sql.Composable) -> Statement[FoundMemory]:
    """A user's memories by text and by vector, the two rankings fused, in one statement.

    Each ranking takes its best ``%(candidates)s``: text matches of ``%(query)s``,
    and the memories nearest ``%(embedding)s`` by cosine distance, ranked exactly
    over the user's memories. A memory scores
    ``1 / (k + rank)`` in each ranking it is in (reciprocal rank fusion), so one
    found both ways comes first.
    """
    return Statement(
        sql.SQL(
            """WITH by_text AS (
                SELECT m.id, row_number() OVER (
                    ORDER BY ts_rank(m.search_vector, {query}) DESC,
                        m.event_time DESC NULLS LAST, m.id
                ) AS rank
                FROM {m} m
                WHERE {live} AND m.search_vector @@ {query}
                ORDER BY rank LIMIT %(candidates)s
            ), by_vector AS (
                SELECT v.id, row_number() OVER (ORDER BY v.distance, v.id) AS rank
                FROM (
                    SELECT m.id, m.embedding <=> %(embedding)s::vector AS distance
                    FROM {m} m
                    WHERE {live} AND m.embedding IS NOT NULL
                    ORDER BY distance, m.id LIMIT %(candidates)s
                ) v
            ), fused AS (
                SELECT h.id, sum(1.0 / ({k} + h.rank)) AS score
                FROM (SELECT * FROM by_text UNION ALL SELECT * FROM by_vector) h
                GROUP BY h.id
            )
            SELECT {found}
            FROM fused f
            JOIN {m} m ON m.key = ARRAY[%(app_name)s::text, %(user_id)s::text, f.id::text]
            ORDER BY f.score DESC, m.event_time DESC NULLS LAST, m.id
            LIMIT %(limit)s"""
        ).format(m=m, found=_FOUND, live=_LIVE, query=_QUERY, k=sql.Literal(RRF_K)),
        record_row(FoundMemory),
        planner=INDEX_ONLY,
    )


def delete(m: sql.Composable, *, vectors: bool) -> Statement[int]:
    """Forget a memory: only its key stays, so it is never stored again; returns 0 or 1."""
    return scalar(
        sql.SQL(
            """WITH gone AS (
                UPDATE {m} SET delete_time = now(), session_id = NULL, author = NULL,
                    event_time = NULL, "timestamp" = NULL, content = NULL,
                    custom_metadata = '{{}}'::jsonb, search_text = '' {embedding}
                WHERE key = ARRAY[%(app_name)s::text, %(user_id)s::text, %(memory_id)s::text]
                  AND delete_time IS NULL
                RETURNING 1
            ) SELECT count(*) FROM gone"""
        ).format(m=m, embedding=sql.SQL(", embedding = NULL" if vectors else ""))
    )


def prune(m: sql.Composable, *, dry_run: bool) -> Statement[int]:
    """Delete (or, ``dry_run``, count) memories from before ``%(before)s`` (epoch seconds).

    A memory's age is its event's time, or when it was stored. Deleted memories'
    keys go too: an old session added again is remembered again, and pruned again.
    """
    chosen = sql.SQL(
        """FROM {m} m
        WHERE (%(app_name)s::text IS NULL OR m.app_name = %(app_name)s)
          AND (%(user_id)s::text IS NULL OR m.user_id = %(user_id)s)
          AND COALESCE(m.event_time, extract(epoch FROM m.create_time)) < %(before)s"""
    ).format(m=m)
    if dry_run:
        return scalar(sql.SQL("SELECT count(*) {}").format(chosen))
    return scalar(
        sql.SQL(
            """WITH gone AS (DELETE FROM {m} WHERE key IN (SELECT m.key {chosen}) RETURNING 1)
            SELECT count(*) FROM gone"""
        ).format(m=m, chosen=chosen)
    )


def export(m: sql.Composable, *, vectors: bool) -> tuple[tuple[str, Statement[str]], ...]:
    """Every memory (deleted ones as their keys) as a JSON line, in an app (and user) if given.

    Content is written as the JSON text it was stored as.
    """
    return (
        (
            "memory",
            scalar(
                sql.SQL(
                    """SELECT left(jsonb_build_object('kind', 'memory',
                            'app_name', m.app_name, 'user_id', m.user_id, 'id', m.id,
                            'session_id', m.session_id, 'author', m.author,
                            'event_time', m.event_time, 'timestamp', m."timestamp",
                            'custom_metadata', m.custom_metadata, 'text', m.search_text,
                            'create_time', m.create_time, 'delete_time', m.delete_time
                            {embedding})::text, -1)
                        || ',"content":' || COALESCE(m.content::text, 'null') || '}}'
                    FROM {m} m
                    WHERE (%(app_name)s::text IS NULL OR m.app_name = %(app_name)s)
                      AND (%(user_id)s::text IS NULL OR m.user_id = %(user_id)s)
                    ORDER BY m.app_name, m.user_id, m.id"""
                ).format(
                    m=m,
                    embedding=sql.SQL(", 'embedding', m.embedding::text::jsonb" if vectors else ""),
                )
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class ImportedMemories:
    """What :func:`import_staged` returns."""

    imported: int
    staged: int


def import_staged(m: sql.Composable, *, vectors: bool) -> Statement[ImportedMemories]:
    """Store the staged ``memory`` lines (as :func:`export` writes them); others are left.

    A memory whose key is stored already is kept as it is; a deleted one comes in
    as its key, so it stays deleted. Text is searched with the store's configuration.
    A line without its key, or a live memory without content, is skipped: it could
    not be read back.
    """
    return Statement(
        sql.SQL(
            """WITH lines AS (
                SELECT st.seq, st.line FROM sqlspec_staging st
                WHERE st.line ->> 'kind' = 'memory' AND st.line ->> 'app_name' IS NOT NULL
                  AND st.line ->> 'user_id' IS NOT NULL AND st.line ->> 'id' IS NOT NULL
                  AND (json_typeof(st.line -> 'content') = 'object'
                       OR st.line ->> 'delete_time' IS NOT NULL)
            ), added AS (
                INSERT INTO {m} (app_name, user_id, id, session_id, author, event_time,
                    "timestamp", content, custom_metadata, search_config, search_text,
                    create_time, delete_time {embedding_column})
                SELECT l.line ->> 'app_name', l.line ->> 'user_id', l.line ->> 'id',
                    l.line ->> 'session_id', l.line ->> 'author',
                    (l.line ->> 'event_time')::float8, l.line ->> 'timestamp',
                    CASE WHEN l.line ->> 'delete_time' IS NULL THEN l.line -> 'content' END,
                    CASE WHEN json_typeof(l.line -> 'custom_metadata') = 'object'
                         THEN (l.line -> 'custom_metadata')::jsonb ELSE '{{}}'::jsonb END,
                    %(config)s::regconfig, COALESCE(l.line ->> 'text', ''),
                    COALESCE((l.line ->> 'create_time')::timestamptz, now()),
                    (l.line ->> 'delete_time')::timestamptz {embedding_value}
                FROM lines l ORDER BY l.seq
                ON CONFLICT (key) DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM added) AS imported,
                   (SELECT count(*) FROM sqlspec_staging
                    WHERE line ->> 'kind' = 'memory') AS staged"""
        ).format(
            m=m,
            embedding_column=sql.SQL(", embedding" if vectors else ""),
            embedding_value=sql.SQL(", (l.line ->> 'embedding')::vector" if vectors else ""),
        ),
        record_row(ImportedMemories),
    )


#: Whether ``%(config)s`` names a text-search configuration (an error if not).
CHECK_CONFIG = scalar(sql.SQL("SELECT %(config)s::regconfig::text"))


class MemoryStatements:
    """Every statement of one memory table, built once per store."""

    def __init__(self, table: str, *, vectors: bool) -> None:
        m = sql.Identifier(table)
        self.add = add(m, vectors=vectors)
        self.search = search(m)
        self.hybrid_search = hybrid_search(m)
        self.delete = delete(m, vectors=vectors)
        self.prune = prune(m, dry_run=False)
        self.count_prunable = prune(m, dry_run=True)
        self.export = export(m, vectors=vectors)
        self.import_staged = import_staged(m, vectors=vectors)
        #: Memories stored, deleted ones apart.
        self.count = scalar(sql.SQL("SELECT count(*) FROM {} WHERE delete_time IS NULL").format(m))
