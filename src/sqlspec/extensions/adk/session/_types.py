"""The values session stores return beyond ADK's own models."""

from __future__ import annotations

from dataclasses import dataclass

from google.adk.events.event import Event
from google.adk.sessions.base_session_service import ListSessionsResponse
from google.adk.sessions.session import Session

__all__ = ["HeldEvents", "ImportResult", "SessionPage", "SessionUpdate"]


class SessionPage(ListSessionsResponse):
    """A page of ``list_sessions``: the sessions, and the cursor of the next page.

    ``next_cursor`` is ``None`` on the last page (and whenever no ``limit`` was given).
    """

    next_cursor: str | None = None


@dataclass(frozen=True)
class ImportResult:
    """What a JSON Lines import took and left, per kind of line.

    ``imported`` counts rows written; ``skipped`` counts lines not written because
    the row already existed (or, for events, because their session exists nowhere).
    """

    imported: dict[str, int]
    skipped: dict[str, int]


@dataclass(frozen=True)
class HeldEvents:
    """What a reader holds of a session's events, for a store to send only what it lacks.

    ``incarnation`` and ``revision`` are those of the :class:`SessionUpdate` the
    events came from; ``last_event_id`` is the id of the last of them (``None``: none).
    """

    incarnation: str | None
    revision: int
    last_event_id: str | None


@dataclass(frozen=True)
class SessionUpdate:
    """A session as a store read it for a reader holding some of its events.

    ``session`` has the merged state and the revision marker, and no events.
    ``events`` are, oldest first, every event of the session when ``whole``, else
    those written since the revision held (all after the last event held).
    ``incarnation`` tells this session from an earlier one of the same key
    (``None`` for a session stored before the schema had it). ``event_bytes`` is
    the size of ``events``' stored JSON.
    """

    session: Session
    incarnation: str | None
    whole: bool
    events: list[Event]
    event_bytes: int
