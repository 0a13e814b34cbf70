"""The memory wing: ADK's memory service over a memory store."""

from sqlspec.extensions.adk.memory._embedders import Embedder, GenAIEmbedder, HashingEmbedder
from sqlspec.extensions.adk.memory._protocol_async import AsyncADKMemoryStore
from sqlspec.extensions.adk.memory._protocol_sync import SyncADKMemoryStore
from sqlspec.extensions.adk.memory._service_async import SQLSpecMemoryService
from sqlspec.extensions.adk.memory._service_sync import SyncSQLSpecMemoryService

__all__ = [
    "AsyncADKMemoryStore",
    "Embedder",
    "GenAIEmbedder",
    "HashingEmbedder",
    "SQLSpecMemoryService",
    "SyncADKMemoryStore",
    "SyncSQLSpecMemoryService",
]
