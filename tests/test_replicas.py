"""Read replicas: ``replica_config`` sends the reads that tolerate lag to a standby.

Against a primary and its streaming standby (:class:`replication.ReplicatedPair`):
what the primary stores shows on the replica once it has caught up; and with the
standby's replay paused (``pg_wal_replay_pause()``), session listings, exports
and memory search miss what the primary has since stored, which shows they
read the replica, while ``get_session`` and ``append_event`` still see and
write the primary.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.adk.events.event import Event
from google.genai import types
from typer.testing import CliRunner

from helpers import service_uri
from replication import ReplicatedPair
from sqlspec import ImproperConfigurationError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import (
    PsycopgAsyncADKMemoryStore,
    PsycopgAsyncADKStore,
    PsycopgSyncADKArtifactStore,
    PsycopgSyncADKMemoryStore,
    PsycopgSyncADKStore,
)
from sqlspec.cli import app
from sqlspec.extensions.adk import (
    SQLSpecArtifactService,
    SQLSpecMemoryService,
    SQLSpecSessionService,
)
from sqlspec.registry import SQLSpecURISessionService, parse_service_uri

pytestmark = pytest.mark.slow

USER = "replica-user"
_apps = itertools.count()


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicatedPair]:
    """A primary streaming to a standby, asynchronously (the standby may lag)."""
    replicated = ReplicatedPair()
    try:
        yield replicated
    finally:
        replicated.destroy()


@pytest.fixture
def app_name() -> str:
    """An app of the test's own: the module's tests share one database."""
    return f"replica-app-{next(_apps)}"


def small_pool(conninfo: str) -> dict[str, Any]:
    return {"conninfo": conninfo, "min_size": 1, "max_size": 2}


@dataclass
class Stores:
    """A session store, a memory store, and their services, on one config with a replica."""

    sessions: Any
    memory: Any
    session_service: Any
    memory_service: Any


async def _call(result: Any) -> Any:
    """The result of a sync store's call, or of an async one's, awaited."""
    return await result if inspect.isawaitable(result) else result


@pytest.fixture(params=["async", "sync"])
async def stores(request: pytest.FixtureRequest, pair: ReplicatedPair) -> AsyncIterator[Stores]:
    primary = small_pool(pair.primary.conninfo)
    replica = small_pool(pair.standby.conninfo)
    if request.param == "async":
        async_config = PsycopgAsyncConfig(connection_config=primary, replica_config=replica)
        built = Stores(
            PsycopgAsyncADKStore(async_config), PsycopgAsyncADKMemoryStore(async_config), None, None
        )
    else:
        sync_config = PsycopgSyncConfig(connection_config=primary, replica_config=replica)
        built = Stores(
            PsycopgSyncADKStore(sync_config), PsycopgSyncADKMemoryStore(sync_config), None, None
        )
    await _call(built.sessions.create_tables())
    await _call(built.memory.create_tables())
    built.session_service = SQLSpecSessionService(built.sessions)
    built.memory_service = SQLSpecMemoryService(built.memory)
    pair.wait_replayed()
    try:
        yield built
    finally:
        await _call(built.sessions.close())


def said(text: str) -> Event:
    return Event(
        author="user",
        invocation_id="inv",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
    )


async def listed(stores: Stores, app_name: str) -> list[str]:
    page = await stores.session_service.list_sessions(app_name=app_name, user_id=USER)
    return [s.id for s in page.sessions]


async def found(stores: Stores, app_name: str, query: str) -> int:
    response = await stores.memory_service.search_memory(
        app_name=app_name, user_id=USER, query=query
    )
    return len(response.memories)


async def exported_sessions(stores: Stores, app_name: str) -> int:
    sink = io.StringIO()
    counts = await _call(stores.sessions.export_jsonl(sink, app_name=app_name))
    return int(counts.get("session", 0))


def set_replay(pair: ReplicatedPair, paused: bool) -> None:
    function = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
    with psycopg.connect(pair.standby.conninfo, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("SELECT {}()").format(psycopg.sql.Identifier(function)))


@pytest.fixture
def paused_replay(pair: ReplicatedPair) -> Iterator[None]:
    """The standby receives WAL but applies none of it until the test ends."""
    set_replay(pair, paused=True)
    try:
        yield
    finally:
        set_replay(pair, paused=False)


async def test_what_the_primary_stores_is_listed_once_the_replica_catches_up(
    stores: Stores, pair: ReplicatedPair, app_name: str
) -> None:
    session = await stores.session_service.create_session(app_name=app_name, user_id=USER)
    await stores.session_service.append_event(session, said("the harbour lights at night"))
    await stores.memory_service.add_session_to_memory(
        await stores.session_service.get_session(
            app_name=app_name, user_id=USER, session_id=session.id
        )
    )
    pair.wait_replayed()
    assert await listed(stores, app_name) == [session.id]
    assert await found(stores, app_name, "harbour") == 1
    assert await exported_sessions(stores, app_name) == 1


async def test_listings_exports_and_memory_search_read_the_replica(
    stores: Stores, pair: ReplicatedPair, app_name: str, paused_replay: None
) -> None:
    session = await stores.session_service.create_session(app_name=app_name, user_id=USER)
    await stores.session_service.append_event(session, said("a kettle shaped like a whale"))
    loaded = await stores.session_service.get_session(
        app_name=app_name, user_id=USER, session_id=session.id
    )
    assert loaded is not None  # get_session reads the primary: no lag
    assert len(loaded.events) == 1
    await stores.memory_service.add_session_to_memory(loaded)
    assert await found(stores, app_name, "whale") == 0
    assert await listed(stores, app_name) == []
    assert await exported_sessions(stores, app_name) == 0
    assert app_name not in await _call(stores.sessions.list_apps())

    set_replay(pair, paused=False)
    pair.wait_replayed()
    assert await listed(stores, app_name) == [session.id]
    assert await found(stores, app_name, "whale") == 1
    assert await exported_sessions(stores, app_name) == 1


async def test_without_a_replica_every_read_goes_to_the_primary(
    pair: ReplicatedPair, app_name: str, paused_replay: None
) -> None:
    config = PsycopgAsyncConfig(connection_config=small_pool(pair.primary.conninfo))
    assert config.replica is None
    assert config.replica_or_primary is config
    service = SQLSpecSessionService(PsycopgAsyncADKStore(config))
    try:
        session = await service.create_session(app_name=app_name, user_id=USER)
        page = await service.list_sessions(app_name=app_name, user_id=USER)
        assert [s.id for s in page.sessions] == [session.id]
    finally:
        await config.close()


def replica_backends(pair: ReplicatedPair, application_name: str) -> int:
    with psycopg.connect(pair.standby.conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert row is not None
    count: int = row[0]
    return count


async def test_closing_the_config_closes_the_replica_pool(
    pair: ReplicatedPair, app_name: str
) -> None:
    name = "sqlspec-replica-close"
    config = PsycopgAsyncConfig(
        connection_config=small_pool(pair.primary.conninfo),
        replica_config={**small_pool(pair.standby.conninfo), "application_name": name},
    )
    store = PsycopgAsyncADKStore(config)
    await store.create_tables()
    await store.list_sessions(app_name=app_name)
    assert replica_backends(pair, name) >= 1
    await config.close()
    deadline = time.monotonic() + 10  # the server notices a closed connection soon after
    while (left := replica_backends(pair, name)) > 0:
        assert time.monotonic() < deadline, f"{left} replica connections left after close()"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("config_class", [PsycopgAsyncConfig, PsycopgSyncConfig])
def test_a_replica_config_must_name_a_server(
    config_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ImproperConfigurationError, match="replica_config"):
        config_class(connection_config={"conninfo": "host=db"}, replica_config={"max_size": 2})
    with pytest.raises(ImproperConfigurationError, match="unknown"):
        config_class(replica_config={"conninfo": "host=db", "pool_size": 2})


# ------------------------------------------------------------------------ CLI


@pytest.fixture
def cli() -> Any:
    runner = CliRunner(
        env={"COLUMNS": "200", "NO_COLOR": "1", "SQLSPEC_DSN": None, "SQLSPEC_REPLICA_DSN": None}
    )

    def invoke(*args: str) -> Any:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return json.loads(result.stdout)

    return invoke


def test_cli_listings_read_the_replica_given_with_replica_dsn(
    cli: Any, pair: ReplicatedPair, app_name: str, tmp_path: Path
) -> None:
    primary, standby = pair.primary.conninfo, pair.standby.conninfo
    config = PsycopgSyncConfig(connection_config=small_pool(primary))
    sessions = SQLSpecSessionService(PsycopgSyncADKStore(config))
    memory = SQLSpecMemoryService(PsycopgSyncADKMemoryStore(config))
    artifacts = SQLSpecArtifactService(PsycopgSyncADKArtifactStore(config))
    try:
        for service in (sessions, memory, artifacts):
            service.store.create_tables()
        pair.wait_replayed()
        set_replay(pair, paused=True)
        session = sessions.create_session(app_name=app_name, user_id=USER)
        sessions.append_event(session, said("a lantern in the attic"))
        stored = sessions.get_session(app_name=app_name, user_id=USER, session_id=session.id)
        assert stored is not None
        memory.add_session_to_memory(stored)
        artifacts.save_artifact(
            app_name=app_name, user_id=USER, filename="user:note", artifact=types.Part(text="hi")
        )
        ids = ("--app", app_name, "--user", USER, "--json")
        replica = ("--replica-dsn", standby)
        listings = [
            ("sessions", "list", *ids),
            ("memory", "search", "lantern", *ids),
            ("artifacts", "list", *ids),
        ]
        for listing in listings:
            assert cli(*listing, "--dsn", primary) != []
            assert cli(*listing, "--dsn", primary, *replica) == []
        export = ("export", str(tmp_path / "export.jsonl"), "--app", app_name, "--json")
        assert cli(*export, "--dsn", primary)["lines"]["session"] == 1
        assert cli(*export, "--dsn", primary, *replica)["lines"]["session"] == 0

        set_replay(pair, paused=False)
        pair.wait_replayed()
        for listing in listings:
            assert cli(*listing, "--dsn", primary, *replica) != []
    finally:
        set_replay(pair, paused=False)
        config.close()


# ------------------------------------------------------------ service URI


def test_a_service_uri_names_its_replica_pooled_like_the_primary() -> None:
    parsed = parse_service_uri(
        "sqlspec+postgresql://u:pw@primary/app?max_size=3&session_table=s"
        "&replica=postgresql%3A%2F%2Fu%3Apw%40replica%2Fapp%3Fsslmode%3Drequire"
    )
    assert parsed.connection_config == {"conninfo": "postgresql://u:pw@primary/app", "max_size": 3}
    assert parsed.replica_config == {
        "conninfo": "postgresql://u:pw@replica/app?sslmode=require",
        "max_size": 3,
    }
    assert parse_service_uri("sqlspec://primary/app").replica_config is None
    # A libpq keyword passed to the factory names the primary, never the replica.
    keyword = parse_service_uri(
        "sqlspec://primary/app?replica=postgresql%3A%2F%2Freplica%2Fapp", host="primary-vip"
    )
    assert keyword.connection_config["host"] == "primary-vip"
    assert keyword.replica_config == {"conninfo": "postgresql://replica/app"}


async def test_a_service_built_from_a_uri_lists_from_its_replica(
    pair: ReplicatedPair, app_name: str, paused_replay: None
) -> None:
    uri = service_uri(pair.primary.conninfo, max_size=2, replica=pair.standby.conninfo)
    service = SQLSpecURISessionService(uri=uri)
    try:
        session = await service.create_session(app_name=app_name, user_id=USER)
        got = await service.get_session(app_name=app_name, user_id=USER, session_id=session.id)
        assert got is not None
        assert (await service.list_sessions(app_name=app_name, user_id=USER)).sessions == []
    finally:
        await service.close()


def test_the_cli_lists_from_the_replica_a_service_uri_names(
    cli: Any, pair: ReplicatedPair, app_name: str
) -> None:
    config = PsycopgSyncConfig(connection_config=small_pool(pair.primary.conninfo))
    store = PsycopgSyncADKStore(config)
    try:
        store.create_tables()
        pair.wait_replayed()
        set_replay(pair, paused=True)
        session = SQLSpecSessionService(store).create_session(app_name=app_name, user_id=USER)
        uri = service_uri(pair.primary.conninfo, replica=pair.standby.conninfo)
        assert cli("sessions", "list", "--app", app_name, "--json", "--dsn", uri) == []
        show = ("sessions", "show", session.id, "--app", app_name, "--user", USER, "--json")
        shown = cli(*show, "--dsn", uri)
        assert shown["session_id"] == session.id
    finally:
        set_replay(pair, paused=False)
        config.close()
