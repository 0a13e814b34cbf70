"""ADK session models to and from plain values; what every session store shares.

Everything here is pure and knows nothing of a database: state splitting by
scope, ADK's JSON forms of state and events, building the
:class:`~google.adk.sessions.Session` a read returns, revision markers and
listing cursors. A store adds only its own storage rules and the I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.adk.sessions.state import State

from sqlspec.exceptions import CorruptDataError, InvalidValueError
from sqlspec.extensions.adk._json import readable

__all__ = [
    "StateParts",
    "build_session",
    "check_get_session_config",
    "decode_cursor",
    "decode_event",
    "decode_events",
    "decode_state",
    "encode_cursor",
    "event_json",
    "get_revision",
    "merge_state",
    "new_session_id",
    "set_revision",
    "split_state",
    "state_json",
    "with_state_delta",
    "without_temp_keys",
]

logger = logging.getLogger("sqlspec.extensions.adk")


def check_get_session_config(config: GetSessionConfig | None) -> None:
    """Refuse a negative ``num_recent_events``.

    ``GetSessionConfig`` validates on construction only; a value assigned later
    is checked here.
    """
    if config is not None and config.num_recent_events is not None and config.num_recent_events < 0:
        raise ValueError("num_recent_events must be greater than or equal to 0.")


def new_session_id(session_id: str | None) -> str:
    """The id a new session gets: the caller's, stripped as ADK does, or a fresh UUID."""
    if session_id is not None and not isinstance(session_id, str):
        raise InvalidValueError(f"session_id must be a str, got {type(session_id).__name__}")
    session_id = session_id.strip() if session_id else None
    return session_id or str(uuid.uuid4())


@dataclass(frozen=True)
class StateParts:
    """A state mapping split by scope, prefixes removed (``None`` where a scope is empty)."""

    app: dict[str, Any] | None
    user: dict[str, Any] | None
    session: dict[str, Any] | None


def split_state(state: Mapping[str, Any] | None) -> StateParts:
    """Split a state mapping into app, user and session parts; ``temp:`` keys are dropped."""
    if state is not None and not isinstance(state, Mapping):
        raise InvalidValueError(f"state must be a dict, got {type(state).__name__}")
    if state and not all(isinstance(key, str) for key in state):
        raise InvalidValueError("state keys must be str")
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    session: dict[str, Any] = {}
    for key, value in (state or {}).items():
        if key.startswith(State.APP_PREFIX):
            app[key.removeprefix(State.APP_PREFIX)] = value
        elif key.startswith(State.USER_PREFIX):
            user[key.removeprefix(State.USER_PREFIX)] = value
        elif not key.startswith(State.TEMP_PREFIX):
            session[key] = value
    return StateParts(app=app or None, user=user or None, session=session or None)


def merge_state(
    session_state: dict[str, Any], app_state: dict[str, Any], user_state: dict[str, Any]
) -> dict[str, Any]:
    """Session state with app and user state merged back in under their prefixes."""
    merged = dict(session_state)
    for key, value in app_state.items():
        merged[State.APP_PREFIX + key] = value
    for key, value in user_state.items():
        merged[State.USER_PREFIX + key] = value
    return merged


def state_json(value: Mapping[str, Any]) -> str:
    """State as JSON, the way ADK's database service writes it.

    A value with no JSON form is written as its string form, with a warning, as
    ADK does. NaN and infinities are passed through for the store to refuse,
    so that nothing is silently stored as ``null``.
    """
    try:
        text = pydantic_core.to_json(value, inf_nan_mode="constants").decode()
    except pydantic_core.PydanticSerializationError:
        logger.warning(
            "Some session state values are not JSON-serializable; their string form "
            "is stored instead.",
            exc_info=True,
        )
        try:
            text = pydantic_core.to_json(
                value, inf_nan_mode="constants", serialize_unknown=True
            ).decode()
        except (pydantic_core.PydanticSerializationError, ValueError) as exc:
            raise InvalidValueError(f"session state cannot be stored as JSON: {exc}") from exc
    return readable(text)


def decode_state(text: str | None) -> dict[str, Any]:
    """Decode state from its JSON text; nothing stored is ``{}``."""
    if not text:
        return {}
    value: dict[str, Any] = pydantic_core.from_json(text)
    return value


def event_json(event: Event) -> str:
    """The event in ADK's own JSON form: every field, the exact float timestamp.

    A state delta with no JSON form is written as state is (string forms).
    """
    try:
        text = _event_json(event)
    except (pydantic_core.PydanticSerializationError, ValueError) as exc:
        raise InvalidValueError(f"event {event.id} cannot be stored as JSON: {exc}") from exc
    return readable(text)


def _event_json(event: Event) -> str:
    try:
        return event.model_dump_json(exclude_none=True)
    except pydantic_core.PydanticSerializationError:
        delta = event.actions.state_delta if event.actions else None
        if not delta:
            raise
        stored = pydantic_core.from_json(state_json(delta))
        return with_state_delta(event, stored).model_dump_json(exclude_none=True)


def decode_events(texts: Sequence[str] | None) -> list[Event]:
    """Decode events from their JSON texts.

    One ``Event.model_validate_json`` per event: validating each text is about
    twice as fast as validating a JSON array as a ``list[Event]``.
    """
    return [decode_event(text) for text in texts or ()]


def decode_event(text: str) -> Event:
    """Decode one event from its JSON text; a row no ADK Event can come from is refused."""
    try:
        return Event.model_validate_json(text)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise CorruptDataError(
            f"a stored event cannot be read back as an ADK Event (it was not written by "
            f"this library, or was changed since): {_event_id(text)}: {exc}"
        ) from exc


def _event_id(text: str) -> str:
    try:
        value = pydantic_core.from_json(text)
    except ValueError:
        return "an event that is not JSON"
    if not isinstance(value, dict):
        return "an event that is not a JSON object"
    return f"event {value.get('id')!r}"


def build_session(
    *,
    session_id: str,
    app_name: str,
    user_id: str,
    session_state: str | None,
    app_state: str | None,
    user_state: str | None,
    update_time: datetime,
    revision: int,
    events: list[Event] | None = None,
) -> Session:
    """Build the :class:`Session` a read returns from JSON state, stamped with its revision."""
    session = Session(
        id=session_id,
        app_name=app_name,
        user_id=user_id,
        state=merge_state(
            decode_state(session_state), decode_state(app_state), decode_state(user_state)
        ),
        events=events or [],
        last_update_time=update_time.timestamp(),
    )
    set_revision(session, revision)
    return session


def set_revision(session: Session, revision: int) -> None:
    """Record the storage revision the in-memory session reflects."""
    session._storage_update_marker = str(revision)


def get_revision(session: Session) -> int | None:
    """The storage revision a session was loaded at, or ``None`` for a session built by hand."""
    marker = session._storage_update_marker
    if marker is None:
        return None
    try:
        return int(marker)
    except ValueError:
        return None


def encode_cursor(order_by: str, time: datetime, user_id: str, session_id: str) -> str:
    """An opaque keyset cursor: the listing order and the last session's sort key."""
    raw = json.dumps([order_by, time.isoformat(), user_id, session_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order_by: str) -> tuple[datetime, str, str]:
    """The sort key a cursor resumes after; refuses a cursor of another listing order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        order, time, user_id, session_id = json.loads(base64.urlsafe_b64decode(padded))
        resume_at = datetime.fromisoformat(time)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidValueError(f"not a list_sessions cursor: {cursor!r}") from exc
    if order != order_by:
        raise InvalidValueError(
            f"this cursor pages a listing ordered by {order!r}, not by {order_by!r}"
        )
    return resume_at, str(user_id), str(session_id)


def without_temp_keys(event: Event) -> Event:
    """The event as an append stores it: ``temp:`` keys dropped from its state delta."""
    delta = event.actions.state_delta if event.actions else None
    if not delta or not any(key.startswith(State.TEMP_PREFIX) for key in delta):
        return event
    kept = {k: v for k, v in delta.items() if not k.startswith(State.TEMP_PREFIX)}
    return with_state_delta(event, kept)


def with_state_delta(event: Event, delta: dict[str, Any]) -> Event:
    """A copy of ``event`` with another state delta; the caller's event is left as it is."""
    return event.model_copy(
        update={"actions": event.actions.model_copy(update={"state_delta": delta})}
    )
