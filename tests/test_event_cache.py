"""The session service's event cache: a read asks only for what the service lacks.

A service keeps the decoded events of the sessions it reads; the next read of a
session brings only the events written since. Every read still asks the server,
so what other processes wrote is seen at once, a session deleted and created
again is read whole, and the stale-session check stays exact. What is kept is
bounded in bytes. The contract, differential, stress and fault suites run with
the cache on by default and off with ``SQLSPEC_TEST_EVENT_CACHE=off``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.adk.errors import StaleSessionError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.genai import types

from conftest import pool_config
from helpers import RoundTripCounter
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk.session._schema import SCHEMA_VERSION
from sqlspec.exceptions import ImproperConfigurationError
from sqlspec.extensions.adk import SQLSpecSessionService, SyncSQLSpecSessionService
from sqlspec.extensions.adk.session._codec import get_revision
from sqlspec.extensions.adk.session._types import HeldEvents

APP, USER = "app", "u"
#: The caching services here keep events whatever ``SQLSPEC_TEST_EVENT_CACHE`` says.
CACHE = 64 * 1024 * 1024
T0 = 1_700_000_000.0


def said(text: str, at: float, **state: Any) -> Event:
    return Event(
        author="user",
        invocation_id="inv",
        timestamp=at,
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=state),
    )


def read(service: SyncSQLSpecSessionService, session_id: str = "s") -> Session:
    """The session as ``service`` reads it; it must exist."""
    got = service.get_session(app_name=APP, user_id=USER, session_id=session_id)
    assert got is not None
    return got


def texts(events: list[Event]) -> list[str]:
    return [e.content.parts[0].text or "" for e in events if e.content and e.content.parts]


@pytest.fixture
def second_config(dsn: str) -> Iterator[PsycopgSyncConfig]:
    """A pool of its own: another process's connections, as far as the server can tell."""
    config = PsycopgSyncConfig(connection_config=pool_config(dsn))
    yield config
    config.close()


def services(
    sync_store: PsycopgSyncADKStore, second_config: PsycopgSyncConfig
) -> tuple[SyncSQLSpecSessionService, SyncSQLSpecSessionService]:
    """A caching service, and another writer over another pool."""
    other = PsycopgSyncADKStore(second_config)
    return SQLSpecSessionService(sync_store, event_cache_bytes=CACHE), SQLSpecSessionService(other)


def test_the_store_sends_only_the_events_written_past_the_revision_held(
    sync_store: PsycopgSyncADKStore,
) -> None:
    session = sync_store.create_session(app_name=APP, user_id=USER, session_id="s")
    for i in range(3):
        sync_store.append_event(session, said(f"m{i}", T0 + i))
    first = sync_store.refresh_session(app_name=APP, user_id=USER, session_id="s", held=None)
    assert first is not None
    assert first.whole
    assert texts(first.events) == ["m0", "m1", "m2"]
    # The JSON the server sent: each event's, give or take its spacing.
    dumped = sum(len(e.model_dump_json(exclude_none=True)) for e in first.events)
    assert dumped <= first.event_bytes <= dumped * 1.1
    revision = get_revision(first.session)
    assert revision == 3
    held = HeldEvents(first.incarnation, revision, first.events[-1].id)

    unchanged = sync_store.refresh_session(app_name=APP, user_id=USER, session_id="s", held=held)
    assert unchanged is not None
    assert (unchanged.whole, unchanged.events, unchanged.event_bytes) == (False, [], 0)

    for i in range(3, 5):
        sync_store.append_event(session, said(f"m{i}", T0 + i, k=i))
    later = sync_store.refresh_session(app_name=APP, user_id=USER, session_id="s", held=held)
    assert later is not None
    assert not later.whole
    assert texts(later.events) == ["m3", "m4"]
    assert get_revision(later.session) == 5
    assert later.session.state == {"k": 4}
    assert later.incarnation == first.incarnation


def test_a_warm_read_is_one_round_trip(sync_config: PsycopgSyncConfig) -> None:
    store = PsycopgSyncADKStore(sync_config)
    store.create_tables()
    service = SQLSpecSessionService(store, event_cache_bytes=CACHE)
    session = service.create_session(app_name=APP, user_id=USER, session_id="s")
    for i in range(20):
        service.append_event(session, said(f"m{i}", T0 + i))
    counter = RoundTripCounter(sync_config)
    counter.take_sync()
    for _ in range(3):
        got = read(service)
        assert got is not None
        assert len(got.events) == 20
        assert counter.take_sync() == 1, counter.last_trace
    assert len(service._events) == 1


def test_another_writers_appends_are_seen_at_once_and_staleness_stays_exact(
    sync_store: PsycopgSyncADKStore, second_config: PsycopgSyncConfig
) -> None:
    cached, other = services(sync_store, second_config)
    session = cached.create_session(app_name=APP, user_id=USER, session_id="s")
    cached.append_event(session, said("mine", T0))
    held = read(cached)
    assert held is not None
    assert texts(held.events) == ["mine"]

    theirs = read(other)
    assert theirs is not None
    other.append_event(theirs, said("theirs", T0 + 1, who="them"))
    # The copy read before their append is stale, held events or not.
    with pytest.raises(StaleSessionError):
        cached.append_event(held, said("late", T0 + 2))

    again = read(cached)
    assert again is not None
    assert texts(again.events) == ["mine", "theirs"]
    assert again.state == {"who": "them"}
    cached.append_event(again, said("after", T0 + 3))
    assert texts(read(other).events) == [
        "mine",
        "theirs",
        "after",
    ]


def test_a_session_deleted_and_created_again_is_read_whole(
    sync_store: PsycopgSyncADKStore, second_config: PsycopgSyncConfig
) -> None:
    cached, other = services(sync_store, second_config)
    session = cached.create_session(app_name=APP, user_id=USER, session_id="s")
    for i in range(3):
        cached.append_event(session, said(f"old{i}", T0 + i))
    held = read(cached)
    assert held is not None
    assert len(held.events) == 3

    # Elsewhere: the same key, a new session, at the revision the held one had,
    # its last event even with the id of the last one held (as an import might).
    other.delete_session(app_name=APP, user_id=USER, session_id="s")
    reborn = other.create_session(app_name=APP, user_id=USER, session_id="s")
    for i in range(3):
        event = said(f"new{i}", T0 + 10 + i)
        if i == 2:
            event.id = held.events[-1].id
        other.append_event(reborn, event)

    got = read(cached)
    assert got is not None
    assert get_revision(got) == 3
    assert texts(got.events) == ["new0", "new1", "new2"]


def test_an_event_that_sorts_before_the_held_ones_takes_its_place(
    sync_store: PsycopgSyncADKStore, second_config: PsycopgSyncConfig
) -> None:
    cached, other = services(sync_store, second_config)
    session = cached.create_session(app_name=APP, user_id=USER, session_id="s")
    cached.append_event(session, said("at 10", T0 + 10))
    cached.append_event(session, said("at 20", T0 + 20))
    assert len(read(cached).events) == 2

    theirs = read(other)
    other.append_event(theirs, said("at 15", T0 + 15))  # a writer whose clock is behind
    got = read(cached)
    assert texts(got.events) == ["at 10", "at 15", "at 20"]
    assert texts(got.events) == texts(read(other).events)


def test_an_event_written_without_its_revision_is_not_missed(
    sync_store: PsycopgSyncADKStore, dsn: str
) -> None:
    service = SQLSpecSessionService(sync_store, event_cache_bytes=CACHE)
    session = service.create_session(app_name=APP, user_id=USER, session_id="s")
    service.append_event(session, said("first", T0))
    assert len(read(service).events) == 1
    # As a writer that predates the events' revision column does: the event's row
    # takes the column's default, the session's revision moves on.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO adk_events (id, session_id, app_name, user_id, author, "timestamp")
            VALUES ('by-hand', 's', %s, %s, 'user', to_timestamp(%s))""",
            (APP, USER, T0 + 1),
        )
        conn.execute("UPDATE adk_sessions SET revision = revision + 1")
    got = read(service)
    assert [e.id for e in got.events][1:] == ["by-hand"]


CONFIGS = [
    GetSessionConfig(num_recent_events=0),
    GetSessionConfig(num_recent_events=1),
    GetSessionConfig(num_recent_events=4),
    GetSessionConfig(num_recent_events=50),
    GetSessionConfig(after_timestamp=T0 + 2),
    GetSessionConfig(after_timestamp=T0 + 2.5),
    GetSessionConfig(after_timestamp=T0 - 1),
    GetSessionConfig(after_timestamp=T0 + 100),
    GetSessionConfig(after_timestamp=T0 + 1, num_recent_events=2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=repr)
def test_recent_and_after_are_served_from_held_events_as_the_store_selects_them(
    sync_store: PsycopgSyncADKStore, dsn: str, config: GetSessionConfig
) -> None:
    service = SQLSpecSessionService(sync_store, event_cache_bytes=CACHE)
    session = service.create_session(app_name=APP, user_id=USER, session_id="s")
    for i in range(6):
        service.append_event(session, said(f"m{i}", T0 + i))
    read(service)  # now held
    service.append_event(session, said("m6", T0 + 6))  # and one more, not yet held
    got = service.get_session(app_name=APP, user_id=USER, session_id="s", config=config)
    expected = sync_store.get_session(app_name=APP, user_id=USER, session_id="s", config=config)
    assert got is not None
    assert expected is not None
    assert [e.id for e in got.events] == [e.id for e in expected.events]
    assert got.events == expected.events


async def test_returned_sessions_are_independent_objects(
    async_store: PsycopgAsyncADKStore,
) -> None:
    service = SQLSpecSessionService(async_store, event_cache_bytes=CACHE)
    session = await service.create_session(app_name=APP, user_id=USER, state={"k": [1]})
    for i in range(3):
        await service.append_event(session, said(f"m{i}", T0 + i))
    first = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    second = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert first is not None
    assert second is not None
    assert first is not second
    assert first.events is not second.events
    assert first.state is not second.state
    assert first.state["k"] is not second.state["k"]
    # Event objects are shared (documented): they are read-only to the caller.
    assert all(a is b for a, b in zip(first.events, second.events, strict=True))

    first.events.clear()
    first.state["k"].append(2)
    first.state["extra"] = True
    third = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert third is not None
    assert len(third.events) == 3
    assert third.state == {"k": [1]}


def test_memory_held_stays_within_the_bound(sync_store: PsycopgSyncADKStore) -> None:
    limit = 1_500_000
    service = SQLSpecSessionService(sync_store, event_cache_bytes=limit)
    text = "x" * 1_000
    for n in range(8):
        session = service.create_session(app_name=APP, user_id=USER, session_id=f"s{n}")
        sync_store.import_events(
            app_name=APP,
            user_id=USER,
            session_id=session.id,
            events=[said(f"{text} {n} {i}", T0 + i) for i in range(100)],
        )
    cache = service._events
    gc.collect()
    tracemalloc.start()
    try:
        for n in range(8):
            got = service.get_session(app_name=APP, user_id=USER, session_id=f"s{n}")
            assert got is not None
            assert len(got.events) == 100
            assert cache.cost <= limit
        del got
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
        reckoned = cache.cost
        assert 1 <= len(cache) < 8  # the least recently read went
        for n in range(8):
            cache.forget((APP, USER, f"s{n}"))
        gc.collect()
        freed = full - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert cache.cost == 0
    # What the sessions held really took is what the cache reckoned, or less.
    assert 0 < freed <= reckoned <= limit


def test_a_session_larger_than_the_bound_is_not_kept(sync_store: PsycopgSyncADKStore) -> None:
    service = SQLSpecSessionService(sync_store, event_cache_bytes=10_000)
    session = service.create_session(app_name=APP, user_id=USER, session_id="s")
    for i in range(5):
        service.append_event(session, said(f"m{i}", T0 + i))
    got = read(service)
    assert got is not None
    assert len(got.events) == 5
    assert len(service._events) == 0
    assert service._events.cost == 0


def test_zero_bytes_turns_the_cache_off(sync_store: PsycopgSyncADKStore) -> None:
    service = SQLSpecSessionService(sync_store, event_cache_bytes=0)
    session = service.create_session(app_name=APP, user_id=USER, session_id="s")
    service.append_event(session, said("m", T0))
    got = read(service)
    assert got is not None
    assert len(got.events) == 1
    assert len(service._events) == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "big", True])
def test_a_bad_bound_is_refused(sync_store: PsycopgSyncADKStore, bad: Any) -> None:
    with pytest.raises(ImproperConfigurationError, match="event_cache_bytes"):
        SQLSpecSessionService(sync_store, event_cache_bytes=bad)


def test_sessions_stored_before_version_4_are_held_and_told_from_new_ones(
    dsn: str, sync_config: PsycopgSyncConfig
) -> None:
    store = PsycopgSyncADKStore(sync_config)
    with psycopg.connect(dsn, autocommit=True) as conn:  # a version-3 database, with a session
        for version in (1, 2, 3):
            for statement in store.schema.migrations[version]:
                conn.execute(statement.text)
        conn.execute(store.schema.versions.create_table.text)
        conn.execute(store.schema.versions.write.text, {"version": 3})
        conn.execute(
            "INSERT INTO adk_sessions (id, app_name, user_id) VALUES ('s', %s, %s)", (APP, USER)
        )
        for i in range(2):
            conn.execute(
                """INSERT INTO adk_events (id, session_id, app_name, user_id, author, "timestamp")
                VALUES (%s, 's', %s, %s, 'user', to_timestamp(%s))""",
                (f"old{i}", APP, USER, T0 + i),
            )
            conn.execute("UPDATE adk_sessions SET revision = revision + 1")
    assert store.migrate() == (3, SCHEMA_VERSION)
    service = SQLSpecSessionService(store, event_cache_bytes=CACHE)
    first = read(service)
    assert first is not None
    assert [e.id for e in first.events] == ["old0", "old1"]
    service.append_event(first, said("new", T0 + 5))
    second = read(service)
    assert [e.id for e in second.events][:2] == ["old0", "old1"]
    assert texts(second.events) == ["new"]

    # Deleted and created again: a new incarnation, never the old one's events.
    other = SQLSpecSessionService(store, event_cache_bytes=0)
    other.delete_session(app_name=APP, user_id=USER, session_id="s")
    reborn = other.create_session(app_name=APP, user_id=USER, session_id="s")
    for i in range(3):
        other.append_event(reborn, said(f"reborn{i}", T0 + 10 + i))
    third = read(service)
    assert texts(third.events) == ["reborn0", "reborn1", "reborn2"]


async def test_concurrent_reads_of_one_session_agree(async_config: PsycopgAsyncConfig) -> None:
    store = PsycopgAsyncADKStore(async_config)
    await store.create_tables()
    service = SQLSpecSessionService(store, event_cache_bytes=CACHE)
    session = await service.create_session(app_name=APP, user_id=USER, session_id="s")
    for round_ in range(5):
        await service.append_event(session, said(f"m{round_}", T0 + round_))
        reads = await asyncio.gather(
            *(service.get_session(app_name=APP, user_id=USER, session_id="s") for _ in range(4))
        )
        for got in reads:
            assert got is not None
            assert texts(got.events) == [f"m{i}" for i in range(round_ + 1)]


def test_events_imported_into_a_held_session_are_seen(sync_store: PsycopgSyncADKStore) -> None:
    service = SQLSpecSessionService(sync_store, event_cache_bytes=CACHE)
    session = service.create_session(app_name=APP, user_id=USER, session_id="s")
    service.append_event(session, said("appended", T0))
    assert texts(read(service).events) == ["appended"]
    imported = said("imported", T0 + 1)
    line = {
        "kind": "event",
        "app_name": APP,
        "user_id": USER,
        "session_id": "s",
        "event": imported.model_dump(mode="json", exclude_none=True),
    }
    result = sync_store.import_jsonl([json.dumps(line)])
    assert result.imported["event"] == 1
    assert texts(read(service).events) == ["appended", "imported"]
