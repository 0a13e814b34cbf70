"""What every ADK service does with its store, whichever ADK service it is.

A service reaches its store through :meth:`AsyncStoreService._ready_store` (a
service that prepares its store lazily overrides it) and closes it with itself.
The sync twin of this file is generated from it by ``tools/async_to_sync.py``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Generic, Protocol, TypeVar

from sqlspec.extensions.adk._bridge import awaitable_method

__all__ = ["AsyncStoreService"]


class _ClosableStore(Protocol):
    async def close(self) -> None: ...


StoreT = TypeVar("StoreT", bound=_ClosableStore)
ServiceT = TypeVar("ServiceT")


class AsyncStoreService(Generic[StoreT]):
    """A service over one store."""

    store: StoreT

    async def _ready_store(self) -> StoreT:
        """The store, ready for a call."""
        return self.store

    @awaitable_method
    async def close(self) -> None:
        """Close the store's connection pool."""
        await self.store.close()

    async def __aenter__(self: ServiceT) -> ServiceT:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.store.close()
