"""Catalog reads for the admin commands: server facts, table and index sizes.

Table names resolve through the search path, as the stores' own statements do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import TupleRow, dict_row

__all__ = [
    "EXACT_COUNT_BYTES",
    "extension",
    "index_stats",
    "round_trip_ms",
    "server_info",
    "table_stats",
]

_SERVER = """
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       current_database() AS database,
       current_user AS "user",
       current_schema() AS schema,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved_connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
           AS connections,
       pg_is_in_recovery() AS in_recovery,
       COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false) AS can_create,
       current_setting('TimeZone') AS timezone
"""

_TABLES = """
SELECT t.name, c.oid::int AS oid,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_relation_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       COALESCE(s.n_live_tup, CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END)
           AS rows_estimate,
       s.n_live_tup AS live_rows, s.n_dead_tup AS dead_rows,
       GREATEST(s.last_autovacuum, s.last_vacuum) AS last_vacuum
FROM unnest(%(names)s::text[]) WITH ORDINALITY AS t(name, ord)
LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name))
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
ORDER BY t.ord
"""

_INDEXES = """
SELECT ic.relname AS name, tc.relname AS "table", pg_relation_size(ic.oid) AS bytes,
       i.indisvalid AS valid, i.indisprimary AS "primary",
       pg_get_indexdef(ic.oid) AS definition
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
WHERE i.indrelid = ANY(%(oids)s::oid[])
ORDER BY array_position(%(oids)s::oid[], i.indrelid), ic.relname
"""


def extension(conn: Connection[TupleRow], name: str) -> tuple[str | None, str | None]:
    """The version of extension ``name`` the server offers, and the one installed here."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = %s",
        (name,),
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def round_trip_ms(conn: Connection[TupleRow]) -> float:
    """How long an empty statement takes, there and back, in milliseconds."""
    started = time.perf_counter()
    conn.execute("SELECT 1")
    return (time.perf_counter() - started) * 1000


def server_info(conn: Connection[TupleRow]) -> dict[str, Any]:
    """Version, database, user, connection limits and role of the server."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SERVER)
        row = cur.fetchone()
    assert row is not None
    return dict(row)


#: Tables up to this size get their rows counted exactly; larger ones are estimated.
EXACT_COUNT_BYTES = 64 * 1024 * 1024


def table_stats(conn: Connection[TupleRow], names: Sequence[str]) -> list[dict[str, Any]]:
    """Each named table: whether it exists, its sizes, rows, dead rows.

    ``rows`` is exact (``rows_exact``) for tables up to :data:`EXACT_COUNT_BYTES`,
    the statistics' estimate beyond.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_TABLES, {"names": list(names)})
        rows = [dict(row) for row in cur.fetchall()]
    for row in rows:
        row["exists"] = row["oid"] is not None
        row["rows"], row["rows_exact"] = row.pop("rows_estimate"), False
        if row["exists"] and row["table_bytes"] <= EXACT_COUNT_BYTES:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(row["name"]))
            counted = conn.execute(query).fetchone()
            row["rows"], row["rows_exact"] = (int(counted[0]) if counted else 0), True
    return rows


def index_stats(conn: Connection[TupleRow], table_oids: list[int]) -> list[dict[str, Any]]:
    """Every index of the given tables: size, validity, definition."""
    if not table_oids:
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_INDEXES, {"oids": table_oids})
        return [dict(row) for row in cur.fetchall()]
