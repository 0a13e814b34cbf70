"""What the sync and async session stores share: checks, parameters, and reading answers.

The twins differ only in how they reach the server; everything they send and
everything they make of the answer is decided here, once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session

from sqlspec.adapters.psycopg.adk import _values
from sqlspec.adapters.psycopg.adk._statement import Statement
from sqlspec.adapters.psycopg.adk.session import _encoding
from sqlspec.adapters.psycopg.adk.session._schema import SessionSchema, TableNames
from sqlspec.adapters.psycopg.adk.session._statements import (
    LIST_ORDERS,
    AppendRefusal,
    ListedSession,
    SessionRevision,
    SessionStatements,
    StoredSession,
)
from sqlspec.exceptions import ImproperConfigurationError, InvalidValueError
from sqlspec.extensions.adk.session import _codec
from sqlspec.extensions.adk.session._types import HeldEvents, SessionPage

__all__ = [
    "EventBatch",
    "SessionStoreBase",
    "append_params",
    "appended",
    "check_marker_less_session",
    "duplicate_events_error",
    "page",
    "prune_params",
    "refused_append_outcome",
    "session_key",
]


_STALE_MESSAGE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)


class SessionStoreBase:
    """Table names, schema, statements and the pure half of every session store call."""

    def __init__(
        self,
        *,
        session_table: str,
        events_table: str,
        app_state_table: str,
        user_state_table: str,
        session_ttl: timedelta | None,
        partitioned_events: bool = False,
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
        self.schema = SessionSchema(self.tables, partitioned=partitioned_events)
        self.statements = SessionStatements(self.tables, partitioned=partitioned_events)

    @property
    def session_table(self) -> str:
        """Name of the sessions table."""
        return self.tables.sessions

    @property
    def events_table(self) -> str:
        """Name of the events table."""
        return self.tables.events

    def create_params(
        self,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None,
        session_id: str | None,
        ttl: timedelta | None,
    ) -> dict[str, Any]:
        """Parameters of ``create_session``, checked before anything is sent."""
        session_id = _codec.new_session_id(session_id)
        _values.check_required_ids(app_name=app_name, user_id=user_id, session_id=session_id)
        deltas = _encoding.split_state(state)
        now = datetime.now(timezone.utc)
        return {
            "app_name": app_name,
            "user_id": user_id,
            "session_id": session_id,
            "session_state": deltas.session,
            "app_delta": deltas.app,
            "user_delta": deltas.user,
            "now": now,
            "expire_time": self._expire_time(now, ttl),
        }

    def _expire_time(self, now: datetime, ttl: timedelta | None) -> datetime | None:
        """When a session created at ``now`` expires: after ``ttl``, else the store's default."""
        ttl = ttl if ttl is not None else self.session_ttl
        if ttl is None:
            return None
        if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
            raise InvalidValueError(f"ttl must be a positive timedelta, got {ttl!r}")
        return now + ttl

    def get_params(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None
    ) -> tuple[Statement[StoredSession], dict[str, Any]]:
        """The statement and parameters that load one session as ``config`` asks."""
        params = session_key(app_name, user_id, session_id)
        params["limit"] = None
        if config is not None:
            params["limit"] = config.num_recent_events
            if config.after_timestamp is not None:
                params["after"] = float(config.after_timestamp)
        statement = self.statements.get_session(
            after="after" in params, newest=params["limit"] is not None
        )
        return statement, params

    def refresh_params(
        self, app_name: str, user_id: str, session_id: str, held: HeldEvents | None
    ) -> dict[str, Any]:
        """Parameters of ``refresh_session`` for a reader holding ``held``."""
        params = session_key(app_name, user_id, session_id)
        params["held"] = held is not None
        params["incarnation"] = held.incarnation if held else None
        params["revision"] = held.revision if held else 0
        params["last_event_id"] = held.last_event_id if held else None
        return params

    def iter_events_params(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None
    ) -> tuple[Statement[str], dict[str, Any]]:
        """The statement and parameters that stream one session's events, oldest first."""
        _, params = self.get_params(app_name, user_id, session_id, config)
        statement = self.statements.iter_events(
            after="after" in params, newest=params["limit"] is not None
        )
        return statement, params

    def list_params(
        self,
        app_name: str,
        user_id: str | None,
        limit: int | None,
        cursor: str | None,
        order_by: str,
    ) -> tuple[Statement[ListedSession], dict[str, Any]]:
        """The statement and parameters that list an app's (or a user's) sessions."""
        _values.check_required_ids(app_name=app_name)
        _values.check_ids(user_id=user_id)
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
        statement = self.statements.list_sessions(
            of_user=user_id is not None, order_by=order_by, paged=cursor is not None
        )
        return statement, params


def session_key(app_name: str, user_id: str, session_id: str) -> dict[str, Any]:
    """The parameters naming one session, checked; the id is stripped as ADK does."""
    session_id = session_id.strip() if isinstance(session_id, str) else session_id
    _values.check_required_ids(app_name=app_name, user_id=user_id, session_id=session_id)
    return {"app_name": app_name, "user_id": user_id, "session_id": session_id}


def page(
    app_name: str, rows: Sequence[ListedSession], limit: int | None, order_by: str
) -> SessionPage:
    """A page of listed sessions, with the cursor of the next one if more follow."""
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if more else rows
    return SessionPage(
        sessions=[row.to_session(app_name) for row in rows],
        next_cursor=rows[-1].cursor(order_by) if more else None,
    )


def append_params(session: Session, event: Event, revision: int) -> dict[str, Any]:
    """Parameters of ``append_event`` for ``event`` on ``session`` at ``revision``."""
    _values.check_required_ids(
        app_name=session.app_name, user_id=session.user_id, session_id=session.id
    )
    deltas = _encoding.split_state(event.actions.state_delta if event.actions else None)
    return {
        "app_name": session.app_name,
        "user_id": session.user_id,
        "session_id": session.id,
        "revision": revision,
        "event_id": event.id,
        "event": _encoding.encode_event(event),
        "event_data": _encoding.encode_event_data(event),
        **deltas.params(),
        "update_time": _values.to_timestamptz(event.timestamp),
    }


def appended(session: Session, params: dict[str, Any], revision: int) -> bool:
    """The event of ``params`` is stored at ``revision``: the session object moves there."""
    _codec.set_revision(session, revision)
    session.last_update_time = params["update_time"].timestamp()
    return True


def refused_append_outcome(
    session: Session, event: Event, params: dict[str, Any], refusal: AppendRefusal | None
) -> bool:
    """Read why an append wrote nothing (:func:`append_refused`).

    A retry of an event already stored is a no-op (``False``), and when its first
    attempt is the last write, whose answer was lost, the session object catches
    up with it (``True``). Otherwise it raises: no session, a stale one, or another
    event under this id.
    """
    if refusal is None:
        raise SessionNotFoundError(f"Session {session.id} not found.")
    if refusal.stored_event is None:
        raise StaleSessionError(_STALE_MESSAGE)
    if not _same_event(refusal.stored_event, event):
        raise AlreadyExistsError(
            f"Event {event.id} is already stored in session {session.id} with other content."
        )
    if refusal.current_revision == params["revision"] + 1:
        return appended(session, params, refusal.current_revision)
    return False


def _same_event(stored_event: str, event: Event) -> bool:
    """Whether the stored JSON is this event's (compared as JSON: NaN stored as null)."""
    stored = _codec.decode_event(stored_event).model_dump_json(exclude_none=True)
    return stored == _encoding.encode_event(event)


def check_marker_less_session(session: Session, row: SessionRevision | None) -> int:
    """The stored revision a session without a marker may append at, by ADK's rule.

    Such a session (built by hand, or loaded by another service) is current if
    storage has not been updated after its ``last_update_time``, or if its last
    event is the last one stored.
    """
    if row is None:
        raise SessionNotFoundError(f"Session {session.id} not found.")
    if row.update_time.timestamp() > session.last_update_time:
        expected_last = session.events[-1].id if session.events else None
        if expected_last != row.last_event_id:
            raise StaleSessionError(_STALE_MESSAGE)
    return row.revision


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
        line = _encoding.encode_event(event)
        if event.actions and event.actions.state_delta:
            self.delta.update(event.actions.state_delta)
        self.last_timestamp = event.timestamp
        self.count += 1
        return line

    def params(self, app_name: str, user_id: str, session_id: str) -> dict[str, Any]:
        """Parameters of ``import_events`` for the events added."""
        assert self.last_timestamp is not None  # only called after at least one add()
        deltas = _encoding.split_state(self.delta)
        return {
            "app_name": app_name,
            "user_id": user_id,
            "session_id": session_id,
            **deltas.params(),
            "update_time": _values.to_timestamptz(self.last_timestamp),
        }


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


def prune_params(
    older_than: timedelta | None, app_name: str | None, user_id: str | None
) -> dict[str, Any]:
    """Parameters of the prune statements."""
    _values.check_ids(app_name=app_name, user_id=user_id)
    if older_than is not None and (
        not isinstance(older_than, timedelta) or older_than < timedelta(0)
    ):
        raise InvalidValueError(f"older_than must be a non-negative timedelta, got {older_than!r}")
    idle_since = None if older_than is None else datetime.now(timezone.utc) - older_than
    return {"app_name": app_name, "user_id": user_id, "idle_since": idle_since}
