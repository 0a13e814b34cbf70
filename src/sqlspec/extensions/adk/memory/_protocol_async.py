"""The store interface the memory service is written against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol

from google.adk.memory.memory_entry import MemoryEntry

from sqlspec.extensions.adk.memory._codec import MemoryRecord

__all__ = ["AsyncADKMemoryStore"]


class AsyncADKMemoryStore(Protocol):
    """A memory store; the service calls nothing else of it."""

    is_async: ClassVar[Literal[True]]  # SYNC: True -> False
    #: The length of the vectors the store keeps; ``None``: it keeps none.
    embedding_dimension: int | None

    async def create_tables(self) -> None: ...

    async def add(self, *, app_name: str, user_id: str, records: Sequence[MemoryRecord]) -> int: ...

    async def search(
        self,
        *,
        app_name: str,
        user_id: str,
        query: str,
        limit: int = 10,
        embedding: Sequence[float] | None = None,
    ) -> list[MemoryEntry]: ...

    async def delete(self, *, app_name: str, user_id: str, memory_id: str) -> bool: ...

    async def close(self) -> None: ...
