"""The artifact wing: ADK's artifact service over an artifact store."""

from sqlspec.extensions.adk.artifact._protocol_async import AsyncADKArtifactStore
from sqlspec.extensions.adk.artifact._protocol_sync import SyncADKArtifactStore
from sqlspec.extensions.adk.artifact._service_async import SQLSpecArtifactService
from sqlspec.extensions.adk.artifact._service_sync import SyncSQLSpecArtifactService

__all__ = [
    "AsyncADKArtifactStore",
    "SQLSpecArtifactService",
    "SyncADKArtifactStore",
    "SyncSQLSpecArtifactService",
]
