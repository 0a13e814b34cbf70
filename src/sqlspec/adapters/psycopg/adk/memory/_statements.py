"""Every statement of the memory stores, each a named unit beside the record it returns."""

from __future__ import annotations

from dataclasses import dataclass

from google.adk.memory.memory_entry import MemoryEntry
from psycopg import sql
from psycopg.rows import class_row

from sqlspec.adapters.psycopg.adk._statement import Statement, scalar
from sqlspec.extensions.adk.memory import _codec
from sqlspec.extensions.adk.session._codec import decode_state

__all__ = ["FoundMemory", "MemoryStatements"]


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


def search(m: sql.Composable) -> Statement[FoundMemory]:
    """A user's live memories matching the text query ``%(query)s``, best ranked first.

    ``websearch_to_tsquery`` reads any text without a syntax error; the query is
    stemmed with the store's configuration, as the memories were.
    """
    return Statement(
        sql.SQL(
            """SELECT {found}
            FROM {m} m, websearch_to_tsquery(%(config)s::regconfig, %(query)s) AS q
            WHERE {live} AND m.search_vector @@ q
            ORDER BY ts_rank(m.search_vector, q) DESC, m.event_time DESC NULLS LAST, m.id
            LIMIT %(limit)s"""
        ).format(m=m, found=_FOUND, live=_LIVE),
        class_row(FoundMemory),
        index_only=True,
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
                    ORDER BY ts_rank(m.search_vector, q) DESC, m.event_time DESC NULLS LAST, m.id
                ) AS rank
                FROM {m} m, websearch_to_tsquery(%(config)s::regconfig, %(query)s) AS q
                WHERE {live} AND m.search_vector @@ q
                ORDER BY rank LIMIT %(candidates)s
            ), by_vector AS (
                SELECT m.id, row_number() OVER (
                    ORDER BY m.embedding <=> %(embedding)s::vector, m.id
                ) AS rank
                FROM {m} m
                WHERE {live} AND m.embedding IS NOT NULL
                ORDER BY rank LIMIT %(candidates)s
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
        ).format(m=m, found=_FOUND, live=_LIVE, k=sql.Literal(RRF_K)),
        class_row(FoundMemory),
        index_only=True,
    )


def delete(m: sql.Composable) -> Statement[int]:
    """Forget a memory: only its key stays, so it is never stored again; returns 0 or 1."""
    return scalar(
        sql.SQL(
            """WITH gone AS (
                UPDATE {m} SET delete_time = now(), session_id = NULL, author = NULL,
                    event_time = NULL, "timestamp" = NULL, content = NULL,
                    custom_metadata = '{{}}'::jsonb, search_text = ''
                WHERE key = ARRAY[%(app_name)s::text, %(user_id)s::text, %(memory_id)s::text]
                  AND delete_time IS NULL
                RETURNING 1
            ) SELECT count(*) FROM gone"""
        ).format(m=m)
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


#: Whether ``%(config)s`` names a text-search configuration (an error if not).
CHECK_CONFIG = scalar(sql.SQL("SELECT %(config)s::regconfig::text"))


class MemoryStatements:
    """Every statement of one memory table, built once per store."""

    def __init__(self, table: str, *, vectors: bool) -> None:
        m = sql.Identifier(table)
        self.add = add(m, vectors=vectors)
        self.search = search(m)
        self.hybrid_search = hybrid_search(m)
        self.delete = delete(m)
        self.prune = prune(m, dry_run=False)
        self.count_prunable = prune(m, dry_run=True)
        #: Memories stored, deleted ones apart.
        self.count = scalar(sql.SQL("SELECT count(*) FROM {} WHERE delete_time IS NULL").format(m))
