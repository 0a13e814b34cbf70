"""Session state and events as the session tables store them.

State is ``jsonb``, whose numbers are ``numeric``: it goes through
:func:`~sqlspec.adapters.psycopg.adk._values.jsonb_text` so floats read back as
the floats they were. Event fields are checked against their columns' widths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.adk.events.event import Event

from sqlspec.adapters.psycopg.adk._values import ID_MAX_LENGTH, TEXT_FIELD_MAX_LENGTH, jsonb_text
from sqlspec.adapters.psycopg.adk.session._schema import EVENT_COLUMNS
from sqlspec.exceptions import InvalidValueError
from sqlspec.extensions.adk._json import readable
from sqlspec.extensions.adk.session import _codec

__all__ = ["StateDeltas", "encode_event", "encode_event_data", "encode_state", "split_state"]

#: Event fields stored in ``VARCHAR(256)`` columns.
_TEXT_FIELDS = ("invocation_id", "author", "branch", "error_code")
#: Event fields with a column of their own; ``event_data`` holds the others.
_COLUMN_FIELDS = {"id", *(field for _, field, _ in EVENT_COLUMNS)}


def encode_state(value: Mapping[str, Any]) -> str:
    """State as the ``jsonb`` text a state column stores."""
    return jsonb_text(_codec.state_json(value))


@dataclass(frozen=True)
class StateDeltas:
    """A state mapping split by scope, each part as ``jsonb`` text (``None`` when empty)."""

    app: str | None
    user: str | None
    session: str | None

    def params(self) -> dict[str, str | None]:
        """The deltas as the statements that merge them name their parameters."""
        return {"session_delta": self.session, "app_delta": self.app, "user_delta": self.user}


def split_state(state: Mapping[str, Any] | None) -> StateDeltas:
    """Split state by scope (``temp:`` keys dropped) and encode each part for its column."""
    parts = _codec.split_state(state)
    return StateDeltas(
        app=encode_state(parts.app) if parts.app else None,
        user=encode_state(parts.user) if parts.user else None,
        session=encode_state(parts.session) if parts.session else None,
    )


def encode_event(event: Event) -> str:
    """The event's JSON, after refusing fields longer than their columns."""
    for name in _TEXT_FIELDS:
        value = getattr(event, name, None)
        if isinstance(value, str) and len(value) > TEXT_FIELD_MAX_LENGTH:
            raise InvalidValueError(
                f"event.{name} is {len(value)} characters long; "
                f"the column holds at most {TEXT_FIELD_MAX_LENGTH}"
            )
    if len(event.id) > ID_MAX_LENGTH:
        raise InvalidValueError(
            f"event.id is {len(event.id)} characters long; the column holds at most {ID_MAX_LENGTH}"
        )
    return _codec.event_json(event)


def encode_event_data(event: Event) -> str:
    """The event's ``event_data``: its JSON without the fields that have a column.

    Called after :func:`encode_event`, which refuses what cannot be stored.
    """
    return readable(event.model_dump_json(exclude_none=True, exclude=_COLUMN_FIELDS))
