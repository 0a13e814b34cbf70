"""The pooled psycopg config: where connections come from, for users and for stores.

The async config is the source: ``tools/async_to_sync.py`` generates the sync
one from it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from asyncio import Lock  # SYNC: asyncio -> threading
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext, suppress
from time import monotonic
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncServerCursor
from psycopg.rows import AsyncRowFactory, TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from sqlspec.adapters.psycopg._config_base import (
    BACKEND_PID,
    PROBE_TIMEOUT,
    STALL_CHECK,
    ConfigBase,
    check_replica,
    closed_by_server,
    hold_outside_transactions,
    probe_timeout,
)
from sqlspec.adapters.psycopg._deadline import Deadline, call_later
from sqlspec.adapters.psycopg._settings import masked_conninfo
from sqlspec.exceptions import DatabaseUnavailableError

__all__ = ["PsycopgAsyncConfig"]

logger = logging.getLogger("sqlspec.pool")


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

    ``replica_config``, shaped like ``connection_config``, names a read replica
    (a streaming standby) with a pool of its own, opened on first use. It serves
    the reads that tolerate lag: session listings, exports, memory search;
    never ``get_session`` nor a write. Without it, everything goes to
    ``connection_config``'s server.
    """

    is_async = True  # SYNC: True -> False

    def __init__(
        self,
        connection_config: Mapping[str, Any] | None = None,
        *,
        replica_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(connection_config)
        #: The read replica's own config, if one is configured.
        self.replica: PsycopgAsyncConfig | None = None
        if replica_config is not None:
            self.replica = PsycopgAsyncConfig(replica_config)
            check_replica(self.replica.settings)
        self._pool: AsyncConnectionPool[AsyncConnection[TupleRow]] | None = None
        self._open_lock = threading.Lock()
        self._opening_lock = Lock()
        self._stall_checked = 0.0
        #: The pool the last stall check looked at, and how many connections it had made.
        self._stall_mark: tuple[AsyncConnectionPool[AsyncConnection[TupleRow]], int] | None = None
        if True:  # ASYNC
            self._pool_loop: asyncio.AbstractEventLoop | None = None
            self._closer: asyncio.Task[None] | None = None
            #: Closing pools replaced after a stall (kept referenced until done).
            self._retiring: set[asyncio.Task[None]] = set()
            self._opening_loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    async def _configure(conn: AsyncConnection[TupleRow]) -> None:
        conn.server_cursor_factory = _AsyncServerCursor

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
            opened = await self._open_new_pool(conninfo)
            assert opened is not None  # replacing nothing, it is always installed
            return opened

    async def _open_new_pool(
        self,
        conninfo: str,
        replacing: AsyncConnectionPool[AsyncConnection[TupleRow]] | None = None,
    ) -> AsyncConnectionPool[AsyncConnection[TupleRow]] | None:
        """Open a pool on ``conninfo`` as the config's pool; the caller holds the opening lock.

        With ``replacing``, the new pool is installed only if ``replacing`` is still
        the config's pool: one closed meanwhile (``close()`` takes no opening lock)
        is not brought back to life; the new pool is closed and ``None`` returned.
        """
        new_pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
            conninfo,
            kwargs=self.connect_kwargs,
            open=False,
            configure=self._configure,
            **self.settings.pool,
        )
        await new_pool.open()
        with self._open_lock:
            installed = replacing is None or self._pool is replacing
            if installed:
                self._install(new_pool)
        if not installed:
            await new_pool.close()
            return None
        return new_pool

    def _install(self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]) -> None:
        """Make ``pool`` the config's pool (under the open lock)."""
        self._pool = pool
        self._stall_checked = monotonic()
        if True:  # ASYNC
            loop = asyncio.get_running_loop()
            self._pool_loop = loop
            self._closer = loop.create_task(
                _close_at_loop_shutdown(pool), name="sqlspec: close the pool at loop end"
            )

    @asynccontextmanager
    async def provide_connection(
        self, *, prepare: bool = True
    ) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """Lend a pooled connection; it goes back to the pool when the block ends.

        With ``prepare`` false nothing the block runs is prepared on the server,
        whatever ``prepare_threshold`` says: statements run once (DDL, an import,
        a prune) gain nothing from it, and behind a pooler in transaction mode a
        block's statements may meet other server connections.

        On leaving the block an open transaction is committed, or rolled back if
        the block raised (``psycopg_pool``'s connection context behaviour); a
        connection whose server refused a write as read-only is closed instead. No
        connection in time raises :class:`~sqlspec.PoolExhaustedError`, or
        :class:`~sqlspec.DatabaseUnavailableError` when the server is unreachable.
        """
        conn, pool = await self._lend(await self.provide_pool())
        if not prepare:
            conn.prepare_threshold = None
        self._count_lent(1)
        try:
            async with conn:
                yield conn
        except psycopg.errors.ReadOnlySqlTransaction:
            # A read-only server (a standby, or a primary being switched over) refused
            # a write: this connection goes, so the one the pool opens instead can
            # reach the server that accepts writes (libpq's target_session_attrs).
            await conn.close()
            raise
        finally:
            self._count_lent(-1)
            await pool.putconn(conn)

    @property
    def replica_or_primary(self) -> PsycopgAsyncConfig:
        """Where a read that tolerates lag goes: the replica if configured, else here."""
        return self.replica or self

    async def _lend(
        self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    ) -> tuple[AsyncConnection[TupleRow], AsyncConnectionPool[AsyncConnection[TupleRow]]]:
        """A pooled connection the server has not closed, and the pool it came from.

        Closed ones are dropped. After ``STALL_CHECK`` seconds of waiting, a pool
        that may have stalled (:meth:`_may_stall`) is checked (:meth:`_unstalled`)
        every ``STALL_CHECK`` seconds and the wait goes on, on its replacement if it
        was replaced; a busy one is waited on for the rest of the time at once,
        back in its queue once only.
        """
        deadline = monotonic() + pool.timeout
        dropped = 0
        slicing = True
        while True:
            remaining = deadline - monotonic()
            wait = min(remaining, STALL_CHECK) if slicing else remaining
            try:
                conn = await pool.getconn(max(wait, 0))
            except PoolClosed:
                current = self._open_pool()
                if current is None or current is pool:
                    raise
                pool = current  # replaced while this caller waited on it
                continue
            except PoolTimeout as exc:
                if remaining > wait:
                    if self._may_stall(pool):
                        pool = await self._unstalled(pool)
                    else:
                        slicing = False
                    continue
                raise await self._diagnose(pool) from exc
            except TooManyRequests as exc:
                raise await self._diagnose(pool) from exc
            if dropped == self.settings.max_size or not closed_by_server(conn):
                conn.prepare_threshold = self.prepare_threshold
                # A borrower may have switched autocommit; the next one gets the
                # configured mode. Done here, not by the pool's reset hook: with one,
                # psycopg_pool hands every returned connection to a worker task, a
                # cost on every call and a connection the next caller waits for.
                if not conn.closed and conn.autocommit is not self.settings.autocommit:
                    await conn.set_autocommit(self.settings.autocommit)
                return conn, pool
            dropped += 1
            await conn.close()
            await pool.putconn(conn)

    async def _unstalled(
        self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    ) -> AsyncConnectionPool[AsyncConnection[TupleRow]]:
        """``pool``, or a fresh pool if ``pool`` stalled while its server is back.

        psycopg_pool retries a failed connection after 1 s, then 2, 4, 8 s...: after
        a restart, or a standby's promotion, a pool whose connections failed may
        wait that long before it tries again, while a new connection would succeed
        now. A pool that gave no connection and may have stalled is checked with a
        direct connection (one caller at a time, at most every ``STALL_CHECK``
        seconds); if that succeeds, a fresh pool replaces it. The old one closes:
        its waiters move to the new one, and its lent connections close as they
        come back.
        """
        if not self._may_stall(pool):
            return pool  # busy rather than stalled
        async with self._opening():
            current = self._open_pool()
            if current is not pool or monotonic() - self._stall_checked < STALL_CHECK:
                return current or pool
            self._stall_checked = monotonic()
            if not self._made_none_since_last_look(pool):
                return pool
            conninfo = str(pool.conninfo)
            if await self._connect_error(conninfo) is not None:
                return pool  # still unreachable: the pool's own retries go on
            if True:  # ASYNC
                closer = self._closer
            new_pool = await self._open_new_pool(conninfo, replacing=pool)
            if new_pool is None:  # the config was closed meanwhile
                return pool
        logger.warning(
            "sqlspec: the pool stalled retrying connections to %s while a new connection "
            "succeeds; replaced it with a fresh pool",
            masked_conninfo(conninfo),
        )
        if True:  # ASYNC
            # Cancelling the old pool's closer task closes it.
            self._retiring.add(task := asyncio.create_task(_stop(closer)))
            task.add_done_callback(self._retiring.discard)
        else:
            threading.Thread(target=pool.close, name="sqlspec: close a stalled pool").start()
        return new_pool

    def _may_stall(self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]) -> bool:
        """Whether ``pool`` may be stalled rather than busy: it has failed to connect,
        and not all of its connections are lent out (every one lent: it is busy)."""
        return bool(pool.get_stats().get("connections_errors")) and (
            self._lent < self.settings.max_size
        )

    def _made_none_since_last_look(
        self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    ) -> bool:
        """Whether ``pool`` made no connection since the last stall check looked at it.

        A pool growing under load makes connections, whatever errors it saw once:
        it is busy, not stalled. The first look only takes note.
        """
        stats = pool.get_stats()
        # connections_num counts attempts, failed ones too.
        made = stats.get("connections_num", 0) - stats.get("connections_errors", 0)
        last, self._stall_mark = self._stall_mark, (pool, made)
        return last == (pool, made)

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
        """Stop preparing statements if ``conn`` reaches the server through a pooler.

        The question waits ``PROBE_TIMEOUT`` seconds at most: behind a pooler whose
        server is down the login succeeds, and the query would wait for the
        pooler's own timeout (two minutes by PgBouncer's default).
        """
        if not self.detects_pooler:
            return
        try:
            with Deadline(conn, PROBE_TIMEOUT).watching(call_later):
                cur = await conn.execute(BACKEND_PID, prepare=False)
                row = await cur.fetchone()
        except DatabaseUnavailableError as exc:
            raise psycopg.OperationalError(
                f"the connection opened but no query was answered within {PROBE_TIMEOUT}s "
                "(a pooler whose server is down?)"
            ) from exc
        self._pooler_seen(conn.info.backend_pid, row)
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
        """Close the pool (and the replica's) and its connections; a later use opens a new pool."""
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
            # Pools replaced after a stall, still closing on this loop: finish them.
            retiring = [t for t in self._retiring if t.get_loop() is asyncio.get_running_loop()]
            await asyncio.gather(*retiring)
        if self.replica is not None:
            await self.replica.close()

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
