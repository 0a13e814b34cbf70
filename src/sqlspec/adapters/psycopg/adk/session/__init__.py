"""The session wing: sessions, events and app/user state in PostgreSQL."""

from sqlspec.adapters.psycopg.adk.session._import_adk import (
    ADKSource,
    ADKSourceError,
    import_from_adk,
)
from sqlspec.adapters.psycopg.adk.session._store_async import PsycopgAsyncADKStore
from sqlspec.adapters.psycopg.adk.session._store_sync import PsycopgSyncADKStore

__all__ = [
    "ADKSource",
    "ADKSourceError",
    "PsycopgAsyncADKStore",
    "PsycopgSyncADKStore",
    "import_from_adk",
]
