"""The service over a sync store: direct results in a script, awaitables inside a loop."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.events.event import Event
from google.adk.sessions.session import Session

from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService, SyncSQLSpecSessionService


def test_plain_calls_return_results(sync_store: PsycopgSyncADKStore) -> None:
    service = SQLSpecSessionService(sync_store)
    assert isinstance(service, SyncSQLSpecSessionService)
    session = service.create_session(app_name="a", user_id="u", state={"k": 1})
    assert isinstance(session, Session)
    event = service.append_event(session, Event(author="user"))
    assert isinstance(event, Event)
    loaded = service.get_session(app_name="a", user_id="u", session_id=session.id)
    assert isinstance(loaded, Session)
    assert loaded.events == [event]
    assert service.list_sessions(app_name="a").sessions[0].id == session.id
    assert service.get_user_state(app_name="a", user_id="u") == {}
    service.delete_session(app_name="a", user_id="u", session_id=session.id)
    assert service.get_session(app_name="a", user_id="u", session_id=session.id) is None


async def test_calls_inside_a_loop_are_awaitable(sync_store: PsycopgSyncADKStore) -> None:
    # Typed for the direct form; inside a loop the calls hand back awaitables.
    service: Any = SQLSpecSessionService(sync_store)
    pending = service.create_session(app_name="a", user_id="u", session_id="s")
    assert inspect.isawaitable(pending)
    assert not inspect.iscoroutine(pending)  # never a coroutine that may go unawaited
    session = await pending
    assert isinstance(session, Session)
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name="a", user_id="u", session_id="s")


async def test_work_runs_even_if_never_awaited(sync_store: PsycopgSyncADKStore) -> None:
    service = SQLSpecSessionService(sync_store)
    service.create_session(app_name="a", user_id="u", session_id="fire-and-forget")
    for _ in range(100):
        if sync_store.get_session(app_name="a", user_id="u", session_id="fire-and-forget"):
            break
        await asyncio.sleep(0.05)
    assert sync_store.get_session(app_name="a", user_id="u", session_id="fire-and-forget")


async def test_the_loop_is_not_blocked(sync_store: PsycopgSyncADKStore) -> None:
    """While the sync store works in a thread, other tasks of the loop keep running."""
    service: Any = SQLSpecSessionService(sync_store)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.gather(
        *(service.create_session(app_name="a", user_id=f"u{i}") for i in range(20))
    )
    task.cancel()
    assert ticks > 20
