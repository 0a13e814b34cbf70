"""ADK session stores on psycopg 3: the async store and its generated sync twin."""

from sqlspec.adapters.psycopg.adk._adk_import import ADKSource, ADKSourceError, import_from_adk
from sqlspec.adapters.psycopg.adk._store_async import PsycopgAsyncADKStore
from sqlspec.adapters.psycopg.adk._store_sync import PsycopgSyncADKStore

__all__ = [
    "ADKSource",
    "ADKSourceError",
    "PsycopgAsyncADKStore",
    "PsycopgSyncADKStore",
    "import_from_adk",
]
