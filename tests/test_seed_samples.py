"""Every code sample of the psycopg backend spec, run against the real server.

Each test runs one sample as the spec writes it, with only the ``conninfo``
replaced by the fixture's ``dsn``, then asserts what a user of the sample relies
on. Where a sample cannot run as written for a reason that lies in the sample
itself (a reserved word used as a table name, a ``...`` placeholder, a missing
``NOT NULL`` column, psycopg's own semantics), the comment says so and the test
pins down what really happens, then runs the nearest working form.

The ``bash`` install commands of the spec are not run (nothing is installed from
a test); the psycopg2 halves of the migration samples run only where psycopg2
is installed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions import Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
from psycopg import sql as pg_sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

import sqlspec
from sqlspec import ImproperConfigurationError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

# --------------------------------------------------------------------------- helpers


def query(dsn: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own (outside any config) and fetch it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


async def aquery(dsn: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """As :func:`query`, on an async connection of its own."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(statement, params)
        return await cur.fetchall() if cur.description else []


def make_event(text: str, **extra: Any) -> Event:
    return Event(
        author="user",
        invocation_id="inv-1",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        **extra,
    )


def server_has_ssl(dsn: str) -> bool:
    return bool(query(dsn, "SHOW ssl")[0][0] == "on")


def dsn_params(dsn: str) -> dict[str, Any]:
    """host/port/user/dbname/password the dsn stands for, filled in by libpq where implicit."""
    params = conninfo_to_dict(dsn)
    with psycopg.connect(dsn) as conn:
        info = conn.info
        return {
            "host": params.get("host") or info.host,
            "port": int(params.get("port") or info.port),
            "user": params.get("user") or info.user,
            "password": params.get("password") or info.password,
            "dbname": params.get("dbname") or info.dbname,
        }


async def backend_count(dsn: str, application_name: str) -> int:
    """Server connections carrying ``application_name``, once the count has settled."""
    count = -1
    for _ in range(50):
        rows = await aquery(
            dsn,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        )
        new_count = rows[0][0]
        if new_count == count:
            return count
        count = new_count
        await asyncio.sleep(0.1)
    return count


# --------------------------------------------------------------------------- Quick Start


async def test_quick_start_async(dsn: str) -> None:
    # Create async config with connection pool
    config = PsycopgAsyncConfig(
        connection_config={
            "conninfo": dsn,
            "min_size": 5,
            "max_size": 20,
        }
    )
    try:
        # Create async store
        store = PsycopgAsyncADKStore(config)
        await store.create_tables()

        # Create session service
        service = SQLSpecSessionService(store)

        # Create session with JSONB state
        session = await service.create_session(
            app_name="my_agent",
            user_id="user_123",
            state={"context": "active", "preferences": {"theme": "dark"}},
        )

        assert isinstance(session, Session)
        assert session.app_name == "my_agent"
        assert session.user_id == "user_123"
        assert session.id
        assert session.state == {"context": "active", "preferences": {"theme": "dark"}}
        assert session.events == []

        got = await service.get_session(
            app_name="my_agent", user_id="user_123", session_id=session.id
        )
        assert isinstance(got, Session)
        assert got.state == session.state
        # Stored as a JSONB object, not as a JSON string.
        rows = await aquery(
            dsn, "SELECT jsonb_typeof(state), state FROM adk_sessions WHERE id = %s", (session.id,)
        )
        assert rows == [("object", {"context": "active", "preferences": {"theme": "dark"}})]
        # The pool honours min_size.
        pool = await config.provide_pool()
        await pool.wait(timeout=30)
        assert pool.get_stats()["pool_size"] >= 5
        assert (pool.min_size, pool.max_size) == (5, 20)
    finally:
        await config.close()


def test_quick_start_sync(dsn: str) -> None:
    # Create sync config with connection pool
    config = PsycopgSyncConfig(
        connection_config={
            "conninfo": dsn,
            "min_size": 5,
            "max_size": 20,
        }
    )
    try:
        # Create sync store
        store = PsycopgSyncADKStore(config)
        store.create_tables()

        # Create session service
        service = SQLSpecSessionService(store)

        # Create session
        session = service.create_session(
            app_name="my_agent", user_id="user_123", state={"context": "active"}
        )

        # Not awaited: a sync caller gets the Session itself.
        assert not inspect.isawaitable(session)
        assert isinstance(session, Session)
        assert session.app_name == "my_agent"
        assert session.user_id == "user_123"
        assert session.state == {"context": "active"}

        got = service.get_session(app_name="my_agent", user_id="user_123", session_id=session.id)
        assert isinstance(got, Session)
        assert got.state == {"context": "active"}
        listed = service.list_sessions(app_name="my_agent", user_id="user_123")
        assert [s.id for s in listed.sessions] == [session.id]
        assert query(dsn, "SELECT state FROM adk_sessions WHERE id = %s", (session.id,)) == [
            ({"context": "active"},)
        ]
    finally:
        config.close()


# --------------------------------------------------------------------------- Configuration


async def test_basic_async_configuration(dsn: str) -> None:
    config = PsycopgAsyncConfig(
        connection_config={
            "conninfo": dsn,
            "min_size": 5,  # Minimum pool connections
            "max_size": 20,  # Maximum pool connections
            "timeout": 30.0,  # Connection acquisition timeout
            "max_lifetime": 3600.0,  # Max connection lifetime (1 hour)
            "max_idle": 600.0,  # Max connection idle time (10 min)
        }
    )
    try:
        pool = await config.provide_pool()
        assert (pool.min_size, pool.max_size) == (5, 20)
        assert (pool.timeout, pool.max_lifetime, pool.max_idle) == (30.0, 3600.0, 600.0)
        async with config.provide_connection() as conn:
            cur = await conn.execute("SELECT current_database()")
            assert (await cur.fetchone()) == (conninfo_to_dict(dsn)["dbname"],)
    finally:
        await config.close()


def test_basic_sync_configuration(dsn: str) -> None:
    config = PsycopgSyncConfig(
        connection_config={
            "conninfo": dsn,
            "min_size": 5,
            "max_size": 20,
        }
    )
    try:
        pool = config.provide_pool()
        assert (pool.min_size, pool.max_size) == (5, 20)
        with config.provide_connection() as conn:
            row = conn.execute("SELECT current_database()").fetchone()
            assert row == (conninfo_to_dict(dsn)["dbname"],)
    finally:
        config.close()


def advanced_connection_config(dsn: str) -> dict[str, Any]:
    """The Advanced Configuration sample's mapping, pointed at the test server."""
    p = dsn_params(dsn)
    return {
        # Connection string
        "conninfo": make_conninfo(dsn, sslmode="require"),
        # OR individual parameters
        "host": p["host"],
        "port": p["port"],
        "user": p["user"],
        # The sample's password is kept unless the dsn carries one (trust auth ignores it).
        "password": p["password"] or "mypass",
        "dbname": p["dbname"],
        # Pool settings
        "min_size": 5,
        "max_size": 20,
        "timeout": 30.0,
        "max_waiting": 0,  # Max queued connection requests
        "max_lifetime": 3600.0,  # Recycle connections hourly
        "max_idle": 600.0,  # Close idle connections after 10min
        "reconnect_timeout": 300.0,
        "num_workers": 3,  # Background worker threads
        # Connection settings
        "connect_timeout": 10,
        "application_name": "my_adk_agent",
        "sslmode": "require",
        "autocommit": False,
    }


async def check_advanced_pool(config: PsycopgAsyncConfig) -> None:
    """The pool and its connections carry every setting of the Advanced sample."""
    pool = await config.provide_pool()
    assert (pool.min_size, pool.max_size, pool.timeout, pool.max_waiting) == (5, 20, 30.0, 0)
    assert (pool.max_lifetime, pool.max_idle, pool.reconnect_timeout) == (3600.0, 600.0, 300.0)
    assert pool.num_workers == 3
    async with config.provide_connection() as conn:
        assert conn.autocommit is False
        cur = await conn.execute("SHOW application_name")
        assert (await cur.fetchone()) == ("my_adk_agent",)
        assert conn.info.get_parameters().get("connect_timeout") == "10"
    # The ADK store still writes (and commits) on these non-autocommit connections.
    store = PsycopgAsyncADKStore(config)
    await store.create_tables()
    service = SQLSpecSessionService(store)
    session = await service.create_session(app_name="adv", user_id="u", state={"k": 1})
    got = await service.get_session(app_name="adv", user_id="u", session_id=session.id)
    assert got is not None
    assert got.state == {"k": 1}
    async with config.provide_connection() as conn:
        assert conn.autocommit is False  # handed back as configured


async def test_advanced_configuration_every_key(dsn: str) -> None:
    connection_config = advanced_connection_config(dsn)
    config = PsycopgAsyncConfig(connection_config=connection_config)
    try:
        # Every key is accepted and lands in the settings.
        assert config.connection_config == connection_config
        params = conninfo_to_dict(config.settings.conninfo)
        assert params["sslmode"] == "require"
        assert params["application_name"] == "my_adk_agent"
        assert params["connect_timeout"] == "10"
        assert config.settings.autocommit is False
        on_socket = str(connection_config["host"]).startswith("/")
        if server_has_ssl(dsn) or on_socket:
            # libpq ignores sslmode on unix sockets; with SSL on, "require" is met.
            await check_advanced_pool(config)
        else:
            # This server runs without SSL: sslmode=require is refused by libpq, and
            # that refusal (not an "unknown key" or a hang) is what the user sees.
            with pytest.raises(psycopg.OperationalError, match="SSL"):
                await config.create_connection()
    finally:
        await config.close()


async def test_advanced_configuration_without_sslmode(dsn: str) -> None:
    # The same sample less `sslmode: require` (conninfo and key), since the test
    # server may have no SSL: every other key is exercised against the server.
    connection_config = advanced_connection_config(dsn)
    connection_config["conninfo"] = dsn
    del connection_config["sslmode"]
    config = PsycopgAsyncConfig(connection_config=connection_config)
    try:
        await check_advanced_pool(config)
    finally:
        await config.close()


@pytest.mark.parametrize("config_class", [PsycopgAsyncConfig, PsycopgSyncConfig])
@pytest.mark.parametrize("bad_key", ["pool_size", "maxsize", "min_pool_size", "ssl_mode"])
def test_unknown_key_is_rejected_naming_valid_keys(config_class: Any, bad_key: str) -> None:
    # Pointed at no server at all: the check happens at construction, before any I/O.
    with pytest.raises(ImproperConfigurationError) as info:
        config_class(connection_config={"conninfo": "host=/nonexistent/sqlspec port=1", bad_key: 5})
    message = str(info.value)
    assert bad_key in message
    for valid in ("conninfo", "min_size", "max_size", "max_lifetime", "sslmode", "autocommit"):
        assert valid in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("config_class", [PsycopgAsyncConfig, PsycopgSyncConfig])
@pytest.mark.parametrize(
    "bad",
    [
        {"min_size": "5"},
        {"max_size": 5.5},
        {"autocommit": "yes"},
        {"timeout": "30"},
        {"min_size": 10, "max_size": 5},
    ],
)
def test_mistyped_or_inconsistent_values_are_rejected(config_class: Any, bad: Any) -> None:
    with pytest.raises(ImproperConfigurationError):
        config_class(connection_config={"conninfo": "host=/nonexistent/sqlspec port=1", **bad})


# --------------------------------------------------------------------------- Custom table names


async def test_custom_table_names(async_config: PsycopgAsyncConfig, dsn: str) -> None:
    store = PsycopgAsyncADKStore(
        async_config, session_table="agent_sessions", events_table="agent_events"
    )
    await store.create_tables()
    tables = {
        r[0]
        for r in await aquery(
            dsn,
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind = 'r'",
        )
    }
    assert {"agent_sessions", "agent_events"} <= tables
    assert "adk_sessions" not in tables
    assert "adk_events" not in tables

    service = SQLSpecSessionService(store)
    session = await service.create_session(app_name="app", user_id="u", state={"a": 1})
    await service.append_event(session, make_event("hello"))
    assert await aquery(dsn, "SELECT id FROM agent_sessions") == [(session.id,)]
    assert await aquery(dsn, "SELECT count(*) FROM agent_events") == [(1,)]


async def test_mixed_case_table_names_end_to_end(
    async_config: PsycopgAsyncConfig, dsn: str
) -> None:
    store = PsycopgAsyncADKStore(
        async_config, session_table="AgentSessions", events_table="AgentEvents"
    )
    await store.create_tables()
    await store.create_tables()
    tables = {
        r[0]
        for r in await aquery(
            dsn,
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind = 'r'",
        )
    }
    assert {"AgentSessions", "AgentEvents"} <= tables
    assert "agentsessions" not in tables

    service = SQLSpecSessionService(store)
    session = await service.create_session(
        app_name="app", user_id="u", state={"x": 1, "app:a": 2, "user:b": 3}, session_id="s1"
    )
    event = make_event("hi", actions=EventActions(state_delta={"y": 2}))
    await service.append_event(session, event)
    got = await service.get_session(app_name="app", user_id="u", session_id="s1")
    assert got is not None
    assert got.state == {"x": 1, "y": 2, "app:a": 2, "user:b": 3}
    assert got.events == [event]
    listed = await service.list_sessions(app_name="app", user_id="u")
    assert [s.id for s in listed.sessions] == ["s1"]
    assert await aquery(dsn, 'SELECT count(*) FROM "AgentEvents"') == [(1,)]
    await service.delete_session(app_name="app", user_id="u", session_id="s1")
    assert await service.get_session(app_name="app", user_id="u", session_id="s1") is None
    assert await aquery(dsn, 'SELECT count(*) FROM "AgentSessions"') == [(0,)]
    assert await aquery(dsn, 'SELECT count(*) FROM "AgentEvents"') == [(0,)]


# --------------------------------------------------------------------------- Jsonb() wrapper


async def test_warning_jsonb_wrong_and_correct(async_config: PsycopgAsyncConfig, dsn: str) -> None:
    # The sample's `table` is a placeholder: it is a reserved word, so as written
    # even the CORRECT form is a syntax error. A user table stands in for it.
    async with async_config.provide_connection() as conn:
        await conn.execute("CREATE TABLE docs_data (data JSONB)")
        async with conn.cursor() as cur:
            with pytest.raises(psycopg.errors.SyntaxError):
                await cur.execute(
                    "INSERT INTO table (data) VALUES (%s)", (Jsonb({"key": "value"}),)
                )
            # WRONG - Will fail: psycopg cannot adapt a dict (client side, nothing sent).
            with pytest.raises(psycopg.ProgrammingError, match="cannot adapt type 'dict'"):
                await cur.execute("INSERT INTO docs_data (data) VALUES (%s)", ({"key": "value"},))

            # CORRECT - Wrap with Jsonb()
            await cur.execute(
                "INSERT INTO docs_data (data) VALUES (%s)", (Jsonb({"key": "value"}),)
            )
    rows = await aquery(dsn, "SELECT jsonb_typeof(data), data FROM docs_data")
    assert rows == [("object", {"key": "value"})]


async def test_usage_jsonb_wrapper_requirement(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig, dsn: str
) -> None:
    service = SQLSpecSessionService(async_store)

    # Creating session with JSONB state
    state = {"user": "alice", "preferences": {"theme": "dark"}}

    # Store handles Jsonb() wrapping internally
    session = await service.create_session(
        app_name="my_app",
        user_id="alice",
        state=state,  # Automatically wrapped internally
    )
    assert session.state == state
    rows = await aquery(
        dsn, "SELECT jsonb_typeof(state), state FROM adk_sessions WHERE id = %s", (session.id,)
    )
    assert rows == [("object", state)]

    # The sample's "sessions" is a user table with a JSONB column.
    await aquery(dsn, "CREATE TABLE sessions (state JSONB)")

    # Manual cursor usage - MUST wrap yourself
    async with async_config.provide_connection() as conn:  # noqa: SIM117 - as in the spec
        async with conn.cursor() as cur:
            # WRONG - Will fail with type error
            with pytest.raises(psycopg.ProgrammingError, match="cannot adapt type 'dict'"):
                await cur.execute("INSERT INTO sessions (state) VALUES (%s)", ({"key": "value"},))

            # CORRECT - Wrap with Jsonb()
            await cur.execute(
                "INSERT INTO sessions (state) VALUES (%s)", (Jsonb({"key": "value"}),)
            )
    assert await aquery(dsn, "SELECT jsonb_typeof(state), state FROM sessions") == [
        ("object", {"key": "value"})
    ]


async def test_performance_jsonb_pattern(async_config: PsycopgAsyncConfig, dsn: str) -> None:
    # The sample's "events" is a user table with two JSONB columns.
    await aquery(dsn, "CREATE TABLE events (content JSONB, metadata JSONB)")
    async with async_config.provide_connection() as conn, conn.cursor() as cur:
        # Session state
        state = {"key": "value"}
        # Event content
        content = {"parts": [{"text": "Hello"}]}
        # Metadata
        metadata = {"source": "web", "version": "1.0"}

        # All must be wrapped when inserting manually
        await cur.execute(
            "INSERT INTO events (content, metadata) VALUES (%s, %s)",
            (Jsonb(content), Jsonb(metadata)),
        )
        assert Jsonb(state).obj == state
    assert await aquery(dsn, "SELECT content, metadata FROM events") == [(content, metadata)]


async def test_troubleshooting_jsonb_wrapper_errors(
    async_config: PsycopgAsyncConfig, dsn: str
) -> None:
    # The spec names "operator does not exist: jsonb = record"; psycopg 3 in fact
    # refuses the dict before sending anything, with a ProgrammingError.
    await aquery(dsn, "CREATE TABLE docs_data (data JSONB)")
    async with async_config.provide_connection() as conn, conn.cursor() as cur:
        # WRONG
        with pytest.raises(psycopg.ProgrammingError, match="cannot adapt"):
            await cur.execute("INSERT INTO docs_data (data) VALUES (%s)", ({"key": "value"},))

        # CORRECT
        await cur.execute("INSERT INTO docs_data (data) VALUES (%s)", (Jsonb({"key": "value"}),))
    assert await aquery(dsn, "SELECT data FROM docs_data") == [({"key": "value"},)]


# --------------------------------------------------------------------------- SQL composition


async def test_sql_composition_with_pg_sql(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig, dsn: str
) -> None:
    service = SQLSpecSessionService(async_store)
    existing = await service.create_session(
        app_name="my_app", user_id="user_123", state={"from": "service"}
    )
    session_id = "composed-1"
    state = {"composed": True}

    # Safe dynamic table/column names
    async with async_config.provide_connection() as conn:  # noqa: SIM117 - as in the spec
        async with conn.cursor() as cur:
            # Compose SQL with identifiers (prevents SQL injection)
            query_1 = pg_sql.SQL("""
                INSERT INTO {table} (id, state, update_time)
                VALUES (%s, %s, CURRENT_TIMESTAMP)
            """).format(table=pg_sql.Identifier("adk_sessions"))

            # As written the INSERT leaves app_name and user_id out, which the seed
            # schema itself declares NOT NULL: the server refuses it.
            with pytest.raises(psycopg.errors.NotNullViolation):
                await cur.execute(query_1, (session_id, Jsonb(state)))

            # The same composition with the NOT NULL key columns supplied.
            query_1 = pg_sql.SQL("""
                INSERT INTO {table} (id, app_name, user_id, state, update_time)
                VALUES (%s, %s, %s, %s, CURRENT_TIMESTAMP)
            """).format(table=pg_sql.Identifier("adk_sessions"))
            await cur.execute(query_1, (session_id, "my_app", "user_123", Jsonb(state)))

            # Multiple identifiers
            query_2 = pg_sql.SQL("""
                SELECT {col1}, {col2} FROM {table} WHERE {col1} = %s
            """).format(
                col1=pg_sql.Identifier("user_id"),
                col2=pg_sql.Identifier("state"),
                table=pg_sql.Identifier("adk_sessions"),
            )

            await cur.execute(query_2, ("user_123",))
            rows = await cur.fetchall()
    assert sorted(rows, key=lambda r: json.dumps(r[1])) == [
        ("user_123", {"composed": True}),
        ("user_123", {"from": "service"}),
    ]
    # A row written by hand is a session the service reads.
    got = await service.get_session(app_name="my_app", user_id="user_123", session_id=session_id)
    assert got is not None
    assert got.state == state
    listed = await service.list_sessions(app_name="my_app", user_id="user_123")
    assert {s.id for s in listed.sessions} == {existing.id, session_id}


async def test_best_practices_sql_composition(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig
) -> None:
    service = SQLSpecSessionService(async_store)
    session = await service.create_session(app_name="a", user_id="user_123")

    # GOOD - Safe identifier composition
    query_good = pg_sql.SQL("SELECT * FROM {table} WHERE {col} = %s").format(
        table=pg_sql.Identifier("adk_sessions"), col=pg_sql.Identifier("user_id")
    )

    # BAD - SQL injection risk
    table_name = "adk_sessions"
    query_bad = f"SELECT * FROM {table_name} WHERE user_id = %s"  # DON'T!

    async with async_config.provide_connection() as conn, conn.cursor() as cur:
        assert query_good.as_string(conn) == 'SELECT * FROM "adk_sessions" WHERE "user_id" = %s'
        await cur.execute(query_good, ("user_123",))
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == [session.id]
    assert query_bad == "SELECT * FROM adk_sessions WHERE user_id = %s"


async def test_troubleshooting_sql_composition_errors(
    async_config: PsycopgAsyncConfig, dsn: str
) -> None:
    # The sample's "users" is a user table. The spec's "Composable object is not
    # iterable" does not occur: both forms run.
    await aquery(dsn, "CREATE TABLE users (id INT, name TEXT)")
    await aquery(dsn, "INSERT INTO users VALUES (123, 'ann')")
    async with async_config.provide_connection() as conn, conn.cursor() as cur:
        # WRONG - Missing .format()
        query_1 = pg_sql.SQL("SELECT * FROM {table}").format(table=pg_sql.Identifier("users"))
        await cur.execute(query_1)  # Already formatted!
        assert await cur.fetchall() == [(123, "ann")]

        # CORRECT
        query_1 = pg_sql.SQL("SELECT * FROM {table}").format(table=pg_sql.Identifier("users"))
        await cur.execute(query_1, ())  # No need to format again
        assert await cur.fetchall() == [(123, "ann")]


async def test_troubleshooting_parameter_style(async_config: PsycopgAsyncConfig, dsn: str) -> None:
    await aquery(dsn, "CREATE TABLE users (id INT, name TEXT)")
    await aquery(dsn, "INSERT INTO users VALUES (123, 'ann')")
    async with async_config.provide_connection() as conn, conn.cursor() as cur:
        # WRONG - PostgreSQL numeric style (that's asyncpg!)
        with pytest.raises(psycopg.ProgrammingError, match="placeholders"):
            await cur.execute("SELECT * FROM users WHERE id = $1", (123,))

        # CORRECT - Psycopg uses %s
        await cur.execute("SELECT * FROM users WHERE id = %s", (123,))
        assert await cur.fetchall() == [(123, "ann")]


# --------------------------------------------------------------------------- cursors


async def test_cursor_context_manager_async(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig
) -> None:
    service = SQLSpecSessionService(async_store)
    mine = {
        (await service.create_session(app_name=app, user_id="alice", state={"n": i})).id
        for i, app in enumerate(["a1", "a2"])
    }
    await service.create_session(app_name="a1", user_id="bob")

    # Async cursor pattern
    async with async_config.provide_connection() as conn, conn.cursor() as cur:
        await cur.execute("SELECT * FROM adk_sessions WHERE user_id = %s", ("alice",))
        rows = await cur.fetchall()
        names = [d.name for d in cur.description or ()]
    assert cur.closed
    assert {dict(zip(names, r, strict=True))["id"] for r in rows} == mine
    assert {dict(zip(names, r, strict=True))["user_id"] for r in rows} == {"alice"}


def test_cursor_context_manager_sync(
    sync_store: PsycopgSyncADKStore, sync_config: PsycopgSyncConfig
) -> None:
    service = SQLSpecSessionService(sync_store)
    mine = service.create_session(app_name="a1", user_id="alice", state={"n": 1}).id
    service.create_session(app_name="a1", user_id="bob")

    # Sync cursor pattern
    with sync_config.provide_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM adk_sessions WHERE user_id = %s", ("alice",))
        rows = cur.fetchall()
        names = [d.name for d in cur.description or ()]
    assert cur.closed
    assert [dict(zip(names, r, strict=True))["id"] for r in rows] == [mine]
    assert dict(zip(names, rows[0], strict=True))["state"] == {"n": 1}


async def append_events(service: Any, app_name: str, count: int) -> list[str]:
    """Append ``count`` events over two sessions of ``app_name``; their ids, oldest first."""
    sessions = [await service.create_session(app_name=app_name, user_id=f"u{i}") for i in range(2)]
    ids = []
    for i in range(count):
        event = make_event(f"message {i}")
        await service.append_event(sessions[i % 2], event)
        ids.append(event.id)
    return ids


async def run_server_side_cursor_sample(config: PsycopgAsyncConfig) -> list[dict[str, Any]]:
    processed: list[dict[str, Any]] = []

    async with config.provide_connection() as conn:  # noqa: SIM117 - as in the spec
        # Named cursor creates server-side cursor
        async with conn.cursor(name="large_event_query") as cur:
            assert isinstance(cur, psycopg.AsyncServerCursor)

            def process_event(row: tuple[Any, ...]) -> None:
                names = [d.name for d in cur.description or ()]
                processed.append(dict(zip(names, row, strict=True)))

            await cur.execute(
                """
                SELECT * FROM adk_events
                WHERE app_name = %s
                ORDER BY timestamp ASC
            """,
                ("my_app",),
            )

            # Stream results without loading all into memory
            async for row in cur:
                process_event(row)
    return processed


async def test_server_side_cursor_streaming(dsn: str) -> None:
    # The sample's `config` is the Quick Start one (no "autocommit" key).
    config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 4})
    try:
        store = PsycopgAsyncADKStore(config)
        await store.create_tables()
        service = SQLSpecSessionService(store)
        ids = await append_events(service, "my_app", 7)
        await append_events(service, "other_app", 2)

        processed = await run_server_side_cursor_sample(config)

        assert [r["id"] for r in processed] == ids
        assert {r["app_name"] for r in processed} == {"my_app"}
    finally:
        await config.close()


async def test_server_side_cursor_streaming_autocommit_off(dsn: str) -> None:
    # The same sample on a config with "autocommit": False (Advanced Configuration).
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": 4, "autocommit": False}
    )
    try:
        store = PsycopgAsyncADKStore(config)
        await store.create_tables()
        service = SQLSpecSessionService(store)
        ids = await append_events(service, "my_app", 7)

        processed = await run_server_side_cursor_sample(config)

        assert [r["id"] for r in processed] == ids
        ts = [r["timestamp"] for r in processed]
        assert ts == sorted(ts)
    finally:
        await config.close()


async def test_troubleshooting_cursor_not_found(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig
) -> None:
    service = SQLSpecSessionService(async_store)
    session = await service.create_session(app_name="a", user_id="u")
    query_1 = "SELECT id FROM adk_sessions"

    # WRONG - Cursor closed prematurely: conn.cursor() is no coroutine to await.
    conn = await async_config.create_connection()
    try:
        with pytest.raises(TypeError):
            await conn.cursor()  # type: ignore[misc]
    finally:
        await conn.close()

    # CORRECT - Use context manager
    async with async_config.provide_connection() as conn, conn.cursor() as cur:
        await cur.execute(query_1)
        rows = await cur.fetchall()
    assert rows == [(session.id,)]


# --------------------------------------------------------------------------- transactions

SESSION_STEP = (
    "UPDATE adk_sessions SET state = state || '{\"step\": 2}'::jsonb "
    "WHERE app_name = 'my_app' AND user_id = 'alice' AND id = 's1'"
)
AUDIT_OK = "INSERT INTO audit (n) VALUES (2)"
AUDIT_FAILS = "INSERT INTO audit (n) VALUES (NULL)"  # audit.n is NOT NULL


async def async_transaction_sample(config: PsycopgAsyncConfig, sql1: str, sql2: str) -> None:
    # Async transaction with context manager
    async with config.provide_connection() as conn:  # noqa: SIM117 - nesting as in the spec
        async with conn.transaction():
            async with conn.cursor() as cur:
                await cur.execute(sql1)
                await cur.execute(sql2)
                # Auto-commit on success, rollback on exception


def sync_transaction_sample(config: PsycopgSyncConfig, sql1: str, sql2: str) -> None:
    # Sync transaction
    with config.provide_connection() as conn:  # noqa: SIM117 - nesting as in the spec
        with conn.transaction():
            with conn.cursor() as cur:
                cur.execute(sql1)
                cur.execute(sql2)


async def test_transaction_async_context_manager(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig, dsn: str
) -> None:
    service = SQLSpecSessionService(async_store)
    await service.create_session(
        app_name="my_app", user_id="alice", state={"step": 1}, session_id="s1"
    )
    await aquery(dsn, "CREATE TABLE audit (n INT NOT NULL)")

    # Auto-commit on success...
    await async_transaction_sample(async_config, SESSION_STEP, AUDIT_OK)
    got = await service.get_session(app_name="my_app", user_id="alice", session_id="s1")
    assert got is not None
    assert got.state == {"step": 2}
    assert await aquery(dsn, "SELECT n FROM audit") == [(2,)]

    # ...rollback on exception.
    await aquery(dsn, "UPDATE adk_sessions SET state = '{\"step\": 1}'")
    with pytest.raises(psycopg.errors.NotNullViolation):
        await async_transaction_sample(async_config, SESSION_STEP, AUDIT_FAILS)
    got = await service.get_session(app_name="my_app", user_id="alice", session_id="s1")
    assert got is not None
    assert got.state == {"step": 1}
    assert await aquery(dsn, "SELECT n FROM audit") == [(2,)]
    # The connection went back to the pool usable, in autocommit as configured.
    async with async_config.provide_connection() as conn:
        assert conn.autocommit is True
        assert await (await conn.execute("SELECT 1")).fetchone() == (1,)


def test_transaction_sync_context_manager(
    sync_store: PsycopgSyncADKStore, sync_config: PsycopgSyncConfig, dsn: str
) -> None:
    service = SQLSpecSessionService(sync_store)
    service.create_session(app_name="my_app", user_id="alice", state={"step": 1}, session_id="s1")
    query(dsn, "CREATE TABLE audit (n INT NOT NULL)")

    sync_transaction_sample(sync_config, SESSION_STEP, AUDIT_OK)
    got = service.get_session(app_name="my_app", user_id="alice", session_id="s1")
    assert got is not None
    assert got.state == {"step": 2}

    query(dsn, "UPDATE adk_sessions SET state = '{\"step\": 1}'")
    with pytest.raises(psycopg.errors.NotNullViolation):
        sync_transaction_sample(sync_config, SESSION_STEP, AUDIT_FAILS)
    got = service.get_session(app_name="my_app", user_id="alice", session_id="s1")
    assert got is not None
    assert got.state == {"step": 1}
    assert query(dsn, "SELECT n FROM audit") == [(2,)]
    with sync_config.provide_connection() as conn:
        assert conn.autocommit is True


async def manual_transaction(config: PsycopgAsyncConfig, sql1: str, sql2: str) -> int:
    """The Manual transaction control sample; returns the backend pid it ran on."""
    # Manual transaction control
    async with config.provide_connection() as conn:
        pid = conn.info.backend_pid
        await conn.set_autocommit(False)
        async with conn.cursor() as cur:
            try:
                await cur.execute(sql1)
                await cur.execute(sql2)
                await conn.commit()
            except Exception:
                await conn.rollback()
                raise
    return pid


async def test_transaction_manual_control(dsn: str) -> None:
    # One connection in the pool, so the next borrower is the same connection.
    config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 1})
    try:
        store = PsycopgAsyncADKStore(config)
        await store.create_tables()
        service = SQLSpecSessionService(store)
        await service.create_session(
            app_name="my_app", user_id="alice", state={"step": 1}, session_id="s1"
        )
        await aquery(dsn, "CREATE TABLE audit (n INT NOT NULL)")

        # Rollback path: sql1 succeeded, sql2 failed; neither is kept.
        with pytest.raises(psycopg.errors.NotNullViolation):
            await manual_transaction(config, SESSION_STEP, AUDIT_FAILS)
        got = await service.get_session(app_name="my_app", user_id="alice", session_id="s1")
        assert got is not None
        assert got.state == {"step": 1}
        assert await aquery(dsn, "SELECT count(*) FROM audit") == [(0,)]

        # The next borrower (the same connection) is in autocommit again, as configured.
        async with config.provide_connection() as conn:
            first_pid = conn.info.backend_pid
            assert conn.autocommit is True
            await conn.execute("INSERT INTO audit (n) VALUES (7)")
        assert await aquery(dsn, "SELECT n FROM audit") == [(7,)]

        # Commit path.
        pid = await manual_transaction(config, SESSION_STEP, AUDIT_OK)
        assert pid == first_pid
        got = await service.get_session(app_name="my_app", user_id="alice", session_id="s1")
        assert got is not None
        assert got.state == {"step": 2}
        assert sorted(await aquery(dsn, "SELECT n FROM audit")) == [(2,), (7,)]
        async with config.provide_connection() as conn:
            assert conn.info.backend_pid == first_pid
            assert conn.autocommit is True
        # The store's own calls still work on the connection the sample switched.
        await service.append_event(got, make_event("after manual"))
    finally:
        await config.close()


async def test_pool_hands_back_configured_autocommit_off(dsn: str) -> None:
    # With "autocommit": False configured, the store's autocommit calls do not leak.
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": 1, "autocommit": False}
    )
    try:
        store = PsycopgAsyncADKStore(config)
        await store.create_tables()
        service = SQLSpecSessionService(store)
        session = await service.create_session(app_name="a", user_id="u", state={"k": 1})
        async with config.provide_connection() as conn:
            assert conn.autocommit is False
        # ... and what the store wrote is committed.
        assert await aquery(dsn, "SELECT state FROM adk_sessions WHERE id = %s", (session.id,)) == [
            ({"k": 1},)
        ]
    finally:
        await config.close()


# --------------------------------------------------------------------------- COPY


async def copy_events(config: PsycopgAsyncConfig, session_id: str, count: int) -> list[Any]:
    base = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    large_event_list = [
        (
            f"bulk-{i}",
            session_id,
            "my_app",
            "alice",
            "inv-bulk",
            "model" if i % 2 else "user",
            base + dt.timedelta(seconds=i, microseconds=250),
            Jsonb({"role": "user", "parts": [{"text": f"bulk {i}"}]}),
        )
        for i in range(count)
    ]

    async with config.provide_connection() as conn:  # noqa: SIM117 - as in the spec
        async with conn.cursor() as cur:
            # COPY is much faster than executemany for bulk inserts. The sample's
            # "..." stands for the other columns: the NOT NULL ones must be given.
            async with cur.copy(
                "COPY adk_events (id, session_id, app_name, user_id, invocation_id, author, "
                "timestamp, content) FROM STDIN"
            ) as copy:
                for event in large_event_list:
                    await copy.write_row(event)
    return large_event_list


async def test_copy_protocol_bulk_insert(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig, dsn: str
) -> None:
    service = SQLSpecSessionService(async_store)
    session = await service.create_session(app_name="my_app", user_id="alice", session_id="bulk")
    rows = await copy_events(async_config, session.id, 200)

    landed = await aquery(
        dsn,
        "SELECT id, session_id, app_name, user_id, invocation_id, author, timestamp, content "
        "FROM adk_events ORDER BY timestamp",
    )
    assert len(landed) == 200
    assert [r[:7] for r in landed] == [r[:7] for r in rows]
    assert [r[7] for r in landed] == [r[7].obj for r in rows]
    # COPY honours the foreign key: rows of a session that does not exist are refused.
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await copy_events(async_config, "no-such-session", 1)


async def test_copy_inserted_events_are_read_by_the_service(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig
) -> None:
    service = SQLSpecSessionService(async_store)
    session = await service.create_session(app_name="my_app", user_id="alice", session_id="bulk")
    rows = await copy_events(async_config, session.id, 5)

    got = await service.get_session(app_name="my_app", user_id="alice", session_id="bulk")
    assert got is not None
    assert [e.id for e in got.events] == [r[0] for r in rows]
    assert [e.author for e in got.events] == [r[5] for r in rows]
    assert [e.content.parts[0].text for e in got.events if e.content and e.content.parts] == [
        f"bulk {i}" for i in range(5)
    ]
    # Each event's timestamp is the one stored in its `timestamp` column.
    assert [e.timestamp for e in got.events] == pytest.approx([r[6].timestamp() for r in rows])
    # ... so windows by time select them.
    after = rows[2][6].timestamp()
    window = await service.get_session(
        app_name="my_app",
        user_id="alice",
        session_id="bulk",
        config=GetSessionConfig(after_timestamp=after),
    )
    assert window is not None
    assert [e.id for e in window.events] == ["bulk-2", "bulk-3", "bulk-4"]


# --------------------------------------------------------------------------- JSONB queries


async def test_jsonb_query_patterns(
    async_store: PsycopgAsyncADKStore, async_config: PsycopgAsyncConfig
) -> None:
    service = SQLSpecSessionService(async_store)
    dark = await service.create_session(
        app_name="a", user_id="u", state={"preferences": {"theme": "dark"}, "active": True}
    )
    light = await service.create_session(
        app_name="a", user_id="u", state={"preferences": {"theme": "light"}, "active": False}
    )
    await service.create_session(app_name="a", user_id="u")

    async with async_config.provide_connection() as conn, conn.cursor() as cur:
        # Query JSONB fields
        await cur.execute(
            """
            SELECT id, state->>'theme' as theme
            FROM adk_sessions
            WHERE state @> %s::jsonb
        """,
            (Jsonb({"preferences": {"theme": "dark"}}),),
        )
        # `->>` reads a top-level key: the sample's theme is nested, so it is NULL.
        assert await cur.fetchall() == [(dark.id, None)]

        # JSONB containment
        await cur.execute(
            """
            SELECT * FROM adk_sessions
            WHERE state @> %s::jsonb
        """,
            (Jsonb({"active": True}),),
        )
        assert [r[0] for r in await cur.fetchall()] == [dark.id]

        # JSONB path queries. As written the str parameter is sent untyped and cast
        # to jsonb, and `dark` is not JSON: PostgreSQL refuses it.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            await cur.execute(
                """
                SELECT * FROM adk_sessions
                WHERE state #> '{preferences,theme}' = %s
            """,
                ("dark",),
            )
        # The working forms: compare as jsonb, or extract as text with #>>.
        await cur.execute(
            "SELECT id FROM adk_sessions WHERE state #> '{preferences,theme}' = %s",
            (Jsonb("dark"),),
        )
        assert await cur.fetchall() == [(dark.id,)]
        await cur.execute(
            "SELECT id FROM adk_sessions WHERE state #>> '{preferences,theme}' = %s", ("light",)
        )
        assert await cur.fetchall() == [(light.id,)]


# --------------------------------------------------------------------------- pools


async def test_connection_pooling_sample(dsn: str) -> None:
    config = PsycopgAsyncConfig(
        connection_config={
            "conninfo": dsn,
            "min_size": 5,  # Pre-create 5 connections
            "max_size": 20,  # Allow up to 20 connections
            "max_lifetime": 3600.0,  # Recycle connections hourly
            "max_idle": 600.0,  # Close idle connections after 10min
            "num_workers": 3,  # Background maintenance workers
        }
    )
    try:
        pool = await config.provide_pool()
        await pool.wait(timeout=30)
        assert pool.get_stats()["pool_size"] >= 5
        assert (pool.max_size, pool.max_lifetime, pool.max_idle, pool.num_workers) == (
            20,
            3600.0,
            600.0,
            3,
        )

        # Connection reuse: more borrowers than connections, all served.
        async def borrow() -> int:
            async with config.provide_connection() as conn:
                await conn.execute("SELECT pg_sleep(0.05)")
                return conn.info.backend_pid

        pids = await asyncio.gather(*(borrow() for _ in range(40)))
        assert len(set(pids)) <= 20
    finally:
        await config.close()


def point_libpq_env_at(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    """The pool sizing samples name no server: point libpq's PG* variables at the dsn."""
    env_names = {
        "host": "PGHOST",
        "hostaddr": "PGHOSTADDR",
        "port": "PGPORT",
        "dbname": "PGDATABASE",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "sslmode": "PGSSLMODE",
        "options": "PGOPTIONS",
        "connect_timeout": "PGCONNECT_TIMEOUT",
    }
    for key, value in conninfo_to_dict(dsn).items():
        if key not in env_names:
            pytest.skip(f"dsn parameter {key!r} has no libpq environment variable here")
        monkeypatch.setenv(env_names[key], str(value))


@pytest.mark.parametrize(
    ("connection_config", "min_size", "max_size"),
    [
        pytest.param(
            # For web applications
            {
                "min_size": 10,  # Match expected concurrent requests
                "max_size": 50,  # 2-3x min_size for burst traffic
                "max_lifetime": 3600.0,  # Recycle hourly
            },
            10,
            50,
            id="web",
        ),
        pytest.param(
            # For background workers
            {
                "min_size": 2,
                "max_size": 10,
            },
            2,
            10,
            id="workers",
        ),
    ],
)
async def test_connection_pool_sizing(
    monkeypatch: pytest.MonkeyPatch,
    dsn: str,
    connection_config: dict[str, Any],
    min_size: int,
    max_size: int,
) -> None:
    point_libpq_env_at(monkeypatch, dsn)
    config = PsycopgAsyncConfig(connection_config=connection_config)
    try:
        pool = await config.provide_pool()
        assert (pool.min_size, pool.max_size) == (min_size, max_size)
        await pool.wait(timeout=30)
        assert pool.get_stats()["pool_size"] >= min_size
        async with config.provide_connection() as conn:
            cur = await conn.execute("SELECT current_database()")
            # The server libpq's environment names, not an embedded one.
            assert (await cur.fetchone()) == (conninfo_to_dict(dsn)["dbname"],)
    finally:
        await config.close()


# --------------------------------------------------------------------------- pool not open


async def test_pool_is_opened_by_the_config(dsn: str) -> None:
    config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 4})
    try:
        # Pool is automatically opened by config
        async with config.provide_connection() as conn:
            # This works
            pass
        assert conn.closed is False  # lent back to the pool, not closed

        async with config.provide_connection() as conn:
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)

        # After close, the next use opens a fresh pool rather than failing.
        await config.close()
        async with config.provide_connection() as conn:
            assert await (await conn.execute("SELECT 2")).fetchone() == (2,)
        await config.close()

        # Many first users at once on a pool nobody opened.
        async def first_use(i: int) -> int:
            async with config.provide_connection() as conn:
                row = await (await conn.execute("SELECT %s::int", (i,))).fetchone()
                assert row is not None
                value: int = row[0]
                return value

        assert await asyncio.gather(*(first_use(i) for i in range(12))) == list(range(12))

        # The store too works on a config nobody opened.
        fresh = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
        try:
            store = PsycopgAsyncADKStore(fresh)
            await store.create_tables()
            assert (await store.list_sessions(app_name="none")).sessions == []
        finally:
            await fresh.close()
    finally:
        await config.close()


async def test_manually_opened_pool(dsn: str) -> None:
    conninfo = dsn
    # Or manually if using pool directly
    pool = AsyncConnectionPool(conninfo, open=False)
    await pool.open()
    try:
        async with pool.connection() as conn:
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await pool.close()


def test_sync_pool_is_opened_by_the_config(dsn: str) -> None:
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 4})
    try:
        with config.provide_connection() as conn:
            pass
        with config.provide_connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        config.close()

        results: list[Any] = []
        barrier = threading.Barrier(8)

        def first_use(i: int) -> None:
            barrier.wait()
            try:
                with config.provide_connection() as conn:
                    results.append(conn.execute("SELECT %s::int", (i,)).fetchone())
            except Exception as exc:  # pragma: no cover - reported below
                results.append(exc)

        threads = [threading.Thread(target=first_use, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [(i,) for i in range(8)]
    finally:
        config.close()


def run_script(script: str, dsn: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (with ``DSN`` defined) in a fresh interpreter, as a user's program.

    A program that does not exit within ``timeout`` seconds fails the test instead
    of hanging the suite.
    """
    env = {**os.environ, "PYTHONPATH": str(Path(sqlspec.__file__).parents[1])}
    try:
        return subprocess.run(
            [sys.executable, "-c", f"DSN = {dsn!r}\n{textwrap.dedent(script)}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"the program did not exit within {timeout} s; output so far: "
            f"{exc.stdout!r} {exc.stderr!r}"
        )


def test_quick_start_async_in_a_script_exits(dsn: str) -> None:
    # The Quick Start async sample as a user runs it: in asyncio.run(main()), the
    # config never closed (the sample has no close). The program must end.
    result = run_script(
        """
        import asyncio, json
        from sqlspec.adapters.psycopg import PsycopgAsyncConfig
        from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore
        from sqlspec.extensions.adk import SQLSpecSessionService

        async def main():
            config = PsycopgAsyncConfig(
                connection_config={"conninfo": DSN, "min_size": 5, "max_size": 20}
            )
            store = PsycopgAsyncADKStore(config)
            await store.create_tables()
            service = SQLSpecSessionService(store)
            session = await service.create_session(
                app_name="my_agent",
                user_id="user_123",
                state={"context": "active", "preferences": {"theme": "dark"}},
            )
            print(json.dumps(session.state, sort_keys=True), flush=True)

        asyncio.run(main())
        print("exited", flush=True)
        """,
        dsn,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        '{"context":',
        '"active",',
        '"preferences":',
        '{"theme":',
        '"dark"}}',
        "exited",
    ]


def test_async_config_used_from_successive_event_loops(dsn: str) -> None:
    # A pool belongs to the loop that opened it. Closed at the end of each
    # asyncio.run(), as the README asks, the config serves the next loop with a
    # new pool and every asyncio.run() returns. (Left open while its pool is still
    # growing, psycopg_pool can keep the loop from finishing: see the README.)
    result = run_script(
        """
        import asyncio
        from sqlspec.adapters.psycopg import PsycopgAsyncConfig

        config = PsycopgAsyncConfig(
            connection_config={"conninfo": DSN, "min_size": 1, "max_size": 4}
        )

        async def use():
            async def one():
                async with config.provide_connection() as conn:
                    cur = await conn.execute("SELECT 1")
                    assert await cur.fetchone() == (1,)
            async with config:
                await asyncio.gather(one(), one(), one())
            print("used", flush=True)

        asyncio.run(use())
        asyncio.run(use())
        print("exited", flush=True)
        """,
        dsn,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["used", "used", "exited"]


# --------------------------------------------------------------------------- create_connection


async def test_create_connection_is_standalone(dsn: str) -> None:
    app_name = f"sqlspec_standalone_{time.monotonic_ns()}"
    config = PsycopgAsyncConfig(
        connection_config={
            "conninfo": dsn,
            "min_size": 2,
            "max_size": 4,
            "application_name": app_name,
        }
    )
    conn = await config.create_connection()
    try:
        assert isinstance(conn, psycopg.AsyncConnection)
        assert conn.closed is False
        assert conn.autocommit is True  # the configured default
        # No pool was opened for it: the only server connection is this one.
        assert await backend_count(dsn, app_name) == 1

        async with config.provide_connection() as pooled:
            assert pooled.info.backend_pid != conn.info.backend_pid
        pool = await config.provide_pool()
        await pool.wait(timeout=30)
        pool_size = pool.get_stats()["pool_size"]
        assert pool_size >= 2
        assert await backend_count(dsn, app_name) == pool_size + 1

        # Closing the pool leaves the standalone connection alone.
        await config.close()
        assert await backend_count(dsn, app_name) == 1
        assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await conn.close()
        await config.close()
    assert await backend_count(dsn, app_name) == 0


def test_create_connection_is_standalone_sync(dsn: str) -> None:
    config = PsycopgSyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "autocommit": False}
    )
    conn = config.create_connection()
    try:
        assert isinstance(conn, psycopg.Connection)
        assert conn.autocommit is False
        conn.execute("CREATE TABLE standalone (n INT)")
        conn.commit()
        with config.provide_connection() as pooled:
            assert pooled.info.backend_pid != conn.info.backend_pid
        config.close()
        assert conn.execute("SELECT count(*) FROM standalone").fetchone() == (0,)
    finally:
        conn.close()
        config.close()


# --------------------------------------------------------------------------- migration


def test_migration_psycopg2_sample(dsn: str) -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    query(dsn, "CREATE TABLE users (id INT)")
    # Psycopg2 (old)
    conn = psycopg2.connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute("SELECT * FROM users")
        assert cur.fetchall() == []
        # JSONB Handling Changes, psycopg2 form
        cur.execute("CREATE TABLE docs_data (data JSONB)")
        cur.execute("INSERT INTO docs_data (data) VALUES (%s)", (json.dumps({"key": "value"}),))
        conn.commit()
    finally:
        conn.close()
    assert query(dsn, "SELECT data FROM docs_data") == [({"key": "value"},)]
    pool_module = pytest.importorskip("psycopg2.pool")
    pool = pool_module.ThreadedConnectionPool(5, 20, dsn=dsn)
    pool.closeall()


async def test_migration_psycopg3_async_connection(dsn: str) -> None:
    # The sample's `table` is a placeholder (a reserved word): a user table stands in.
    await aquery(dsn, "CREATE TABLE users (id INT)")
    await aquery(dsn, "INSERT INTO users VALUES (1), (2)")

    # Psycopg3 (new) - Async
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT * FROM users")
            assert sorted(await cur.fetchall()) == [(1,), (2,)]

        # JSONB Handling Changes, psycopg3 form
        async with conn.cursor() as cur:
            await cur.execute("CREATE TABLE docs_data (data JSONB)")
            await cur.execute(
                "INSERT INTO docs_data (data) VALUES (%s)", (Jsonb({"key": "value"}),)
            )
    # Leaving the connection block committed the transaction.
    assert await aquery(dsn, "SELECT data FROM docs_data") == [({"key": "value"},)]


async def test_migration_pool_psycopg3(dsn: str) -> None:
    # Psycopg3 (using psycopg_pool). psycopg_pool itself warns that opening in the
    # constructor (the open=None default) is deprecated; the sample still works.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pool = AsyncConnectionPool(dsn, min_size=5, max_size=20)
        await pool.open()
    try:
        await pool.wait(timeout=30)
        assert pool.get_stats()["pool_size"] >= 5
        async with pool.connection() as conn:
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await pool.close()
