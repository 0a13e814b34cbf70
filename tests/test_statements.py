"""Every statement's result columns against the record its rows are read into, on a real server.

Each statement is prepared (never executed) on tables ``create_tables()`` made,
and the server's description of its result is handed to the statement's own row
factory, as psycopg does when it fetches. A ``record_row`` record then has to be
built from exactly those column names, in its fields' order: a column renamed or
moved in a SELECT, or a field renamed in its dataclass, fails here without a
single row stored.

Why this way rather than reading ``row_factory.__closure__`` or keeping a map
of statement to record: the row factory is exercised through the same path a
fetch takes, so there is no psycopg internals to track and no list to keep in
step; a new ``record_row`` statement is covered as soon as ``SessionStatements``
(or the schema) holds it, and the record class is learnt from the row built.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import psycopg
from psycopg import pq, sql

from helpers import numbered
from sqlspec.adapters.psycopg.adk import _versions
from sqlspec.adapters.psycopg.adk._jsonl import CREATE_STAGING
from sqlspec.adapters.psycopg.adk._statement import Statement, record_row
from sqlspec.adapters.psycopg.adk.session import _schema, _statements
from sqlspec.adapters.psycopg.adk.session._statements import LIST_ORDERS


def catalogue(store: Any) -> dict[str, Statement[Any]]:
    """Every statement that may return rows, by name: the store's own, every variant."""
    statements = store.statements
    found = {k: v for k, v in vars(statements).items() if isinstance(v, Statement)}
    found.update({f"export.{kind}": st for kind, st in statements.export})
    for of_user, order_by, paged in itertools.product((False, True), LIST_ORDERS, (False, True)):
        found[f"list_sessions({of_user}, {order_by}, {paged})"] = statements.list_sessions(
            of_user=of_user, order_by=order_by, paged=paged
        )
    for after, newest in itertools.product((False, True), repeat=2):
        found[f"iter_events({after}, {newest})"] = statements.iter_events(
            after=after, newest=newest
        )
        found[f"get_session({after}, {newest})"] = statements.get_session(
            after=after, newest=newest
        )
    found["schema.objects"] = store.schema.objects
    versions = _versions.VersionStatements(store.tables.sessions)
    found.update(
        {f"versions.{k}": v for k, v in vars(versions).items() if isinstance(v, Statement)}
    )
    return found


def declared_records() -> set[type]:
    """The dataclasses the statement modules declare for rows to be read into."""
    records = {
        obj
        for module in (_statements, _schema, _versions)
        for obj in vars(module).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == module.__name__
    }
    # Not row records: a statement fragment builder, and the table names.
    return records - {_statements.EventInsert, _schema.TableNames}


def result_columns(conn: psycopg.Connection[Any], text: bytes) -> tuple[pq.abc.PGresult, list[str]]:
    """Prepare ``text`` (unnamed, so nothing is left behind) and describe its result."""
    pgconn = conn.pgconn
    prepared = pgconn.prepare(b"", numbered(text)[0])
    assert prepared.status == pq.ExecStatus.COMMAND_OK, prepared.error_message.decode()
    described = pgconn.describe_prepared(b"")
    assert described.status == pq.ExecStatus.COMMAND_OK
    return described, [described.fname(i).decode() for i in range(described.nfields)]  # type: ignore[union-attr]


def drift(
    conn: psycopg.Connection[Any], name: str, statement: Statement[Any]
) -> tuple[type | None, str | None]:
    """The record class ``statement`` reads rows into, and what is wrong with it (or None)."""
    described, columns = result_columns(conn, statement.text)
    if not columns:
        return None, None  # a write without RETURNING rows
    with conn.cursor() as cur:
        cur.pgresult = described
        try:
            row = statement.row_factory(cur)(tuple(range(len(columns))))
        except TypeError as exc:
            return None, f"{name}: {exc}"
    if not dataclasses.is_dataclass(row):
        if len(columns) != 1:
            return None, f"{name}: a scalar statement returns {columns}; only the first is read"
        return None, None
    return type(row), None


def test_every_select_returns_exactly_the_columns_its_record_reads(sync_store: Any) -> None:
    problems: list[str] = []
    records: dict[str, type] = {}
    with sync_store.config.provide_connection() as conn, conn.transaction(force_rollback=True):
        conn.execute(CREATE_STAGING.text)  # the imports read this temp table
        for name, statement in catalogue(sync_store).items():
            record, problem = drift(conn, name, statement)
            if record is not None:
                records[name] = record
            if problem is not None:
                problems.append(problem)
    assert problems == []
    # Every record declared for rows is read by some statement checked here.
    assert declared_records() == set(records.values()), records
    assert records["list_sessions(True, create_time, True)"] is _statements.ListedSession


@dataclasses.dataclass(frozen=True)
class PrunedWithNote:
    """``Pruned`` with a field no column fills: its default would hide the drift."""

    sessions: int
    events: int
    note: str = ""


def test_the_check_catches_drift_on_either_side(sync_store: Any) -> None:
    """A SELECT alias renamed, a column added or moved, a record field no column fills."""
    get_session = sync_store.statements.get_session(after=False, newest=False)
    renamed = Statement(get_session.query, get_session.row_factory)
    renamed.text = get_session.text.replace(b"AS session_state", b"AS state", 1)
    added = Statement(get_session.query, get_session.row_factory)
    added.text = get_session.text.replace(b"SELECT ", b"SELECT 1 AS spare, ", 1)
    moved = Statement(sql.SQL("SELECT 2 AS events, 1 AS sessions"), record_row(_statements.Pruned))
    noted = Statement(sync_store.statements.count_prunable.query, record_row(PrunedWithNote))
    in_order = Statement(sql.SQL("SELECT 1 AS sessions, 2 AS events"), moved.row_factory)
    with sync_store.config.provide_connection() as conn, conn.transaction(force_rollback=True):
        assert drift(conn, "get_session", get_session) == (_statements.StoredSession, None)
        for changed in (renamed, added, moved, noted):
            record, problem = drift(conn, "changed", changed)
            assert record is None
            assert problem is not None
            assert "do not build its record" in problem
        assert drift(conn, "in order", in_order) == (_statements.Pruned, None)
        fetched = conn.cursor(row_factory=in_order.row_factory).execute(in_order.text).fetchone()
        assert fetched == _statements.Pruned(sessions=1, events=2)
