"""The memory service: ADK's ``BaseMemoryService`` contract over both stores.

Behaviour shared with ADK's ``InMemoryMemoryService`` runs against it too, as
the reference; where the stores do more (stemmed, ranked full-text search,
``add_memory``, the session id in each result's metadata) the reference's
entry is a strict xfail, so a change on either side shows.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from google.adk.events.event import Event
from google.adk.memory.in_memory_memory_service import InMemoryMemoryService
from google.adk.memory.memory_entry import MemoryEntry
from google.adk.sessions.session import Session
from google.genai import types

from conftest import pool_config
from helpers import RoundTripCounter
from sqlspec import ImproperConfigurationError, InvalidValueError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import (
    PsycopgAsyncADKMemoryStore,
    PsycopgAsyncADKStore,
    PsycopgSyncADKMemoryStore,
)
from sqlspec.extensions.adk import SQLSpecMemoryService, SyncSQLSpecMemoryService

APP = "mem-app"
USER = "mem-user"


def reference_xfails(reason: str, raises: type[BaseException]) -> pytest.MarkDecorator:
    """Parametrize ``memory`` with the reference as a strict xfail for ``reason``."""
    return pytest.mark.parametrize(
        "memory",
        [
            "async",
            "sync",
            pytest.param(
                "memory", marks=pytest.mark.xfail(strict=True, raises=raises, reason=reason)
            ),
        ],
        indirect=True,
    )


def said(text: str, *, event_id: str | None = None, at: float | None = None) -> Event:
    """A user event saying ``text``."""
    return Event(
        id=event_id or Event.new_id(),
        author="user",
        invocation_id="inv",
        timestamp=at if at is not None else time.time(),
        content=types.Content(role="user", parts=[types.Part(text=text)]),
    )


def conversation(*texts: str, session_id: str = "s1", user_id: str = USER) -> Session:
    return Session(
        id=session_id,
        app_name=APP,
        user_id=user_id,
        events=[said(t, at=1_700_000_000.0 + i) for i, t in enumerate(texts)],
    )


async def memory_service(kind: str, dsn: str, **options: Any) -> AsyncIterator[Any]:
    """A memory service over a fresh ``kind`` ("async" or "sync") store, closed after."""
    if kind == "async":
        async_store = PsycopgAsyncADKMemoryStore(
            PsycopgAsyncConfig(connection_config=pool_config(dsn)), **options
        )
        await async_store.create_tables()
        async with SQLSpecMemoryService(async_store) as service:
            yield service
        return
    sync_store = PsycopgSyncADKMemoryStore(
        PsycopgSyncConfig(connection_config=pool_config(dsn)), **options
    )
    sync_store.create_tables()
    yield SQLSpecMemoryService(sync_store)
    sync_store.close()


@pytest.fixture(params=["async", "sync", "memory"])
async def memory(request: pytest.FixtureRequest, dsn: str) -> AsyncIterator[Any]:
    """The memory service under test, and ADK's in-memory one as the reference."""
    if request.param == "memory":
        yield InMemoryMemoryService()
        return
    async for service in memory_service(request.param, dsn):
        yield service


@pytest.fixture(params=["async", "sync"])
async def db_memory(request: pytest.FixtureRequest, dsn: str) -> AsyncIterator[Any]:
    """The memory service over each of the two stores."""
    async for service in memory_service(request.param, dsn):
        yield service


async def search(memory: Any, query: str, user_id: str = USER) -> list[MemoryEntry]:
    response = await memory.search_memory(app_name=APP, user_id=user_id, query=query)
    memories: list[MemoryEntry] = response.memories
    return memories


def texts(memories: list[MemoryEntry]) -> list[str]:
    return [m.content.parts[0].text or "" for m in memories if m.content.parts]


# ------------------------------------------------------------------ the contract


async def test_a_session_added_is_found_by_its_words(memory: Any) -> None:
    session = conversation("I booked a table at Luigi's for Friday", "The weather is mild")
    await memory.add_session_to_memory(session)
    found = await search(memory, "Luigi table")
    assert texts(found) == ["I booked a table at Luigi's for Friday"]
    event = session.events[0]
    assert found[0].id == event.id
    assert found[0].author == "user"
    assert found[0].content == event.content
    reference = InMemoryMemoryService()
    await reference.add_session_to_memory(session)
    expected = (await reference.search_memory(app_name=APP, user_id=USER, query="Luigi")).memories
    assert found[0].timestamp == expected[0].timestamp


@reference_xfails("ADK's InMemoryMemoryService returns empty custom_metadata", KeyError)
async def test_each_result_names_its_session(memory: Any) -> None:
    await memory.add_session_to_memory(conversation("remember the blue kettle", session_id="s9"))
    (found,) = await search(memory, "kettle")
    assert found.custom_metadata["session_id"] == "s9"


async def test_memories_are_scoped_by_app_and_user(memory: Any) -> None:
    await memory.add_session_to_memory(conversation("my locker code is 4512", user_id="alice"))
    assert await search(memory, "locker", user_id="bob") == []
    response = await memory.search_memory(app_name="other-app", user_id="alice", query="locker")
    assert response.memories == []
    assert len(await search(memory, "locker", user_id="alice")) == 1


async def test_adding_a_session_again_adds_nothing(memory: Any) -> None:
    session = conversation("the parcel goes to Lyon", "the parcel is heavy")
    await memory.add_session_to_memory(session)
    await memory.add_session_to_memory(session)
    assert sorted(texts(await search(memory, "parcel"))) == [
        "the parcel goes to Lyon",
        "the parcel is heavy",
    ]


async def test_events_added_as_deltas_are_stored_once(memory: Any) -> None:
    first, second, third = (said(f"orchid note {i}") for i in range(3))
    await memory.add_events_to_memory(
        app_name=APP, user_id=USER, events=[first, second], session_id="s1"
    )
    await memory.add_events_to_memory(
        app_name=APP, user_id=USER, events=[second, third], session_id="s1"
    )
    assert sorted(str(m.id) for m in await search(memory, "orchid")) == sorted(
        e.id for e in (first, second, third)
    )


async def test_events_without_content_are_not_memories(memory: Any) -> None:
    silent = Event(author="agent", invocation_id="inv")
    empty = Event(author="agent", invocation_id="inv", content=types.Content(role="model"))
    await memory.add_events_to_memory(
        app_name=APP, user_id=USER, events=[silent, empty, said("a quiet pond")]
    )
    assert texts(await search(memory, "quiet pond")) == ["a quiet pond"]


async def test_a_deleted_memory_stays_deleted_when_its_session_comes_back(memory: Any) -> None:
    session = conversation("the spare key is under the mat", "the mat is red")
    await memory.add_session_to_memory(session)
    await memory.delete_memory(app_name=APP, user_id=USER, memory_id=session.events[0].id)
    assert texts(await search(memory, "mat")) == ["the mat is red"]
    await memory.add_session_to_memory(session)
    assert texts(await search(memory, "mat")) == ["the mat is red"]


async def test_deleting_with_no_id_deletes_nothing(memory: Any) -> None:
    await memory.add_session_to_memory(conversation("a lighthouse at dusk"))
    await memory.delete_memory(app_name=APP, user_id=USER, memory_id=None)
    await memory.delete_memory(app_name=APP, user_id=USER, memory_id="")
    assert len(await search(memory, "lighthouse")) == 1


async def test_a_search_returns_the_ten_best_matches_most_words_first(memory: Any) -> None:
    texts_said = [f"violin lesson number {i}" for i in range(14)]
    texts_said.append("violin lesson with the cello teacher on tuesday")
    await memory.add_session_to_memory(conversation(*texts_said))
    found = await search(memory, "cello teacher violin lesson tuesday")
    assert len(found) == 10
    assert texts(found)[0] == "violin lesson with the cello teacher on tuesday"


async def test_a_query_with_no_word_in_common_finds_nothing(memory: Any) -> None:
    await memory.add_session_to_memory(conversation("sailing on the lake"))
    assert await search(memory, "quantum chromodynamics") == []
    assert await search(memory, "") == []


# ------------------------------------------------------------ beyond the reference


@reference_xfails("ADK's InMemoryMemoryService matches whole words only", AssertionError)
async def test_words_are_stemmed(memory: Any) -> None:
    await memory.add_session_to_memory(conversation("Please confirm the booking for two"))
    assert texts(await search(memory, "what did I book? booked")) == [
        "Please confirm the booking for two"
    ]


@reference_xfails("ADK's InMemoryMemoryService has no add_memory", NotImplementedError)
async def test_entries_added_directly_keep_their_metadata(memory: Any) -> None:
    entry = MemoryEntry(
        id="fact-1",
        content=types.Content(role="user", parts=[types.Part(text="allergic to peanuts")]),
        author="profile",
        timestamp="2026-01-02T03:04:05",
        custom_metadata={"source": "form"},
    )
    await memory.add_memory(
        app_name=APP, user_id=USER, memories=[entry], custom_metadata={"batch": 7}
    )
    (found,) = await search(memory, "peanut allergy allergic")
    assert found.id == "fact-1"
    assert found.author == "profile"
    assert found.timestamp == "2026-01-02T03:04:05"
    assert found.content == entry.content
    assert found.custom_metadata == {"source": "form", "batch": 7}


async def test_any_text_is_a_safe_query(db_memory: Any) -> None:
    await db_memory.add_session_to_memory(conversation("an ordinary sentence about rivers"))
    for query in (
        "rivers' & | ! :* <-> (",
        '"unclosed quote rivers',
        "rivers\x00nul",
        "-rivers or or and",
        "rivers " * 2_000,
        "x" * 10_000,
        "\ud800 rivers",
    ):
        try:
            found = await search(db_memory, query)
        except InvalidValueError:
            continue
        assert all("rivers" in t for t in texts(found)), query


async def test_nul_in_content_is_refused_whole_as_the_session_store_refuses_it(
    db_memory: Any,
) -> None:
    session = conversation("an ordinary harbour", "nul\x00inside the harbour text")
    with pytest.raises(InvalidValueError, match="NUL"):
        await db_memory.add_session_to_memory(session)
    assert await search(db_memory, "harbour") == []


async def settled(value: Any) -> Any:
    """A store call's result, whether the store is async or sync."""
    return await value if inspect.isawaitable(value) else value


async def test_prune_forgets_memories_of_old_events(db_memory: Any) -> None:
    old = said("an old note about kites", at=time.time() - 10 * 86_400)
    new = said("a new note about kites")
    await db_memory.add_events_to_memory(app_name=APP, user_id=USER, events=[old, new])
    store = db_memory.store
    assert await settled(store.prune(older_than=timedelta(days=1), dry_run=True)) == 1
    assert await settled(store.prune(older_than=timedelta(days=1), app_name="other")) == 0
    assert await settled(store.prune(older_than=timedelta(days=1))) == 1
    assert texts(await search(db_memory, "kites")) == ["a new note about kites"]
    assert await settled(store.count()) == 1


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_the_simple_configuration_does_not_stem(kind: str, dsn: str) -> None:
    async for service in memory_service(kind, dsn, text_search_config="simple"):
        await service.add_session_to_memory(conversation("Les réservations sont confirmées"))
        assert texts(await search(service, "réservations")) == ["Les réservations sont confirmées"]
        assert await search(service, "réservation") == []


async def test_an_unknown_text_search_configuration_is_refused(dsn: str) -> None:
    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    store = PsycopgAsyncADKMemoryStore(config, text_search_config="klingon")
    with pytest.raises(ImproperConfigurationError, match="klingon"):
        await store.create_tables()
    await config.close()


async def test_the_schema_records_its_version_beside_the_sessions(dsn: str) -> None:
    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    sessions = PsycopgAsyncADKStore(config)
    memories = PsycopgAsyncADKMemoryStore(config)
    assert await memories.schema_version() is None
    await sessions.create_tables()
    await memories.create_tables()
    assert await memories.schema_version() == 1
    assert await memories.migrate() == (1, 1)
    await config.close()


def test_the_sync_store_gives_the_sync_service(dsn: str) -> None:
    store = PsycopgSyncADKMemoryStore(PsycopgSyncConfig(connection_config=pool_config(dsn)))
    store.create_tables()
    service = SQLSpecMemoryService(store)
    assert isinstance(service, SyncSQLSpecMemoryService)
    service.add_session_to_memory(conversation("a plain script remembers the fern"))
    assert texts(service.search_memory(app_name=APP, user_id=USER, query="fern").memories) == [
        "a plain script remembers the fern"
    ]
    store.close()


# ------------------------------------------------------------------- round trips


@pytest.fixture
def counted_sync(dsn: str) -> Iterator[tuple[Any, RoundTripCounter]]:
    config = PsycopgSyncConfig(connection_config=pool_config(dsn))
    store = PsycopgSyncADKMemoryStore(config)
    store.create_tables()
    counter = RoundTripCounter(config)
    counter.take_sync()
    yield SQLSpecMemoryService(store), counter
    config.close()


def test_each_call_is_one_round_trip_and_a_long_session_one_batch(
    counted_sync: tuple[Any, RoundTripCounter],
) -> None:
    service, counter = counted_sync
    long_session = conversation(*(f"turn {i} about gardening" for i in range(1_000)))
    service.add_session_to_memory(long_session)
    assert counter.take_sync() == 1, counter.last_trace
    for _ in range(8):  # past psycopg's prepare threshold
        service.search_memory(app_name=APP, user_id=USER, query="gardening turn")
        assert counter.take_sync() == 1, counter.last_trace
    service.add_events_to_memory(app_name=APP, user_id=USER, events=[said("one more")])
    assert counter.take_sync() == 1, counter.last_trace
    service.delete_memory(app_name=APP, user_id=USER, memory_id=long_session.events[0].id)
    assert counter.take_sync() == 1, counter.last_trace
    found = service.search_memory(app_name=APP, user_id=USER, query="gardening").memories
    assert len(found) == 10
