"""The psycopg ADK memory store: full-text search over a user's memories, one round trip a call.

The async store is the source: ``tools/async_to_sync.py`` generates the sync
one from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import ClassVar, Literal

import psycopg
from google.adk.memory.memory_entry import MemoryEntry

from sqlspec.adapters.psycopg._config_async import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk import _values
from sqlspec.adapters.psycopg.adk._errors import extension_needed
from sqlspec.adapters.psycopg.adk._jsonl import Progress, TextSink
from sqlspec.adapters.psycopg.adk._store_async import AsyncStore
from sqlspec.adapters.psycopg.adk.memory._schema import MemorySchema
from sqlspec.adapters.psycopg.adk.memory._statements import CHECK_CONFIG
from sqlspec.adapters.psycopg.adk.memory._store_base import (
    MemoryStoreBase,
    check_vector_type,
    prune_params,
)
from sqlspec.exceptions import ImproperConfigurationError
from sqlspec.extensions.adk.memory._codec import MemoryRecord

__all__ = ["PsycopgAsyncADKMemoryStore"]


class PsycopgAsyncADKMemoryStore(MemoryStoreBase, AsyncStore[MemorySchema]):
    """ADK memories in PostgreSQL, found by full-text search, through a pool.

    Args:
        config: where connections come from (it may serve the session store too).
        memory_table: the memory table's name (default ``adk_memories``).
        text_search_config: the PostgreSQL text-search configuration memories and
            queries are stemmed with (default ``english``; ``simple`` for text in
            many languages: it lowercases words without stemming them).
        embedding_dimension: keep a vector of this many floats per memory (in a
            pgvector column; searches rank a user's memories by it exactly), for a
            service with an embedder of that dimension; ``None`` (the default):
            full-text search only.
    """

    is_async: ClassVar[Literal[True]] = True  # SYNC: True -> False

    def __init__(
        self,
        config: PsycopgAsyncConfig,
        *,
        memory_table: str = "adk_memories",
        text_search_config: str = "english",
        embedding_dimension: int | None = None,
    ) -> None:
        AsyncStore.__init__(self, config)
        MemoryStoreBase.__init__(
            self,
            memory_table=memory_table,
            text_search_config=text_search_config,
            embedding_dimension=embedding_dimension,
        )

    async def create_tables(self) -> None:
        """Create the table and index, or bring them up to date; safe to call concurrently.

        Raises:
            ImproperConfigurationError: the server has no such text-search configuration,
                or vectors were asked for where pgvector is missing or the column holds
                vectors of another dimension.
        """
        await self.migrate()
        await self._add_vector_columns()
        try:
            await self._run(CHECK_CONFIG, {"config": self.text_search_config}, read=True)
        except psycopg.errors.UndefinedObject as exc:
            raise ImproperConfigurationError(
                f"text_search_config {self.text_search_config!r}: {exc.diag.message_primary} "
                "(the catalog pg_ts_config lists the configurations there are)"
            ) from exc

    async def _add_vector_columns(self) -> None:
        """Add the vector column, once, if the store keeps vectors."""
        if not self.schema.vector_columns:
            return
        declared = await self._one(self.schema.vector_type, read=True)
        if declared is None:
            with extension_needed("vector", "vector search (pgvector)"):
                await self._run_ddl(self.schema.versions, self.schema.vector_columns)
            declared = await self._one(self.schema.vector_type, read=True)
        check_vector_type(declared, self.embedding_dimension)

    async def migrate(self, *, repair: bool = False) -> tuple[int, int]:
        """Create or upgrade the memory table in place; it needs the ``btree_gin`` extension."""
        with extension_needed("btree_gin", "memory search"):
            return await super().migrate(repair=repair)

    async def add(self, *, app_name: str, user_id: str, records: Sequence[MemoryRecord]) -> int:
        """Store memories, all in one statement; those stored (or deleted) before are kept.

        Returns how many were new.
        """
        params = self.add_params(app_name, user_id, records)
        if not records:
            return 0
        return await self._one(self.statements.add, params) or 0

    async def search(
        self,
        *,
        app_name: str,
        user_id: str,
        query: str,
        limit: int = 10,
        embedding: Sequence[float] | None = None,
    ) -> list[MemoryEntry]:
        """The user's memories holding any word of ``query``, best ranked first.

        Words are stemmed as the store's ``text_search_config`` says, so
        ``booked`` finds ``booking``. Any text is a valid query. With the query's
        ``embedding`` (in a store that keeps vectors) the nearest memories are
        ranked too, and the two rankings fused. Read from the config's read
        replica, if any, so a memory just added may not be found yet.
        """
        statement, params = self.search_params(app_name, user_id, query, limit, embedding)
        if params["query"] is None:
            return []
        found = await self._run(statement, params, read=True, replica=True)
        return [row.to_entry() for row in found]

    async def prune(
        self,
        *,
        older_than: timedelta,
        app_name: str | None = None,
        user_id: str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Delete memories older than ``older_than`` (by their event's time); return how many.

        With ``dry_run``, only count them.
        """
        params = prune_params(older_than, app_name, user_id)
        statement = self.statements.count_prunable if dry_run else self.statements.prune
        return await self._one(statement, params, read=dry_run) or 0

    async def export_jsonl(
        self,
        sink: TextSink,
        *,
        app_name: str | None = None,
        user_id: str | None = None,
        batch_size: int = 1000,
        progress: Progress | None = None,
    ) -> dict[str, int]:
        """Write every memory (deleted ones as their keys) as JSON Lines of kind ``memory``.

        Streams from one snapshot (on the config's read replica, if any); returns
        lines written per kind.
        """
        _values.check_ids(app_name=app_name, user_id=user_id)
        return await self._export_lines(
            sink,
            self.statements.export,
            {"app_name": app_name, "user_id": user_id},
            batch_size=batch_size,
            progress=progress,
        )

    async def import_jsonl(self, source: Iterable[str | bytes]) -> tuple[int, int]:
        """Load the ``memory`` lines of an export, in one transaction; other lines are left.

        Memories already stored (or deleted) are kept as they are. Returns
        (imported, skipped).
        """
        params = {"config": self.text_search_config}
        counts = await self._import_lines(source, self.statements.import_staged, lambda: params)
        assert counts is not None  # the statement always returns one row
        return counts.imported, counts.staged - counts.imported

    async def count(self) -> int:
        """How many memories the table holds, deleted ones apart."""
        return await self._one(self.statements.count, read=True) or 0

    async def delete(self, *, app_name: str, user_id: str, memory_id: str) -> bool:
        """Forget a memory for good; ``False`` if the user had no such memory."""
        params = self.delete_params(app_name, user_id, memory_id)
        return bool(await self._one(self.statements.delete, params))
