"""ADK's session service over a session store: each method is one store call.

What a method does with the caller's objects follows ADK's in-memory service;
how it meets its caller (awaited, or blocking) is :mod:`sqlspec.extensions.adk._bridge`'s.
The service keeps the events of the sessions it reads (:mod:`._cache`), so a
read asks the store only for what it lacks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, overload

from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session

from sqlspec.extensions.adk._bridge import awaitable_method, new_service
from sqlspec.extensions.adk._store_service_async import AsyncStoreService
from sqlspec.extensions.adk.session import _cache
from sqlspec.extensions.adk.session._codec import check_get_session_config, without_temp_keys
from sqlspec.extensions.adk.session._protocol_async import AsyncADKStore
from sqlspec.extensions.adk.session._types import SessionPage

if True:  # ASYNC
    from google.adk.sessions.base_session_service import BaseSessionService as ADKSessionService

    if TYPE_CHECKING:
        from sqlspec.extensions.adk.session._protocol_sync import SyncADKStore
        from sqlspec.extensions.adk.session._service_sync import SyncSQLSpecSessionService
else:
    from sqlspec.extensions.adk.session._service_async import ADKSessionService

__all__ = ["SQLSpecSessionService"]


class SQLSpecSessionService(AsyncStoreService[AsyncADKStore], ADKSessionService):
    """ADK session service persisting through a SQLSpec session store.

    Args:
        store: the session store its calls go to.
        event_cache_bytes: how much memory the events it keeps of the sessions it
            reads may take (default 64 MiB); 0 keeps none. Sessions returned are
            the caller's own objects (``events`` list, ``state`` dict), but the
            ``Event`` objects in them are shared with the service and with other
            sessions it returns: treat them as read-only, as under ADK's
            ``IN_MEMORY_SESSION_SERVICE_LIGHT_COPY``.
    """

    _events: _cache.EventCache

    if True:  # ASYNC

        @overload
        def __new__(
            cls, store: AsyncADKStore, *, event_cache_bytes: int | None = None
        ) -> SQLSpecSessionService: ...

        @overload
        def __new__(
            cls, store: SyncADKStore, *, event_cache_bytes: int | None = None
        ) -> SyncSQLSpecSessionService: ...

        def __new__(
            cls, store: AsyncADKStore | SyncADKStore, *, event_cache_bytes: int | None = None
        ) -> SQLSpecSessionService:
            """Serve an async store; a sync store gets a ``SyncSQLSpecSessionService``."""
            # No __init__: with one, type checkers would ignore the overloads above.
            service = new_service(cls, SQLSpecSessionService, store, _sync_twin)
            service._events = _cache.EventCache(event_cache_bytes)
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

    @awaitable_method
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
        store = await self._ready_store()
        created = await store.create_session(
            app_name=app_name, user_id=user_id, state=state, session_id=session_id, ttl=ttl
        )
        self._events.forget((app_name, user_id, created.id))
        return created

    @awaitable_method
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """Load a session, merged state and the events ``config`` selects; ``None`` if absent.

        A session whose events the service holds is read with only the events
        written since, and ``config`` picks from what is then held; a session it
        does not hold is read whole, and kept, unless ``config`` asks for fewer
        events than all.
        """
        check_get_session_config(config)
        store = await self._ready_store()
        key = (app_name, user_id, session_id)
        held = self._events.get(key) if self._events.max_bytes and _is_key(key) else None
        if held is None and (not self._events.max_bytes or not _reads_whole(config, key)):
            return await store.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=config
            )
        update = await store.refresh_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            held=held.held_events() if held else None,
        )
        if update is None:
            self._events.forget(key)
            return None
        events = self._events.update(key, held, update)
        session = update.session
        session.events = _cache.select_events(events, config)
        return session

    @awaitable_method
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
        store = await self._ready_store()
        return await store.list_sessions(
            app_name=app_name, user_id=user_id, limit=limit, cursor=cursor, order_by=order_by
        )

    @awaitable_method
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete a session and its events."""
        store = await self._ready_store()
        await store.delete_session(app_name=app_name, user_id=user_id, session_id=session_id)
        if _is_key((app_name, user_id, session_id)):
            self._events.forget((app_name, user_id, session_id))

    @awaitable_method
    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's ``user:`` state with the prefix removed; ``{}`` if none."""
        store = await self._ready_store()
        return await store.get_user_state(app_name=app_name, user_id=user_id)

    @awaitable_method
    async def append_event(self, session: Session, event: Event) -> Event:
        """Persist ``event`` and its state delta, then add it to ``session``.

        Raises ``StaleSessionError`` if another writer appended since ``session``
        was loaded, and ``SessionNotFoundError`` if it no longer exists.
        """
        if event.partial:
            return event
        store = await self._ready_store()
        stored = await store.append_event(session, without_temp_keys(event))
        return self._after_append(session, event, stored)


def _is_key(key: tuple[object, ...]) -> bool:
    """Whether ``key`` can name held events (bad ids go on to the store, which refuses them)."""
    return all(isinstance(part, str) for part in key)


def _reads_whole(config: GetSessionConfig | None, key: tuple[object, ...]) -> bool:
    """Whether a read of a session not held brings every event (and so is worth keeping)."""
    whole = config is None or (config.num_recent_events is None and config.after_timestamp is None)
    return whole and _is_key(key)


if True:  # ASYNC

    def _sync_twin() -> type[SyncSQLSpecSessionService]:
        from sqlspec.extensions.adk.session._service_sync import SyncSQLSpecSessionService

        return SyncSQLSpecSessionService
