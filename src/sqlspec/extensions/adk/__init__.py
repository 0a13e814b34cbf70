"""Google ADK integration: the services, the store interfaces they use, and their values.

Nothing here knows a database: the stores that implement these interfaces live
in the adapters (``sqlspec.adapters.psycopg.adk``).
"""

from sqlspec.extensions.adk.artifact import (
    AsyncADKArtifactStore,
    SQLSpecArtifactService,
    SyncADKArtifactStore,
    SyncSQLSpecArtifactService,
)
from sqlspec.extensions.adk.memory import (
    AsyncADKMemoryStore,
    Embedder,
    GenAIEmbedder,
    HashingEmbedder,
    SQLSpecMemoryService,
    SyncADKMemoryStore,
    SyncSQLSpecMemoryService,
)
from sqlspec.extensions.adk.session import (
    AsyncADKStore,
    ImportResult,
    SessionPage,
    SQLSpecSessionService,
    SyncADKStore,
    SyncSQLSpecSessionService,
)

__all__ = [
    "AsyncADKArtifactStore",
    "AsyncADKMemoryStore",
    "AsyncADKStore",
    "Embedder",
    "GenAIEmbedder",
    "HashingEmbedder",
    "ImportResult",
    "SQLSpecArtifactService",
    "SQLSpecMemoryService",
    "SQLSpecSessionService",
    "SessionPage",
    "SyncADKArtifactStore",
    "SyncADKMemoryStore",
    "SyncADKStore",
    "SyncSQLSpecArtifactService",
    "SyncSQLSpecMemoryService",
    "SyncSQLSpecSessionService",
]
