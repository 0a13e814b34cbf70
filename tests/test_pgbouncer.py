"""Behind PgBouncer: no statement prepared where a pooler shares server connections.

Each test runs against a PgBouncer of its module's own with one server connection
per database, so every client shares it: in transaction mode a statement prepared
by one client is met by the next, and one prepared before the server connection
was replaced is gone. The suites themselves run through PgBouncer in both modes
when ``SQLSPEC_TEST_POOLER`` is set (``scripts/test``).
"""

from __future__ import annotations

import inspect
import io
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

import sqlspec
from pgbouncer import PgBouncer
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService
from sqlspec.registry import SQLSpecURISessionService

APP = "bouncer-app"
USER = "bouncer-user"
LOGGER = "sqlspec.adapters.psycopg"
#: More runs of one statement than psycopg's default prepare_threshold (5).
RUNS = 8


@pytest.fixture(scope="module")
def transaction_bouncer(direct_server_dsn: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(direct_server_dsn, "transaction", pool_size=1)
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="module")
def session_bouncer(direct_server_dsn: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(direct_server_dsn, "session", pool_size=4)
    try:
        yield bouncer
    finally:
        bouncer.stop()


class Services:
    """Session services over the async or the sync store, each on a config of its own."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.configs: list[Any] = []

    async def open(
        self, conninfo: str, *, create_tables: bool = True, **extra: Any
    ) -> tuple[Any, SQLSpecSessionService]:
        settings = {"conninfo": conninfo, "min_size": 1, "max_size": 1, **extra}
        if self.kind == "async":
            async_config = PsycopgAsyncConfig(connection_config=settings)
            self.configs.append(async_config)
            async_store = PsycopgAsyncADKStore(async_config)
            if create_tables:
                await async_store.create_tables()
            return async_config, SQLSpecSessionService(async_store)
        sync_config = PsycopgSyncConfig(connection_config=settings)
        self.configs.append(sync_config)
        sync_store = PsycopgSyncADKStore(sync_config)
        if create_tables:
            sync_store.create_tables()
        return sync_config, SQLSpecSessionService(sync_store)

    async def close(self) -> None:
        for config in self.configs:
            if isinstance(config, PsycopgAsyncConfig):
                await config.close()
            else:
                config.close()


@pytest.fixture(params=["async", "sync"])
async def services(request: pytest.FixtureRequest, dsn: str) -> AsyncIterator[Services]:
    """Services of one kind, over a scratch database emptied first (``dsn``)."""
    opened = Services(request.param)
    yield opened
    await opened.close()


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]


def prepared_on_server(conninfo: str) -> int:
    """Statements prepared on the server connection this conninfo's next statement runs on."""
    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as conn:
        row = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert row is not None
    count: int = row[0]
    return count


async def prepared_through(config: Any) -> int:
    """Statements prepared on the server connection the config's one pooled connection holds."""
    query = "SELECT count(*) FROM pg_prepared_statements"
    if isinstance(config, PsycopgAsyncConfig):
        async with config.provide_connection() as conn:
            cur = await conn.execute(query, prepare=False)
            row = await cur.fetchone()
    else:
        with config.provide_connection() as conn:
            row = conn.execute(query, prepare=False).fetchone()
    assert row is not None
    count: int = row[0]
    return count


async def run_often(service: SQLSpecSessionService, session_id: str) -> None:
    """One session created, then read back more often than a statement takes to be prepared."""
    await service.create_session(app_name=APP, user_id=USER, session_id=session_id)
    for _ in range(RUNS):
        got = await service.get_session(app_name=APP, user_id=USER, session_id=session_id)
        assert got is not None


def replace_server_connections(direct_dsn: str, bouncer: PgBouncer) -> None:
    """End PgBouncer's server connections, as an administrator would; wait until it knows."""
    with psycopg.connect(direct_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        dbname = conn.info.dbname
    deadline = time.monotonic() + 10
    while any(s["database"] == dbname for s in bouncer.admin("SHOW SERVERS")):
        assert time.monotonic() < deadline, "PgBouncer kept its terminated server connections"
        time.sleep(0.02)


async def test_a_pooler_is_found_and_nothing_is_prepared_behind_it(
    services: Services,
    transaction_bouncer: PgBouncer,
    direct_server_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conninfo = transaction_bouncer.conninfo(direct_server_dsn)
    config, service = await services.open(conninfo)
    await run_often(service, "found")
    assert config.prepare_threshold is None
    assert prepared_on_server(conninfo) == 0
    [logged] = warnings_logged(caplog)
    assert "connection pooler" in logged
    assert "'session'" in logged


async def test_on_the_server_itself_statements_are_still_prepared(
    services: Services, direct_server_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    config, service = await services.open(direct_server_dsn)
    await run_often(service, "direct")
    assert config.prepare_threshold == 5
    if isinstance(config, PsycopgAsyncConfig):
        async with config.provide_connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
            row = await cur.fetchone()
    else:
        with config.provide_connection() as sync_conn:
            row = sync_conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert row is not None
    assert row[0] > 0
    assert warnings_logged(caplog) == []


async def test_pooler_transaction_prepares_nothing_and_says_nothing(
    services: Services,
    transaction_bouncer: PgBouncer,
    direct_server_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conninfo = transaction_bouncer.conninfo(direct_server_dsn)
    config, service = await services.open(conninfo, pooler="transaction")
    await run_often(service, "said")
    assert config.prepare_threshold is None
    assert prepared_on_server(conninfo) == 0
    assert warnings_logged(caplog) == []


async def test_pooler_session_keeps_preparing_through_pgbouncer_in_session_mode(
    services: Services,
    session_bouncer: PgBouncer,
    direct_server_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, service = await services.open(
        session_bouncer.conninfo(direct_server_dsn), pooler="session"
    )
    await run_often(service, "session")
    assert config.prepare_threshold == 5
    # Its one pooled connection keeps one server connection: what it prepared is there.
    assert await prepared_through(config) > 0
    assert warnings_logged(caplog) == []
    # Without the key the pooler is found, and preparing stops there too.
    found, service = await services.open(
        session_bouncer.conninfo(direct_server_dsn), create_tables=False
    )
    await run_often(service, "session-found")
    assert found.prepare_threshold is None
    assert await prepared_through(found) == 0


async def test_a_refused_prepared_statement_runs_again_unprepared_and_is_logged_once(
    services: Services,
    transaction_bouncer: PgBouncer,
    direct_server_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A config told the pooler keeps sessions (it does not) recovers on its first refusal.

    Each config's connection names its first prepared statement ``_pg3_0``: the
    second config meets the first one's on the one server connection ("already
    exists"). The first config's own then vanishes with that server connection
    ("does not exist"). Every call succeeds, each config says why once.
    """
    conninfo = transaction_bouncer.conninfo(direct_server_dsn)
    # Tables first: their DDL has psycopg deallocate every statement on the server.
    await services.open(conninfo, pooler="transaction")
    preparing: dict[str, Any] = {"pooler": "session", "prepare_threshold": 0}
    first, first_service = await services.open(conninfo, create_tables=False, **preparing)
    second, second_service = await services.open(conninfo, create_tables=False, **preparing)

    await first_service.create_session(app_name=APP, user_id=USER, session_id="first")
    await second_service.create_session(app_name=APP, user_id=USER, session_id="second")
    assert second.prepare_threshold is None
    assert first.prepare_threshold == 0
    [refused] = warnings_logged(caplog)
    assert "already exists" in refused

    replace_server_connections(direct_server_dsn, transaction_bouncer)
    await first_service.create_session(app_name=APP, user_id=USER, session_id="first-again")
    assert first.prepare_threshold is None
    assert "does not exist" in warnings_logged(caplog)[1]

    for service in (first_service, second_service):
        await run_often(service, f"after-{id(service)}")
    assert len(warnings_logged(caplog)) == 2
    listed = await first_service.list_sessions(app_name=APP, user_id=USER)
    assert {s.id for s in listed.sessions} >= {"first", "second", "first-again"}


async def test_a_call_pgbouncer_found_no_server_connection_for_says_it_did_not_run(
    services: Services,
    transaction_bouncer: PgBouncer,
    direct_server_dsn: str,
) -> None:
    """Its one server connection held by an open transaction, PgBouncer fails the call
    once its query_wait_timeout passes; the caller learns that nothing ran."""
    conninfo = transaction_bouncer.conninfo(direct_server_dsn)
    _, service = await services.open(conninfo, pooler="transaction")
    await service.create_session(app_name=APP, user_id=USER, session_id="held")

    store: Any = service.store  # the async or the sync store

    async def export() -> Any:
        exported = store.export_jsonl(io.StringIO())
        return await exported if inspect.isawaitable(exported) else exported

    with psycopg.connect(conninfo) as holder:
        holder.execute("SELECT 1")  # opens a transaction: the server connection is its own
        with pytest.raises(sqlspec.DatabaseUnavailableError) as caught:
            await export()
        holder.rollback()
    await export()  # the server connection free again, the same call runs
    assert "query_wait_timeout" in str(caught.value)
    assert "was not run" in str(caught.value)


async def test_a_service_uri_says_pooler_transaction(
    transaction_bouncer: PgBouncer,
    direct_server_dsn: str,
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    params = conninfo_to_dict(transaction_bouncer.conninfo(direct_server_dsn))
    uri = (
        f"sqlspec://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}"
        "?pooler=transaction"
    )
    service = SQLSpecURISessionService(uri=uri)
    try:
        await run_often(service, "from-uri")
        assert service.store.config.prepare_threshold is None
    finally:
        await service.close()
    assert warnings_logged(caplog) == []


async def test_a_standalone_connection_finds_the_pooler_and_is_handed_over_untouched(
    transaction_bouncer: PgBouncer, direct_server_dsn: str
) -> None:
    settings = {"conninfo": transaction_bouncer.conninfo(direct_server_dsn), "autocommit": False}
    async_config = PsycopgAsyncConfig(connection_config=settings)
    async_conn = await async_config.create_connection()
    try:
        assert async_config.prepare_threshold is None
        assert async_conn.prepare_threshold is None
        assert async_conn.info.transaction_status == TransactionStatus.IDLE
    finally:
        await async_conn.close()
    sync_config = PsycopgSyncConfig(connection_config=settings)
    with sync_config.create_connection() as sync_conn:
        assert sync_config.prepare_threshold is None
        assert sync_conn.info.transaction_status == TransactionStatus.IDLE
