"""Seeding large sessions fast: clone one real row with ``INSERT ... SELECT generate_series``.

A template row is written through the implementation itself (the library's store,
or ADK's service), so every column holds what that implementation writes; the
clones only get a new id and later timestamps (the exact float timestamp inside
``event_data`` included, so the library's ordering and ADK's both hold).
Memories are cloned the same way from a set of template memories (:func:`clone_memories`).
"""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

__all__ = ["clone_events", "clone_memories", "clone_sessions", "settle", "table_columns"]


async def table_columns(
    conn: AsyncConnection[TupleRow], table: str, *, writable: bool = False
) -> dict[str, str]:
    """The columns of ``table`` and their types (``udt_name``), in table order.

    ``writable``: only the columns an INSERT may name (generated columns left out).
    """
    cur = await conn.execute(
        "SELECT column_name::text, udt_name::text FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s "
        "AND (NOT %s OR is_generated = 'NEVER') ORDER BY ordinal_position",
        (table, writable),
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


async def clone_memories(
    conn: AsyncConnection[TupleRow],
    table: str,
    *,
    templates: str,
    app: str,
    template_user: str,
    template_count: int,
    start: int,
    stop: int,
    users: int,
    user_prefix: str,
    id_prefix: str,
) -> int:
    """Memories ``start`` to ``stop - 1`` of ``users`` users, cloned from template memories.

    Memory ``g`` belongs to user ``<user_prefix><g % users, 5 digits>``; it is that
    user's memory number ``k = g // users``, a copy of template ``k % template_count``
    (the templates are ``template_user``'s memories in ``templates``, a table of the
    same columns, in id order). Its id is ``<id_prefix><g, 8 digits>``, its session
    holds 50 of the user's memories, and its time is 1 ms after the previous one.
    Only real columns are written: the server computes the generated ones (the
    search vector from ``search_text`` and ``search_config``, the key).
    """
    if stop <= start:
        return 0
    columns = await table_columns(conn, table, writable=True)
    k = sql.SQL("(g / {})").format(sql.Literal(users))
    overrides: dict[str, sql.Composable] = {
        "user_id": sql.SQL("{} || lpad((g % {})::text, 5, '0')").format(
            sql.Literal(user_prefix), sql.Literal(users)
        ),
        "id": sql.SQL("{} || lpad(g::text, 8, '0')").format(sql.Literal(id_prefix)),
        "session_id": sql.SQL("'session-' || ({} / 50)::text").format(k),
        "event_time": sql.SQL("t.event_time + g * 0.001"),
    }
    missing = set(overrides) - set(columns)
    if missing:
        raise RuntimeError(f"{table} has no column(s) {sorted(missing)}: the schema changed")
    values = [
        overrides.get(column, sql.SQL("t.{}").format(sql.Identifier(column))) for column in columns
    ]
    query = sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT {values} "
        "FROM generate_series({start}::bigint, {last}::bigint) AS g "
        "JOIN (SELECT row_number() OVER (ORDER BY s.id) - 1 AS template_number, s.* "
        "FROM {templates} s WHERE s.app_name = {app} AND s.user_id = {user}) t "
        "ON t.template_number = {k} % {count}"
    ).format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        values=sql.SQL(", ").join(values),
        start=sql.Literal(start),
        last=sql.Literal(stop - 1),
        templates=sql.Identifier(templates),
        app=sql.Literal(app),
        user=sql.Literal(template_user),
        k=k,
        count=sql.Literal(template_count),
    )
    cur = await conn.execute(query)
    return cur.rowcount


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
