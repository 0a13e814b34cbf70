"""What every psycopg ADK store does with its config: run statements, migrate its schema.

A store's call is one statement, run as its own transaction in one round trip
(:meth:`AsyncStore._run`). Schema changes run under one advisory lock and record
the wing's version (:meth:`AsyncStore.migrate`). Only :meth:`AsyncStore._run`'s
statements are ever prepared on the server, and it alone recovers when a pooler
in transaction mode refuses one; the rare multi-statement calls (schema changes,
export, import) are never prepared. The sync twin of this file is
generated from it by ``tools/async_to_sync.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import AsyncConnection

from sqlspec.adapters.psycopg._config_async import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk._errors import (
    TRANSIENT_ATTEMPTS,
    prepared_statement_error,
    rerunnable,
    translate_errors,
)
from sqlspec.adapters.psycopg.adk._jsonl import (
    COPY_STAGING,
    CREATE_STAGING,
    EXPORT_SNAPSHOT,
    Progress,
    TextSink,
    staged_line,
)
from sqlspec.adapters.psycopg.adk._statement import Executions, Statement
from sqlspec.adapters.psycopg.adk._versions import (
    VersionStatements,
    WingSchema,
    pending_versions,
    recorded_version,
)

__all__ = ["AsyncStore", "fetchone"]

Row = TypeVar("Row")
SchemaT = TypeVar("SchemaT", bound=WingSchema)


class AsyncStore(Generic[SchemaT]):
    """The connection side of a store: where its statements run, and its wing's schema."""

    schema: SchemaT

    def __init__(self, config: PsycopgAsyncConfig) -> None:
        self.config = config
        self._runs = Executions()

    async def _run(
        self,
        statement: Statement[Row],
        params: Mapping[str, Any] | None = None,
        *,
        read: bool = False,
        replica: bool = False,
    ) -> list[Row]:
        """Run one row-returning statement as its own transaction, in one round trip.

        A ``replica`` read tolerates lag: it goes to the config's read replica, if any.

        Pipeline mode keeps a statement being prepared to one round trip too; it
        costs 35-60 us a call, so only the execution that prepares it (foreseen
        by :class:`Executions`) and a statement with ``planner`` settings use it. A
        deadlock or serialization failure rolled the statement back whole, so
        it is run again, a few times at most; so is a ``read`` whose connection
        broke (a write is not: it may have been applied). A write a read-only
        server refused (during a switchover) was not applied either: its
        connection is dropped and the write runs again, on each pooled
        connection at most once, then on a new one. A statement refused over
        its prepared statement (a pooler in transaction mode) did not run: the
        config stops preparing and it runs again, unprepared.
        """
        config = self.config.replica_or_primary if replica else self.config
        attempt = 1
        refused = 0
        unprepared_rerun = True
        with translate_errors():
            while True:
                try:
                    async with config.provide_connection() as conn:
                        if not conn.autocommit:
                            await conn.set_autocommit(True)
                        with config.command_deadline(conn), self._runs.counting(conn, statement):
                            async with conn.cursor(row_factory=statement.row_factory) as cur:
                                planner = statement.planner
                                pipelined = planner or self._runs.prepares(conn, statement)
                                # Leaving a pipeline syncs once and collects the result.
                                async with conn.pipeline() if pipelined else nullcontext():
                                    if planner:
                                        # What a pipeline sends before its Sync runs in
                                        # one implicit transaction: the settings hold
                                        # for the statement, and end with it.
                                        await conn.execute(planner)
                                    await cur.execute(
                                        statement.text, params, binary=statement.binary
                                    )
                                return await cur.fetchall()
                except psycopg.errors.ReadOnlySqlTransaction:
                    refused += 1
                    if refused > config.settings.max_size:
                        raise
                    continue
                except psycopg.Error as exc:
                    if unprepared_rerun and prepared_statement_error(exc):
                        unprepared_rerun = False
                        config.stop_preparing(
                            f"the server refused a prepared statement ({exc.diag.message_primary}),"
                            " as behind a connection pooler in transaction mode; the statement"
                            " did not run and runs again unprepared",
                            "set connection_config['pooler'] = 'transaction' to start that way",
                        )
                        continue
                    if not isinstance(exc, psycopg.OperationalError):
                        raise
                    if attempt == TRANSIENT_ATTEMPTS or not rerunnable(exc, read=read):
                        raise
                attempt += 1

    async def _one(
        self,
        statement: Statement[Row],
        params: Mapping[str, Any] | None = None,
        *,
        read: bool = False,
        replica: bool = False,
    ) -> Row | None:
        """The first row of :meth:`_run`, or ``None``."""
        rows = await self._run(statement, params, read=read, replica=replica)
        return rows[0] if rows else None

    async def schema_version(self) -> int | None:
        """The schema version recorded in the database; ``None`` if the tables do not exist."""
        versions = self.schema.versions
        tables = await self._one(versions.tables_exist, read=True)
        recorded = None
        if tables is not None and tables.schema_table_exists:
            recorded = await self._one(versions.read, read=True)
        return (tables and recorded_version(recorded, tables)) or None

    async def migrate(self, *, repair: bool = False) -> tuple[int, int]:
        """Create or upgrade the schema in place, in one transaction; return (from, to) versions.

        With ``repair``, every version's DDL runs again (all of it is idempotent),
        recreating tables and indexes that were dropped.

        Raises:
            SchemaVersionError: the database holds a version newer than this library knows.
        """
        versions, migrations = self.schema.versions, self.schema.migrations
        latest = max(migrations)
        if not repair and await self.schema_version() == latest:
            # Up to date: no DDL, so a role that may only read and write rows can call it.
            return latest, latest
        with translate_errors():
            async with self.config.provide_connection(prepare=False) as conn, conn.transaction():
                await conn.execute(versions.lock.text)
                await conn.execute(versions.create_table.text)
                tables = await fetchone(conn, versions.tables_exist)
                recorded = await fetchone(conn, versions.read)
                assert tables is not None  # the statement always returns one row
                current = recorded_version(recorded, tables)
                pending = pending_versions(current, latest)
                for version in sorted(migrations) if repair else pending:
                    for statement in migrations[version]:
                        await conn.execute(statement.text)
                await conn.execute(versions.write.text, {"version": latest})
        return current, latest

    async def _run_ddl(
        self, versions: VersionStatements, statements: Sequence[Statement[Any]]
    ) -> None:
        """Run schema statements in one transaction, under the schema lock."""
        with translate_errors():
            async with self.config.provide_connection(prepare=False) as conn, conn.transaction():
                await conn.execute(versions.lock.text)
                for statement in statements:
                    await conn.execute(statement.text)

    async def _export_lines(
        self,
        sink: TextSink,
        statements: Sequence[tuple[str, Statement[str]]],
        params: Mapping[str, Any],
        *,
        batch_size: int,
        progress: Progress | None,
        fetch_sizes: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        """Write each statement's lines to ``sink``, all from one snapshot; count per kind.

        Server-side cursors fetch ``batch_size`` lines at a time (``fetch_sizes``
        says otherwise for kinds of long lines), so memory stays flat however
        much is exported. ``progress(kind, n)`` is told as lines go. An export
        tolerates lag: it reads from the config's read replica, if any.
        """
        counts: dict[str, int] = {}
        with translate_errors():
            config = self.config.replica_or_primary
            async with config.provide_connection(prepare=False) as conn, conn.transaction():
                await conn.execute(EXPORT_SNAPSHOT)
                for kind, statement in statements:
                    async with conn.cursor(
                        name=f"sqlspec_export_{kind}", row_factory=statement.row_factory
                    ) as cur:
                        cur.itersize = (fetch_sizes or {}).get(kind, batch_size)
                        await cur.execute(statement.text, params)
                        counts[kind] = 0
                        async for line in cur:
                            sink.write(line + "\n")
                            counts[kind] += 1
                            if progress is not None and counts[kind] % batch_size == 0:
                                progress(kind, batch_size)
                        if progress is not None:
                            progress(kind, counts[kind] % batch_size)
        return counts

    async def _import_lines(
        self,
        lines: Iterable[str | bytes],
        statement: Statement[Row],
        params: Callable[[], Mapping[str, Any] | None] = lambda: None,
        *,
        when_empty: bool = True,
        check: Callable[[Row | None], None] = lambda _row: None,
    ) -> Row | None:
        """Stage ``lines`` through COPY, then run ``statement`` on them, in one transaction.

        ``params()`` is asked once the lines are staged. With ``when_empty``
        false, no line staged runs nothing and returns ``None``. ``check(row)``
        runs before the commit: what it raises rolls the import back whole.
        """
        with translate_errors():
            async with self.config.provide_connection(prepare=False) as conn, conn.transaction():
                staged = 0
                async with conn.cursor() as cur:
                    await cur.execute(CREATE_STAGING.text)
                    async with cur.copy(COPY_STAGING) as copy:
                        for line in lines:
                            text = staged_line(line)
                            if text is not None:
                                await copy.write_row((text,))
                                staged += 1
                if not staged and not when_empty:
                    return None
                async with conn.cursor(row_factory=statement.row_factory) as cur:
                    await cur.execute(statement.text, params())
                    row = await cur.fetchone()
                check(row)
                return row

    async def close(self) -> None:
        """Close the config's pool."""
        await self.config.close()


async def fetchone(
    conn: AsyncConnection[Any], statement: Statement[Row], params: Mapping[str, Any] | None = None
) -> Row | None:
    """One row of ``statement``, on a connection already in a transaction."""
    async with conn.cursor(row_factory=statement.row_factory) as cur:
        await cur.execute(statement.text, params)
        return await cur.fetchone()
