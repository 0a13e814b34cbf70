"""Fixtures: a real PostgreSQL for every test, named by ``SQLSPEC_TEST_DSN`` or embedded.

Each test run creates its own scratch database on that server (so runs side by
side do not meet) and drops it at the end; each test that asks for ``dsn``
starts from an empty ``public`` schema. With ``SQLSPEC_TEST_POOLER`` set to
``transaction`` or ``session``, every test reaches that database through a
PgBouncer of the run's own in that pool mode (:mod:`pgbouncer`).

``SQLSPEC_TEST_EVENT_CACHE=off`` runs the suite with the session services'
event cache off (``event_cache_bytes=0`` by default); it is on otherwise.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from google.adk.sessions.in_memory_session_service import InMemorySessionService
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgbouncer import PgBouncer, pooler_mode
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg._embedded import embedded_conninfo
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService
from sqlspec.extensions.adk.session import _cache

DSN_ENV = "SQLSPEC_TEST_DSN"
CACHE_ENV = "SQLSPEC_TEST_EVENT_CACHE"


@pytest.fixture(scope="session", autouse=True)
def event_cache_default() -> Iterator[int]:
    """The default ``event_cache_bytes`` of every session service this run builds."""
    with pytest.MonkeyPatch.context() as patch:
        if os.environ.get(CACHE_ENV, "on") == "off":
            patch.setattr(_cache, "DEFAULT_EVENT_CACHE_BYTES", 0)
        yield _cache.DEFAULT_EVENT_CACHE_BYTES


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer | None]:
    """The PgBouncer every test goes through, if ``SQLSPEC_TEST_POOLER`` names a pool mode."""
    mode = pooler_mode()
    if mode is None:
        yield None
        return
    bouncer = PgBouncer(os.environ.get(DSN_ENV) or embedded_conninfo(), mode)
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="session")
def direct_server_dsn(pgbouncer: PgBouncer | None) -> Iterator[str]:
    """A conninfo for this run's scratch database, on the server itself."""
    base = os.environ.get(DSN_ENV) or embedded_conninfo()
    name = f"sqlspec_test_{os.getpid()}"
    database = sql.Identifier(name)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(database))
    yield make_conninfo(base, dbname=name)
    if pgbouncer is not None:
        pgbouncer.admin(f"KILL {name}")  # its server connections, before the drop
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))


@pytest.fixture(scope="session")
def server_dsn(direct_server_dsn: str, pgbouncer: PgBouncer | None) -> str:
    """A conninfo for this run's scratch database (through PgBouncer, if one runs)."""
    return direct_server_dsn if pgbouncer is None else pgbouncer.conninfo(direct_server_dsn)


@pytest.fixture
def dsn(server_dsn: str) -> str:
    """The scratch database, emptied of every table."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return server_dsn


def pool_config(dsn: str, **extra: Any) -> dict[str, Any]:
    """A small pool's ``connection_config`` for ``dsn``."""
    return {"conninfo": dsn, "min_size": 1, "max_size": 4, **extra}


@pytest.fixture
async def async_config(dsn: str) -> AsyncIterator[PsycopgAsyncConfig]:
    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    yield config
    await config.close()


@pytest.fixture
def sync_config(dsn: str) -> Iterator[PsycopgSyncConfig]:
    config = PsycopgSyncConfig(connection_config=pool_config(dsn))
    yield config
    config.close()


@pytest.fixture
async def async_store(async_config: PsycopgAsyncConfig) -> PsycopgAsyncADKStore:
    store = PsycopgAsyncADKStore(async_config)
    await store.create_tables()
    return store


@pytest.fixture
def sync_store(sync_config: PsycopgSyncConfig) -> PsycopgSyncADKStore:
    store = PsycopgSyncADKStore(sync_config)
    store.create_tables()
    return store


async def store_service(kind: str, dsn: str) -> AsyncIterator[Any]:
    """A service over a fresh ``kind`` store on ``dsn``, closed after.

    ``kind``: "async", "sync", or "partitioned" (async, events partitioned by month).
    """
    if kind in ("async", "partitioned"):
        async_store = PsycopgAsyncADKStore(
            PsycopgAsyncConfig(connection_config=pool_config(dsn)),
            partitioned_events=kind == "partitioned",
        )
        await async_store.create_tables()
        async with SQLSpecSessionService(async_store) as async_service:
            yield async_service
        return
    sync_store = PsycopgSyncADKStore(PsycopgSyncConfig(connection_config=pool_config(dsn)))
    sync_store.create_tables()
    yield SQLSpecSessionService(sync_store)
    sync_store.close()


@pytest.fixture(params=["async", "sync"])
async def db_service(request: pytest.FixtureRequest, dsn: str) -> AsyncIterator[Any]:
    """The service over each of the two stores (every method awaited)."""
    async for service in store_service(request.param, dsn):
        yield service


@pytest.fixture(params=["async", "sync", "memory"])
async def service(request: pytest.FixtureRequest, dsn: str) -> AsyncIterator[Any]:
    """The session service under test: over each store, and ADK's in-memory reference.

    A module can ask for "partitioned" too: the async store with events partitioned by month.

    Every method is awaited in the tests, whichever backend: the sync-store
    service returns awaitables inside a running loop.
    """
    if request.param == "memory":
        yield InMemorySessionService()
        return
    async for store_backed in store_service(request.param, dsn):
        yield store_backed
