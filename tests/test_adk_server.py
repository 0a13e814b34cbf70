"""ADK's own server and command line on sqlspec, through ``--session_service_uri``.

The example agents directory (``examples/agents``: the scripted demo agent, a
``services.yaml`` and a ``services.py``) is served by ADK's real FastAPI app, and
driven over HTTP; what it stored is then read back with the library.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from google.adk.cli import service_registry
from google.adk.cli.fast_api import get_fast_api_app
from google.adk.events.event import Event

from conftest import pool_config
from helpers import service_uri
from sqlspec import ImproperConfigurationError, MissingTablesError, registry
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg._settings import PoolSettings
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.extensions.adk.session import _cache
from sqlspec.registry import (
    SQLSpecURISessionService,
    create_session_service,
    parse_duration,
    parse_service_uri,
    register_session_services,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*EXPERIMENTAL.*:UserWarning")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "agents"
APP = "note_taker"


@pytest.fixture
def agents_dir(tmp_path: Path) -> Path:
    """A copy of the example agents directory (ADK may write beside the agents)."""
    target = tmp_path / "agents"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__", ".adk"))
    return target


@pytest.fixture
def fresh_adk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[SQLSpecURISessionService]]:
    """ADK's registry and module caches as a new process has them; the services built."""
    monkeypatch.setattr(service_registry, "_service_registry_instance", None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m == "services" or m.split(".")[0] == APP]:
        monkeypatch.delitem(sys.modules, name)
    built: list[SQLSpecURISessionService] = []
    original = SQLSpecURISessionService.__init__

    def recording_init(self: SQLSpecURISessionService, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(SQLSpecURISessionService, "__init__", recording_init)
    yield built
    for name in [m for m in sys.modules if m == "services" or m.split(".")[0] == APP]:
        del sys.modules[name]


@pytest.fixture
def store(dsn: str) -> Iterator[PsycopgSyncADKStore]:
    store = PsycopgSyncADKStore(PsycopgSyncConfig(connection_config=pool_config(dsn)))
    yield store
    store.close()


@asynccontextmanager
async def serve(agents: Path, uri: str) -> AsyncIterator[httpx.AsyncClient]:
    """ADK's API server app (``adk api_server``), lifespan included, over ASGI."""
    app = get_fast_api_app(
        agents_dir=str(agents),
        session_service_uri=uri,
        artifact_service_uri="memory://",
        use_local_storage=False,
        web=False,
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
    ):
        yield client


def message(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


async def test_api_server_conversation_is_stored_in_postgres(
    agents_dir: Path, fresh_adk: list[Any], dsn: str, store: PsycopgSyncADKStore
) -> None:
    uri = service_uri(dsn, scheme="sqlspec+postgresql", max_size=3)
    try:
        async with serve(agents_dir, uri) as client:
            assert (await client.get("/list-apps")).json() == [APP]
            created = await client.post(
                f"/apps/{APP}/users/u1/sessions",
                json={"session_id": "s1", "state": {"plain": 1, "user:u": 2, "app:a": 3}},
            )
            assert created.status_code == 200, created.text
            assert created.json()["state"] == {"plain": 1, "user:u": 2, "app:a": 3}

            replies: list[dict[str, Any]] = []
            for text in ("I like tea.", "I live in Porto."):
                run = await client.post(
                    "/run",
                    json={
                        "app_name": APP,
                        "user_id": "u1",
                        "session_id": "s1",
                        "new_message": message(text),
                    },
                )
                assert run.status_code == 200, run.text
                replies.extend(run.json())
            texts = [p.get("text") for e in replies for p in e["content"]["parts"]]
            assert "Noted: 'I live in Porto.'. I now know 2 thing(s) about you." in texts

            over_http = (await client.get(f"/apps/{APP}/users/u1/sessions/s1")).json()
            listed = (await client.get(f"/apps/{APP}/users/u1/sessions")).json()
            assert [s["id"] for s in listed] == ["s1"]
        assert len(fresh_adk) == 1  # services.yaml built our service for the URI
        service = fresh_adk[0]
        assert service.store.config.settings.pool["max_size"] == 3

        stored = store.get_session(app_name=APP, user_id="u1", session_id="s1")
        assert stored is not None
        assert stored.state == {
            "plain": 1,
            "notes": ["I like tea.", "I live in Porto."],
            "user:u": 2,
            "user:notes_total": 2,
            "app:a": 3,
            "app:notes_total": 2,
        }
        assert over_http["state"] == stored.state
        # Two turns: the user's message, the tool call, its response, the answer.
        assert [e.author for e in stored.events] == ["user", APP, APP, APP] * 2
        run_events = [Event.model_validate(e) for e in replies]
        assert [e for e in stored.events if e.author != "user"] == run_events
        assert [e.id for e in stored.events] == [e["id"] for e in over_http["events"]]
        assert store.get_user_state(app_name=APP, user_id="u1") == {"u": 2, "notes_total": 2}

        async with serve(agents_dir, uri) as client:
            deleted = await client.delete(f"/apps/{APP}/users/u1/sessions/s1")
            assert deleted.status_code == 200
            missing = await client.get(f"/apps/{APP}/users/u1/sessions/s1")
            assert missing.status_code == 404
        assert store.get_session(app_name=APP, user_id="u1", session_id="s1") is None
    finally:
        for service in fresh_adk:
            await service.close()


async def test_single_agent_folder_registers_through_services_py(
    agents_dir: Path, fresh_adk: list[Any], dsn: str, store: PsycopgSyncADKStore
) -> None:
    (agents_dir / "services.yaml").unlink()  # only note_taker/services.py is left
    try:
        async with serve(agents_dir / APP, service_uri(dsn)) as client:
            created = await client.post(
                f"/apps/{APP}/users/u2/sessions", json={"options": {"ttl": "1h"}}
            )
            assert created.status_code == 200, created.text
            session_id = created.json()["id"]
            run = await client.post(
                "/run",
                json={
                    "app_name": APP,
                    "user_id": "u2",
                    "session_id": session_id,
                    "new_message": message("hello"),
                },
            )
            assert run.status_code == 200, run.text
        stored = store.get_session(app_name=APP, user_id="u2", session_id=session_id)
        assert stored is not None
        assert stored.state["notes"] == ["hello"]
        with psycopg.connect(store.config.resolve_conninfo()) as conn:
            row = conn.execute(
                "SELECT expire_time - create_time FROM adk_sessions WHERE id = %s", (session_id,)
            ).fetchone()
        assert row is not None
        assert row[0] == timedelta(hours=1)
    finally:
        for service in fresh_adk:
            await service.close()


@pytest.mark.slow
def test_adk_run_command_resumes_a_stored_conversation(
    agents_dir: Path, dsn: str, store: PsycopgSyncADKStore
) -> None:
    store.create_tables()
    store.create_session(
        app_name=APP, user_id="test_user", session_id="cli", state={"notes": ["from before"]}
    )
    adk = Path(sys.executable).with_name("adk")
    command = [str(adk)] if adk.exists() else [sys.executable, "-m", "google.adk.cli"]
    result = subprocess.run(
        [
            *command,
            "run",
            str(agents_dir / APP),
            "I like tea.",
            "--session_id",
            "cli",
            "--session_service_uri",
            service_uri(dsn, scheme="sqlspec+postgres"),
            "--artifact_service_uri",
            "memory://",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "I now know 2 thing(s) about you." in result.stdout
    stored = store.get_session(app_name=APP, user_id="test_user", session_id="cli")
    assert stored is not None
    assert stored.state["notes"] == ["from before", "I like tea."]
    assert len(stored.events) == 4


# ---------------------------------------------------------------- the URI and factory


def test_uri_maps_to_conninfo_pool_and_tables() -> None:
    parsed = parse_service_uri(
        "sqlspec+postgresql://u:pw@db.example:6543/app?sslmode=require&min_size=1&max_size=9"
        "&timeout=2.5&session_table=agent_sessions&session_ttl=30d&create_tables=false"
    )
    assert parsed.connection_config == {
        "conninfo": "postgresql://u:pw@db.example:6543/app?sslmode=require",
        "min_size": 1,
        "max_size": 9,
        "timeout": 2.5,
    }
    assert parsed.store_options == {
        "session_table": "agent_sessions",
        "session_ttl": timedelta(days=30),
    }
    assert parsed.create_tables is False
    assert "pw" not in parsed.masked()
    assert parse_service_uri("sqlspec://").connection_config == {}  # the embedded server
    assert parse_service_uri("sqlspec:///db?host=/run/pg").conninfo == (
        "postgresql:///db?host=%2Frun%2Fpg"
    )
    keyword = parse_service_uri(
        "sqlspec://h/db", agents_dir="/x", max_size=2, prepare_threshold="none"
    )
    assert keyword.connection_config == {
        "conninfo": "postgresql://h/db",
        "max_size": 2,
        "prepare_threshold": None,
    }
    # A max_size below psycopg_pool's default min_size lowers the minimum with it.
    assert PoolSettings.from_mapping(keyword.connection_config).pool["min_size"] == 2


def test_uri_says_a_pooler_in_transaction_mode_and_a_command_timeout() -> None:
    parsed = parse_service_uri(
        "sqlspec://u@bouncer:6432/app?pooler=transaction&command_timeout=2.5"
    )
    assert parsed.connection_config == {
        "conninfo": "postgresql://u@bouncer:6432/app",
        "pooler": "transaction",
        "command_timeout": 2.5,
    }
    settings = PoolSettings.from_mapping(parsed.connection_config)
    assert settings.prepare_threshold is None
    assert settings.command_timeout == 2.5


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("postgresql://h/db", "is not one of"),
        ("sqlspec://h/db?max_size=lots", "max_size must be int, got 'lots'"),
        ("sqlspec://h/db?create_tables=maybe", "create_tables must be true or false"),
        ("sqlspec://h/db?session_ttl=soon", "'soon' is not a duration"),
        ("sqlspec://h/db?session_table=bad-name", "is not a plain identifier"),
        ("sqlspec://h/db?pooler=statement", "'pooler'.* must be one of 'transaction', 'session'"),
        ("sqlspec://h/db?event_cache_bytes=lots", "event_cache_bytes must be int"),
        ("sqlspec://h/db?event_cache_bytes=-1", "event_cache_bytes must be an int >= 0"),
    ],
)
def test_bad_uris_are_refused_at_construction(uri: str, message: str) -> None:
    with pytest.raises(ImproperConfigurationError, match=message):
        SQLSpecURISessionService(uri=uri)


def test_the_event_cache_is_sized_by_the_uri() -> None:
    assert parse_service_uri("sqlspec://h/db").event_cache_bytes is None
    default = SQLSpecURISessionService(uri="sqlspec://h/db")
    assert default._events.max_bytes == _cache.DEFAULT_EVENT_CACHE_BYTES
    off = SQLSpecURISessionService(uri="sqlspec://h/db?event_cache_bytes=0")
    assert off._events.max_bytes == 0
    sized = SQLSpecURISessionService(uri="sqlspec://h/db", event_cache_bytes="1048576")
    assert sized._events.max_bytes == 1_048_576


def test_durations() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1d12h") == timedelta(days=1, hours=12)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert parse_duration("45") == timedelta(seconds=45)
    assert parse_duration(1.5) == timedelta(seconds=1.5)
    for bad in ("", "soon", "5y", "1d x", "-3"):
        with pytest.raises(ImproperConfigurationError):
            parse_duration(bad)


def test_register_in_a_registry() -> None:
    adk_registry = service_registry.ServiceRegistry()
    register_session_services(adk_registry)
    service = adk_registry.create_session_service("sqlspec+postgres://h/db", agents_dir="/x")
    assert isinstance(service, SQLSpecURISessionService)
    assert repr(service) == "SQLSpecURISessionService('dbname=db host=h')"
    assert adk_registry.create_session_service("other://h/db") is None
    assert isinstance(create_session_service("sqlspec://"), SQLSpecURISessionService)
    assert registry.SCHEMES == ("sqlspec", "sqlspec+postgresql", "sqlspec+postgres")


async def test_tables_are_created_on_first_use_unless_told_not_to(dsn: str) -> None:
    off = SQLSpecURISessionService(uri=service_uri(dsn, create_tables="false"))
    try:
        with pytest.raises(MissingTablesError):
            await off.list_sessions(app_name="a")
    finally:
        await off.close()
    on = SQLSpecURISessionService(uri=service_uri(dsn, session_ttl="1h"))
    try:
        assert (await on.list_sessions(app_name="a")).sessions == []
        session = await on.create_session(app_name="a", user_id="u", ttl=30)
        again = await on.get_session(app_name="a", user_id="u", session_id=session.id)
        assert again == session
        assert await on.get_user_state(app_name="a", user_id="u") == {}
        await on.delete_session(app_name="a", user_id="u", session_id=session.id)
    finally:
        await on.close()
