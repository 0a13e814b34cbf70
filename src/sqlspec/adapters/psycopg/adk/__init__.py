"""ADK stores on psycopg 3: each async store and its generated sync twin."""

from sqlspec.adapters.psycopg.adk.artifact import (
    PsycopgAsyncADKArtifactStore,
    PsycopgSyncADKArtifactStore,
)
from sqlspec.adapters.psycopg.adk.memory import (
    PsycopgAsyncADKMemoryStore,
    PsycopgSyncADKMemoryStore,
)
from sqlspec.adapters.psycopg.adk.session import (
    ADKSource,
    ADKSourceError,
    PsycopgAsyncADKStore,
    PsycopgSyncADKStore,
    import_from_adk,
)

__all__ = [
    "ADKSource",
    "ADKSourceError",
    "PsycopgAsyncADKArtifactStore",
    "PsycopgAsyncADKMemoryStore",
    "PsycopgAsyncADKStore",
    "PsycopgSyncADKArtifactStore",
    "PsycopgSyncADKMemoryStore",
    "PsycopgSyncADKStore",
    "import_from_adk",
]
