"""The store interface the session service is written against.

A store keeps sessions, events and app/user state; the service adds ADK's
in-memory semantics on top (partial events, ``temp:`` keys, the session object).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal, Protocol

from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session

from sqlspec.extensions.adk.session._types import HeldEvents, SessionPage, SessionUpdate

__all__ = ["AsyncADKStore"]


class AsyncADKStore(Protocol):
    """A session store; the service calls nothing else of it."""

    is_async: ClassVar[Literal[True]]  # SYNC: True -> False

    async def create_tables(self) -> None: ...

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        ttl: timedelta | None = None,
    ) -> Session: ...

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None: ...

    async def refresh_session(
        self, *, app_name: str, user_id: str, session_id: str, held: HeldEvents | None
    ) -> SessionUpdate | None: ...

    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        order_by: str = "update_time",
    ) -> SessionPage: ...

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> bool: ...

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]: ...

    async def append_event(self, session: Session, event: Event) -> bool: ...

    async def close(self) -> None: ...
