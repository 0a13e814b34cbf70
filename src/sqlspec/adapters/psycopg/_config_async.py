"""The pooled psycopg config: where connections come from, for users and for stores.

The async config is the source: ``tools/async_to_sync.py`` generates the sync
one from it.
"""

from __future__ import annotations

import asyncio
import threading
from asyncio import Lock  # SYNC: asyncio -> threading
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext, suppress
from time import monotonic
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncServerCursor
from psycopg.rows import AsyncRowFactory, TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

from sqlspec.adapters.psycopg._config_base import (
    BACKEND_PID,
    ConfigBase,
    closed_by_server,
    hold_outside_transactions,
    probe_timeout,
)
from sqlspec.adapters.psycopg._deadline import Deadline, call_later

__all__ = ["PsycopgAsyncConfig"]


class _AsyncServerCursor(AsyncServerCursor[Any]):
    """A server-side cursor that also works on a connection in autocommit."""

    def __init__(
        self,
        connection: AsyncConnection[Any],
        name: str,
        *,
        row_factory: AsyncRowFactory[Any],
        scrollable: bool | None = None,
        withhold: bool = False,
    ) -> None:
        super().__init__(
            connection,
            name,
            row_factory=row_factory,
            scrollable=scrollable,
            withhold=hold_outside_transactions(withhold, connection),
        )


class PsycopgAsyncConfig(ConfigBase):
    """A psycopg config backed by a :class:`psycopg_pool.AsyncConnectionPool`.

    ``connection_config`` takes ``conninfo`` or libpq parameters (``host``,
    ``port``, ``user``, ``password``, ``dbname``, ``sslmode``, ``application_name``,
    ``connect_timeout``, ...), pool settings (``min_size``, ``max_size``,
    ``timeout``, ``max_waiting``, ``max_lifetime``, ``max_idle``,
    ``reconnect_timeout``, ``num_workers``), ``autocommit`` (default ``True``),
    ``prepare_threshold``, ``command_timeout`` and ``pooler`` (``"transaction"`` or
    ``"session"``: the pool mode of a PgBouncer in front of the server).
    """

    is_async = True  # SYNC: True -> False

    def __init__(self, connection_config: Mapping[str, Any] | None = None) -> None:
        super().__init__(connection_config)
        self._pool: AsyncConnectionPool[AsyncConnection[TupleRow]] | None = None
        self._open_lock = threading.Lock()
        self._opening_lock = Lock()
        if True:  # ASYNC
            self._pool_loop: asyncio.AbstractEventLoop | None = None
            self._closer: asyncio.Task[None] | None = None
            self._opening_loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    async def _configure(conn: AsyncConnection[TupleRow]) -> None:
        conn.server_cursor_factory = _AsyncServerCursor

    async def _reset(self, conn: AsyncConnection[TupleRow]) -> None:
        # A borrower may have switched autocommit; the next one gets the configured mode.
        if conn.autocommit is not self.settings.autocommit:
            await conn.set_autocommit(self.settings.autocommit)

    def _open_pool(self) -> AsyncConnectionPool[AsyncConnection[TupleRow]] | None:
        """The pool opened before, if this caller may use it."""
        if True:  # ASYNC
            # An async pool is bound to the loop that opened it; a pool left by an
            # earlier loop (say, a previous asyncio.run()) is replaced, not reused.
            if self._pool_loop is not asyncio.get_running_loop():
                return None
        return self._pool

    def _opening(self) -> Lock:
        """What first callers queue on while one of them opens the pool."""
        if True:  # ASYNC
            # An asyncio lock belongs to one event loop: each loop gets its own.
            loop = asyncio.get_running_loop()
            with self._open_lock:
                if self._opening_loop is not loop:
                    self._opening_loop, self._opening_lock = loop, Lock()
        return self._opening_lock

    async def provide_pool(self) -> AsyncConnectionPool[AsyncConnection[TupleRow]]:
        """Return the open pool, opening it on first use; concurrent first callers share it."""
        pool = self._open_pool()
        if pool is not None:
            return pool
        async with self._opening():
            pool = self._open_pool()
            if pool is not None:  # opened while this caller waited
                return pool
            if True:  # ASYNC
                conninfo = await asyncio.to_thread(self.resolve_conninfo)
            else:
                conninfo = self.resolve_conninfo()
            # One direct connection first: a wrong password or an unreachable server
            # fails now, with its cause, not after the pool's timeout.
            cause = await self._connect_error(conninfo)
            if cause is not None:
                raise self.settings.unreachable(conninfo, cause) from cause
            new_pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
                conninfo,
                kwargs=self.connect_kwargs,
                open=False,
                configure=self._configure,
                reset=self._reset,
                **self.settings.pool,
            )
            await new_pool.open()
            with self._open_lock:
                self._install(new_pool)
            return new_pool

    def _install(self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]) -> None:
        """Make ``pool`` the config's pool (under the open lock)."""
        self._pool = pool
        if True:  # ASYNC
            loop = asyncio.get_running_loop()
            self._pool_loop = loop
            self._closer = loop.create_task(
                _close_at_loop_shutdown(pool), name="sqlspec: close the pool at loop end"
            )

    @asynccontextmanager
    async def provide_connection(self) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """Lend a pooled connection; it goes back to the pool when the block ends.

        On leaving the block an open transaction is committed, or rolled back if
        the block raised (``psycopg_pool``'s connection context behaviour). No
        connection in time raises :class:`~sqlspec.PoolExhaustedError`, or
        :class:`~sqlspec.DatabaseUnavailableError` when the server is unreachable.
        """
        pool = await self.provide_pool()
        try:
            conn = await self._lend(pool)
        except (PoolTimeout, TooManyRequests) as exc:
            raise await self._diagnose(pool) from exc
        self._count_lent(1)
        try:
            async with conn:
                yield conn
        finally:
            self._count_lent(-1)
            await pool.putconn(conn)

    async def _lend(
        self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    ) -> AsyncConnection[TupleRow]:
        """A pooled connection the server has not closed; closed ones are dropped."""
        deadline = monotonic() + pool.timeout
        for _ in range(self.settings.max_size):
            conn = await pool.getconn(max(deadline - monotonic(), 0))
            if not closed_by_server(conn):
                conn.prepare_threshold = self.prepare_threshold
                return conn
            await conn.close()
            await pool.putconn(conn)
        conn = await pool.getconn(max(deadline - monotonic(), 0))
        conn.prepare_threshold = self.prepare_threshold
        return conn

    async def _diagnose(self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]) -> Exception:
        """The typed error for no connection in time, with the server's refusal if any."""
        stats = pool.get_stats()
        conninfo = str(pool.conninfo)
        if self._server_suspect(stats):
            cause = await self._connect_error(conninfo)
            if cause is not None:
                return self.settings.unreachable(conninfo, cause)
        return self._pool_error(stats, conninfo)

    def command_deadline(self, conn: AsyncConnection[TupleRow]) -> AbstractContextManager[None]:
        """Bound the block's wait for the server by ``command_timeout``, if set."""
        if self.settings.command_timeout is None:
            return nullcontext()
        return Deadline(conn, self.settings.command_timeout).watching(call_later)

    async def _connect_error(self, conninfo: str) -> psycopg.OperationalError | None:
        """Why a direct connection fails, or ``None`` if it succeeds (and looks for a pooler)."""
        try:
            conn = await AsyncConnection.connect(
                conninfo, **probe_timeout(conninfo), **self.connect_kwargs
            )
            async with conn:
                await self._detect_pooler(conn)
        except psycopg.OperationalError as exc:
            return exc
        return None

    async def _detect_pooler(self, conn: AsyncConnection[TupleRow]) -> None:
        """Stop preparing statements if ``conn`` reaches the server through a pooler."""
        if self.detects_pooler:
            cur = await conn.execute(BACKEND_PID, prepare=False)
            self._pooler_seen(conn.info.backend_pid, await cur.fetchone())
            if not conn.autocommit:
                await conn.rollback()  # the caller gets the connection as it opened

    async def create_connection(self) -> AsyncConnection[TupleRow]:
        """Open a standalone connection, outside the pool; the caller closes it."""
        if True:  # ASYNC
            conninfo = await asyncio.to_thread(self.resolve_conninfo)
        else:
            conninfo = self.resolve_conninfo()
        conn = await AsyncConnection.connect(conninfo, **self.connect_kwargs)
        await self._configure(conn)
        await self._detect_pooler(conn)
        conn.prepare_threshold = self.prepare_threshold
        return conn

    async def close(self) -> None:
        """Close the pool and its connections; a later use opens a new pool."""
        with self._open_lock:
            pool, self._pool = self._pool, None
            if True:  # ASYNC
                closer, self._closer = self._closer, None
                if self._pool_loop is not asyncio.get_running_loop():
                    # A pool left by a loop that has since closed cannot run its
                    # shutdown; its connections close when it is collected.
                    pool = closer = None
                self._pool_loop = None
        if pool is not None:
            await pool.close()
        if True:  # ASYNC
            await _stop(closer)

    async def __aenter__(self) -> PsycopgAsyncConfig:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


if True:  # ASYNC

    async def _close_at_loop_shutdown(pool: AsyncConnectionPool[Any]) -> None:
        """Wait until cancelled, then close ``pool``: an open pool must not outlive its loop.

        ``asyncio.run()`` cancels every task on its way out. A psycopg_pool worker
        cancelled while it connects takes that for a failed attempt and waits for
        more work, so the loop would never finish; closing the pool stops it.
        """
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await pool.close()

    async def _stop(task: asyncio.Task[None] | None) -> None:
        """Cancel ``task`` and wait for it to end."""
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
