"""The schema ``create_tables()`` leaves, read back from pg_catalog.

Checked against the documented DDL and the deviations the library documents
(README "Schema, and where it departs from the usual ADK tables";
``adk/session/_schema.py``):
sessions keyed by ``(app_name, user_id, id)`` with a ``revision`` column (and, since
schema version 2, a nullable ``expire_time``; since version 4, an ``incarnation``);
events keyed by ``(app_name, user_id, session_id, id)`` with a composite
``ON DELETE CASCADE`` foreign key, an ``event_data`` column and (since version 4)
the ``revision`` that wrote them; the event JSON columns as ``JSON``
rather than ``JSONB``; ``error_message TEXT``; the composite index
``(app_name, user_id, update_time, id)``; the ``adk_app_states`` and
``adk_user_states`` tables.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.genai import types

from sqlspec import ImproperConfigurationError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

VARCHAR_128 = "character varying(128)"
VARCHAR_256 = "character varying(256)"
TSTZ = "timestamp with time zone"
NOW = "CURRENT_TIMESTAMP"
EMPTY = "'{}'::jsonb"

# (column, type, NOT NULL, default), in table order.
SESSIONS_COLUMNS = [
    ("id", VARCHAR_128, True, None),
    ("app_name", VARCHAR_128, True, None),
    ("user_id", VARCHAR_128, True, None),
    ("state", "jsonb", True, EMPTY),
    ("create_time", TSTZ, True, NOW),
    ("update_time", TSTZ, True, NOW),
]
SESSIONS_EXTRA_COLUMNS = [
    ("revision", "bigint", True, "0"),  # documented deviation
    ("expire_time", TSTZ, False, None),  # schema version 2: session expiry
    ("incarnation", "uuid", False, "gen_random_uuid()"),  # version 4: new on every create
]
EVENTS_COLUMNS = [
    ("id", VARCHAR_128, True, None),
    ("session_id", VARCHAR_128, True, None),
    ("app_name", VARCHAR_128, True, None),
    ("user_id", VARCHAR_128, True, None),
    ("invocation_id", VARCHAR_256, False, None),
    ("author", VARCHAR_256, False, None),
    ("actions", "bytea", False, None),
    ("long_running_tool_ids_json", "text", False, None),
    ("branch", VARCHAR_256, False, None),
    ("timestamp", TSTZ, True, NOW),
    # Documented deviation (README "Event JSON is JSON, not JSONB"): the seed has JSONB,
    # which rewrites numbers (1e23 reads back as 10**23); JSON keeps the text as written.
    ("content", "json", False, None),
    ("grounding_metadata", "json", False, None),
    ("custom_metadata", "json", False, None),
    ("partial", "boolean", False, None),
    ("turn_complete", "boolean", False, None),
    ("interrupted", "boolean", False, None),
    ("error_code", VARCHAR_256, False, None),
    ("error_message", "text", False, None),  # documented deviation: not VARCHAR(1024)
    ("event_data", "json", True, "'{}'::json"),  # documented deviation (column and type)
    ("revision", "bigint", True, "0"),  # version 4: the session revision that wrote it
]
APP_STATES_COLUMNS = [
    ("app_name", VARCHAR_128, True, None),
    ("state", "jsonb", True, EMPTY),
    ("update_time", TSTZ, True, NOW),
]
USER_STATES_COLUMNS = [
    ("app_name", VARCHAR_128, True, None),
    ("user_id", VARCHAR_128, True, None),
    ("state", "jsonb", True, EMPTY),
    ("update_time", TSTZ, True, NOW),
]
ADK_TABLES = {"adk_sessions", "adk_events", "adk_app_states", "adk_user_states"}

# --------------------------------------------------------------------------- catalog helpers


def fetch(dsn: str, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def table_oid(dsn: str, name: str) -> int:
    rows = fetch(
        dsn,
        "SELECT oid FROM pg_class WHERE relname = %s AND relnamespace = 'public'::regnamespace "
        "AND relkind = 'r'",
        (name,),
    )
    assert rows, f"table {name!r} does not exist"
    oid: int = rows[0][0]
    return oid


def tables(dsn: str) -> set[str]:
    rows = fetch(
        dsn,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind = 'r'",
    )
    return {r[0] for r in rows}


def columns(dsn: str, table: str) -> list[tuple[str, str, bool, str | None]]:
    rows = fetch(
        dsn,
        """SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid)
           FROM pg_attribute a
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        (table_oid(dsn, table),),
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def indexes(dsn: str, table: str) -> dict[str, dict[str, Any]]:
    """Every index of ``table``: method, key columns, DESC flags, predicate, uniqueness."""
    rows = fetch(
        dsn,
        """SELECT ic.relname::text, am.amname::text, i.indisunique, i.indisprimary,
                  array(SELECT pg_get_indexdef(i.indexrelid, k, true)
                        FROM generate_series(1, i.indnkeyatts) k ORDER BY k),
                  array(SELECT (i.indoption[k - 1] & 1) = 1
                        FROM generate_series(1, i.indnkeyatts) k ORDER BY k),
                  pg_get_expr(i.indpred, i.indrelid), i.indisvalid
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_am am ON am.oid = ic.relam
           WHERE i.indrelid = %s""",
        (table_oid(dsn, table),),
    )
    return {
        r[0]: {
            "method": r[1],
            "unique": r[2],
            "primary": r[3],
            "columns": r[4],
            "desc": r[5],
            "predicate": r[6],
            "valid": r[7],
        }
        for r in rows
    }


def index_shapes(dsn: str, table: str) -> list[tuple[Any, ...]]:
    """What each index of ``table`` is, without its name."""
    return sorted(
        (i["method"], tuple(i["columns"]), tuple(i["desc"]), i["predicate"] or "", i["primary"])
        for i in indexes(dsn, table).values()
    )


def primary_key(dsn: str, table: str) -> list[str]:
    rows = fetch(
        dsn,
        """SELECT array(SELECT a.attname::text
                        FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                        ORDER BY k.ord)
           FROM pg_constraint c WHERE c.conrelid = %s AND c.contype = 'p'""",
        (table_oid(dsn, table),),
    )
    assert len(rows) == 1
    cols: list[str] = rows[0][0]
    return cols


def foreign_keys(dsn: str, table: str) -> list[tuple[Any, ...]]:
    """(referenced table, local columns, referenced columns, on delete, on update) per FK."""
    return fetch(
        dsn,
        """SELECT rc.relname::text,
                  array(SELECT a.attname::text
                        FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                        ORDER BY k.ord),
                  array(SELECT a.attname::text
                        FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
                        ORDER BY k.ord),
                  c.confdeltype::text, c.confupdtype::text, c.conname::text
           FROM pg_constraint c JOIN pg_class rc ON rc.oid = c.confrelid
           WHERE c.conrelid = %s AND c.contype = 'f'""",
        (table_oid(dsn, table),),
    )


def catalog_snapshot(dsn: str) -> list[tuple[Any, ...]]:
    """Everything about the public schema's tables, indexes and constraints."""
    return sorted(
        [
            *fetch(
                dsn,
                """SELECT 'column', c.relname::text, a.attnum::text || a.attname,
                          format_type(a.atttypid, a.atttypmod) || a.attnotnull::text,
                          coalesce(pg_get_expr(d.adbin, d.adrelid), '')
                   FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                   WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
                     AND a.attnum > 0 AND NOT a.attisdropped""",
            ),
            *fetch(
                dsn,
                """SELECT 'index', tablename::text, indexname::text, indexdef, ''
                   FROM pg_indexes WHERE schemaname = 'public'""",
            ),
            *fetch(
                dsn,
                """SELECT 'constraint', conrelid::regclass::text, conname::text,
                          pg_get_constraintdef(oid), ''
                   FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
            ),
            *fetch(
                dsn,
                """SELECT 'reloptions', relname::text, coalesce(array_to_string(reloptions, ','),
                          ''), '', ''
                   FROM pg_class WHERE relnamespace = 'public'::regnamespace""",
            ),
        ]
    )


def make_event(text: str = "hello", **extra: Any) -> Event:
    return Event(
        author="user",
        invocation_id="inv-1",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        **extra,
    )


def sync_config_for(dsn: str, **extra: Any) -> PsycopgSyncConfig:
    return PsycopgSyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": 2, **extra}
    )


def run_in_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run ``target(i)`` in ``count`` threads released at once; the errors they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


# --------------------------------------------------------------------------- tables and columns


def test_create_tables_is_idempotent(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    first = catalog_snapshot(dsn)
    service = SQLSpecSessionService(sync_store)
    session = service.create_session(app_name="a", user_id="u", state={"k": 1})
    service.append_event(session, make_event())

    sync_store.create_tables()
    sync_store.create_tables()
    assert catalog_snapshot(dsn) == first
    # A second store (and the async twin) on the same tables changes nothing either.
    other = PsycopgSyncADKStore(sync_config_for(dsn))
    try:
        other.create_tables()
    finally:
        other.close()

    async def async_twice() -> None:
        config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
        try:
            store = PsycopgAsyncADKStore(config)
            await store.create_tables()
            await store.create_tables()
        finally:
            await config.close()

    asyncio.run(async_twice())
    assert catalog_snapshot(dsn) == first
    # Data survives.
    got = service.get_session(app_name="a", user_id="u", session_id=session.id)
    assert got is not None
    assert got.state == {"k": 1}
    assert len(got.events) == 1


def test_tables_created(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    assert tables(dsn) >= ADK_TABLES
    # Besides the ADK tables, only the schema-version table (README "Schema versions").
    assert tables(dsn) - ADK_TABLES <= {"sqlspec_adk_schema"}


def test_sessions_columns(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    assert columns(dsn, "adk_sessions") == SESSIONS_COLUMNS + SESSIONS_EXTRA_COLUMNS


def test_events_columns(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    assert columns(dsn, "adk_events") == EVENTS_COLUMNS


def test_state_tables_columns(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    assert columns(dsn, "adk_app_states") == APP_STATES_COLUMNS
    assert columns(dsn, "adk_user_states") == USER_STATES_COLUMNS


def test_defaults_apply(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = conn.execute("SELECT clock_timestamp()").fetchone()
        conn.execute("INSERT INTO adk_sessions (id, app_name, user_id) VALUES ('s', 'a', 'u')")
        conn.execute(
            "INSERT INTO adk_events (id, session_id, app_name, user_id) VALUES ('e', 's', 'a', 'u')"
        )
        session = conn.execute(
            "SELECT state, create_time, update_time, revision FROM adk_sessions"
        ).fetchone()
        event = conn.execute("SELECT timestamp, event_data, partial FROM adk_events").fetchone()
    assert before is not None
    assert session is not None
    assert event is not None
    state, create_time, update_time, revision = session
    assert state == {}
    assert revision == 0
    for value in (create_time, update_time, event[0]):
        assert isinstance(value, dt.datetime)
        assert value.tzinfo is not None
        assert abs(value - before[0]) < dt.timedelta(minutes=1)
    assert event[1] == {}
    assert event[2] is None


def test_sessions_fillfactor(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    rows = fetch(
        dsn, "SELECT reloptions FROM pg_class WHERE oid = %s", (table_oid(dsn, "adk_sessions"),)
    )
    assert rows == [(["fillfactor=80"],)]


# --------------------------------------------------------------------------- indexes and keys


def test_session_indexes(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    found = indexes(dsn, "adk_sessions")
    assert found["idx_adk_sessions_app_user"] == {
        "method": "btree",
        "unique": False,
        "primary": False,
        # documented deviation: the seed's (app_name, user_id), extended
        "columns": ["app_name", "user_id", "update_time", "id"],
        "desc": [False, False, False, False],
        "predicate": None,
        "valid": True,
    }
    assert found["idx_adk_sessions_update_time"] == {
        "method": "btree",
        "unique": False,
        "primary": False,
        "columns": ["update_time"],
        "desc": [True],
        "predicate": None,
        "valid": True,
    }
    assert found["idx_adk_sessions_state"] == {
        "method": "gin",
        "unique": False,
        "primary": False,
        "columns": ["state"],
        "desc": [False],
        "predicate": "(state <> '{}'::jsonb)",
        "valid": True,
    }
    assert all(i["valid"] for i in found.values())
    # No index is there twice under another name.
    shapes = index_shapes(dsn, "adk_sessions")
    assert len(shapes) == len(set(shapes))


def test_events_index(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    found = indexes(dsn, "adk_events")
    # The seed's (session_id, timestamp ASC), led by the rest of the session key.
    assert found["idx_adk_events_session"] == {
        "method": "btree",
        "unique": False,
        "primary": False,
        "columns": ["app_name", "user_id", "session_id", '"timestamp"'],
        "desc": [False, False, False, False],
        "predicate": None,
        "valid": True,
    }
    # Version 4: the events a reader holding a revision lacks.
    assert found["idx_adk_events_revision"] == {
        "method": "btree",
        "unique": False,
        "primary": False,
        "columns": ["app_name", "user_id", "session_id", "revision"],
        "desc": [False, False, False, False],
        "predicate": None,
        "valid": True,
    }
    shapes = index_shapes(dsn, "adk_events")
    assert len(shapes) == len(set(shapes))


def test_primary_keys(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    assert primary_key(dsn, "adk_sessions") == ["app_name", "user_id", "id"]
    assert primary_key(dsn, "adk_events") == ["app_name", "user_id", "session_id", "id"]
    assert primary_key(dsn, "adk_app_states") == ["app_name"]
    assert primary_key(dsn, "adk_user_states") == ["app_name", "user_id"]


def test_events_foreign_key_cascades(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    fks = foreign_keys(dsn, "adk_events")
    assert [fk[:5] for fk in fks] == [
        (
            "adk_sessions",
            ["app_name", "user_id", "session_id"],
            ["app_name", "user_id", "id"],
            "c",  # ON DELETE CASCADE
            "a",  # ON UPDATE NO ACTION
        )
    ]
    assert foreign_keys(dsn, "adk_sessions") == []


def test_deleting_a_session_removes_its_events(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    service = SQLSpecSessionService(sync_store)
    doomed = service.create_session(app_name="a", user_id="u", session_id="doomed")
    kept = service.create_session(app_name="a", user_id="u", session_id="kept")
    for i in range(3):
        service.append_event(doomed, make_event(f"d{i}"))
    service.append_event(kept, make_event("k"))
    count_sql = "SELECT session_id, count(*) FROM adk_events GROUP BY session_id ORDER BY 1"
    assert fetch(dsn, count_sql) == [("doomed", 3), ("kept", 1)]

    # Through the service...
    service.delete_session(app_name="a", user_id="u", session_id="doomed")
    assert fetch(dsn, count_sql) == [("kept", 1)]
    # ... and by the database itself, for a plain DELETE.
    fetch(dsn, "DELETE FROM adk_sessions WHERE id = 'kept'")
    assert fetch(dsn, count_sql) == []
    # No event without its session.
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        fetch(
            dsn,
            "INSERT INTO adk_events (id, session_id, app_name, user_id) "
            "VALUES ('e', 'nope', 'a', 'u')",
        )


# --------------------------------------------------------------------------- deviations


def test_sessions_are_keyed_by_app_user_and_id(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    service = SQLSpecSessionService(sync_store)
    alice = service.create_session(
        app_name="a", user_id="alice", state={"who": "alice"}, session_id="same"
    )
    bob = service.create_session(
        app_name="a", user_id="bob", state={"who": "bob"}, session_id="same"
    )
    other_app = service.create_session(app_name="b", user_id="alice", session_id="same")
    event = make_event("to alice")
    service.append_event(alice, event)
    service.append_event(bob, make_event("to bob", id=event.id))  # same event id, other session
    service.append_event(other_app, make_event("to b"))
    assert fetch(dsn, "SELECT count(*) FROM adk_sessions WHERE id = 'same'") == [(3,)]
    got_bob = service.get_session(app_name="a", user_id="bob", session_id="same")
    assert got_bob is not None
    assert got_bob.state == {"who": "bob"}
    assert [e.content.parts[0].text for e in got_bob.events if e.content and e.content.parts] == [
        "to bob"
    ]
    service.delete_session(app_name="a", user_id="alice", session_id="same")
    assert fetch(dsn, "SELECT app_name, user_id FROM adk_events ORDER BY 1, 2") == [
        ("a", "bob"),
        ("b", "alice"),
    ]


def test_revision_counts_appends(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    service = SQLSpecSessionService(sync_store)
    session = service.create_session(app_name="a", user_id="u", session_id="s")
    revision_sql = "SELECT revision FROM adk_sessions WHERE id = 's'"
    assert fetch(dsn, revision_sql) == [(0,)]
    service.append_event(session, make_event("1"))
    service.append_event(session, make_event("2"))
    assert fetch(dsn, revision_sql) == [(2,)]


def test_event_columns_and_event_data(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    service = SQLSpecSessionService(sync_store)
    session = service.create_session(app_name="a", user_id="u", session_id="s")
    event = make_event(
        "hi",
        model_version="model-7",
        branch="root.child",
        turn_complete=True,
        long_running_tool_ids={"tool-1"},
        custom_metadata={"source": "web"},
        actions=EventActions(state_delta={"k": "v"}),
    )
    service.append_event(session, event)
    row = fetch(
        dsn,
        """SELECT id, invocation_id, author, convert_from(actions, 'UTF8')::jsonb,
                  long_running_tool_ids_json, branch, content, custom_metadata, partial,
                  turn_complete, event_data, timestamp
           FROM adk_events""",
    )[0]
    (id_, invocation_id, author, actions, tool_ids, branch, content, custom, partial, turn_complete,
     event_data, timestamp) = row  # fmt: skip
    assert (id_, invocation_id, author, branch) == (event.id, "inv-1", "user", "root.child")
    assert actions["state_delta"] == {"k": "v"}
    assert tool_ids is not None
    assert set(json.loads(tool_ids)) == {"tool-1"}
    assert content == {"role": "user", "parts": [{"text": "hi"}]}
    assert custom == {"source": "web"}
    assert (partial, turn_complete) == (None, True)
    # event_data keeps the fields without a column of their own, and the exact timestamp.
    assert event_data["model_version"] == "model-7"
    assert event_data["timestamp"] == event.timestamp
    assert not {"id", "author", "content", "invocation_id", "actions"} & set(event_data)
    assert abs(timestamp.timestamp() - event.timestamp) < 1e-5
    # An append splits event_data off on the client, an import on the server: alike.
    service.create_session(app_name="a", user_id="u", session_id="imported")
    sync_store.import_events(app_name="a", user_id="u", session_id="imported", events=[event])
    stored = fetch(dsn, "SELECT session_id, event_data FROM adk_events ORDER BY session_id")
    assert stored == [("imported", event_data), ("s", event_data)]


def test_error_message_is_text(sync_store: PsycopgSyncADKStore, dsn: str) -> None:
    service = SQLSpecSessionService(sync_store)
    session = service.create_session(app_name="a", user_id="u", session_id="s")
    long_message = "model failure: " + "x" * 5000  # longer than the seed's VARCHAR(1024)
    service.append_event(session, make_event("boom", error_code="E500", error_message=long_message))
    assert fetch(dsn, "SELECT error_code, length(error_message) FROM adk_events") == [
        ("E500", len(long_message))
    ]
    got = service.get_session(app_name="a", user_id="u", session_id="s")
    assert got is not None
    assert got.events[0].error_message == long_message


# --------------------------------------------------------------------------- concurrency


def check_default_schema(dsn: str) -> None:
    assert tables(dsn) >= ADK_TABLES
    assert columns(dsn, "adk_sessions") == SESSIONS_COLUMNS + SESSIONS_EXTRA_COLUMNS
    assert columns(dsn, "adk_events") == EVENTS_COLUMNS
    assert {
        "idx_adk_sessions_app_user",
        "idx_adk_sessions_update_time",
        "idx_adk_sessions_state",
    } <= set(indexes(dsn, "adk_sessions"))
    assert "idx_adk_events_session" in indexes(dsn, "adk_events")


def test_concurrent_create_tables_threads(dsn: str) -> None:
    configs = [sync_config_for(dsn) for _ in range(8)]
    try:
        for config in configs:
            config.provide_pool().wait(timeout=30)

        errors = run_in_threads(8, lambda i: PsycopgSyncADKStore(configs[i]).create_tables())
        assert errors == []
    finally:
        for config in configs:
            config.close()
    check_default_schema(dsn)


async def test_concurrent_create_tables_async(dsn: str) -> None:
    configs = [
        PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 1})
        for _ in range(6)
    ]
    try:
        for config in configs:
            await (await config.provide_pool()).wait(timeout=30)
        stores = [PsycopgAsyncADKStore(config) for config in configs]
        results = await asyncio.gather(*(s.create_tables() for s in stores), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
    finally:
        for config in configs:
            await config.close()
    check_default_schema(dsn)


def test_concurrent_create_tables_sync_and_async_mixed(dsn: str) -> None:
    sync_configs = [sync_config_for(dsn) for _ in range(4)]

    def target(i: int) -> None:
        if i < 4:
            PsycopgSyncADKStore(sync_configs[i]).create_tables()
            return

        async def run() -> None:
            config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
            try:
                await PsycopgAsyncADKStore(config).create_tables()
            finally:
                await config.close()

        asyncio.run(run())

    try:
        errors = run_in_threads(8, target)
    finally:
        for config in sync_configs:
            config.close()
    assert errors == []
    check_default_schema(dsn)


@pytest.mark.parametrize(
    "own_state_tables", [False, True], ids=["shared-state-tables", "all-distinct"]
)
def test_concurrent_create_tables_of_different_table_sets(dsn: str, own_state_tables: bool) -> None:
    # Several agents' stores with their own sessions/events tables, created at once:
    # with the default app/user state tables (as in the "Custom Table Names" sample),
    # or with every table their own.
    configs = [sync_config_for(dsn) for _ in range(6)]
    try:
        for config in configs:
            config.provide_pool().wait(timeout=30)

        def target(i: int) -> None:
            names: dict[str, Any] = {
                "session_table": f"agent{i}_sessions",
                "events_table": f"agent{i}_events",
            }
            if own_state_tables:
                names |= {
                    "app_state_table": f"agent{i}_app_states",
                    "user_state_table": f"agent{i}_user_states",
                }
            PsycopgSyncADKStore(configs[i], **names).create_tables()

        errors = run_in_threads(6, target)
    finally:
        for config in configs:
            config.close()
    assert [repr(e) for e in errors] == []
    assert {f"agent{i}_sessions" for i in range(6)} <= tables(dsn)
    assert {f"agent{i}_events" for i in range(6)} <= tables(dsn)


# --------------------------------------------------------------------------- table names


@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to connect fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(psycopg.Connection, "connect", refuse)
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", refuse)


BAD_NAMES = [
    pytest.param("agent sessions", id="space"),
    pytest.param('agent"sessions', id="double-quote"),
    pytest.param("agent'sessions", id="single-quote"),
    pytest.param("agent;sessions", id="semicolon"),
    pytest.param("sessions; DROP TABLE adk_events", id="injection"),
    pytest.param("1sessions", id="leading-digit"),
    pytest.param("9", id="digit-only"),
    pytest.param("agent-sessions", id="hyphen"),
    pytest.param("", id="empty"),
    pytest.param("a" * 64, id="64-bytes"),
    pytest.param("s" * 100, id="100-bytes"),
    pytest.param("é" * 32, id="64-bytes-utf8"),
]
NAME_PARAMS = ["session_table", "events_table", "app_state_table", "user_state_table"]


@pytest.mark.usefixtures("no_io")
@pytest.mark.parametrize("store_class", [PsycopgAsyncADKStore, PsycopgSyncADKStore])
@pytest.mark.parametrize("param", NAME_PARAMS)
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_table_name_refused_before_io(store_class: Any, param: str, bad: Any) -> None:
    config_class = PsycopgAsyncConfig if store_class is PsycopgAsyncADKStore else PsycopgSyncConfig
    config = config_class(connection_config={"conninfo": "host=/nonexistent/sqlspec port=1"})
    with pytest.raises(ImproperConfigurationError) as info:
        store_class(config, **{param: bad})
    assert param in str(info.value)


@pytest.mark.usefixtures("no_io")
@pytest.mark.parametrize("store_class", [PsycopgAsyncADKStore, PsycopgSyncADKStore])
@pytest.mark.parametrize(
    "names",
    [
        {"session_table": "same", "events_table": "same"},
        {"events_table": "adk_app_states"},
        {"session_table": "adk_user_states"},
        {"app_state_table": "states", "user_state_table": "states"},
        {
            "session_table": "t",
            "events_table": "t",
            "app_state_table": "t",
            "user_state_table": "t",
        },
    ],
)
def test_duplicate_table_names_refused_before_io(store_class: Any, names: dict[str, Any]) -> None:
    config_class = PsycopgAsyncConfig if store_class is PsycopgAsyncADKStore else PsycopgSyncConfig
    config = config_class(connection_config={"conninfo": "host=/nonexistent/sqlspec port=1"})
    with pytest.raises(ImproperConfigurationError):
        store_class(config, **names)


def long_name(prefix: str, fill: str = "x") -> str:
    name = (prefix + fill * 63)[:63]
    assert len(name.encode()) == 63
    return name


def check_store_indexes(dsn: str, sessions: str, events: str) -> None:
    """The three session indexes and the events index exist, distinct, on these tables."""
    session_indexes = indexes(dsn, sessions)
    shapes = {
        (i["method"], tuple(i["columns"]), tuple(i["desc"]), i["predicate"])
        for i in session_indexes.values()
    }
    assert ("btree", ("app_name", "user_id", "update_time", "id"), (False,) * 4, None) in shapes
    assert ("btree", ("update_time",), (True,), None) in shapes
    assert ("gin", ("state",), (False,), "(state <> '{}'::jsonb)") in shapes
    event_shapes = {(i["method"], tuple(i["columns"])) for i in indexes(dsn, events).values()}
    assert ("btree", ("app_name", "user_id", "session_id", '"timestamp"')) in event_shapes
    for name in [*session_indexes, *indexes(dsn, events)]:
        assert len(name.encode()) <= 63
    assert len(foreign_keys(dsn, events)) == 1


def test_63_byte_table_names(sync_config: PsycopgSyncConfig, dsn: str) -> None:
    names: dict[str, Any] = {
        "session_table": long_name("agent_sessions_"),
        "events_table": long_name("agent_events_"),
        "app_state_table": long_name("agent_app_states_"),
        "user_state_table": long_name("agent_user_states_"),
    }
    store = PsycopgSyncADKStore(sync_config, **names)
    store.create_tables()
    first = catalog_snapshot(dsn)
    store.create_tables()
    assert catalog_snapshot(dsn) == first
    # The tables carry the full names (PostgreSQL did not truncate anything).
    assert set(names.values()) <= tables(dsn)
    check_store_indexes(dsn, names["session_table"], names["events_table"])

    service = SQLSpecSessionService(store)
    session = service.create_session(app_name="a", user_id="u", state={"k": 1, "app:x": 2})
    event = make_event(actions=EventActions(state_delta={"user:y": 3}))
    service.append_event(session, event)
    got = service.get_session(app_name="a", user_id="u", session_id=session.id)
    assert got is not None
    assert got.state == {"k": 1, "app:x": 2, "user:y": 3}
    assert got.events == [event]
    service.delete_session(app_name="a", user_id="u", session_id=session.id)
    assert fetch(dsn, f'SELECT count(*) FROM "{names["events_table"]}"') == [(0,)]


def test_long_names_sharing_a_prefix_get_their_own_indexes(
    sync_config: PsycopgSyncConfig, dsn: str
) -> None:
    # Derived index names are cut to 63 bytes: two tables alike in their first
    # 54 bytes must still each get their own indexes.
    first = PsycopgSyncADKStore(
        sync_config,
        session_table=long_name("p" * 60 + "_aa"),
        events_table=long_name("q" * 60 + "_aa"),
    )
    second = PsycopgSyncADKStore(
        sync_config,
        session_table=long_name("p" * 60 + "_bb"),
        events_table=long_name("q" * 60 + "_bb"),
    )
    first.create_tables()
    second.create_tables()
    for store in (first, second):
        check_store_indexes(dsn, store.session_table, store.events_table)
    all_indexes = fetch(dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    assert len(all_indexes) == len(set(all_indexes))
