"""What the sync and async psycopg stores share: statement parameters, row decoding, errors.

The twins differ only in how they reach the server; everything they send and
everything they make of the answer is decided here, once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import psycopg
import psycopg_pool
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from psycopg import sql

from sqlspec.adapters.psycopg.adk._sql import (
    LIST_ORDERS,
    SCHEMA_TABLE,
    SCHEMA_VERSION,
    ADKStatements,
    TableNames,
)
from sqlspec.exceptions import (
    DatabaseUnavailableError,
    ImproperConfigurationError,
    InvalidValueError,
    MissingTablesError,
    SchemaVersionError,
)
from sqlspec.extensions.adk import _codec

__all__ = [
    "EXPORT_SNAPSHOT",
    "LOCK",
    "SCHEMA_VERSION",
    "TRANSIENT_ATTEMPTS",
    "EventBatch",
    "Progress",
    "StoreBase",
    "TextSink",
    "append_outcome",
    "append_params",
    "check_marker_less_session",
    "duplicate_events_error",
    "import_result",
    "pending_versions",
    "prune_params",
    "recorded_version",
    "redelivery_outcome",
    "rerunnable",
    "staged_line",
    "translate_errors",
]

#: Errors after which a single statement was rolled back whole and may simply run again.
TRANSIENT_ERRORS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
#: How many times a statement that may simply run again is run at most.
TRANSIENT_ATTEMPTS = 3
#: The pool's own errors: no statement was sent, and the pool has said why.
_POOL_ERRORS = (psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed, psycopg_pool.TooManyRequests)


def rerunnable(exc: psycopg.OperationalError, *, read: bool) -> bool:
    """Whether a failed statement may simply run again.

    A deadlock or serialization failure rolled it back whole. A read whose
    connection broke (no SQLSTATE, class 08, or a server shutdown, 57P) changed
    nothing; a write may have been applied before its connection broke.
    """
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if not read or isinstance(exc, _POOL_ERRORS):
        return False
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))


#: Line breaks and the indentation around them; no SQL literal here holds one.
_ONE_LINE = re.compile(rb"\s*\n\s*")

#: Serializes schema changes of one table set (key: ``ADKStatements.lock_key``).
LOCK = sql.SQL("SELECT pg_advisory_xact_lock(%s)")

#: First statement of an export: every query of it reads one snapshot.
EXPORT_SNAPSHOT = sql.SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

#: ``progress(kind, n)``: ``n`` more lines of ``kind`` were written.
Progress = Callable[[str, int], None]


class TextSink(Protocol):
    """Where an export writes: anything with a ``write(str)``, such as a text file."""

    def write(self, text: str, /) -> object: ...


_STALE_MESSAGE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn the driver's errors for bad values and missing tables into this library's."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise MissingTablesError(
            f"{exc.diag.message_primary}; call the store's create_tables() first"
        ) from exc
    except TRANSIENT_ERRORS:
        raise  # a deadlock or serialization failure: the caller may run the statement again
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(
            f"the database connection failed during the call, which may or may not have "
            f"been applied: {exc}"
        ) from exc
    except psycopg.DataError as exc:
        raise InvalidValueError(
            f"PostgreSQL refused a value, nothing was written: {exc} "
            "(common causes: NUL (\\u0000) in text, NaN or Infinity in state, text that is "
            "not JSON, a value longer than its column)"
        ) from exc


@contextmanager
def duplicate_events_error(session_id: str) -> Iterator[None]:
    """A bulk insert that meets a stored event id fails as an append of it would."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise AlreadyExistsError(
            f"An imported event id is already stored in session {session_id}: "
            f"{exc.diag.message_detail}"
        ) from exc


class StoreBase:
    """Table names, statements and row decoding common to both stores."""

    def __init__(
        self,
        *,
        session_table: str,
        events_table: str,
        app_state_table: str,
        user_state_table: str,
        session_ttl: timedelta | None,
    ) -> None:
        if session_ttl is not None and (
            not isinstance(session_ttl, timedelta) or session_ttl <= timedelta(0)
        ):
            raise ImproperConfigurationError(
                f"session_ttl must be a positive timedelta or None, got {session_ttl!r}"
            )
        self.session_ttl = session_ttl
        self.tables = TableNames(
            sessions=session_table,
            events=events_table,
            app_states=app_state_table,
            user_states=user_state_table,
        )
        self.statements = ADKStatements(self.tables)
        self._rendered: dict[int, bytes] = {}

    def expire_time(self, now: datetime, ttl: timedelta | None) -> datetime | None:
        """When a session created at ``now`` expires: after ``ttl``, else the store's default."""
        ttl = ttl if ttl is not None else self.session_ttl
        if ttl is None:
            return None
        if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
            raise InvalidValueError(f"ttl must be a positive timedelta, got {ttl!r}")
        return now + ttl

    def schema_params(self) -> dict[str, Any]:
        """Parameters of the schema-version statements for this table set."""
        return {
            "table": self.tables.sessions,
            # to_regclass() parses its argument as SQL: quote the (validated) names.
            "schema_table": f'"{SCHEMA_TABLE}"',
            "sessions": f'"{self.tables.sessions}"',
        }

    def rendered(self, query: sql.SQL | sql.Composed) -> bytes:
        """A statement's text, rendered once per store, on one line.

        psycopg would walk a composed statement on every call, and it caches the
        parsing of queries only up to 4 KiB: rendered once and joined onto one
        line, the longest statement fits. Keyed by identity: the statements live
        as long as the store.
        """
        key = id(query)
        text = self._rendered.get(key)
        if text is None:
            text = self._rendered[key] = _ONE_LINE.sub(b" ", query.as_bytes(None))
        return text

    @property
    def session_table(self) -> str:
        """Name of the sessions table."""
        return self.tables.sessions

    @property
    def events_table(self) -> str:
        """Name of the events table."""
        return self.tables.events

    def get_session_query(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None
    ) -> tuple[sql.Composed, dict[str, Any]]:
        """The statement and parameters that load one session as ``config`` asks."""
        session_id = session_id.strip() if isinstance(session_id, str) else session_id
        _codec.check_required_ids(app_name=app_name, user_id=user_id, session_id=session_id)
        params: dict[str, Any] = {
            "app_name": app_name,
            "user_id": user_id,
            "session_id": session_id,
            "limit": None,
        }
        query = self.statements.get_session
        if config is not None:
            params["limit"] = config.num_recent_events
            if config.after_timestamp is not None:
                params["after"] = float(config.after_timestamp)
                query = self.statements.get_session_after
        return query, params

    @staticmethod
    def session_from_row(
        app_name: str, user_id: str, session_id: str, row: Sequence[Any] | None
    ) -> Session | None:
        """Decode :attr:`ADKStatements.get_session`'s row."""
        if row is None:
            return None
        session_state, update_time, revision, app_state, user_state, events = row
        return _codec.build_session(
            session_id=session_id,
            app_name=app_name,
            user_id=user_id,
            session_state=session_state,
            app_state=app_state,
            user_state=user_state,
            update_time=update_time,
            revision=revision,
            events=_codec.decode_events(events),
        )

    def list_sessions_query(
        self,
        app_name: str,
        user_id: str | None,
        limit: int | None = None,
        cursor: str | None = None,
        order_by: str = "update_time",
    ) -> tuple[sql.Composed, dict[str, Any]]:
        """The statement and parameters that list an app's (or a user's) sessions."""
        _codec.check_required_ids(app_name=app_name)
        _codec.check_ids(user_id=user_id)
        if order_by not in LIST_ORDERS:
            raise InvalidValueError(f"order_by must be one of {LIST_ORDERS}, got {order_by!r}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidValueError(f"limit must be a positive int or None, got {limit!r}")
        params: dict[str, Any] = {
            "app_name": app_name,
            "user_id": user_id,
            # One row more than asked tells whether another page follows.
            "limit": None if limit is None else limit + 1,
        }
        if cursor is not None:
            params["after_time"], params["after_user"], params["after_id"] = _codec.decode_cursor(
                cursor, order_by
            )
        key = (user_id is not None, order_by, cursor is not None)
        return self.statements.list_sessions[key], params

    @staticmethod
    def page_from_rows(
        app_name: str, rows: Sequence[Sequence[Any]], limit: int | None, order_by: str
    ) -> _codec.SessionPage:
        """Decode :attr:`ADKStatements.list_sessions`'s rows into a page."""
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if more else rows
        sessions = [
            _codec.build_session(
                session_id=session_id,
                app_name=app_name,
                user_id=user_id,
                session_state=session_state,
                app_state=app_state,
                user_state=user_state,
                update_time=update_time,
                revision=revision,
            )
            for (
                session_id,
                user_id,
                session_state,
                update_time,
                _create_time,
                revision,
                app_state,
                user_state,
            ) in rows
        ]
        next_cursor = None
        if more:
            last = rows[-1]
            sort_time = last[3] if order_by == "update_time" else last[4]
            next_cursor = _codec.encode_cursor(order_by, sort_time, last[1], last[0])
        return _codec.SessionPage(sessions=sessions, next_cursor=next_cursor)

    def iter_events_query(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None
    ) -> tuple[sql.Composed, dict[str, Any]]:
        """The statement and parameters that stream one session's events, oldest first."""
        _, params = self.get_session_query(app_name, user_id, session_id, config)
        key = ("after" in params, params["limit"] is not None)
        return self.statements.iter_events[key], params


def append_params(session: Session, event: Event, revision: int) -> dict[str, Any]:
    """Parameters of :attr:`ADKStatements.append_event` for ``event`` on ``session``."""
    _codec.check_required_ids(
        app_name=session.app_name, user_id=session.user_id, session_id=session.id
    )
    deltas = _codec.split_state(event.actions.state_delta if event.actions else None)
    return {
        "app_name": session.app_name,
        "user_id": session.user_id,
        "session_id": session.id,
        "revision": revision,
        "event_id": event.id,
        "event": _codec.encode_event(event),
        "session_delta": deltas.session,
        "app_delta": deltas.app,
        "user_delta": deltas.user,
        "update_time": _codec.to_datetime(event.timestamp),
    }


def append_outcome(
    session: Session, event: Event, params: dict[str, Any], row: Sequence[Any] | None
) -> bool:
    """Read :attr:`ADKStatements.append_event`'s answer: stored, already stored, or why not."""
    assert row is not None  # the statement always returns one row
    new_revision, _upserts, current_revision, stored_event = row
    if new_revision is not None:
        _codec.set_revision(session, new_revision)
        session.last_update_time = params["update_time"].timestamp()
        return True
    if current_revision is None:
        raise SessionNotFoundError(f"Session {session.id} not found.")
    if stored_event is not None:
        if current_revision == params["revision"] + 1 and _same_event(stored_event, event):
            # Our own earlier attempt is the last write (its answer was lost): the
            # event is stored, and the session object catches up with it.
            _codec.set_revision(session, current_revision)
            session.last_update_time = params["update_time"].timestamp()
            return True
        return redelivery_outcome(session, event, stored_event)
    raise StaleSessionError(_STALE_MESSAGE)


def _same_event(stored_event: str, event: Event) -> bool:
    """Whether the stored JSON is this event's (compared as JSON: NaN stored as null)."""
    stored = _codec.decode_event(stored_event).model_dump_json(exclude_none=True)
    return stored == _codec.encode_event(event)


def redelivery_outcome(session: Session, event: Event, stored_event: str | None) -> bool:
    """An append met an event id already stored: a retry of that very event is a no-op.

    Returns ``False`` (nothing to do) for the same event; raises for another one.
    """
    if stored_event is not None and _same_event(stored_event, event):
        return False
    raise AlreadyExistsError(
        f"Event {event.id} is already stored in session {session.id} with other content."
    )


def check_marker_less_session(session: Session, row: Sequence[Any] | None) -> int:
    """The stored revision a session without a marker may append at, by ADK's rule.

    Such a session (built by hand, or loaded by another service) is current if
    storage has not been updated after its ``last_update_time``, or if its last
    event is the last one stored.
    """
    if row is None:
        raise SessionNotFoundError(f"Session {session.id} not found.")
    revision, update_time, last_event_id = row
    if update_time.timestamp() > session.last_update_time:
        expected_last = session.events[-1].id if session.events else None
        if expected_last != last_event_id:
            raise StaleSessionError(_STALE_MESSAGE)
    revision_value: int = revision
    return revision_value


class EventBatch:
    """Events bound for one session in bulk: their JSON lines and their merged state delta.

    Applying the events one by one amounts to one flat update per scope, so the
    batch keeps only the merged delta and the last timestamp, never the events.
    """

    def __init__(self) -> None:
        self.count = 0
        self.delta: dict[str, Any] = {}
        self.last_timestamp: float | None = None

    def add(self, event: Event) -> str:
        """Account for ``event``; return the JSON line to stage for it."""
        if event.partial:
            raise InvalidValueError(f"event {event.id} is partial; partial events are not stored")
        event = _codec.without_temp_keys(event)
        line = _codec.encode_event(event)
        if event.actions and event.actions.state_delta:
            self.delta.update(event.actions.state_delta)
        self.last_timestamp = event.timestamp
        self.count += 1
        return line

    def params(self, app_name: str, user_id: str, session_id: str) -> dict[str, Any]:
        """Parameters of :attr:`ADKStatements.import_events` for the events added."""
        assert self.last_timestamp is not None  # only called after at least one add()
        deltas = _codec.split_state(self.delta)
        return {
            "app_name": app_name,
            "user_id": user_id,
            "session_id": session_id,
            "session_delta": deltas.session,
            "app_delta": deltas.app,
            "user_delta": deltas.user,
            "update_time": _codec.to_datetime(self.last_timestamp),
        }


def import_result(row: Sequence[Any]) -> _codec.ImportResult:
    """Read :attr:`ADKStatements.import_staged`'s answer."""
    kinds = ("app_state", "user_state", "session", "event")
    staged = [int(n) for n in row[4].split(",")]
    imported = dict(zip(kinds, (int(n) for n in row[:4]), strict=True))
    skipped = {
        kind: (0 if kind in ("app_state", "user_state") else total - imported[kind])
        for kind, total in zip(kinds, staged, strict=True)
    }
    return _codec.ImportResult(imported=imported, skipped=skipped)


def staged_line(line: str | bytes) -> str | None:
    """One JSON Lines line ready to stage, or ``None`` for a blank line."""
    text = line.decode() if isinstance(line, bytes) else line
    text = text.strip()
    return text or None


def recorded_version(recorded: int | None, sessions_exist: bool) -> int:
    """The schema version a database is at: recorded, 1 for unrecorded tables, 0 for none."""
    if recorded is not None:
        return recorded
    return 1 if sessions_exist else 0


def pending_versions(current: int) -> range:
    """The migrations to run from ``current``; refuses a version from a newer library."""
    if current > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database schema is at version {current}, newer than the {SCHEMA_VERSION} "
            "this version of sqlspec knows; upgrade sqlspec instead of migrating"
        )
    return range(current + 1, SCHEMA_VERSION + 1)


def prune_params(
    older_than: timedelta | None, app_name: str | None, user_id: str | None
) -> dict[str, Any]:
    """Parameters of the prune statements."""
    _codec.check_ids(app_name=app_name, user_id=user_id)
    if older_than is not None and (
        not isinstance(older_than, timedelta) or older_than < timedelta(0)
    ):
        raise InvalidValueError(f"older_than must be a non-negative timedelta, got {older_than!r}")
    idle_since = None if older_than is None else datetime.now(timezone.utc) - older_than
    return {"app_name": app_name, "user_id": user_id, "idle_since": idle_since}
