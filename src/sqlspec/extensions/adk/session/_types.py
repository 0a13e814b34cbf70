"""The values session stores return beyond ADK's own models."""

from __future__ import annotations

from dataclasses import dataclass

from google.adk.sessions.base_session_service import ListSessionsResponse

__all__ = ["ImportResult", "SessionPage"]


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
