"""The artifact wing: ADK artifacts in PostgreSQL, versioned, content stored once by SHA-256."""

from sqlspec.adapters.psycopg.adk.artifact._store_async import PsycopgAsyncADKArtifactStore
from sqlspec.adapters.psycopg.adk.artifact._store_sync import PsycopgSyncADKArtifactStore

__all__ = ["PsycopgAsyncADKArtifactStore", "PsycopgSyncADKArtifactStore"]
