"""ADK models to and from what a store writes and reads; shared by every store.

Everything here is pure: validation, state splitting, JSON encoding and decoding,
and building :class:`~google.adk.sessions.Session` objects. The stores only add
the I/O, so the sync and async twins cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pydantic_core
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import ListSessionsResponse
from google.adk.sessions.session import Session
from google.adk.sessions.state import State

from sqlspec.exceptions import CorruptDataError, InvalidValueError

__all__ = [
    "ID_MAX_LENGTH",
    "ImportResult",
    "SessionPage",
    "StateDeltas",
    "build_session",
    "check_ids",
    "decode_events",
    "decode_state",
    "encode_event",
    "encode_state",
    "new_session_id",
    "split_state",
    "to_datetime",
]

logger = logging.getLogger("sqlspec.extensions.adk")

#: Length of the id columns (``VARCHAR(128)``), checked before any I/O.
ID_MAX_LENGTH = 128
#: Event fields stored in ``VARCHAR(256)`` columns.
EVENT_TEXT_MAX_LENGTH = 256


def check_ids(**ids: str | None) -> None:
    """Refuse ids PostgreSQL cannot store in their columns, before anything is sent.

    ``None`` passes: it stands for "any" where an id is optional (list filters).
    """
    for name, value in ids.items():
        if value is not None:
            check_id(name, value)


def check_required_ids(**ids: str) -> None:
    """As :func:`check_ids`, for ids that must be given."""
    for name, value in ids.items():
        check_id(name, value)


def check_id(name: str, value: object) -> None:
    """Refuse one id PostgreSQL cannot store in its column."""
    if not isinstance(value, str):
        raise InvalidValueError(f"{name} must be a str, got {type(value).__name__}")
    if not _is_utf8(value):
        raise InvalidValueError(f"{name} holds a lone surrogate, which is not valid UTF-8")
    if len(value) > ID_MAX_LENGTH:
        raise InvalidValueError(
            f"{name} is {len(value)} characters long; the column holds at most {ID_MAX_LENGTH}"
        )
    if "\x00" in value:
        raise InvalidValueError(f"{name} contains a NUL character, which PostgreSQL cannot store")


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def new_session_id(session_id: str | None) -> str:
    """The id a new session gets: the caller's, stripped as ADK does, or a fresh UUID."""
    if session_id is not None and not isinstance(session_id, str):
        raise InvalidValueError(f"session_id must be a str, got {type(session_id).__name__}")
    session_id = session_id.strip() if session_id else None
    return session_id or str(uuid.uuid4())


@dataclass(frozen=True)
class StateDeltas:
    """A state mapping split by scope, each part JSON-encoded (``None`` when empty)."""

    app: str | None
    user: str | None
    session: str | None


def encode_state(value: Mapping[str, Any]) -> str:
    """Encode state as JSON the way ADK's database service does.

    A value with no JSON form is stored as its string form, with a warning, as
    ADK does. NaN and infinities are passed through for PostgreSQL to refuse,
    so that the store raises :class:`~sqlspec.InvalidValueError` instead of
    silently storing ``null``.
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
    return positional_floats(readable(text))


#: A JSON string (skipped), or a number written with a positive exponent (group 1).
_STRING_OR_EXPONENT_NUMBER = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?\d+(?:\.\d+)?e\+\d+)')


def positional_floats(text: str) -> str:
    """``text`` with floats of 1e16 and more written out in full, with a fraction.

    State is ``jsonb``, which keeps numbers as ``numeric``: ``1e+16`` reads back
    as the integer ``10000000000000000``. ``10000000000000000.0`` keeps its
    scale, so it reads back as the float that was written.
    """
    if "e+" not in text:
        return text
    return _STRING_OR_EXPONENT_NUMBER.sub(_positional, text)


def _positional(match: re.Match[str]) -> str:
    number = match.group(1)
    if number is None:
        return match.group(0)
    return f"{decimal.Decimal(number):f}.0"


def split_state(state: Mapping[str, Any] | None) -> StateDeltas:
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
    return StateDeltas(
        app=encode_state(app) if app else None,
        user=encode_state(user) if user else None,
        session=encode_state(session) if session else None,
    )


def decode_state(text: str | None) -> dict[str, Any]:
    """Decode a JSONB state column read as text."""
    if not text:
        return {}
    value: dict[str, Any] = pydantic_core.from_json(text)
    return value


def encode_event(event: Event) -> str:
    """Encode an event losslessly, in ADK's own JSON form (every field, exact timestamp).

    Event fields longer than their columns are refused here, before any I/O.
    """
    for name in ("invocation_id", "author", "branch", "error_code"):
        value = getattr(event, name, None)
        if isinstance(value, str) and len(value) > EVENT_TEXT_MAX_LENGTH:
            raise InvalidValueError(
                f"event.{name} is {len(value)} characters long; "
                f"the column holds at most {EVENT_TEXT_MAX_LENGTH}"
            )
    if len(event.id) > ID_MAX_LENGTH:
        raise InvalidValueError(
            f"event.id is {len(event.id)} characters long; the column holds at most {ID_MAX_LENGTH}"
        )
    try:
        text = _event_json(event)
    except (pydantic_core.PydanticSerializationError, ValueError) as exc:
        raise InvalidValueError(f"event {event.id} cannot be stored as JSON: {exc}") from exc
    return readable(text)


def _event_json(event: Event) -> str:
    """The event's JSON; a state delta with no JSON form is written as state is."""
    try:
        return event.model_dump_json(exclude_none=True)
    except pydantic_core.PydanticSerializationError:
        delta = event.actions.state_delta if event.actions else None
        if not delta:
            raise
        stored = pydantic_core.from_json(encode_state(delta))
        return with_state_delta(event, stored).model_dump_json(exclude_none=True)


#: JSON with fewer brackets than this cannot nest deep enough to need a check.
_NESTING_CHECKED_FROM = 128


def readable(text: str) -> str:
    """``text``, if it can be read back: refuse JSON nested deeper than pydantic parses.

    pydantic stops at about 200 levels; such JSON would be stored, then fail
    every read. Counting brackets is cheap, so only large documents are parsed.
    """
    if text.count("{") + text.count("[") < _NESTING_CHECKED_FROM:
        return text
    try:
        pydantic_core.from_json(text)
    except ValueError as exc:
        raise InvalidValueError(f"value nested too deeply to be read back: {exc}") from exc
    return text


def decode_events(texts: Sequence[str] | None) -> list[Event]:
    """Decode events from their JSON texts, as the server aggregates them.

    One ``Event.model_validate_json`` per event: validating each text is about
    twice as fast as validating the JSON array as a ``list[Event]``.
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
        return f"event {pydantic_core.from_json(text).get('id')!r}"
    except ValueError:
        return "an event that is not JSON"


def to_datetime(timestamp: float) -> datetime:
    """An epoch timestamp as the aware datetime a ``TIMESTAMPTZ`` column keeps (microseconds)."""
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidValueError(f"timestamp {timestamp!r} is not a storable time") from exc


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
    """Build the :class:`Session` a read returns, stamped with its storage revision."""
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


class SessionPage(ListSessionsResponse):
    """A page of ``list_sessions``: the sessions, and the cursor of the next page.

    ``next_cursor`` is ``None`` on the last page (and whenever no ``limit`` was given).
    """

    next_cursor: str | None = None


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
    """The event as an append would store it: ``temp:`` keys dropped from its state delta."""
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


@dataclass(frozen=True)
class ImportResult:
    """What a JSON Lines import took and left, per kind of line.

    ``imported`` counts rows written; ``skipped`` counts lines not written because
    the row already existed (or, for events, because their session exists nowhere).
    """

    imported: dict[str, int]
    skipped: dict[str, int]
