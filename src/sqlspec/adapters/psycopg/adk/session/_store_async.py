"""The psycopg ADK session store: one statement per call, run on a pooled connection.

The async store is the source: ``tools/async_to_sync.py`` generates the sync
one from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any, ClassVar, Literal

import psycopg
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session

from sqlspec.adapters.psycopg._config_async import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk import _values
from sqlspec.adapters.psycopg.adk._errors import translate_errors
from sqlspec.adapters.psycopg.adk._jsonl import Progress, TextSink
from sqlspec.adapters.psycopg.adk._store_async import AsyncStore, fetchone
from sqlspec.adapters.psycopg.adk.session._schema import SessionSchema
from sqlspec.adapters.psycopg.adk.session._statements import (
    CURRENT_LOCK_TIMEOUT,
    DETACH_LOCK_TIMEOUT,
    SET_LOCK_TIMEOUT,
    count_rows,
    drop_table,
)
from sqlspec.adapters.psycopg.adk.session._store_base import (
    EventBatch,
    SessionStoreBase,
    append_params,
    appended,
    check_marker_less_session,
    duplicate_events_error,
    page,
    prune_params,
    refused_append_outcome,
    session_key,
)
from sqlspec.exceptions import ImproperConfigurationError
from sqlspec.extensions.adk.session import _codec
from sqlspec.extensions.adk.session._types import (
    HeldEvents,
    ImportResult,
    SessionPage,
    SessionUpdate,
)

__all__ = ["PsycopgAsyncADKStore"]


class PsycopgAsyncADKStore(SessionStoreBase, AsyncStore[SessionSchema]):
    """ADK sessions, events and app/user state in PostgreSQL, through a pool.

    Args:
        config: where connections come from.
        session_table: sessions table name (default ``adk_sessions``).
        events_table: events table name (default ``adk_events``).
        app_state_table: ``app:`` state table name (default ``adk_app_states``).
        user_state_table: ``user:`` state table name (default ``adk_user_states``).
        session_ttl: how long a new session lives before it expires (default: forever).
        partitioned_events: create the events table partitioned by month of its
            session's creation, so that ``prune`` drops whole months (see
            ``docs/scale-out.md``); it must match the table ``migrate`` finds.
    """

    is_async: ClassVar[Literal[True]] = True  # SYNC: True -> False

    def __init__(
        self,
        config: PsycopgAsyncConfig,
        *,
        session_table: str = "adk_sessions",
        events_table: str = "adk_events",
        app_state_table: str = "adk_app_states",
        user_state_table: str = "adk_user_states",
        session_ttl: timedelta | None = None,
        partitioned_events: bool = False,
    ) -> None:
        AsyncStore.__init__(self, config)
        SessionStoreBase.__init__(
            self,
            session_table=session_table,
            events_table=events_table,
            app_state_table=app_state_table,
            user_state_table=user_state_table,
            session_ttl=session_ttl,
            partitioned_events=partitioned_events,
        )

    async def create_tables(self) -> None:
        """Create the tables and indexes, or bring them up to date; safe to call concurrently.

        The same as :meth:`migrate`, which also takes ``repair=True`` (every version's
        DDL again, recreating dropped tables and indexes).
        """
        await self.migrate()

    async def migrate(self, *, repair: bool = False) -> tuple[int, int]:
        """Create or upgrade the schema in place, in one transaction; return (from, to) versions.

        With ``repair``, every version's DDL runs again (all of it is idempotent),
        recreating tables and indexes that were dropped.

        Raises:
            SchemaVersionError: the database holds a version newer than this library knows.
            ImproperConfigurationError: the events table is partitioned and the store
                was not told so, or the other way round.
        """
        versions = await AsyncStore.migrate(self, repair=repair)
        partitioned = await self._one(self.statements.events_partitioned, read=True)
        if partitioned is not None and partitioned != self.schema.partitioned:
            raise ImproperConfigurationError(
                f"the events table {self.tables.events!r} is "
                f"{'partitioned' if partitioned else 'not partitioned'}, but the store has "
                f"partitioned_events={self.schema.partitioned}: set it to match, or move the "
                "events as docs/scale-out.md describes"
            )
        return versions

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
        if not dry_run and app_name is None and user_id is None:
            partitioned = await self._one(self.statements.events_partitioned, read=True)
            if partitioned:
                return await self._prune_months(params)
        statement = self.statements.count_prunable if dry_run else self.statements.prune
        pruned = await self._one(statement, params, read=dry_run)
        return (pruned.sessions, pruned.events) if pruned else (0, 0)

    async def _prune_months(self, params: dict[str, Any]) -> tuple[int, int]:
        """Prune with partitioned events: whole past months first, then the rest by rows.

        A month goes as one partition when every session created in it is
        prunable: it is detached (which waits for appends in flight and holds new
        ones until commit), its sessions locked and checked again, then it is
        dropped and its sessions deleted. A month with a live session is put back
        (its transaction rolls the detach back); its prunable sessions go by rows
        with every other one. So does a month whose detach waited past
        :data:`DETACH_LOCK_TIMEOUT` behind another transaction. Each month is a
        transaction of its own, and so are the partitions made ahead (under the
        same lock timeout) and the prune by rows: the events table is locked
        for one month's work at a time, never for the whole prune. The answer is
        the one deleting by rows gives.
        """
        statements = self.statements
        sessions = events = 0
        with translate_errors():
            async with self.config.provide_connection(prepare=False) as conn:
                if not conn.autocommit:
                    await conn.set_autocommit(True)
                detach_timeout = {"lock_timeout": DETACH_LOCK_TIMEOUT}
                try:
                    async with conn.transaction():
                        await conn.execute(SET_LOCK_TIMEOUT.text, detach_timeout)
                        await conn.execute(self.schema.month_partitions.text)
                except psycopg.errors.LockNotAvailable:
                    pass  # months are made ahead: the next prune makes this one
                async with conn.cursor(
                    row_factory=statements.prunable_partitions.row_factory
                ) as cur:
                    await cur.execute(statements.prunable_partitions.text, params)
                    months = await cur.fetchall()
                waited = {"lock_timeout": await fetchone(conn, CURRENT_LOCK_TIMEOUT)}
                for month in months:
                    bounds = {**params, "lo": month.lo, "hi": month.hi}
                    try:
                        async with conn.transaction() as month_work:
                            await conn.execute(SET_LOCK_TIMEOUT.text, detach_timeout)
                            await conn.execute(statements.detach_partition(month.name).text)
                            await conn.execute(SET_LOCK_TIMEOUT.text, waited)
                            lock = await fetchone(conn, statements.lock_month, bounds)
                            if lock is None or lock.live:
                                raise psycopg.Rollback(month_work)
                            month_events = await fetchone(conn, count_rows(month.name)) or 0
                            await conn.execute(drop_table(month.name).text)
                            deleted = await fetchone(conn, statements.delete_month, bounds)
                            sessions, events = sessions + (deleted or 0), events + month_events
                    except psycopg.errors.LockNotAvailable:
                        continue
                async with conn.transaction():
                    rest = await fetchone(conn, statements.prune, params)
        if rest is not None:
            sessions, events = sessions + rest.sessions, events + rest.events
        return sessions, events

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
        params = self.create_params(app_name, user_id, state, session_id, ttl)
        create = self.statements.create_session
        if params["app_delta"] is None:
            create = self.statements.create_session_without_app
        created = await self._one(create, params)
        if created is None:
            raise AlreadyExistsError(f"Session with id {params['session_id']} already exists.")
        return _codec.build_session(
            session_id=params["session_id"],
            app_name=app_name,
            user_id=user_id,
            session_state=params["session_state"],
            app_state=created.app_state,
            user_state=created.user_state,
            update_time=created.update_time,
            revision=created.revision,
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
        statement, params = self.get_params(app_name, user_id, session_id, config)
        stored = await self._one(statement, params, read=True)
        if stored is None:
            return None
        return stored.to_session(app_name, user_id, params["session_id"])

    async def refresh_session(
        self, *, app_name: str, user_id: str, session_id: str, held: HeldEvents | None
    ) -> SessionUpdate | None:
        """Load a session for a reader holding its events up to ``held``; ``None`` if absent.

        One round trip, which brings only the events written since ``held``'s
        revision when they are exactly what it lacks, and every event otherwise
        (a session deleted and created again, an event written without its
        revision, one that sorts before the last held) or when nothing is held.
        """
        params = self.refresh_params(app_name, user_id, session_id, held)
        stored = await self._one(self.statements.refresh_session, params, read=True)
        if stored is None:
            return None
        return stored.to_update(app_name, user_id, params["session_id"])

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
        ``"create_time"``. Read from the config's read replica, if any, so it may lag.
        """
        statement, params = self.list_params(app_name, user_id, limit, cursor, order_by)
        rows = await self._run(statement, params, read=True, replica=True)
        return page(app_name, rows, limit, order_by)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> bool:
        """Delete a session and, by cascade, its events; ``False`` if there was none."""
        params = session_key(app_name, user_id, session_id)
        return bool(await self._one(self.statements.delete_session, params))

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's ``user:`` state, keys without the prefix; ``{}`` if none."""
        _values.check_required_ids(app_name=app_name, user_id=user_id)
        params = {"app_name": app_name, "user_id": user_id}
        return _codec.decode_state(
            await self._one(self.statements.get_user_state, params, read=True)
        )

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
        append = self.statements.append_event
        if params["app_delta"] is None:
            append = self.statements.append_event_without_app
        try:
            outcome = await self._one(append, params)
        except psycopg.errors.UniqueViolation:
            stored = None  # the event id is taken: the statement wrote nothing
        else:
            assert outcome is not None  # the statement always returns one row
            stored = outcome.revision
        if stored is None:
            # Nothing was written: learn why (a second round trip, on this path only).
            refusal = await self._one(self.statements.append_refused, params, read=True)
            return refused_append_outcome(session, event, params, refusal)
        return appended(session, params, stored)

    async def _marker_less_revision(self, session: Session) -> int:
        """The revision a session built by hand (no marker) stands for, checked as ADK does."""
        params = {
            "app_name": session.app_name,
            "user_id": session.user_id,
            "session_id": session.id,
        }
        row = await self._one(self.statements.session_revision, params, read=True)
        return check_marker_less_session(session, row)

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
        statement, params = self.iter_events_params(app_name, user_id, session_id, config)
        with translate_errors():
            async with (
                self.config.provide_connection() as conn,
                conn.transaction(),
                conn.cursor(name="sqlspec_iter_events", row_factory=statement.row_factory) as cur,
            ):
                cur.itersize = batch_size
                await cur.execute(statement.text, params)
                async for text in cur:
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
        _values.check_required_ids(app_name=app_name, user_id=user_id, session_id=session_id)
        batch = EventBatch()
        with duplicate_events_error(session_id):
            imported = await self._import_lines(
                (batch.add(event) for event in events),
                self.statements.import_events,
                lambda: batch.params(app_name, user_id, session_id),
                when_empty=False,
            )
        if not batch.count:
            return 0
        if imported is None or imported.revision is None:
            raise SessionNotFoundError(f"Session {session_id} not found.")
        return imported.stored

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
        Read from the config's read replica, if any, so it may lag.
        """
        _values.check_ids(app_name=app_name, user_id=user_id)
        return await self._export_lines(
            sink,
            self.statements.export,
            {"app_name": app_name, "user_id": user_id},
            batch_size=batch_size,
            progress=progress,
        )

    async def import_jsonl(self, source: Iterable[str | bytes]) -> ImportResult:
        """Load JSON Lines written by :meth:`export_jsonl`, through COPY, in one transaction.

        State is merged into existing state; sessions and events that already
        exist are kept as they are (and counted as skipped); events whose
        session exists neither in the database nor in the import are skipped.
        """
        counts = await self._import_lines(source, self.statements.import_staged)
        assert counts is not None  # the statement always returns one row
        return counts.result()

    async def missing_objects(self) -> list[str]:
        """The schema's tables and indexes that do not exist, as ``table x``/``index y``."""
        objects = await self._run(self.schema.objects, read=True)
        return [f"{o.kind} {o.name}" for o in objects if o.missing]

    async def list_apps(self) -> list[str]:
        """Every app with at least one stored session (from the read replica, if any)."""
        return await self._run(self.statements.list_apps, read=True, replica=True)

    async def count_expired(self) -> int:
        """Sessions past their ``expire_time`` still stored (``prune`` deletes them)."""
        return await self._one(self.statements.count_expired, read=True) or 0
