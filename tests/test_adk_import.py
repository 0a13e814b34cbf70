"""Switching from ADK's DatabaseSessionService: import what ADK itself wrote, lose nothing.

ADK's service writes its tables through SQLAlchemy (``postgresql+psycopg://``);
after the import the library must return the same sessions, events and state.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from conftest import pool_config
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk.session._import_adk import (
    ADKSource,
    ADKSourceError,
    import_from_adk,
    source_conninfo,
)
from sqlspec.cli import app
from sqlspec.cli.demo import build_agent
from sqlspec.extensions.adk import SQLSpecSessionService

sqlalchemy = pytest.importorskip("sqlalchemy")
pytest.importorskip("greenlet")
from google.adk.sessions.database_session_service import DatabaseSessionService  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def sqlalchemy_url(dsn: str, **query: str) -> str:
    """``dsn`` (a conninfo) as the ``postgresql+psycopg://`` URL ADK's service takes."""
    params = conninfo_to_dict(dsn)
    host = str(params.pop("host", "") or "")
    if host.startswith("/"):
        query["host"] = host
        host = ""
    port = params.pop("port", None)
    url = sqlalchemy.engine.URL.create(
        "postgresql+psycopg",
        username=params.pop("user", None),
        password=params.pop("password", None),
        host=host or None,
        port=int(port) if port else None,
        database=params.pop("dbname", None),
        query={**{k: str(v) for k, v in params.items()}, **query},
    )
    rendered: str = url.render_as_string(hide_password=False)
    return rendered


@pytest.fixture
def store(dsn: str) -> Iterator[PsycopgSyncADKStore]:
    store = PsycopgSyncADKStore(PsycopgSyncConfig(connection_config=pool_config(dsn)))
    store.create_tables()
    yield store
    store.close()


@pytest.fixture
async def adk(dsn: str) -> AsyncIterator[DatabaseSessionService]:
    async with DatabaseSessionService(db_url=sqlalchemy_url(dsn)) as service:
        yield service


def odd_event(timestamp: float) -> Event:
    """An event with the fields that trip JSON: bytes, a set, metadata, an error."""
    return Event(
        author="tool_agent",
        invocation_id="odd",
        timestamp=timestamp,
        branch="root.child",
        long_running_tool_ids={"t2", "t1"},
        custom_metadata={"trace": {"span": 7}},
        error_code="RATE_LIMIT",
        error_message="slow down " * 50,
        content=types.Content(
            role="model",
            parts=[
                types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x89PNG\x00\xff")),
                types.Part(text="ünïcødé ✓"),
            ],
        ),
        actions=EventActions(
            state_delta={"app:flag": True, "user:lang": "pt", "step": 3, "temp:gone": 1},
            transfer_to_agent="other",
        ),
    )


async def write_with_adk(adk: DatabaseSessionService) -> None:
    """Two apps, three users, state in every scope, a real Runner conversation."""
    await adk.create_session(
        app_name="shop",
        user_id="alice",
        session_id="a1",
        state={"cart": [], "app:currency": "EUR", "user:tier": "gold", "temp:x": 1},
    )
    runner = Runner(app_name="shop", agent=build_agent(), session_service=adk)
    for text in ("I like tea.", "I live in Porto."):
        content = types.Content(role="user", parts=[types.Part(text=text)])
        async for _ in runner.run_async(user_id="alice", session_id="a1", new_message=content):
            pass
    await runner.close()
    a2 = await adk.create_session(app_name="shop", user_id="alice", session_id="a2")
    await adk.append_event(a2, odd_event(1_700_000_000.000001))
    await adk.append_event(a2, odd_event(1_700_000_000.000001).model_copy(update={"id": "same"}))
    await adk.create_session(app_name="shop", user_id="bob", state={"user:tier": "silver"})
    b = await adk.create_session(app_name="blog", user_id="carol", session_id="c1")
    await adk.append_event(
        b,
        Event(
            author="user",
            invocation_id="i",
            content=types.Content(role="user", parts=[types.Part(text="post")]),
        ),
    )


async def assert_same_as_adk(adk: DatabaseSessionService, ours: Any) -> None:
    """Every session, listing and user state reads back as ADK returns it."""
    for app_name, user_id in (("shop", None), ("shop", "alice"), ("shop", "bob"), ("blog", None)):
        theirs = await adk.list_sessions(app_name=app_name, user_id=user_id)
        mine = await ours.list_sessions(app_name=app_name, user_id=user_id)
        assert [(s.user_id, s.id, s.state, s.last_update_time) for s in mine.sessions] == [
            (s.user_id, s.id, s.state, s.last_update_time) for s in theirs.sessions
        ]
        for listed in theirs.sessions:
            ids = {"app_name": app_name, "user_id": listed.user_id, "session_id": listed.id}
            for config in (None, GetSessionConfig(num_recent_events=2)):
                a = await adk.get_session(**ids, config=config)
                b = await ours.get_session(**ids, config=config)
                assert a is not None
                assert b is not None
                assert b.events == a.events
                assert b.state == a.state
                assert b.last_update_time == a.last_update_time
            assert await ours.get_user_state(
                app_name=app_name, user_id=listed.user_id
            ) == await adk.get_user_state(app_name=app_name, user_id=listed.user_id)


async def test_import_what_adk_wrote(
    adk: DatabaseSessionService, dsn: str, store: PsycopgSyncADKStore
) -> None:
    await write_with_adk(adk)
    result = import_from_adk(store, sqlalchemy_url(dsn))
    assert result.imported == {"app_state": 2, "user_state": 3, "session": 4, "event": 11}
    assert result.skipped == {"app_state": 0, "user_state": 0, "session": 0, "event": 0}

    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    async with SQLSpecSessionService(PsycopgAsyncADKStore(config)) as ours:
        await assert_same_as_adk(adk, ours)
        a1 = await ours.get_session(app_name="shop", user_id="alice", session_id="a1")
        assert a1 is not None
        assert a1.state == {
            "cart": [],
            "notes": ["I like tea.", "I live in Porto."],
            "app:currency": "EUR",
            "app:notes_total": 2,
            "app:flag": True,
            "user:tier": "gold",
            "user:notes_total": 2,
            "user:lang": "pt",
        }
        a2 = await ours.get_session(app_name="shop", user_id="alice", session_id="a2")
        assert a2 is not None
        assert a2.events[0].long_running_tool_ids == {"t1", "t2"}
        assert a2.events[0].content is not None
        assert a2.events[0].content.parts is not None
        assert a2.events[0].content.parts[0].inline_data is not None
        assert a2.events[0].content.parts[0].inline_data.data == b"\x89PNG\x00\xff"

        # The conversation goes on in sqlspec where it stopped in ADK.
        runner = Runner(app_name="shop", agent=build_agent(), session_service=ours)
        content = types.Content(role="user", parts=[types.Part(text="I have a cat.")])
        replies = [
            e async for e in runner.run_async(user_id="alice", session_id="a1", new_message=content)
        ]
        await runner.close()
        assert replies[-1].content is not None
        assert replies[-1].content.parts is not None
        assert replies[-1].content.parts[0].text == (
            "Noted: 'I have a cat.'. I now know 3 thing(s) about you."
        )


async def test_import_again_keeps_what_is_there(
    adk: DatabaseSessionService, dsn: str, store: PsycopgSyncADKStore
) -> None:
    await write_with_adk(adk)
    import_from_adk(store, sqlalchemy_url(dsn))
    again = import_from_adk(store, make_conninfo(dsn))
    assert again.imported["session"] == 0
    assert again.imported["event"] == 0
    assert again.skipped == {"app_state": 0, "user_state": 0, "session": 4, "event": 11}
    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    async with SQLSpecSessionService(PsycopgAsyncADKStore(config)) as ours:
        await assert_same_as_adk(adk, ours)


async def test_import_one_app_or_one_user(
    adk: DatabaseSessionService, dsn: str, store: PsycopgSyncADKStore
) -> None:
    await write_with_adk(adk)
    with ADKSource(dsn, app_name="shop", user_id="alice") as source:
        assert source.version == "1"
        assert source.counts() == {"app_state": 1, "user_state": 1, "session": 2, "event": 10}
    result = import_from_adk(store, dsn, app_name="blog")
    assert result.imported == {"app_state": 1, "user_state": 1, "session": 1, "event": 1}
    assert [s.id for s in store.list_sessions(app_name="blog").sessions] == ["c1"]
    assert store.list_sessions(app_name="shop").sessions == []


async def test_import_from_another_schema(dsn: str, store: PsycopgSyncADKStore) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA adk_old"))
    url = sqlalchemy_url(dsn, options="-csearch_path=adk_old")
    async with DatabaseSessionService(db_url=url) as adk:
        session = await adk.create_session(app_name="x", user_id="u", state={"k": 1})
        await adk.append_event(session, Event(author="user", invocation_id="i"))
        with pytest.raises(ADKSourceError, match="no ADK DatabaseSessionService tables"):
            import_from_adk(store, dsn)
        result = import_from_adk(store, url, schema="adk_old")
        assert result.imported["event"] == 1
        mine = store.get_session(app_name="x", user_id="u", session_id=session.id)
        theirs = await adk.get_session(app_name="x", user_id="u", session_id=session.id)
        assert mine is not None
        assert theirs is not None
        assert (mine.state, mine.events) == (theirs.state, theirs.events)


def test_source_urls() -> None:
    assert source_conninfo("postgresql+psycopg://u:p@h/db") == "postgresql://u:p@h/db"
    assert source_conninfo("postgresql+asyncpg://h/db") == "postgresql://h/db"
    assert source_conninfo("postgres://h/db") == "postgresql://h/db"
    assert source_conninfo("host=h dbname=db") == "host=h dbname=db"
    with pytest.raises(ADKSourceError, match="only PostgreSQL sources"):
        source_conninfo("sqlite+aiosqlite:///sessions.db")


async def test_cli_import_adk(adk: DatabaseSessionService, dsn: str) -> None:
    await write_with_adk(adk)
    runner = CliRunner(env={"COLUMNS": "200", "SQLSPEC_DSN": None})
    result = runner.invoke(app, ["import-adk", "--dsn", dsn, "--from-dsn", sqlalchemy_url(dsn)])
    assert result.exit_code == 0, result.output
    assert "sessions    │        4 │                   0" in result.stdout
    assert "events      │       11 │                   0" in result.stdout
    again = runner.invoke(app, ["import-adk", "--dsn", dsn, "--app", "shop", "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["schema_version"] == "1"
    assert data["skipped"] == {"app_state": 0, "user_state": 0, "session": 3, "event": 10}
    shown = runner.invoke(
        app, ["sessions", "show", "a1", "--dsn", dsn, "--app", "shop", "--user", "alice"]
    )
    assert shown.exit_code == 0, shown.output
    assert "Noted: 'I live in Porto.'. I now know 2 thing(s) about you." in shown.stdout
