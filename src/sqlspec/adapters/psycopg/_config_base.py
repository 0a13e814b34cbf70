"""What the sync and async configs share: checked settings, the server, pool diagnosis.

A config validates its ``connection_config`` at construction, opens its pool on
first use (so "pool is not open" never reaches a caller), and closes it on
``close()``; a later use opens a fresh pool. It never lends a connection the
server has already closed, and bounds a store's wait for an answer by
``command_timeout``. Behind a connection pooler in transaction mode (PgBouncer's
``pool_mode = transaction``) it prepares no statement on the server: said by
``pooler``, found when the pool opens, or learnt from the first prepared-statement
error (:meth:`ConfigBase.stop_preparing`).
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from sqlspec.adapters.psycopg._embedded import embedded_conninfo
from sqlspec.adapters.psycopg._settings import PoolSettings, masked_conninfo
from sqlspec.exceptions import ImproperConfigurationError, SQLSpecError

__all__ = [
    "BACKEND_PID",
    "PROBE_TIMEOUT",
    "STALL_CHECK",
    "ConfigBase",
    "check_replica",
    "closed_by_server",
    "hold_outside_transactions",
    "probe_timeout",
]

#: Seconds a direct connection that checks the server may take, unless the user said.
PROBE_TIMEOUT = 2
#: Seconds a caller waits on the pool before checking whether it stalled, and the
#: least time between two such checks.
STALL_CHECK = 1.0
#: The server process serving the statement; a pooler reports a process id of its own
#: when the connection opens, so the two differ behind one.
BACKEND_PID = b"SELECT pg_backend_pid()"

logger = logging.getLogger("sqlspec.adapters.psycopg")


def probe_timeout(conninfo: str) -> dict[str, Any]:
    """``connect_timeout`` for a probe: the user's if the conninfo sets one, else ours."""
    return (
        {}
        if "connect_timeout" in conninfo_to_dict(conninfo)
        else {"connect_timeout": PROBE_TIMEOUT}
    )


def closed_by_server(conn: Connection[Any] | AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection is gone, found without a round trip.

    An idle connection receives nothing unless the server is saying goodbye
    (``pg_terminate_backend``, a shutdown, an idle timeout): input waiting on its
    socket means a statement sent on it would fail, maybe after being applied.
    psycopg_pool's own ``check=`` hook is not used for this: after a failed check
    it backs off 1 s, then 2 s, 4 s..., and puts replacements behind the dead
    connections, so after a server restart a pool of 4 took 6.7 s to lend one
    and a pool of 6 timed out after 30 s.
    """
    if conn.closed:
        return True
    fd = conn.pgconn.socket
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def check_replica(settings: PoolSettings) -> None:
    """Refuse a ``replica_config`` that names no server: the embedded server has no replica."""
    if not settings.names_a_server:
        raise ImproperConfigurationError(
            "replica_config names no server: give it a conninfo (or host, port...) "
            "of a read replica"
        )


def hold_outside_transactions(withhold: bool, conn: Connection[Any] | AsyncConnection[Any]) -> bool:
    """Whether a named cursor must be declared ``WITH HOLD`` to outlive its declaration.

    Declared outside a transaction (autocommit, idle) it would vanish at once;
    declared WITH HOLD it lives until closed.
    """
    return withhold or (conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE)


class ConfigBase:
    """The checked settings, the resolved server, and why a pool gave no connection."""

    def __init__(self, connection_config: Mapping[str, Any] | None = None) -> None:
        self.connection_config: dict[str, Any] = dict(connection_config or {})
        self.settings = PoolSettings.from_mapping(self.connection_config)
        self._connect_errors_seen = 0
        # Counted here: psycopg_pool's get_stats() has no lent count, and its
        # pool_size - pool_available also counts connections still being opened,
        # which after a restart made an unreachable server read as an exhausted pool.
        self._lent = 0
        self._lent_lock = threading.Lock()
        #: The prepare_threshold of every connection lent from now on.
        self.prepare_threshold = self.settings.prepare_threshold

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Connection.connect()`` beyond the conninfo."""
        return {"autocommit": self.settings.autocommit, "prepare_threshold": self.prepare_threshold}

    def stop_preparing(self, why: str, hint: str) -> None:
        """Prepare no more statements on the server, on every connection lent from now on.

        A pooler in transaction mode hands each transaction whichever server
        connection is free, where a statement prepared through another is missing,
        or one of the same name is there already. Logged once per config: ``why``,
        then what the user may set (``hint``).
        """
        with self._lent_lock:
            if self.prepare_threshold is None:
                return
            self.prepare_threshold = None
        logger.warning(
            "sqlspec: %s; server-side prepared statements are now off for %s (%s)",
            why,
            masked_conninfo(self.settings.conninfo) or "the embedded server",
            hint,
        )

    def _pooler_seen(self, reported_pid: int, row: tuple[Any, ...] | None) -> None:
        """Stop preparing if the connection's reported process is not the server's.

        PgBouncer (in any pool mode) reports a process id of its own at login; which
        mode it runs in cannot be seen from here, so ``pooler='session'`` keeps
        preparing there.
        """
        if row is not None and row[0] != reported_pid:
            self.stop_preparing(
                "the server answers through a connection pooler (such as PgBouncer): "
                f"the connection reports process {reported_pid}, the server runs it "
                f"as process {row[0]}",
                "a pooler in session mode keeps them working: say so with "
                "connection_config['pooler'] = 'session'; 'transaction' silences this",
            )

    @property
    def detects_pooler(self) -> bool:
        """Whether a new connection should be checked for a pooler in front of the server."""
        return self.settings.pooler is None and self.prepare_threshold is not None

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

    def _pool_error(self, stats: Mapping[str, int], conninfo: str) -> SQLSpecError:
        """The typed error for no connection in time, its server reachable."""
        return self.settings.pool_error(stats, conninfo, self._lent)

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
