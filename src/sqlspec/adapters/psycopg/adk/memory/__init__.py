"""The memory wing: ADK memories in PostgreSQL, found by full-text and vector search."""

from sqlspec.adapters.psycopg.adk.memory._store_async import PsycopgAsyncADKMemoryStore
from sqlspec.adapters.psycopg.adk.memory._store_sync import PsycopgSyncADKMemoryStore

__all__ = ["PsycopgAsyncADKMemoryStore", "PsycopgSyncADKMemoryStore"]
