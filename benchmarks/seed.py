"""Seeding large sessions fast: clone one real row with ``INSERT ... SELECT generate_series``.

A template row is written through the implementation itself (the library's store,
or ADK's service), so every column holds what that implementation writes; the
clones only get a new id and later timestamps (the exact float timestamp inside
``event_data`` included, so the library's ordering and ADK's both hold).
"""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

__all__ = ["clone_events", "clone_sessions", "settle", "table_columns"]


async def table_columns(conn: AsyncConnection[TupleRow], table: str) -> dict[str, str]:
    """The columns of ``table`` and their types (``udt_name``), in table order."""
    cur = await conn.execute(
        "SELECT column_name::text, udt_name::text FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    columns = {str(name): str(udt) for name, udt in await cur.fetchall()}
    if not columns:
        raise RuntimeError(f"table {table} not found")
    return columns


async def _clone(
    conn: AsyncConnection[TupleRow],
    table: str,
    *,
    where: sql.Composable,
    count: int,
    overrides: dict[str, sql.Composable],
    columns: dict[str, str] | None = None,
) -> int:
    """Insert ``count`` copies of the one row matching ``where``, with ``overrides`` applied.

    Override expressions see the template row as ``t`` and the copy's number
    (1..count) as ``g``.
    """
    if count <= 0:
        return 0
    columns = columns or await table_columns(conn, table)
    missing = set(overrides) - set(columns)
    if missing:
        raise RuntimeError(f"{table} has no column(s) {sorted(missing)}: the schema changed")
    values = [
        overrides.get(column, sql.SQL("t.{}").format(sql.Identifier(column))) for column in columns
    ]
    query = sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT {values} "
        "FROM {table} t CROSS JOIN generate_series(1, {count}) AS g WHERE {where}"
    ).format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        values=sql.SQL(", ").join(values),
        count=sql.Literal(count),
        where=where,
    )
    cur = await conn.execute(query)
    return cur.rowcount


def _where(**equals: str) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("t.{} = {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in equals.items()
    )


async def clone_events(
    conn: AsyncConnection[TupleRow],
    table: str,
    *,
    app: str,
    user: str,
    session_id: str,
    event_id: str,
    count: int,
    naive_timestamp: bool = False,
) -> int:
    """``count`` copies of one stored event, each 1 ms after the previous one.

    ``naive_timestamp``: the timestamp column is ``TIMESTAMP`` (ADK's schema on
    PostgreSQL) instead of ``TIMESTAMPTZ`` (the library's).
    """
    columns = await table_columns(conn, table)
    exact = sql.SQL("((t.event_data ->> 'timestamp')::float8 + g * 0.001)")
    column_ts = (
        sql.SQL("(to_timestamp({}) AT TIME ZONE 'UTC')").format(exact)
        if naive_timestamp
        else sql.SQL("to_timestamp({})").format(exact)
    )
    # event_data is json or jsonb depending on the schema; jsonb_set either way.
    data_type = sql.Identifier(columns.get("event_data", "jsonb"))
    return await _clone(
        conn,
        table,
        where=_where(app_name=app, user_id=user, session_id=session_id, id=event_id),
        count=count,
        overrides={
            "id": sql.SQL("'seed-' || lpad(g::text, 7, '0')"),
            "timestamp": column_ts,
            "event_data": sql.SQL(
                "jsonb_set(t.event_data::jsonb, '{{timestamp}}', to_jsonb({}))::{}"
            ).format(exact, data_type),
        },
        columns=columns,
    )


async def clone_sessions(
    conn: AsyncConnection[TupleRow], table: str, *, app: str, user: str, session_id: str, count: int
) -> int:
    """``count`` copies of one stored session, each updated 1 ms after the previous one."""
    step = sql.SQL("g * interval '1 millisecond'")
    return await _clone(
        conn,
        table,
        where=_where(app_name=app, user_id=user, id=session_id),
        count=count,
        overrides={
            "id": sql.SQL("{} || '-' || lpad(g::text, 7, '0')").format(sql.Literal(session_id)),
            "create_time": sql.SQL("t.create_time + {}").format(step),
            "update_time": sql.SQL("t.update_time + {}").format(step),
        },
    )


async def settle(conn: AsyncConnection[TupleRow], *tables: str) -> None:
    """Bring freshly seeded tables to a steady state before timing anything on them.

    ``VACUUM (ANALYZE)`` gives the planner statistics and sets the visibility map,
    so autovacuum does not wake up mid-measurement; ``CHECKPOINT`` flushes the
    seed's WAL now rather than during the next timed series (skipped without the
    privilege).
    """
    for table in tables:
        await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    with contextlib.suppress(psycopg.Error):
        await conn.execute("CHECKPOINT")
