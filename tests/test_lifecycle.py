"""Schema versions and migration, session expiry, and pruning."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event

from sqlspec import ImproperConfigurationError, InvalidValueError, SchemaVersionError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk._versions import SCHEMA_TABLE
from sqlspec.adapters.psycopg.adk.session._schema import SCHEMA_VERSION
from sqlspec.extensions.adk import SQLSpecSessionService


def columns(dsn: str, table: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return {r[0] for r in rows}


def test_fresh_database_is_created_at_the_latest_version(
    sync_config: PsycopgSyncConfig,
) -> None:
    store = PsycopgSyncADKStore(sync_config)
    assert store.schema_version() is None
    assert store.migrate() == (0, SCHEMA_VERSION)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.migrate() == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_version_1_tables_are_upgraded_in_place(dsn: str, sync_config: PsycopgSyncConfig) -> None:
    store = PsycopgSyncADKStore(sync_config)
    with psycopg.connect(dsn, autocommit=True) as conn:  # a version-1 database, as first released
        for statement in store.schema.migrations[1]:
            conn.execute(statement.text)
        conn.execute(
            "INSERT INTO adk_sessions (id, app_name, user_id, state) "
            "VALUES ('s', 'a', 'u', '{\"k\": 1}')"
        )
    assert "expire_time" not in columns(dsn, "adk_sessions")
    assert store.schema_version() == 1
    assert store.migrate() == (1, SCHEMA_VERSION)
    assert "expire_time" in columns(dsn, "adk_sessions")
    session = store.get_session(app_name="a", user_id="u", session_id="s")
    assert session is not None
    assert session.state == {"k": 1}


#: The sessions listing indexes as versions 1 to 4 made them: ``app_name`` in its own collation.
LISTING_INDEXES_BEFORE_5 = {
    "idx_adk_sessions_app_user": "(app_name, user_id, update_time, id)",
    "idx_adk_sessions_app_update_time": "(app_name, update_time, user_id, id)",
    "idx_adk_sessions_app_create_time": "(app_name, create_time, user_id, id)",
    "idx_adk_sessions_user_create_time": "(app_name, user_id, create_time, id)",
}


def listing_indexes(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, str]]:
    """Each listing index's oid and the collation of its first column."""
    rows = conn.execute(
        "SELECT c.relname, i.indexrelid::int, co.collname FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_collation co ON co.oid = i.indcollation[0] "
        "WHERE c.relname = ANY(%s)",
        (list(LISTING_INDEXES_BEFORE_5),),
    ).fetchall()
    return {name: (oid, collation) for name, oid, collation in rows}


def test_version_4_listing_indexes_are_remade_for_key_lookups_to_avoid(
    dsn: str, sync_config: PsycopgSyncConfig
) -> None:
    """A version-4 database's listing indexes compared ``app_name`` in its own collation,
    so that the planner, without statistics, could look a session up by its key through
    one of them (walking all of a user's entries): version 5 makes them again, bytewise."""
    store = PsycopgSyncADKStore(sync_config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for version in range(1, 5):
            for statement in store.schema.migrations[version]:
                conn.execute(statement.text)
        for name, columns in LISTING_INDEXES_BEFORE_5.items():
            conn.execute(f"DROP INDEX {name}")
            conn.execute(f"CREATE INDEX {name} ON adk_sessions {columns}")
        conn.execute(store.schema.versions.create_table.text)
        conn.execute(store.schema.versions.write.text, {"version": 4})
        conn.execute("INSERT INTO adk_sessions (id, app_name, user_id) VALUES ('s', 'a', 'u')")
        before = listing_indexes(conn)
    assert {collation for _, collation in before.values()} == {"default"}
    assert store.migrate() == (4, SCHEMA_VERSION)
    with psycopg.connect(dsn) as conn:
        after = listing_indexes(conn)
    assert set(after) == set(LISTING_INDEXES_BEFORE_5)
    assert {collation for _, collation in after.values()} == {"C"}
    # Run again (as `migrate --repair` does), the block leaves indexes made so alone.
    assert store.migrate(repair=True) == (SCHEMA_VERSION, SCHEMA_VERSION)
    with psycopg.connect(dsn) as conn:
        assert listing_indexes(conn) == after
    page = store.list_sessions(app_name="a", user_id="u")
    assert [s.id for s in page.sessions] == ["s"]


def test_a_newer_schema_is_refused_untouched(dsn: str, sync_config: PsycopgSyncConfig) -> None:
    store = PsycopgSyncADKStore(sync_config)
    store.create_tables()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {SCHEMA_TABLE} SET version = 99")
    with pytest.raises(SchemaVersionError, match="99"):
        store.migrate()
    with psycopg.connect(dsn) as conn:
        assert conn.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchone() == (99,)


def test_table_sets_have_versions_of_their_own(sync_config: PsycopgSyncConfig) -> None:
    PsycopgSyncADKStore(sync_config).create_tables()
    other = PsycopgSyncADKStore(sync_config, session_table="Other_Sessions", events_table="oe")
    assert other.schema_version() is None
    other.create_tables()
    assert other.schema_version() == SCHEMA_VERSION


async def test_expired_sessions_are_gone_for_reads_and_writes(
    async_config: PsycopgAsyncConfig, dsn: str
) -> None:
    store = PsycopgAsyncADKStore(async_config, session_ttl=timedelta(hours=1))
    await store.create_tables()
    service = SQLSpecSessionService(store)
    kept = await service.create_session(app_name="a", user_id="u", session_id="kept", ttl=None)
    doomed = await service.create_session(app_name="a", user_id="u", session_id="doomed")
    forever = PsycopgAsyncADKStore(async_config)
    never = await forever.create_session(app_name="a", user_id="u", session_id="never")
    with psycopg.connect(dsn, autocommit=True) as conn:
        expiries: dict[str, object] = dict(
            conn.execute("SELECT id, expire_time FROM adk_sessions").fetchall()
        )
        assert expiries["never"] is None
        assert expiries["kept"] is not None  # the store default applies
        conn.execute(
            "UPDATE adk_sessions SET expire_time = now() - interval '1 second' WHERE id = 'doomed'"
        )
    assert await service.get_session(app_name="a", user_id="u", session_id="doomed") is None
    listed = await service.list_sessions(app_name="a", user_id="u")
    assert {s.id for s in listed.sessions} == {"kept", "never"}
    with pytest.raises(SessionNotFoundError):
        await service.append_event(doomed, Event(author="user"))
    await service.append_event(kept, Event(author="user"))
    await service.append_event(never, Event(author="user"))
    assert await store.prune(dry_run=True) == (1, 0)
    assert await store.prune() == (1, 0)
    assert await store.prune() == (0, 0)


def test_prune_idle_sessions_with_their_events(dsn: str, sync_store: PsycopgSyncADKStore) -> None:
    for sid in ("old", "new"):
        session = sync_store.create_session(app_name="a", user_id="u", session_id=sid)
        sync_store.append_event(session, Event(author="user"))
        sync_store.append_event(session, Event(author="user"))
    sync_store.create_session(app_name="b", user_id="u", session_id="old")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE adk_sessions SET update_time = now() - interval '10 days'")
        conn.execute("UPDATE adk_sessions SET update_time = now() WHERE id = 'new'")
    week = timedelta(days=7)
    assert sync_store.prune(older_than=week, app_name="a", dry_run=True) == (1, 2)
    assert sync_store.prune(older_than=week, app_name="a") == (1, 2)
    assert sync_store.get_session(app_name="a", user_id="u", session_id="old") is None
    assert sync_store.get_session(app_name="a", user_id="u", session_id="new") is not None
    assert sync_store.get_session(app_name="b", user_id="u", session_id="old") is not None
    assert sync_store.prune(older_than=week) == (1, 0)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM adk_events").fetchone() == (2,)


def test_bad_retention_arguments(sync_config: PsycopgSyncConfig) -> None:
    with pytest.raises(ImproperConfigurationError):
        PsycopgSyncADKStore(sync_config, session_ttl=timedelta(0))
    store = PsycopgSyncADKStore(sync_config)
    store.create_tables()
    with pytest.raises(InvalidValueError):
        store.create_session(app_name="a", user_id="u", ttl=timedelta(seconds=-1))
    with pytest.raises(InvalidValueError):
        store.prune(older_than=timedelta(days=-1))
