"""The session wing: ADK's session service over a session store."""

from sqlspec.extensions.adk.session._protocol_async import AsyncADKStore
from sqlspec.extensions.adk.session._protocol_sync import SyncADKStore
from sqlspec.extensions.adk.session._service_async import SQLSpecSessionService
from sqlspec.extensions.adk.session._service_sync import SyncSQLSpecSessionService
from sqlspec.extensions.adk.session._types import ImportResult, SessionPage

__all__ = [
    "AsyncADKStore",
    "ImportResult",
    "SQLSpecSessionService",
    "SessionPage",
    "SyncADKStore",
    "SyncSQLSpecSessionService",
]
