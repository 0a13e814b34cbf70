"""Catalog reads for the admin commands: server facts, table and index sizes, apps.

Table names resolve through the search path, as the store's own statements do.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection, sql
from psycopg.rows import TupleRow, dict_row

from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk._common import translate_errors

__all__ = [
    "expected_indexes",
    "expired_sessions",
    "index_stats",
    "list_apps",
    "missing_objects",
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


def _table_names(store: PsycopgSyncADKStore) -> list[str]:
    t = store.tables
    return [t.sessions, t.events, t.app_states, t.user_states]


def expected_indexes(store: PsycopgSyncADKStore) -> dict[str, str]:
    """The secondary indexes the current schema version creates, name -> table."""
    return dict(store.statements.index_names)


def server_info(conn: Connection[TupleRow]) -> dict[str, Any]:
    """Version, database, user, connection limits and role of the server."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SERVER)
        row = cur.fetchone()
    assert row is not None
    return dict(row)


#: Tables up to this size get their rows counted exactly; larger ones are estimated.
EXACT_COUNT_BYTES = 64 * 1024 * 1024


def table_stats(store: PsycopgSyncADKStore, conn: Connection[TupleRow]) -> list[dict[str, Any]]:
    """Each of the store's tables: whether it exists, its sizes, rows, dead rows.

    ``rows`` is exact (``rows_exact``) for tables up to :data:`EXACT_COUNT_BYTES`,
    the statistics' estimate beyond.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_TABLES, {"names": _table_names(store)})
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


def missing_objects(store: PsycopgSyncADKStore) -> list[str]:
    """Tables and indexes of the current schema that do not exist, as ``table x``/``index y``."""
    names = [("table", name) for name in _table_names(store)]
    names += [("index", name) for name in expected_indexes(store)]
    with store.config.provide_connection() as conn:
        rows = conn.execute(
            "SELECT n, to_regclass(quote_ident(n)) IS NULL FROM unnest(%s::text[]) AS n",
            ([name for _, name in names],),
        ).fetchall()
    missing = {name for name, absent in rows if absent}
    return [f"{kind} {name}" for kind, name in names if name in missing]


def expired_sessions(store: PsycopgSyncADKStore, conn: Connection[TupleRow]) -> int:
    """Sessions past their ``expire_time`` still stored (``prune`` deletes them)."""
    query = sql.SQL(
        "SELECT count(*) FROM {} WHERE expire_time IS NOT NULL AND expire_time <= now()"
    ).format(sql.Identifier(store.tables.sessions))
    with translate_errors():
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def list_apps(store: PsycopgSyncADKStore) -> list[str]:
    """Every app with at least one stored session."""
    query = sql.SQL("SELECT DISTINCT app_name FROM {} ORDER BY 1").format(
        sql.Identifier(store.tables.sessions)
    )
    with translate_errors(), store.config.provide_connection() as conn:
        return [row[0] for row in conn.execute(query).fetchall()]
