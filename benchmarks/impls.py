"""The implementations under test, behind one small interface.

Each implementation exposes the same operations. An async one returns
awaitables; a sync one returns results and is always driven from a worker thread
where no event loop runs (a plain script, as far as it can tell).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from typing import Any, ClassVar, cast

from google.adk.errors import StaleSessionError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig
from google.adk.sessions.session import Session
from psycopg import AsyncConnection, Connection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from benchmarks.database import sqlalchemy_url
from benchmarks.raw import (
    SCHEMA_QUERY,
    SCHEMA_TABLES,
    RawSchema,
    RawStatements,
    split_delta,
)
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService, SyncSQLSpecSessionService

__all__ = ["IMPLEMENTATIONS", "Impl", "adk_unavailable", "build_impls"]


def _config(recent: int | None) -> GetSessionConfig | None:
    return None if recent is None else GetSessionConfig(num_recent_events=recent)


class Impl:
    """One implementation: its label, its mode and its operations."""

    key: ClassVar[str]
    label: ClassVar[str]
    family: ClassVar[str]  # "sqlspec", "adk" or "raw"
    is_async: ClassVar[bool]

    def __init__(self, dsn: str, pool_size: int) -> None:
        self.dsn = dsn
        self.pool_size = pool_size

    @property
    def floor_key(self) -> str:
        """The raw floor this implementation is compared with (same sync/async mode)."""
        return "raw-async" if self.is_async else "raw-sync"

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run one operation outside any timing: awaited, or in a loop-free worker thread."""
        if self.is_async:
            return await fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def grow(self) -> None:
        """Open every connection of the pool now (before a concurrency scenario)."""

    async def release(self) -> None:
        """Give back idle connections, so that the server's connection slots last."""

    def create_session(
        self, app: str, user: str, session_id: str, state: dict[str, Any] | None
    ) -> Any:
        raise NotImplementedError

    def append_event(self, session: Session, event: Event) -> Any:
        raise NotImplementedError

    def get_session(self, app: str, user: str, session_id: str, recent: int | None) -> Any:
        raise NotImplementedError

    def list_sessions(self, app: str, user: str) -> Any:
        """The user's sessions as a ``list[Session]`` (or an awaitable of it)."""
        raise NotImplementedError

    def loop_append(self) -> Callable[[Session, Event], Awaitable[Any]] | None:
        """How to append from inside a running event loop, or ``None`` where it cannot."""
        return self.append_event if self.is_async else None

    def paging_missing(self) -> str | None:
        """Why :meth:`list_page` cannot run here, or ``None`` when it can."""
        return "no paging API"

    def list_page(self, app: str, user: str, limit: int, cursor: Any) -> Any:
        """A page as ``(sessions, next_cursor)`` (or an awaitable of it)."""
        raise NotImplementedError


# --- sqlspec -------------------------------------------------------------------------


class _AsyncService(Impl):
    """An async ``BaseSessionService``, driven through ADK's own interface."""

    is_async = True
    service: BaseSessionService

    async def create_session(
        self, app: str, user: str, session_id: str, state: dict[str, Any] | None
    ) -> Session:
        return await self.service.create_session(
            app_name=app, user_id=user, session_id=session_id, state=state
        )

    async def append_event(self, session: Session, event: Event) -> Event:
        return await self.service.append_event(session, event)

    async def get_session(
        self, app: str, user: str, session_id: str, recent: int | None
    ) -> Session | None:
        return await self.service.get_session(
            app_name=app, user_id=user, session_id=session_id, config=_config(recent)
        )

    async def list_sessions(self, app: str, user: str) -> list[Session]:
        return (await self.service.list_sessions(app_name=app, user_id=user)).sessions


class SQLSpecAsyncService(_AsyncService):
    key = "sqlspec-async"
    label = "sqlspec async · service"
    family = "sqlspec"

    async def open(self) -> None:
        self.config = PsycopgAsyncConfig(
            {"conninfo": self.dsn, "min_size": 1, "max_size": self.pool_size}
        )
        self.store = PsycopgAsyncADKStore(self.config)
        await self._filled()
        await self.store.create_tables()
        self.sqlspec = SQLSpecSessionService(self.store)
        self.service = self.sqlspec

    async def _filled(self) -> None:
        # The pool's one min_size connection made before the first call: a first call
        # that found the pool still connecting would grow it to two, and psycopg_pool
        # lends its connections in turn, spreading sequential calls over two server
        # backends (0.1 ms a call on a 2-core machine), as the floor's pool does not.
        await (await self.config.provide_pool()).wait()

    async def close(self) -> None:
        await self.sqlspec.close()

    async def grow(self) -> None:
        pool = await self.config.provide_pool()
        await pool.resize(min_size=self.pool_size, max_size=self.pool_size)
        await pool.wait()

    async def release(self) -> None:
        await self.config.close()
        await self._filled()

    def paging_missing(self) -> str | None:
        return None

    async def list_page(
        self, app: str, user: str, limit: int, cursor: Any
    ) -> tuple[list[Session], Any]:
        page = await self.sqlspec.list_sessions(
            app_name=app, user_id=user, limit=limit, cursor=cursor
        )
        return page.sessions, page.next_cursor


class SQLSpecSyncStore(Impl):
    """The sync store, called directly from a plain thread (no event loop)."""

    key = "sqlspec-sync-store"
    label = "sqlspec sync · store"
    family = "sqlspec"
    is_async = False
    #: What the operations call: the store here, the sync service in the subclass.
    api: PsycopgSyncADKStore | SyncSQLSpecSessionService

    async def open(self) -> None:
        self.config = PsycopgSyncConfig(
            {"conninfo": self.dsn, "min_size": 1, "max_size": self.pool_size}
        )
        self.store = PsycopgSyncADKStore(self.config)
        await self._filled()
        await asyncio.to_thread(self.store.create_tables)
        self.api = self.store

    async def _filled(self) -> None:
        # As SQLSpecAsyncService._filled.
        await asyncio.to_thread(lambda: self.config.provide_pool().wait())

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)

    async def grow(self) -> None:
        def grow() -> None:
            pool = self.config.provide_pool()
            pool.resize(min_size=self.pool_size, max_size=self.pool_size)
            pool.wait()

        await asyncio.to_thread(grow)

    async def release(self) -> None:
        await asyncio.to_thread(self.config.close)
        await self._filled()

    def create_session(
        self, app: str, user: str, session_id: str, state: dict[str, Any] | None
    ) -> Session:
        return self.api.create_session(
            app_name=app, user_id=user, session_id=session_id, state=state
        )

    def append_event(self, session: Session, event: Event) -> Any:
        # The store's own contract: the event carries no temp: keys (ours never do).
        return self.api.append_event(session, event)

    def get_session(
        self, app: str, user: str, session_id: str, recent: int | None
    ) -> Session | None:
        return self.api.get_session(
            app_name=app, user_id=user, session_id=session_id, config=_config(recent)
        )

    def list_sessions(self, app: str, user: str) -> list[Session]:
        return self.api.list_sessions(app_name=app, user_id=user).sessions

    def paging_missing(self) -> str | None:
        return None

    def list_page(self, app: str, user: str, limit: int, cursor: Any) -> tuple[list[Session], Any]:
        page = self.api.list_sessions(app_name=app, user_id=user, limit=limit, cursor=cursor)
        return page.sessions, page.next_cursor


class SQLSpecSyncService(SQLSpecSyncStore):
    """The service over the sync store, called from a plain thread (no event loop)."""

    key = "sqlspec-sync-service"
    label = "sqlspec sync · service (thread)"

    async def open(self) -> None:
        await super().open()
        # The constructor builds the sync service for a sync store (and is typed so).
        self.service: SyncSQLSpecSessionService = SQLSpecSessionService(self.store)
        self.api = self.service

    def loop_append(self) -> Callable[[Session, Event], Awaitable[Any]]:
        # Called inside a running loop, the sync service returns awaitables (its
        # executor's futures), which its Event-returning signature does not say.
        return cast("Callable[[Session, Event], Awaitable[Any]]", self.service.append_event)


def adk_unavailable(driver: str) -> str | None:
    """Why ADK's DatabaseSessionService cannot run with ``driver``, or ``None``."""
    for module in ("sqlalchemy", "greenlet", driver):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -r benchmarks/requirements.txt)"
    return None


class ADKDatabase(_AsyncService):
    family = "adk"
    driver: ClassVar[str]

    async def open(self) -> None:
        from google.adk.sessions.database_session_service import DatabaseSessionService

        # ADK's defaults (pool_pre_ping included), with a pool as large as the others'.
        self.adk = DatabaseSessionService(
            sqlalchemy_url(self.dsn, self.driver), pool_size=self.pool_size, max_overflow=0
        )
        await self.adk.prepare_tables()
        self.service = self.adk

    async def close(self) -> None:
        await self.adk.close()

    async def release(self) -> None:
        await self.adk.db_engine.dispose()  # the engine reconnects on demand

    def paging_missing(self) -> str | None:
        return "ADK's DatabaseSessionService has no paging"


class ADKAsyncpg(ADKDatabase):
    key = "adk-asyncpg"
    label = "ADK DatabaseSessionService · asyncpg"
    driver = "asyncpg"


class ADKPsycopg(ADKDatabase):
    key = "adk-psycopg"
    label = "ADK DatabaseSessionService · psycopg"
    driver = "psycopg"


# --- the raw floor -------------------------------------------------------------------


def _new_raw_session(
    *, app: str, user: str, session_id: str, state: dict[str, Any] | None, revision: int, now: float
) -> Session:
    session = Session(
        id=session_id, app_name=app, user_id=user, state=dict(state or {}), last_update_time=now
    )
    session._storage_update_marker = str(revision)
    return session


def _create_params(
    app: str, user: str, session_id: str, state: dict[str, Any] | None
) -> dict[str, Any]:
    session_delta, app_delta, user_delta = split_delta(state)
    return {
        "app_name": app,
        "user_id": user,
        "session_id": session_id,
        "session_delta": session_delta,
        "app_delta": app_delta,
        "user_delta": user_delta,
        "now": datetime.now(timezone.utc),
    }


def _after_append(session: Session, event: Event, params: dict[str, Any], row: Any) -> Event:
    if row is None:
        # A correct store must tell a stale writer from a missing session; that second
        # query only runs on this error path, so the floor does not pay for it.
        raise StaleSessionError("stale session or no such session (raw floor)")
    session._storage_update_marker = str(row[0])
    session.last_update_time = params["update_time"].timestamp()
    session.events.append(event)
    return event


def _get_params(app: str, user: str, session_id: str, recent: int | None) -> dict[str, Any]:
    return {"app_name": app, "user_id": user, "session_id": session_id, "limit": recent}


def _page_params(app: str, user: str, limit: int, cursor: Any) -> dict[str, Any]:
    after_time, after_id = cursor if cursor is not None else (None, None)
    return {
        "app_name": app,
        "user_id": user,
        "limit": limit,
        "after_time": after_time,
        "after_id": after_id,
    }


class RawAsync(Impl):
    key = "raw-async"
    label = "raw psycopg · async (floor)"
    family = "raw"
    is_async = True

    def _new_pool(self) -> AsyncConnectionPool[AsyncConnection[TupleRow]]:
        return AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True},
            open=False,
        )

    async def open(self) -> None:
        self.pool = self._new_pool()
        await self.pool.open(wait=True)  # as SQLSpecAsyncService._filled
        async with self.pool.connection() as conn:
            cur = await conn.execute(SCHEMA_QUERY, (SCHEMA_TABLES,))
            self.sql = RawStatements(RawSchema.from_rows(await cur.fetchall()))

    async def close(self) -> None:
        await self.pool.close()

    async def grow(self) -> None:
        await self.pool.resize(min_size=self.pool_size, max_size=self.pool_size)
        await self.pool.wait()

    async def release(self) -> None:
        await self.pool.close()
        self.pool = self._new_pool()
        await self.pool.open(wait=True)

    async def _one(self, query: bytes, params: dict[str, Any]) -> Any:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    async def create_session(
        self, app: str, user: str, session_id: str, state: dict[str, Any] | None
    ) -> Session:
        params = _create_params(app, user, session_id, state)
        row = await self._one(self.sql.create, params)
        return _new_raw_session(
            app=app,
            user=user,
            session_id=session_id,
            state=state,
            revision=row[0],
            now=params["now"].timestamp(),
        )

    async def append_event(self, session: Session, event: Event) -> Event:
        revision = int(session._storage_update_marker or 0)
        params = self.sql.append_params(session, event, revision)
        return _after_append(session, event, params, await self._one(self.sql.append, params))

    async def get_row(self, app: str, user: str, session_id: str, recent: int | None) -> Any:
        return await self._one(self.sql.get, _get_params(app, user, session_id, recent))

    async def get_session(
        self, app: str, user: str, session_id: str, recent: int | None
    ) -> Session | None:
        row = await self.get_row(app, user, session_id, recent)
        return self.sql.session_from_row(app, user, session_id, row)

    async def list_sessions(self, app: str, user: str) -> list[Session]:
        row = await self._one(self.sql.list_all, {"app_name": app, "user_id": user})
        return self.sql.sessions_from_row(row)[0]

    def paging_missing(self) -> str | None:
        return None

    async def list_page(
        self, app: str, user: str, limit: int, cursor: Any
    ) -> tuple[list[Session], Any]:
        row = await self._one(self.sql.list_page, _page_params(app, user, limit, cursor))
        return self.sql.sessions_from_row(row)

    async def import_events(
        self, app: str, user: str, session_id: str, events: Iterable[Event]
    ) -> int:
        """The floor of a bulk import: COPY straight into the events table, then one
        statement for the merged state deltas, in one transaction."""
        delta: dict[str, Any] = {}
        count = 0
        last_timestamp = 0.0
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            async with cur.copy(self.sql.copy_events) as copy:
                for event in events:
                    await copy.write_row(self.sql.copy_row(app, user, session_id, event))
                    if event.actions and event.actions.state_delta:
                        delta.update(event.actions.state_delta)
                    last_timestamp = event.timestamp
                    count += 1
            session_delta, app_delta, user_delta = split_delta(delta)
            await cur.execute(
                self.sql.bulk_state,
                {
                    "app_name": app,
                    "user_id": user,
                    "session_id": session_id,
                    "session_delta": session_delta,
                    "app_delta": app_delta,
                    "user_delta": user_delta,
                    "update_time": datetime.fromtimestamp(last_timestamp, tz=timezone.utc),
                },
            )
            if await cur.fetchone() is None:
                raise LookupError(f"no session {session_id}")
        return count


class RawSync(Impl):
    key = "raw-sync"
    label = "raw psycopg · sync (floor)"
    family = "raw"
    is_async = False

    def _new_pool(self) -> ConnectionPool[Connection[TupleRow]]:
        return ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True},
            open=False,
        )

    async def open(self) -> None:
        def open_pool() -> None:
            self.pool = self._new_pool()
            self.pool.open(wait=True)  # as SQLSpecAsyncService._filled
            with self.pool.connection() as conn:
                rows = conn.execute(SCHEMA_QUERY, (SCHEMA_TABLES,)).fetchall()
            self.sql = RawStatements(RawSchema.from_rows(rows))

        await asyncio.to_thread(open_pool)

    async def close(self) -> None:
        await asyncio.to_thread(self.pool.close)

    async def release(self) -> None:
        def reopen() -> None:
            self.pool.close()
            self.pool = self._new_pool()
            self.pool.open(wait=True)

        await asyncio.to_thread(reopen)

    def _one(self, query: bytes, params: dict[str, Any]) -> Any:
        with self.pool.connection() as conn:
            return conn.execute(query, params).fetchone()

    def create_session(
        self, app: str, user: str, session_id: str, state: dict[str, Any] | None
    ) -> Session:
        params = _create_params(app, user, session_id, state)
        row = self._one(self.sql.create, params)
        return _new_raw_session(
            app=app,
            user=user,
            session_id=session_id,
            state=state,
            revision=row[0],
            now=params["now"].timestamp(),
        )

    def append_event(self, session: Session, event: Event) -> Event:
        revision = int(session._storage_update_marker or 0)
        params = self.sql.append_params(session, event, revision)
        return _after_append(session, event, params, self._one(self.sql.append, params))

    def get_session(
        self, app: str, user: str, session_id: str, recent: int | None
    ) -> Session | None:
        row = self._one(self.sql.get, _get_params(app, user, session_id, recent))
        return self.sql.session_from_row(app, user, session_id, row)

    def list_sessions(self, app: str, user: str) -> list[Session]:
        row = self._one(self.sql.list_all, {"app_name": app, "user_id": user})
        return self.sql.sessions_from_row(row)[0]

    def paging_missing(self) -> str | None:
        return None

    def list_page(self, app: str, user: str, limit: int, cursor: Any) -> tuple[list[Session], Any]:
        row = self._one(self.sql.list_page, _page_params(app, user, limit, cursor))
        return self.sql.sessions_from_row(row)


#: Every implementation, in the order of the report.
IMPLEMENTATIONS: tuple[type[Impl], ...] = (
    SQLSpecAsyncService,
    SQLSpecSyncStore,
    SQLSpecSyncService,
    ADKAsyncpg,
    ADKPsycopg,
    RawAsync,
    RawSync,
)


def build_impls(
    dsn: str, pool_size: int, selected: set[str] | None
) -> tuple[list[Impl], list[str]]:
    """The implementations to run, and a note for each one left out."""
    impls: list[Impl] = []
    notes: list[str] = []
    for cls in IMPLEMENTATIONS:
        if selected and cls.key not in selected:
            continue
        if issubclass(cls, ADKDatabase):
            reason = adk_unavailable(cls.driver)
            if reason:
                notes.append(f"{cls.label} skipped: {reason}")
                continue
        impls.append(cls(dsn, pool_size))
    return impls, notes
