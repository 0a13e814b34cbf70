"""Bad input: a typed error before anything is written, or a lossless store."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.genai import types

from sqlspec import InvalidValueError, MissingTablesError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService


def text_event(text: str, **state: Any) -> Event:
    return Event(
        author="user",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=state),
    )


@pytest.mark.parametrize("field", ["app_name", "user_id", "session_id"])
@pytest.mark.parametrize("value", ["x" * 129, "nul\x00inside"])
async def test_bad_ids_are_refused_before_io(db_service: Any, field: str, value: str) -> None:
    ids = {"app_name": "app", "user_id": "user", "session_id": "sid", field: value}
    with pytest.raises(InvalidValueError):
        await db_service.create_session(**ids)
    listed = await db_service.list_sessions(app_name="app")
    assert listed.sessions == []


async def test_id_of_exactly_128_characters_is_stored(db_service: Any) -> None:
    sid = "s" * 128
    await db_service.create_session(app_name="app", user_id="u" * 128, session_id=sid)
    got = await db_service.get_session(app_name="app", user_id="u" * 128, session_id=sid)
    assert got is not None
    assert got.id == sid


@pytest.mark.parametrize(
    "state",
    [
        {"k": "nul\x00value"},
        {"nul\x00key": 1},
        {"user:k": "nul\x00value"},
        {"app:k": "nul\x00value"},
        {"k": math.nan},
        {"k": [1.0, math.inf]},
        {"user:k": -math.inf},
    ],
)
async def test_unstorable_state_at_create_writes_nothing(db_service: Any, state: Any) -> None:
    with pytest.raises(InvalidValueError):
        await db_service.create_session(app_name="app", user_id="u", session_id="s", state=state)
    assert await db_service.get_session(app_name="app", user_id="u", session_id="s") is None
    assert await db_service.get_user_state(app_name="app", user_id="u") == {}


@pytest.mark.parametrize(
    "event",
    [
        text_event("nul\x00in text"),
        text_event("fine", k="nul\x00value"),
        text_event("fine", **{"user:k": math.nan}),
        text_event("fine", **{"app:k": "nul\x00value"}),
        Event(author="a" * 257),
        Event(author="user", branch="b" * 257),
        Event(author="user", id="e" * 129),
    ],
)
async def test_unstorable_event_writes_nothing(db_service: Any, event: Event) -> None:
    session = await db_service.create_session(app_name="app", user_id="u", state={"k": 1})
    with pytest.raises(InvalidValueError):
        await db_service.append_event(session, event)
    stored = await db_service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert stored.events == []
    assert stored.state == {"k": 1}
    # The failed append did not move the revision: the same session object still appends.
    await db_service.append_event(session, text_event("after", k=2))
    stored = await db_service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert [e.content.parts[0].text for e in stored.events] == ["after"]
    assert stored.state == {"k": 2}


async def test_long_error_message_is_kept(db_service: Any) -> None:
    session = await db_service.create_session(app_name="app", user_id="u")
    event = Event(author="model", error_code="E", error_message="m" * 5000)
    await db_service.append_event(session, event)
    stored = await db_service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert stored.events == [event]


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


async def test_unserializable_state_is_stored_as_text_with_warning(
    db_service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        session = await db_service.create_session(
            app_name="app", user_id="u", state={"obj": Opaque(), "n": 1}
        )
    assert any("not JSON-serializable" in r.getMessage() for r in caplog.records)
    stored = await db_service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert stored.state["n"] == 1
    assert isinstance(stored.state["obj"], str)
    assert "Opaque" in stored.state["obj"]


async def test_unicode_and_quotes_round_trip(db_service: Any) -> None:
    ids = {"app_name": "app'; --", "user_id": 'ü"ser', "session_id": "séssion 🚀"}
    state = {"qu'o\"te": "ünï\\cödé 🚀", "nested": {"a": [None, True, 1.5, "x"]}}
    await db_service.create_session(**ids, state=state)
    stored = await db_service.get_session(**ids)
    assert stored.state == state
    assert stored.id == ids["session_id"]


async def test_missing_tables_say_what_to_do(dsn: str) -> None:
    config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    service = SQLSpecSessionService(PsycopgAsyncADKStore(config))
    with pytest.raises(MissingTablesError, match="create_tables"):
        await service.get_session(app_name="a", user_id="u", session_id="s")
    await service.close()
