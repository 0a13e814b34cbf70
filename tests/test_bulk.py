"""Paging, streaming reads, COPY imports and JSON Lines export: both stores."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

from conftest import pool_config
from sqlspec import InvalidValueError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService


def make_event(i: int, **state: Any) -> Event:
    return Event(
        author="user",
        invocation_id=f"inv{i}",
        timestamp=1_700_000_000 + i * 0.5,
        content=types.Content(role="user", parts=[types.Part(text=f"message {i}")]),
        actions=EventActions(state_delta=state),
    )


class SyncAsAsync:
    """The sync store's bulk methods behind the async store's signatures, for one test body."""

    def __init__(self, store: PsycopgSyncADKStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call

    async def iter_events(self, **kwargs: Any) -> Any:
        for event in self.store.iter_events(**kwargs):
            yield event


@pytest.fixture(params=["async", "sync"])
async def store(request: pytest.FixtureRequest, dsn: str) -> Any:
    if request.param == "async":
        async_store = PsycopgAsyncADKStore(PsycopgAsyncConfig(connection_config=pool_config(dsn)))
        await async_store.create_tables()
        yield async_store
        await async_store.close()
    else:
        sync_store = PsycopgSyncADKStore(PsycopgSyncConfig(connection_config=pool_config(dsn)))
        sync_store.create_tables()
        yield SyncAsAsync(sync_store)
        sync_store.close()


async def collect(iterator: Any) -> list[Event]:
    return [event async for event in iterator]


async def test_pages_cover_every_session_once_in_order(store: Any) -> None:
    for i in range(7):
        await store.create_session(app_name="app", user_id="u", session_id=f"s{i}")
    await store.create_session(app_name="app", user_id="other", session_id="x")
    everything = await store.list_sessions(app_name="app", user_id="u")
    assert everything.next_cursor is None
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_sessions(app_name="app", user_id="u", limit=3, cursor=cursor)
        seen += [s.id for s in page.sessions]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert seen == [s.id for s in everything.sessions]
    assert len(seen) == 7
    whole_app = await store.list_sessions(app_name="app", limit=100)
    assert len(whole_app.sessions) == 8
    assert whole_app.next_cursor is None


async def test_paging_by_create_time_and_bad_cursors(store: Any) -> None:
    for i in range(4):
        await store.create_session(app_name="app", user_id="u", session_id=f"s{i}")
    first = await store.list_sessions(app_name="app", limit=2, order_by="create_time")
    assert [s.id for s in first.sessions] == ["s0", "s1"]
    second = await store.list_sessions(
        app_name="app", limit=2, order_by="create_time", cursor=first.next_cursor
    )
    assert [s.id for s in second.sessions] == ["s2", "s3"]
    with pytest.raises(InvalidValueError):
        await store.list_sessions(app_name="app", limit=2, cursor=first.next_cursor)
    with pytest.raises(InvalidValueError):
        await store.list_sessions(app_name="app", limit=2, cursor="garbage!")
    with pytest.raises(InvalidValueError):
        await store.list_sessions(app_name="app", limit=0)
    with pytest.raises(InvalidValueError):
        await store.list_sessions(app_name="app", order_by="id; DROP TABLE x")


async def test_service_list_sessions_pages(dsn: str) -> None:
    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    store = PsycopgAsyncADKStore(config)
    await store.create_tables()
    async with SQLSpecSessionService(store) as service:
        for i in range(3):
            await service.create_session(app_name="a", user_id="u", session_id=f"s{i}")
        page = await service.list_sessions(app_name="a", user_id="u", limit=2)
        assert len(page.sessions) == 2
        rest = await service.list_sessions(app_name="a", user_id="u", cursor=page.next_cursor)
        assert [s.id for s in rest.sessions] == ["s2"]


async def test_iter_events_matches_get_session(store: Any) -> None:
    session = await store.create_session(app_name="app", user_id="u", session_id="s")
    events = [make_event(i) for i in range(25)]
    assert (
        await store.import_events(app_name="app", user_id="u", session_id="s", events=events) == 25
    )
    for config in (
        None,
        GetSessionConfig(num_recent_events=5),
        GetSessionConfig(after_timestamp=events[10].timestamp),
        GetSessionConfig(num_recent_events=3, after_timestamp=events[10].timestamp),
        GetSessionConfig(num_recent_events=0),
    ):
        loaded = await store.get_session(app_name="app", user_id="u", session_id="s", config=config)
        streamed = await collect(
            store.iter_events(
                app_name="app", user_id="u", session_id="s", config=config, batch_size=4
            )
        )
        assert streamed == loaded.events
    assert session.events == []
    assert await collect(store.iter_events(app_name="app", user_id="u", session_id="nope")) == []


async def test_import_events_is_a_bulk_append(store: Any) -> None:
    session = await store.create_session(app_name="app", user_id="u", session_id="s")
    events = [
        make_event(0, a=1, **{"user:k": "v0", "temp:t": 1}),
        make_event(1, a=2, b={"x": None}, **{"app:g": True}),
    ]
    count = await store.import_events(
        app_name="app", user_id="u", session_id="s", events=iter(events)
    )
    assert count == 2
    loaded = await store.get_session(app_name="app", user_id="u", session_id="s")
    assert loaded.state == {"a": 2, "b": {"x": None}, "user:k": "v0", "app:g": True}
    assert [e.id for e in loaded.events] == [e.id for e in events]
    assert "temp:t" not in loaded.events[0].actions.state_delta
    assert loaded.last_update_time == pytest.approx(events[-1].timestamp, abs=1e-6)
    with pytest.raises(StaleSessionError):  # the session loaded before the import is stale
        await store.append_event(session, make_event(5))
    with pytest.raises(AlreadyExistsError):
        await store.import_events(app_name="app", user_id="u", session_id="s", events=events[:1])
    with pytest.raises(SessionNotFoundError):
        await store.import_events(app_name="app", user_id="u", session_id="x", events=events)
    after = await store.get_session(app_name="app", user_id="u", session_id="s")
    assert after.events == loaded.events  # failed imports stored nothing


async def test_export_then_import_round_trips(store: Any, dsn: str) -> None:
    await store.create_session(
        app_name="app", user_id="u", session_id="s", state={"k": 1, "app:a": 2, "user:b": 3}
    )
    await store.create_session(app_name="app", user_id="v", session_id="t")
    await store.import_events(
        app_name="app", user_id="u", session_id="s", events=[make_event(i) for i in range(3)]
    )
    before = await store.get_session(app_name="app", user_id="u", session_id="s")
    sink = io.StringIO()
    counts = await store.export_jsonl(sink)
    assert counts == {"app_state": 1, "user_state": 1, "session": 2, "event": 3}
    lines = sink.getvalue().splitlines()
    assert len(lines) == 7

    await store.delete_session(app_name="app", user_id="u", session_id="s")
    result = await store.import_jsonl(lines)
    assert result.imported == {"app_state": 1, "user_state": 1, "session": 1, "event": 3}
    assert result.skipped == {"app_state": 0, "user_state": 0, "session": 1, "event": 0}
    after = await store.get_session(app_name="app", user_id="u", session_id="s")
    assert after.events == before.events
    assert after.state == before.state
    assert after.last_update_time == before.last_update_time

    again = await store.import_jsonl(line.encode() for line in lines)
    assert again.imported["event"] == 0
    assert again.skipped == {"app_state": 0, "user_state": 0, "session": 2, "event": 3}


async def test_export_filters_by_app_and_user(store: Any) -> None:
    await store.create_session(app_name="a1", user_id="u", session_id="s", state={"user:x": 1})
    await store.create_session(app_name="a2", user_id="u", session_id="s")
    await store.create_session(app_name="a1", user_id="w", session_id="s")
    sink = io.StringIO()
    counts = await store.export_jsonl(sink, app_name="a1", user_id="u")
    assert counts == {"app_state": 0, "user_state": 1, "session": 1, "event": 0}


def test_bad_jsonl_writes_nothing(sync_store: PsycopgSyncADKStore) -> None:
    lines: Iterator[str] = iter(
        ['{"kind": "session", "app_name": "a", "user_id": "u", "id": "s"}', "{not json"]
    )
    with pytest.raises(InvalidValueError):
        sync_store.import_jsonl(lines)
    assert sync_store.list_sessions(app_name="a").sessions == []
