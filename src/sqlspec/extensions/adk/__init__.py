"""Google ADK integration: the session service and the store interface it uses."""

from sqlspec.extensions.adk._codec import ImportResult, SessionPage
from sqlspec.extensions.adk._service import SQLSpecSessionService, SyncSQLSpecSessionService
from sqlspec.extensions.adk._store import AsyncADKStore, SyncADKStore

__all__ = [
    "AsyncADKStore",
    "ImportResult",
    "SQLSpecSessionService",
    "SessionPage",
    "SyncADKStore",
    "SyncSQLSpecSessionService",
]
