"""ADK's memory service over a memory store: each method is one store call.

What is remembered follows ADK's in-memory service: the events that have
content, by event id, scoped by app and user. Adding a session again adds only
the events not stored yet, and a deleted memory stays deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, overload

from google.adk.events.event import Event
from google.adk.memory.base_memory_service import SearchMemoryResponse
from google.adk.memory.memory_entry import MemoryEntry
from google.adk.sessions.session import Session

from sqlspec.extensions.adk._bridge import awaitable_method, new_service
from sqlspec.extensions.adk._store_service_async import AsyncStoreService
from sqlspec.extensions.adk.memory._codec import MemoryRecord, event_records, memory_records
from sqlspec.extensions.adk.memory._embedders import Embedder, check_embedder, embed_texts
from sqlspec.extensions.adk.memory._protocol_async import AsyncADKMemoryStore

if True:  # ASYNC
    from google.adk.memory.base_memory_service import BaseMemoryService as ADKMemoryService

    if TYPE_CHECKING:
        from sqlspec.extensions.adk.memory._protocol_sync import SyncADKMemoryStore
        from sqlspec.extensions.adk.memory._service_sync import SyncSQLSpecMemoryService
else:
    from sqlspec.extensions.adk.memory._service_async import ADKMemoryService

__all__ = ["SQLSpecMemoryService"]

#: As many memories as ADK's in-memory service returns for a search.
SEARCH_LIMIT = 10


class SQLSpecMemoryService(AsyncStoreService[AsyncADKMemoryStore], ADKMemoryService):
    """ADK memory service keeping memories in a SQLSpec memory store.

    Args:
        store: the memory store its calls go to.
    """

    if True:  # ASYNC

        @overload
        def __new__(
            cls, store: AsyncADKMemoryStore, embedder: Embedder | None = None
        ) -> SQLSpecMemoryService: ...

        @overload
        def __new__(
            cls, store: SyncADKMemoryStore, embedder: Embedder | None = None
        ) -> SyncSQLSpecMemoryService: ...

        def __new__(
            cls, store: AsyncADKMemoryStore | SyncADKMemoryStore, embedder: Embedder | None = None
        ) -> SQLSpecMemoryService:
            """Serve an async store; a sync store gets a ``SyncSQLSpecMemoryService``.

            With an ``embedder``, memories are found by their meaning too: search
            is then hybrid. Its dimension must be the store's ``embedding_dimension``.
            """
            # No __init__: with one, type checkers would ignore the overloads above.
            service = new_service(cls, SQLSpecMemoryService, store, _sync_twin)
            service.embedder = check_embedder(embedder, store.embedding_dimension)
            return service

    embedder: Embedder | None = None

    async def _embedded(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """The records with their texts' vectors, when the service has an embedder.

        A record with no text (a tool call, say) keeps no vector: it is found by
        nothing, and an embedding API may refuse empty texts.
        """
        worded = [i for i, record in enumerate(records) if record.text.strip()]
        if self.embedder is None or not worded:
            return records
        vectors = await embed_texts(self.embedder, [records[i].text for i in worded])
        embedded = list(records)
        for i, vector in zip(worded, vectors, strict=True):
            embedded[i] = replace(records[i], embedding=vector)
        return embedded

    @awaitable_method
    async def add_session_to_memory(self, session: Session) -> None:
        """Remember the session's events that have content; those stored before are kept."""
        store = await self._ready_store()
        records = await self._embedded(event_records(session.events, session.id, None))
        await store.add(app_name=session.app_name, user_id=session.user_id, records=records)

    @awaitable_method
    async def add_events_to_memory(
        self,
        *,
        app_name: str,
        user_id: str,
        events: Sequence[Event],
        session_id: str | None = None,
        custom_metadata: Mapping[str, object] | None = None,
    ) -> None:
        """Remember these events (a delta, not the whole session); ``custom_metadata`` on each."""
        store = await self._ready_store()
        records = await self._embedded(event_records(events, session_id, custom_metadata))
        await store.add(app_name=app_name, user_id=user_id, records=records)

    @awaitable_method
    async def add_memory(
        self,
        *,
        app_name: str,
        user_id: str,
        memories: Sequence[MemoryEntry],
        custom_metadata: Mapping[str, object] | None = None,
    ) -> None:
        """Remember entries as given; an entry without an id gets a fresh one."""
        store = await self._ready_store()
        records = await self._embedded(memory_records(memories, custom_metadata))
        await store.add(app_name=app_name, user_id=user_id, records=records)

    @awaitable_method
    async def search_memory(
        self, *, app_name: str, user_id: str, query: str
    ) -> SearchMemoryResponse:
        """The user's memories that best match ``query``, best first, at most ten."""
        store = await self._ready_store()
        embedding = None
        if self.embedder is not None and query.strip():
            (embedding,) = await embed_texts(self.embedder, [query])
        memories = await store.search(
            app_name=app_name, user_id=user_id, query=query, limit=SEARCH_LIMIT, embedding=embedding
        )
        return SearchMemoryResponse(memories=memories)

    @awaitable_method
    async def delete_memory(
        self, *, app_name: str, user_id: str, memory_id: str | None = None
    ) -> None:
        """Forget one memory for good: adding its session again does not bring it back."""
        if not memory_id:
            return
        store = await self._ready_store()
        await store.delete(app_name=app_name, user_id=user_id, memory_id=memory_id)


if True:  # ASYNC

    def _sync_twin() -> type[SyncSQLSpecMemoryService]:
        from sqlspec.extensions.adk.memory._service_sync import SyncSQLSpecMemoryService

        return SyncSQLSpecMemoryService
