"""``SQLSpecSessionService``: ADK's ``BaseSessionService`` over an async or a sync store.

With an async store every method is a coroutine, as ADK expects. With a sync
store (``PsycopgSyncADKStore``) ``SQLSpecSessionService(store)`` builds a
:class:`SyncSQLSpecSessionService`, whose methods adapt to the caller:

- called where no event loop runs (a plain script), a method blocks and returns
  its result, so ``session = service.create_session(...)`` is a real ``Session``;
- called inside a running event loop (an ADK ``Runner``), it starts the blocking
  call on the loop's default executor at once and returns an awaitable of the
  result, so ``await service.get_session(...)`` works and the loop never blocks.
  The work runs whether or not it is awaited; an error nobody retrieves is
  reported by asyncio, never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar, overload

from google.adk.events.event import Event
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig
from google.adk.sessions.session import Session

from sqlspec.extensions.adk._codec import SessionPage, without_temp_keys
from sqlspec.extensions.adk._store import AsyncADKStore, SyncADKStore

__all__ = ["SQLSpecSessionService", "SyncSQLSpecSessionService"]

T = TypeVar("T")


def _check_config(config: GetSessionConfig | None) -> None:
    # GetSessionConfig validates on construction only; an assigned value is checked here.
    if config is not None and config.num_recent_events is not None and config.num_recent_events < 0:
        raise ValueError("num_recent_events must be greater than or equal to 0.")


class SQLSpecSessionService(BaseSessionService):
    """ADK session service persisting through a SQLSpec ADK store.

    Args:
        store: an async store (methods are coroutines) or a sync store (see
            :class:`SyncSQLSpecSessionService` for how its methods behave).
    """

    store: Any

    @overload
    def __new__(cls, store: AsyncADKStore) -> SQLSpecSessionService: ...

    @overload
    def __new__(cls, store: SyncADKStore) -> SyncSQLSpecSessionService: ...

    def __new__(cls, store: AsyncADKStore | SyncADKStore) -> SQLSpecSessionService:
        # No __init__: with one, type checkers would ignore the overloads above.
        chosen = SyncSQLSpecSessionService if not store.is_async else cls
        service = super().__new__(chosen if cls is SQLSpecSessionService else cls)
        service.store = store
        return service

    def _after_append(self, session: Session, event: Event, stored: bool) -> Event:
        """Once the event is stored, apply ADK's in-memory rules to the caller's objects.

        Until then they stay as they were: a failed append (stale session, bad
        value, lost connection) leaves the session and the event untouched, as
        ADK's in-memory service does, and a re-delivered event changes nothing.
        """
        if stored:
            self._apply_temp_state(session, event)
            self._trim_temp_delta_state(event)
            self._commit_event_to_session(session, event)
        return event

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        ttl: timedelta | None = None,
    ) -> Session:
        """Create a session; raises ``AlreadyExistsError`` if the id is taken.

        Beyond ADK's arguments: ``ttl`` makes the session expire that long after
        its creation (default: the store's ``session_ttl``).
        """
        store: AsyncADKStore = self.store
        return await store.create_session(
            app_name=app_name, user_id=user_id, state=state, session_id=session_id, ttl=ttl
        )

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """Load a session, merged state and the events ``config`` selects; ``None`` if absent."""
        _check_config(config)
        store: AsyncADKStore = self.store
        return await store.get_session(
            app_name=app_name, user_id=user_id, session_id=session_id, config=config
        )

    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        order_by: str = "update_time",
    ) -> SessionPage:
        """Sessions of an app (or one user) without events, oldest update first.

        Beyond ADK's arguments: ``limit`` pages the listing, ``cursor`` (a page's
        ``next_cursor``) resumes it, ``order_by`` may be ``"create_time"``.
        """
        store: AsyncADKStore = self.store
        return await store.list_sessions(
            app_name=app_name, user_id=user_id, limit=limit, cursor=cursor, order_by=order_by
        )

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete a session and its events."""
        store: AsyncADKStore = self.store
        await store.delete_session(app_name=app_name, user_id=user_id, session_id=session_id)

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's ``user:`` state with the prefix removed; ``{}`` if none."""
        store: AsyncADKStore = self.store
        return await store.get_user_state(app_name=app_name, user_id=user_id)

    async def append_event(self, session: Session, event: Event) -> Event:
        """Persist ``event`` and its state delta, then add it to ``session``.

        Raises ``StaleSessionError`` if another writer appended since ``session``
        was loaded, and ``SessionNotFoundError`` if it no longer exists.
        """
        if event.partial:
            return event
        store: AsyncADKStore = self.store
        stored = await store.append_event(session, without_temp_keys(event))
        return self._after_append(session, event, stored)

    async def close(self) -> None:
        """Close the store's connection pool."""
        store: AsyncADKStore = self.store
        await store.close()

    async def __aenter__(self) -> SQLSpecSessionService:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()


class SyncSQLSpecSessionService(SQLSpecSessionService):
    """The service over a sync store; see the module docstring for how calls behave.

    Each method returns its result directly where no event loop runs, and an
    awaitable of it inside a running loop. The annotations describe the direct
    form, the one a sync caller sees.
    """

    store: SyncADKStore

    def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        context = contextvars.copy_context()
        future = loop.run_in_executor(None, functools.partial(context.run, fn, *args, **kwargs))
        return future  # type: ignore[return-value]  # awaitable form, see the class docstring

    def create_session(  # type: ignore[override]
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        ttl: timedelta | None = None,
    ) -> Session:
        """Create a session; raises ``AlreadyExistsError`` if the id is taken."""
        return self._call(
            self.store.create_session,
            app_name=app_name,
            user_id=user_id,
            state=state,
            session_id=session_id,
            ttl=ttl,
        )

    def get_session(  # type: ignore[override]
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """Load a session, merged state and the events ``config`` selects; ``None`` if absent."""
        _check_config(config)
        return self._call(
            self.store.get_session,
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            config=config,
        )

    def list_sessions(  # type: ignore[override]
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        order_by: str = "update_time",
    ) -> SessionPage:
        """Sessions of an app (or one user) without events; paging as the async service."""
        return self._call(
            self.store.list_sessions,
            app_name=app_name,
            user_id=user_id,
            limit=limit,
            cursor=cursor,
            order_by=order_by,
        )

    def delete_session(  # type: ignore[override]
        self, *, app_name: str, user_id: str, session_id: str
    ) -> None:
        """Delete a session and its events."""
        return self._call(self._delete_session, app_name, user_id, session_id)

    def _delete_session(self, app_name: str, user_id: str, session_id: str) -> None:
        self.store.delete_session(app_name=app_name, user_id=user_id, session_id=session_id)

    def get_user_state(  # type: ignore[override]
        self, *, app_name: str, user_id: str
    ) -> dict[str, Any]:
        """The user's ``user:`` state with the prefix removed; ``{}`` if none."""
        return self._call(self.store.get_user_state, app_name=app_name, user_id=user_id)

    def append_event(self, session: Session, event: Event) -> Event:  # type: ignore[override]
        """Persist ``event`` and its state delta, then add it to ``session``."""
        return self._call(self._append_event, session, event)

    def _append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        stored = self.store.append_event(session, without_temp_keys(event))
        return self._after_append(session, event, stored)

    def close(self) -> None:  # type: ignore[override]
        """Close the store's connection pool."""
        return self._call(self.store.close)

    def __enter__(self) -> SyncSQLSpecSessionService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.store.close()
