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


def add(m: sql.Composable) -> Statement[int]:
    """Store ``%(records)s`` (a JSON array of memories) for a user; returns how many were new.

    A memory whose id the user has already (even deleted) is left as it is.
    """
    return scalar(
        sql.SQL(
            """WITH added AS (
                INSERT INTO {m} (app_name, user_id, id, session_id, author, event_time,
                    "timestamp", content, custom_metadata, search_config, search_text)
                SELECT %(app_name)s, %(user_id)s, r.id, r.session_id, r.author, r.event_time,
                    r."timestamp", r.content, COALESCE(r.custom_metadata, '{{}}'::jsonb),
                    %(config)s::regconfig, r.text
                FROM json_to_recordset(%(records)s::json) AS r(id text, session_id text,
                    author text, event_time float8, "timestamp" text, content json,
                    custom_metadata jsonb, text text)
                ON CONFLICT (app_name, user_id, id) DO NOTHING
                RETURNING 1
            ) SELECT count(*) FROM added"""
        ).format(m=m)
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


def search(m: sql.Composable) -> Statement[FoundMemory]:
    """A user's live memories matching the text query ``%(query)s``, best ranked first.

    ``websearch_to_tsquery`` reads any text without a syntax error; the query is
    stemmed with the store's configuration, as the memories were.
    """
    return Statement(
        sql.SQL(
            """SELECT m.id, m.session_id, m.author, m.event_time, m."timestamp",
                m.content::text AS content, m.custom_metadata::text AS custom_metadata
            FROM {m} m, websearch_to_tsquery(%(config)s::regconfig, %(query)s) AS q
            WHERE m.app_name = %(app_name)s AND m.user_id = %(user_id)s
              AND m.delete_time IS NULL AND m.search_vector @@ q
            ORDER BY ts_rank(m.search_vector, q) DESC, m.event_time DESC NULLS LAST, m.id
            LIMIT %(limit)s"""
        ).format(m=m),
        class_row(FoundMemory),
    )


def delete(m: sql.Composable) -> Statement[int]:
    """Forget a memory: only its key stays, so it is never stored again; returns 0 or 1."""
    return scalar(
        sql.SQL(
            """WITH gone AS (
                UPDATE {m} SET delete_time = now(), session_id = NULL, author = NULL,
                    event_time = NULL, "timestamp" = NULL, content = NULL,
                    custom_metadata = '{{}}'::jsonb, search_text = ''
                WHERE app_name = %(app_name)s AND user_id = %(user_id)s AND id = %(memory_id)s
                  AND delete_time IS NULL
                RETURNING 1
            ) SELECT count(*) FROM gone"""
        ).format(m=m)
    )


#: Whether ``%(config)s`` names a text-search configuration (an error if not).
CHECK_CONFIG = scalar(sql.SQL("SELECT %(config)s::regconfig::text"))


class MemoryStatements:
    """Every statement of one memory table, built once per store."""

    def __init__(self, table: str) -> None:
        m = sql.Identifier(table)
        self.add = add(m)
        self.search = search(m)
        self.delete = delete(m)
