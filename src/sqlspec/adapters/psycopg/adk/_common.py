"""What the sync and async psycopg stores share: statement parameters, row decoding, errors.

The twins differ only in how they reach the server; everything they send and
everything they make of the answer is decided here, once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from psycopg import sql

from sqlspec.adapters.psycopg.adk._sql import ADKStatements, TableNames
from sqlspec.exceptions import InvalidValueError, MissingTablesError
from sqlspec.extensions.adk import _codec

__all__ = [
    "StoreBase",
    "append_outcome",
    "append_params",
    "check_marker_less_session",
    "translate_errors",
]

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
    except psycopg.DataError as exc:
        raise InvalidValueError(
            f"PostgreSQL cannot store a value as given, nothing was written: {exc}. "
            "Text may not contain NUL (\\u0000); NaN and Infinity are not JSON; "
            "ids hold at most 128 characters."
        ) from exc


class StoreBase:
    """Table names, statements and row decoding common to both stores."""

    def __init__(
        self, session_table: str, events_table: str, app_state_table: str, user_state_table: str
    ) -> None:
        self.tables = TableNames(
            sessions=session_table,
            events=events_table,
            app_states=app_state_table,
            user_states=user_state_table,
        )
        self.statements = ADKStatements(self.tables)

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
        session_id = session_id.strip() if session_id else session_id
        _codec.check_ids(app_name=app_name, user_id=user_id, session_id=session_id)
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
        self, app_name: str, user_id: str | None
    ) -> tuple[sql.Composed, dict[str, Any]]:
        """The statement and parameters that list an app's (or a user's) sessions."""
        _codec.check_ids(app_name=app_name, user_id=user_id)
        if user_id is None:
            return self.statements.list_sessions_of_app, {"app_name": app_name}
        return self.statements.list_sessions_of_user, {"app_name": app_name, "user_id": user_id}

    @staticmethod
    def sessions_from_rows(app_name: str, rows: Sequence[Sequence[Any]]) -> list[Session]:
        """Decode :attr:`ADKStatements.list_sessions_of_app`'s rows."""
        return [
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
                revision,
                app_state,
                user_state,
            ) in rows
        ]


def append_params(session: Session, event: Event, revision: int) -> dict[str, Any]:
    """Parameters of :attr:`ADKStatements.append_event` for ``event`` on ``session``."""
    _codec.check_ids(app_name=session.app_name, user_id=session.user_id, session_id=session.id)
    deltas = _codec.split_state(event.actions.state_delta if event.actions else None)
    return {
        "app_name": session.app_name,
        "user_id": session.user_id,
        "session_id": session.id,
        "revision": revision,
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
    new_revision, current_revision, stored_event = row
    if new_revision is not None:
        _codec.set_revision(session, new_revision)
        session.last_update_time = params["update_time"].timestamp()
        return True
    if current_revision is None:
        raise SessionNotFoundError(f"Session {session.id} not found.")
    if stored_event is not None:
        if _codec.decode_event(stored_event) == event:
            return False
        raise AlreadyExistsError(
            f"Event {event.id} is already stored in session {session.id} with other content."
        )
    raise StaleSessionError(_STALE_MESSAGE)


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
