"""The async psycopg ADK store: one statement per call, run on a pooled connection.

This file is the source of :mod:`._store_sync`, which ``tools/async_to_sync.py``
generates from it; edit this one and regenerate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal

import psycopg
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from psycopg import sql

from sqlspec.adapters.psycopg._config import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk._common import (
    EXPORT_SNAPSHOT,
    LOCK,
    SCHEMA_VERSION,
    TRANSIENT_ATTEMPTS,
    EventBatch,
    Progress,
    StoreBase,
    TextSink,
    append_outcome,
    append_params,
    check_marker_less_session,
    duplicate_events_error,
    import_result,
    pending_versions,
    prune_params,
    recorded_version,
    redelivery_outcome,
    rerunnable,
    staged_line,
    translate_errors,
)
from sqlspec.extensions.adk import _codec
from sqlspec.extensions.adk._codec import ImportResult, SessionPage

__all__ = ["PsycopgAsyncADKStore"]


class PsycopgAsyncADKStore(StoreBase):
    """ADK sessions, events and app/user state in PostgreSQL, through an async pool.

    Args:
        config: where connections come from.
        session_table: sessions table name (default ``adk_sessions``).
        events_table: events table name (default ``adk_events``).
        app_state_table: ``app:`` state table name (default ``adk_app_states``).
        user_state_table: ``user:`` state table name (default ``adk_user_states``).
        session_ttl: how long a new session lives before it expires (default: forever).
    """

    is_async: ClassVar[Literal[True]] = True

    def __init__(
        self,
        config: PsycopgAsyncConfig,
        *,
        session_table: str = "adk_sessions",
        events_table: str = "adk_events",
        app_state_table: str = "adk_app_states",
        user_state_table: str = "adk_user_states",
        session_ttl: timedelta | None = None,
    ) -> None:
        super().__init__(
            session_table=session_table,
            events_table=events_table,
            app_state_table=app_state_table,
            user_state_table=user_state_table,
            session_ttl=session_ttl,
        )
        self.config = config

    async def _run(
        self, query: sql.SQL | sql.Composed, params: dict[str, Any], *, read: bool = False
    ) -> list[tuple[Any, ...]]:
        """Run one row-returning statement as its own transaction, in one round trip.

        Pipeline mode keeps a statement being prepared to one round trip too. A
        deadlock or serialization failure rolled the statement back whole, so
        it is run again, a few times at most; so is a ``read`` whose connection
        broke (a write is not: it may have been applied).
        """
        attempt = 1
        with translate_errors():
            while True:
                try:
                    async with self.config.provide_connection() as conn:
                        if not conn.autocommit:
                            await conn.set_autocommit(True)
                        with self.config.command_deadline(conn):
                            async with conn.cursor() as cur:
                                # Leaving the pipeline syncs once and collects the result.
                                async with conn.pipeline():
                                    await cur.execute(self.rendered(query), params)
                                return await cur.fetchall()
                except psycopg.OperationalError as exc:
                    if attempt == TRANSIENT_ATTEMPTS or not rerunnable(exc, read=read):
                        raise
                attempt += 1

    async def _fetchone(
        self, query: sql.SQL | sql.Composed, params: dict[str, Any], *, read: bool = False
    ) -> tuple[Any, ...] | None:
        rows = await self._run(query, params, read=read)
        return rows[0] if rows else None

    async def create_tables(self) -> None:
        """Create the tables and indexes, or bring them up to date; safe to call concurrently.

        The same as :meth:`migrate`.
        """
        await self.migrate()

    async def migrate(self) -> tuple[int, int]:
        """Create or upgrade the schema in place, in one transaction; return (from, to) versions.

        Raises:
            SchemaVersionError: the database holds a version newer than this library knows.
        """
        if await self.schema_version() == SCHEMA_VERSION:
            # Up to date: no DDL, so a role that may only read and write rows can call it.
            return SCHEMA_VERSION, SCHEMA_VERSION
        params = self.schema_params()
        with translate_errors():
            async with (
                self.config.provide_connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                await cur.execute(LOCK, (self.statements.lock_key,))
                await cur.execute(self.statements.create_schema_table)
                await cur.execute(self.statements.schema_tables_exist, params)
                _, sessions_exist = await cur.fetchone() or (True, False)
                await cur.execute(self.statements.read_schema_version, params)
                recorded = await cur.fetchone()
                current = recorded_version(recorded[0] if recorded else None, sessions_exist)
                for version in pending_versions(current):
                    for statement in self.statements.migrations[version]:
                        await cur.execute(statement)
                await cur.execute(
                    self.statements.write_schema_version, {**params, "version": SCHEMA_VERSION}
                )
        return current, SCHEMA_VERSION

    async def schema_version(self) -> int | None:
        """The schema version recorded in the database; ``None`` if the tables do not exist."""
        params = self.schema_params()
        row = await self._fetchone(self.statements.schema_tables_exist, params, read=True)
        schema_table_exists, sessions_exist = row or (False, False)
        recorded = None
        if schema_table_exists:
            row = await self._fetchone(self.statements.read_schema_version, params, read=True)
            recorded = row[0] if row else None
        return recorded_version(recorded, sessions_exist) or None

    async def prune(
        self,
        *,
        older_than: timedelta | None = None,
        app_name: str | None = None,
        user_id: str | None = None,
        dry_run: bool = False,
    ) -> tuple[int, int]:
        """Delete expired sessions and those idle longer than ``older_than``, with their events.

        Returns (sessions, events) deleted, or that would be with ``dry_run``.
        """
        params = prune_params(older_than, app_name, user_id)
        query = self.statements.count_prunable if dry_run else self.statements.prune
        row = await self._fetchone(query, params, read=dry_run)
        return (row[0], row[1]) if row else (0, 0)

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        ttl: timedelta | None = None,
    ) -> Session:
        """Store a new session; its ``app:``/``user:`` keys go to the shared state tables.

        ``ttl`` (default: the store's ``session_ttl``) makes the session expire that
        long after its creation: reads then miss it and ``prune`` deletes it.

        Raises:
            AlreadyExistsError: the app and user already have a session with this id.
        """
        session_id = _codec.new_session_id(session_id)
        _codec.check_required_ids(app_name=app_name, user_id=user_id, session_id=session_id)
        deltas = _codec.split_state(state)
        now = datetime.now(timezone.utc)
        row = await self._fetchone(
            self.statements.create_session,
            {
                "app_name": app_name,
                "user_id": user_id,
                "session_id": session_id,
                "session_state": deltas.session,
                "app_delta": deltas.app,
                "user_delta": deltas.user,
                "now": now,
                "expire_time": self.expire_time(now, ttl),
            },
        )
        if row is None:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.")
        revision, update_time, app_state, user_state = row
        return _codec.build_session(
            session_id=session_id,
            app_name=app_name,
            user_id=user_id,
            session_state=deltas.session,
            app_state=app_state,
            user_state=user_state,
            update_time=update_time,
            revision=revision,
        )

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """Load a session with its merged state and the events ``config`` selects."""
        query, params = self.get_session_query(app_name, user_id, session_id, config)
        row = await self._fetchone(query, params, read=True)
        return self.session_from_row(app_name, user_id, params["session_id"], row)

    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        order_by: str = "update_time",
    ) -> SessionPage:
        """Sessions of an app (or of one user), without events, oldest first by ``order_by``.

        With no ``limit`` every session comes back, as ADK's services do. With a
        ``limit`` the page holds at most that many, and ``next_cursor`` resumes
        after its last session (keyset paging: the cost of a page does not grow
        with how many come before it). ``order_by`` is ``"update_time"`` or
        ``"create_time"``.
        """
        query, params = self.list_sessions_query(app_name, user_id, limit, cursor, order_by)
        rows = await self._run(query, params, read=True)
        return self.page_from_rows(app_name, rows, limit, order_by)

    async def iter_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[Event]:
        """Stream a session's events, oldest first, without loading the history.

        Takes the filters of :class:`GetSessionConfig`. A server-side cursor
        fetches ``batch_size`` events at a time; the iterator holds a pooled
        connection until it is exhausted or closed. An unknown session yields
        nothing.
        """
        query, params = self.iter_events_query(app_name, user_id, session_id, config)
        with translate_errors():
            async with (
                self.config.provide_connection() as conn,
                conn.transaction(),
                conn.cursor(name="sqlspec_iter_events") as cur,
            ):
                cur.itersize = batch_size
                await cur.execute(query, params)
                async for (text,) in cur:
                    yield _codec.decode_event(text)

    async def import_events(
        self, *, app_name: str, user_id: str, session_id: str, events: Iterable[Event]
    ) -> int:
        """Append many events to one session at once, through COPY, in one transaction.

        The same as appending them one by one (``temp:`` keys dropped, state
        deltas applied in order, last event's timestamp as update time, sessions
        loaded before become stale), without the per-event round trips. Streams
        ``events``; returns how many were stored.

        Raises:
            SessionNotFoundError: no such session (nothing is stored).
            AlreadyExistsError: an event id is already stored in the session.
        """
        _codec.check_required_ids(app_name=app_name, user_id=user_id, session_id=session_id)
        batch = EventBatch()
        with translate_errors(), duplicate_events_error(session_id):
            async with (
                self.config.provide_connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                await cur.execute(self.statements.create_staging)
                async with cur.copy(self.statements.copy_staging) as copy:
                    for event in events:
                        await copy.write_row((batch.add(event),))
                if not batch.count:
                    return 0
                await cur.execute(
                    self.statements.import_events, batch.params(app_name, user_id, session_id)
                )
                row = await cur.fetchone()
                if row is None or row[0] is None:
                    raise SessionNotFoundError(f"Session {session_id} not found.")
                stored: int = row[1]
                return stored

    async def export_jsonl(
        self,
        sink: TextSink,
        *,
        app_name: str | None = None,
        user_id: str | None = None,
        batch_size: int = 1000,
        progress: Progress | None = None,
    ) -> dict[str, int]:
        """Write app states, user states, sessions and events as JSON Lines to ``sink``.

        Streams from one consistent snapshot through server-side cursors, so
        memory stays flat however much is exported. ``progress(kind, n)`` is
        told of every ``batch_size`` lines written. Returns lines written per kind.
        """
        _codec.check_ids(app_name=app_name, user_id=user_id)
        params = {"app_name": app_name, "user_id": user_id}
        counts: dict[str, int] = {}
        with translate_errors():
            async with self.config.provide_connection() as conn, conn.transaction():
                await conn.execute(EXPORT_SNAPSHOT)
                for kind, query in self.statements.export:
                    async with conn.cursor(name=f"sqlspec_export_{kind}") as cur:
                        cur.itersize = batch_size
                        await cur.execute(query, params)
                        counts[kind] = 0
                        async for (line,) in cur:
                            sink.write(line + "\n")
                            counts[kind] += 1
                            if progress is not None and counts[kind] % batch_size == 0:
                                progress(kind, batch_size)
                        if progress is not None:
                            progress(kind, counts[kind] % batch_size)
        return counts

    async def import_jsonl(self, source: Iterable[str | bytes]) -> ImportResult:
        """Load JSON Lines written by :meth:`export_jsonl`, through COPY, in one transaction.

        State is merged into existing state; sessions and events that already
        exist are kept as they are (and counted as skipped); events whose
        session exists neither in the database nor in the import are skipped.
        """
        with translate_errors():
            async with (
                self.config.provide_connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                await cur.execute(self.statements.create_staging)
                async with cur.copy(self.statements.copy_staging) as copy:
                    for line in source:
                        text = staged_line(line)
                        if text is not None:
                            await copy.write_row((text,))
                await cur.execute(self.statements.import_staged)
                row = await cur.fetchone()
        assert row is not None  # the statement always returns one row
        return import_result(row)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> bool:
        """Delete a session and, by cascade, its events; ``False`` if there was none."""
        session_id = session_id.strip() if isinstance(session_id, str) else session_id
        _codec.check_required_ids(app_name=app_name, user_id=user_id, session_id=session_id)
        rows = await self._run(
            self.statements.delete_session,
            {"app_name": app_name, "user_id": user_id, "session_id": session_id},
        )
        return bool(rows[0][0])

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's ``user:`` state, keys without the prefix; ``{}`` if none."""
        _codec.check_required_ids(app_name=app_name, user_id=user_id)
        row = await self._fetchone(
            self.statements.get_user_state, {"app_name": app_name, "user_id": user_id}, read=True
        )
        return _codec.decode_state(row[0] if row else None)

    async def append_event(self, session: Session, event: Event) -> bool:
        """Store ``event`` and its state delta if ``session`` is still the stored revision.

        ``event`` must already have its ``temp:`` keys removed. Returns ``False``
        when this very event was stored before (a retried call), in which case
        nothing changes.

        Raises:
            SessionNotFoundError: no such session.
            StaleSessionError: another writer appended since ``session`` was loaded.
            AlreadyExistsError: a different event with this id is already stored.
        """
        revision = _codec.get_revision(session)
        if revision is None:
            revision = await self._marker_less_revision(session)
        params = append_params(session, event, revision)
        try:
            row = await self._fetchone(self.statements.append_event, params)
        except psycopg.errors.UniqueViolation:
            # The event id is stored already and nothing was written: learn whether
            # this is a retry of the same event (a second round trip, on this path only).
            stored = await self._fetchone(self.statements.stored_event, params, read=True)
            return redelivery_outcome(session, event, stored[0] if stored else None)
        return append_outcome(session, event, params, row)

    async def _marker_less_revision(self, session: Session) -> int:
        """The revision a session built by hand (no marker) stands for, checked as ADK does."""
        row = await self._fetchone(
            self.statements.session_revision,
            {"app_name": session.app_name, "user_id": session.user_id, "session_id": session.id},
            read=True,
        )
        return check_marker_less_session(session, row)

    async def close(self) -> None:
        """Close the config's pool."""
        await self.config.close()
