"""An ADK ``Runner`` conversation, with a scripted offline model, stored through sqlspec.

One turn calls a tool that writes ``app:``, ``user:``, ``temp:`` and plain state,
then answers. The events the runner yields must be exactly the events stored;
the state scopes must come back right; a second Python process must read the
same session through the library; and a second turn, on a fresh service over a
fresh pool, must resume from what was stored.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from google.adk.agents.llm_agent import LlmAgent
from google.adk.events.event import Event
from google.adk.runners import Runner
from google.genai import types

from helpers import PYTHON, ScriptedLlm, content_texts, event_texts, remember, subprocess_env
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

APP = "runner_app"
USER = "alice"

#: Run by a separate Python: reload the session with the library (sync store, no
#: event loop, so the service returns results directly) and print a summary.
RELOAD_SCRIPT = """
import json, sys
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

dsn, app, user, session_id = sys.argv[1:5]
config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 1})
store = PsycopgSyncADKStore(config)
service = SQLSpecSessionService(store)
session = service.get_session(app_name=app, user_id=user, session_id=session_id)
texts = []
for event in session.events:
    for part in (event.content.parts or []) if event.content else []:
        if part.text:
            texts.append(part.text)
        elif part.function_call:
            texts.append("call:" + part.function_call.name)
        elif part.function_response:
            texts.append("response:" + part.function_response.name)
print(json.dumps({
    "event_count": len(session.events),
    "event_ids": [e.id for e in session.events],
    "authors": [e.author for e in session.events],
    "texts": texts,
    "state": session.state,
    "user_state": service.get_user_state(app_name=app, user_id=user),
    "events_json": [e.model_dump(mode="json", exclude_none=True) for e in session.events],
}))
store.close()
"""

Closer = Callable[[], Awaitable[None]]


async def _make_service(kind: str, dsn: str) -> tuple[Any, Closer]:
    """A fresh service over a fresh pool, and how to close it."""
    pool = {"conninfo": dsn, "min_size": 1, "max_size": 4}
    if kind == "async":
        async_config = PsycopgAsyncConfig(connection_config=pool)
        async_store = PsycopgAsyncADKStore(async_config)
        await async_store.create_tables()
        return SQLSpecSessionService(async_store), async_config.close

    sync_config = PsycopgSyncConfig(connection_config=pool)
    sync_store = PsycopgSyncADKStore(sync_config)
    sync_store.create_tables()

    async def close_sync() -> None:
        sync_config.close()

    return SQLSpecSessionService(sync_store), close_sync


async def _run_turn(service: Any, llm: ScriptedLlm, session_id: str, text: str) -> list[Event]:
    runner = Runner(
        app_name=APP,
        agent=LlmAgent(name="assistant", model=llm, tools=[remember]),
        session_service=service,
    )
    try:
        message = types.Content(role="user", parts=[types.Part(text=text)])
        return [
            event
            async for event in runner.run_async(
                user_id=USER, session_id=session_id, new_message=message, yield_user_message=True
            )
        ]
    finally:
        await runner.close()


def _reload_in_other_process(dsn: str, session_id: str) -> dict[str, Any]:
    proc = subprocess.run(
        [PYTHON, "-c", RELOAD_SCRIPT, dsn, APP, USER, session_id],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_runner_conversation_is_stored_and_resumed(kind: str, dsn: str) -> None:
    # ---- turn 1 -----------------------------------------------------------
    service, close = await _make_service(kind, dsn)
    try:
        created = await service.create_session(
            app_name=APP, user_id=USER, state={"topic": "colors"}
        )
        llm = ScriptedLlm()
        turn1 = await _run_turn(service, llm, created.id, "please remember blue")

        # The runner yielded the user message, the call, the tool's answer and the text.
        assert event_texts(turn1) == [
            "please remember blue",
            "call:remember",
            "response:remember",
            "stored blue",
        ]
        assert [e.author for e in turn1] == ["user", "assistant", "assistant", "assistant"]
        assert not any(e.partial for e in turn1)
        assert len(llm.requests) == 2  # one call for the function call, one for the answer
        tool_event = turn1[2]
        # temp: never reaches the stored delta; the other scopes do.
        assert tool_event.actions.state_delta == {
            "app:color": "blue",
            "user:color": "blue",
            "color": "blue",
            "turns": 1,
        }

        reloaded = await service.get_session(app_name=APP, user_id=USER, session_id=created.id)
        assert reloaded is not None
        # Persisted exactly as yielded: same events, same order, every field.
        assert reloaded.events == turn1
        assert [e.model_dump(mode="json") for e in reloaded.events] == [
            e.model_dump(mode="json") for e in turn1
        ]
        assert reloaded.last_update_time == pytest.approx(turn1[-1].timestamp, abs=1e-6)
        # State scopes after a reload: temp: gone, app:/user:/plain kept.
        assert reloaded.state == {
            "topic": "colors",
            "color": "blue",
            "turns": 1,
            "app:color": "blue",
            "user:color": "blue",
        }
        assert not any(key.startswith("temp:") for key in reloaded.state)
        assert await service.get_user_state(app_name=APP, user_id=USER) == {"color": "blue"}
        # app: and user: state reach a new session of the same app and user.
        other = await service.create_session(app_name=APP, user_id=USER)
        assert other.state == {"app:color": "blue", "user:color": "blue"}
        stranger = await service.create_session(app_name=APP, user_id="bob")
        assert stranger.state == {"app:color": "blue"}
    finally:
        await close()

    # ---- turn 2: a fresh service over a fresh pool resumes from storage ----
    service, close = await _make_service(kind, dsn)
    try:
        llm2 = ScriptedLlm()
        turn2 = await _run_turn(service, llm2, created.id, "now remember green")
        assert event_texts(turn2) == [
            "now remember green",
            "call:remember",
            "response:remember",
            "stored green",
        ]
        # The model saw turn 1's history, which only storage could have supplied.
        assert content_texts(list(llm2.requests[0])) == [
            "please remember blue",
            "call:remember",
            "response:remember",
            "stored blue",
            "now remember green",
        ]
        # The tool read turns=1 from the stored state and wrote 2.
        assert turn2[2].actions.state_delta["turns"] == 2

        reloaded2 = await service.get_session(app_name=APP, user_id=USER, session_id=created.id)
        assert reloaded2 is not None
        assert reloaded2.events == turn1 + turn2
        assert reloaded2.state == {
            "topic": "colors",
            "color": "green",
            "turns": 2,
            "app:color": "green",
            "user:color": "green",
        }
        assert len({e.id for e in reloaded2.events}) == 8
    finally:
        await close()

    # ---- another process reads the same session through the library -------
    summary = _reload_in_other_process(dsn, created.id)
    assert summary["event_count"] == 8
    assert summary["event_ids"] == [e.id for e in turn1 + turn2]
    assert summary["authors"] == [e.author for e in turn1 + turn2]
    assert summary["texts"] == event_texts(turn1 + turn2)
    assert summary["state"] == reloaded2.state
    assert summary["user_state"] == {"color": "green"}
    assert [Event.model_validate(e) for e in summary["events_json"]] == turn1 + turn2
