"""Pooled psycopg configs: where connections come from, for users and for stores.

A config validates its ``connection_config`` at construction, opens its pool on
first use (so "pool is not open" never reaches a caller), and closes it on
:meth:`close`; a later use opens a fresh pool. It never lends a connection the
server has already closed, and bounds a store's wait for an answer by
``command_timeout``.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import select
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import (
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
    suppress,
)
from time import monotonic
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncServerCursor, Connection, ServerCursor
from psycopg.pq import TransactionStatus
from psycopg.rows import AsyncRowFactory, RowFactory, TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout, TooManyRequests

from sqlspec.adapters.psycopg._embedded import embedded_conninfo
from sqlspec.adapters.psycopg._settings import PoolSettings, masked_conninfo
from sqlspec.exceptions import DatabaseUnavailableError

__all__ = ["PsycopgAsyncConfig", "PsycopgSyncConfig"]

#: Seconds a direct connection that diagnoses a pool failure may take.
PROBE_TIMEOUT = 2


def _closed_by_server(conn: Connection[Any] | AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection is gone, found without a round trip.

    An idle connection receives nothing unless the server is saying goodbye
    (``pg_terminate_backend``, a shutdown, an idle timeout): input waiting on its
    socket means a statement sent on it would fail, maybe after being applied.
    """
    if conn.closed:
        return True
    fd = conn.pgconn.socket
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


class _Deadline:
    """Shuts a connection's socket down when its statement outlives ``command_timeout``.

    Cancelling the waiting task would not do: psycopg then asks the server to
    cancel and waits for it, which on a silent network path never answers. A
    socket shut down fails libpq's wait at once, and the pool drops the connection.
    """

    def __init__(self, conn: Connection[Any] | AsyncConnection[Any], timeout: float) -> None:
        self._fd = conn.pgconn.socket
        self._timeout = timeout
        self._lock = threading.Lock()
        self._done = False
        self.expired = False

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sock = socket.socket(fileno=self._fd)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already disconnected: libpq fails by itself
            finally:
                sock.detach()

    @contextmanager
    def watching(
        self, schedule: Callable[[float, Callable[[], None]], Callable[[], None]]
    ) -> Iterator[None]:
        """Run the block under the deadline; ``schedule(delay, fn)`` returns a canceller."""
        cancel = schedule(self._timeout, self.expire)
        try:
            yield
        except psycopg.OperationalError as exc:
            if not self.expired:
                raise
            raise DatabaseUnavailableError(
                f"no answer from the server within command_timeout={self._timeout}s; the "
                "call may or may not have been applied, and its connection was closed"
            ) from exc
        finally:
            cancel()
            with self._lock:
                self._done = True


def _call_later(delay: float, fn: Callable[[], None]) -> Callable[[], None]:
    return asyncio.get_running_loop().call_later(delay, fn).cancel


class _Watchdog:
    """One thread that runs every sync deadline when it falls due.

    A timer thread per statement would cost more (about 0.1 ms to start) than
    many statements take.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, fn: Callable[[], None]) -> Callable[[], None]:
        """Run ``fn`` in ``delay`` seconds; return a function that cancels it."""
        with self._cond:
            key = next(self._keys)
            heapq.heappush(self._due, (monotonic() + delay, key, fn))
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(
                    target=self._run, name="sqlspec-deadlines", daemon=True
                )
                self._thread.start()
            elif self._due[0][1] == key:
                self._cond.notify()
        return functools.partial(self._cancel, key)

    def _cancel(self, key: int) -> None:
        with self._cond:
            self._cancelled.add(key)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._due and self._due[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._due)[1])
                if not self._due:
                    self._cond.wait()
                    continue
                wait = self._due[0][0] - monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._due)[2]()


_timer = _Watchdog().schedule


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


def _hold_outside_transactions(
    withhold: bool, conn: Connection[Any] | AsyncConnection[Any]
) -> bool:
    # A named cursor declared outside a transaction (autocommit, idle) would vanish
    # at once; declared WITH HOLD it lives until closed, as the seed's sample expects.
    return withhold or (conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE)


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
            withhold=_hold_outside_transactions(withhold, connection),
        )


class _ServerCursor(ServerCursor[Any]):
    """A server-side cursor that also works on a connection in autocommit."""

    def __init__(
        self,
        connection: Connection[Any],
        name: str,
        *,
        row_factory: RowFactory[Any],
        scrollable: bool | None = None,
        withhold: bool = False,
    ) -> None:
        super().__init__(
            connection,
            name,
            row_factory=row_factory,
            scrollable=scrollable,
            withhold=_hold_outside_transactions(withhold, connection),
        )


class _ConfigBase:
    """What the two configs share: the checked settings and the resolved conninfo."""

    def __init__(self, connection_config: Mapping[str, Any] | None = None) -> None:
        self.connection_config: dict[str, Any] = dict(connection_config or {})
        self.settings = PoolSettings.from_mapping(self.connection_config)
        self._connect_errors_seen = 0
        self._lent = 0
        self._lent_lock = threading.Lock()

    def _count_lent(self, change: int) -> None:
        with self._lent_lock:
            self._lent += change

    def _server_suspect(self, stats: Mapping[str, int]) -> bool:
        """Whether a pool that gave no connection in time may have lost its server.

        It may if fewer than ``max_size`` connections are lent out (the others
        could not be opened), or if it failed to connect since the last time this
        was asked; then a direct connection finds out why.
        """
        errors = stats.get("connections_errors", 0)
        new_errors, self._connect_errors_seen = errors > self._connect_errors_seen, errors
        return new_errors or self._lent < self.settings.max_size

    def resolve_conninfo(self) -> str:
        """The conninfo to connect with: the configured one, or the embedded server's."""
        if self.settings.names_a_server:
            return self.settings.conninfo
        from psycopg.conninfo import make_conninfo

        return make_conninfo(embedded_conninfo(), **self.settings.libpq)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(conninfo={masked_conninfo(self.settings.conninfo)!r}, "
            f"pool={dict(self.settings.pool)!r})"
        )


class PsycopgAsyncConfig(_ConfigBase):
    """Async psycopg config backed by an :class:`psycopg_pool.AsyncConnectionPool`.

    ``connection_config`` takes the keys the seed documents: ``conninfo`` or libpq
    parameters (``host``, ``port``, ``user``, ``password``, ``dbname``, ``sslmode``,
    ``application_name``, ``connect_timeout``, ...), pool settings (``min_size``,
    ``max_size``, ``timeout``, ``max_waiting``, ``max_lifetime``, ``max_idle``,
    ``reconnect_timeout``, ``num_workers``) and ``autocommit`` (default ``True``).
    """

    is_async = True

    def __init__(self, connection_config: Mapping[str, Any] | None = None) -> None:
        super().__init__(connection_config)
        self._pool: AsyncConnectionPool[AsyncConnection[TupleRow]] | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._closer: asyncio.Task[None] | None = None
        self._open_lock = threading.Lock()

    @staticmethod
    async def _configure(conn: AsyncConnection[TupleRow]) -> None:
        conn.server_cursor_factory = _AsyncServerCursor

    async def _reset(self, conn: AsyncConnection[TupleRow]) -> None:
        # A borrower may have switched autocommit; the next one gets the configured mode.
        if conn.autocommit is not self.settings.autocommit:
            await conn.set_autocommit(self.settings.autocommit)

    async def provide_pool(self) -> AsyncConnectionPool[AsyncConnection[TupleRow]]:
        """Return the open pool, opening it on first use (or in a new event loop)."""
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is not None and self._pool_loop is loop:
            return pool
        # An async pool is bound to the loop that opened it; a pool left by an
        # earlier loop (say, a previous asyncio.run()) is replaced, not reused.
        conninfo = await asyncio.to_thread(self.resolve_conninfo)
        # One direct connection first: a wrong password or an unreachable server
        # fails now, with its cause, not after the pool's timeout.
        cause = await self._connect_error(conninfo)
        if cause is not None:
            raise self.settings.unreachable(conninfo, cause) from cause
        new_pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
            conninfo,
            kwargs=self.settings.connect_kwargs,
            open=False,
            configure=self._configure,
            reset=self._reset,
            **self.settings.pool,
        )
        await new_pool.open()
        with self._open_lock:
            if self._pool is None or self._pool_loop is not loop:
                self._pool, self._pool_loop = new_pool, loop
                self._closer = loop.create_task(
                    _close_at_loop_shutdown(new_pool), name="sqlspec: close the pool at loop end"
                )
                return new_pool
            winner = self._pool
        await new_pool.close()
        return winner

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
            raise await self._pool_error(pool) from exc
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
            if not _closed_by_server(conn):
                return conn
            await conn.close()
            await pool.putconn(conn)
        return await pool.getconn(max(deadline - monotonic(), 0))

    async def _pool_error(self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]) -> Exception:
        """The typed error for no connection in time, with the server's refusal if any."""
        stats = pool.get_stats()
        conninfo = str(pool.conninfo)
        if self._server_suspect(stats):
            cause = await self._connect_error(conninfo)
            if cause is not None:
                return self.settings.unreachable(conninfo, cause)
        return self.settings.pool_error(stats, conninfo, self._lent)

    def command_deadline(self, conn: AsyncConnection[TupleRow]) -> AbstractContextManager[None]:
        """Bound the block's wait for the server by ``command_timeout``, if set."""
        if self.settings.command_timeout is None:
            return nullcontext()
        return _Deadline(conn, self.settings.command_timeout).watching(_call_later)

    async def _connect_error(self, conninfo: str) -> psycopg.OperationalError | None:
        """Why a direct connection fails, or ``None`` if it succeeds."""
        try:
            conn = await AsyncConnection.connect(
                conninfo, connect_timeout=PROBE_TIMEOUT, **self.settings.connect_kwargs
            )
        except psycopg.OperationalError as exc:
            return exc
        await conn.close()
        return None

    async def create_connection(self) -> AsyncConnection[TupleRow]:
        """Open a standalone connection, outside the pool; the caller closes it."""
        conninfo = await asyncio.to_thread(self.resolve_conninfo)
        conn = await AsyncConnection.connect(conninfo, **self.settings.connect_kwargs)
        await self._configure(conn)
        return conn

    async def close(self) -> None:
        """Close the pool and its connections; a later use opens a new pool."""
        with self._open_lock:
            pool, loop, closer = self._pool, self._pool_loop, self._closer
            self._pool = self._pool_loop = self._closer = None
        # A pool left by a loop that has since closed cannot run its shutdown;
        # its connections close when it is collected.
        if pool is not None and loop is asyncio.get_running_loop():
            await pool.close()
            if closer is not None:
                closer.cancel()
                with suppress(asyncio.CancelledError):
                    await closer

    async def __aenter__(self) -> PsycopgAsyncConfig:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class PsycopgSyncConfig(_ConfigBase):
    """Sync psycopg config backed by a :class:`psycopg_pool.ConnectionPool`.

    Takes the same ``connection_config`` keys as :class:`PsycopgAsyncConfig`.
    """

    is_async = False

    def __init__(self, connection_config: Mapping[str, Any] | None = None) -> None:
        super().__init__(connection_config)
        self._pool: ConnectionPool[Connection[TupleRow]] | None = None
        self._open_lock = threading.Lock()

    @staticmethod
    def _configure(conn: Connection[TupleRow]) -> None:
        conn.server_cursor_factory = _ServerCursor

    def _reset(self, conn: Connection[TupleRow]) -> None:
        if conn.autocommit is not self.settings.autocommit:
            conn.set_autocommit(self.settings.autocommit)

    def provide_pool(self) -> ConnectionPool[Connection[TupleRow]]:
        """Return the open pool, opening it on first use."""
        pool = self._pool
        if pool is not None:
            return pool
        with self._open_lock:
            if self._pool is None:
                conninfo = self.resolve_conninfo()
                cause = self._connect_error(conninfo)
                if cause is not None:
                    raise self.settings.unreachable(conninfo, cause) from cause
                new_pool: ConnectionPool[Connection[TupleRow]] = ConnectionPool(
                    conninfo,
                    kwargs=self.settings.connect_kwargs,
                    open=False,
                    configure=self._configure,
                    reset=self._reset,
                    **self.settings.pool,
                )
                new_pool.open()
                self._pool = new_pool
            return self._pool

    @contextmanager
    def provide_connection(self) -> Iterator[Connection[TupleRow]]:
        """Lend a pooled connection; it goes back to the pool when the block ends.

        Behaves as :meth:`PsycopgAsyncConfig.provide_connection`.
        """
        pool = self.provide_pool()
        try:
            conn = self._lend(pool)
        except (PoolTimeout, TooManyRequests) as exc:
            raise self._pool_error(pool) from exc
        self._count_lent(1)
        try:
            with conn:
                yield conn
        finally:
            self._count_lent(-1)
            pool.putconn(conn)

    def _lend(self, pool: ConnectionPool[Connection[TupleRow]]) -> Connection[TupleRow]:
        """A pooled connection the server has not closed; closed ones are dropped."""
        deadline = monotonic() + pool.timeout
        for _ in range(self.settings.max_size):
            conn = pool.getconn(max(deadline - monotonic(), 0))
            if not _closed_by_server(conn):
                return conn
            conn.close()
            pool.putconn(conn)
        return pool.getconn(max(deadline - monotonic(), 0))

    def _pool_error(self, pool: ConnectionPool[Connection[TupleRow]]) -> Exception:
        """The typed error for no connection in time, with the server's refusal if any."""
        stats = pool.get_stats()
        conninfo = str(pool.conninfo)
        if self._server_suspect(stats):
            cause = self._connect_error(conninfo)
            if cause is not None:
                return self.settings.unreachable(conninfo, cause)
        return self.settings.pool_error(stats, conninfo, self._lent)

    def command_deadline(self, conn: Connection[TupleRow]) -> AbstractContextManager[None]:
        """Bound the block's wait for the server by ``command_timeout``, if set."""
        if self.settings.command_timeout is None:
            return nullcontext()
        return _Deadline(conn, self.settings.command_timeout).watching(_timer)

    def _connect_error(self, conninfo: str) -> psycopg.OperationalError | None:
        """Why a direct connection fails, or ``None`` if it succeeds."""
        try:
            conn = Connection.connect(
                conninfo, connect_timeout=PROBE_TIMEOUT, **self.settings.connect_kwargs
            )
        except psycopg.OperationalError as exc:
            return exc
        conn.close()
        return None

    def create_connection(self) -> Connection[TupleRow]:
        """Open a standalone connection, outside the pool; the caller closes it."""
        conn = Connection.connect(self.resolve_conninfo(), **self.settings.connect_kwargs)
        self._configure(conn)
        return conn

    def close(self) -> None:
        """Close the pool and its connections; a later use opens a new pool."""
        with self._open_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> PsycopgSyncConfig:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
