"""The psycopg ADK artifact store: versioned files, content stored once, one round trip a call.

The async store is the source: ``tools/async_to_sync.py`` generates the sync
one from it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import psycopg
from google.adk.artifacts.base_artifact_service import ArtifactVersion
from google.genai import types

from sqlspec.adapters.psycopg._config_async import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk._errors import TRANSIENT_ATTEMPTS
from sqlspec.adapters.psycopg.adk._store_async import AsyncStore
from sqlspec.adapters.psycopg.adk.artifact._schema import ArtifactSchema
from sqlspec.adapters.psycopg.adk.artifact._store_base import (
    DEFAULT_MAX_ARTIFACT_BYTES,
    ArtifactStoreBase,
)
from sqlspec.extensions.adk.artifact._codec import ArtifactRecord, stored_part

__all__ = ["PsycopgAsyncADKArtifactStore"]


class PsycopgAsyncADKArtifactStore(ArtifactStoreBase, AsyncStore[ArtifactSchema]):
    """ADK artifacts in PostgreSQL, through a pool.

    Each version's content is stored once per SHA-256 (versions with the same
    bytes share it), in chunks of 1 MiB. A save sends its chunks in the one
    statement that stores the version, so the client holds the part ADK handed
    over and views of it, and the server the statement's chunks.

    Deleting a session does not delete its artifacts (the session store knows
    none): a session's artifacts stay until ``delete_artifact`` removes them.

    Args:
        config: where connections come from (it may serve the other stores too).
        artifact_table: the version table's name (default ``adk_artifacts``).
        file_table: one row per file, holding its next version number.
        blob_table: one row per distinct content, by SHA-256.
        chunk_table: the contents' bytes, in chunks.
        max_artifact_bytes: the largest content a save takes (default 100 MiB);
            a bigger one is refused with ``InvalidValueError`` before anything is sent.
    """

    is_async: ClassVar[Literal[True]] = True  # SYNC: True -> False

    def __init__(
        self,
        config: PsycopgAsyncConfig,
        *,
        artifact_table: str = "adk_artifacts",
        file_table: str = "adk_artifact_files",
        blob_table: str = "adk_artifact_blobs",
        chunk_table: str = "adk_artifact_chunks",
        max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    ) -> None:
        AsyncStore.__init__(self, config)
        ArtifactStoreBase.__init__(
            self,
            artifact_table=artifact_table,
            file_table=file_table,
            blob_table=blob_table,
            chunk_table=chunk_table,
            max_artifact_bytes=max_artifact_bytes,
        )

    async def create_tables(self) -> None:
        """Create the tables and index, or bring them up to date; safe to call concurrently."""
        await self.migrate()

    async def save(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        record: ArtifactRecord,
    ) -> int:
        """Store the file's next version, in one statement; returns its number.

        A save that meets a blob being removed by a concurrent delete (a foreign-key
        violation: the statement was rolled back whole) runs again, and then writes
        the blob itself.
        """
        params = self.save_params(app_name, user_id, session_id, filename, record)
        attempt = 1
        while True:
            try:
                version = await self._one(self.statements.save, params)
            except psycopg.errors.ForeignKeyViolation:
                if attempt == TRANSIENT_ATTEMPTS:
                    raise
                attempt += 1
                continue
            assert version is not None  # the statement always returns one row
            return int(version)

    async def load(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        version: int | None = None,
    ) -> types.Part | None:
        """The stored part of one version (the latest without ``version``), content put back.

        References are returned as stored; the service follows them.
        """
        params = self.version_params(app_name, user_id, session_id, filename, version)
        rows = await self._run(self.statements.load, params, read=True)
        if not rows:
            return None
        content = b"".join(row.chunk for row in rows if row.chunk is not None)
        return stored_part(rows[0].part, rows[0].content_kind, content)

    async def list_keys(self, *, app_name: str, user_id: str, session_id: str | None) -> list[str]:
        """The user's filenames, and the session's if ``session_id``; unordered."""
        params = self.file_params(app_name, user_id, session_id, "")
        return await self._run(self.statements.list_keys, params, read=True)

    async def delete(
        self, *, app_name: str, user_id: str, session_id: str | None, filename: str
    ) -> int:
        """Delete every version of the file, and the content no other version holds.

        Returns how many versions went. Runs again if a concurrent save took a
        blob it was removing (the statement was rolled back whole).
        """
        params = self.file_params(app_name, user_id, session_id, filename)
        attempt = 1
        while True:
            try:
                return await self._one(self.statements.delete, params) or 0
            except psycopg.errors.ForeignKeyViolation:
                if attempt == TRANSIENT_ATTEMPTS:
                    raise
                attempt += 1

    async def list_versions(
        self, *, app_name: str, user_id: str, session_id: str | None, filename: str
    ) -> list[int]:
        """The file's version numbers, ascending."""
        params = self.file_params(app_name, user_id, session_id, filename)
        return await self._run(self.statements.list_versions, params, read=True)

    async def version_infos(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        version: int | None = None,
        latest_only: bool = False,
    ) -> list[ArtifactVersion]:
        """The metadata of the file's versions (or of ``version``; or of the latest alone)."""
        params = self.version_params(app_name, user_id, session_id, filename, version)
        statement = (
            self.statements.latest_version_info if latest_only else self.statements.version_infos
        )
        rows = await self._run(statement, params, read=True)
        return [self.version_info(params, row) for row in rows]

    async def count_blobs(self) -> int:
        """How many distinct contents are stored."""
        return await self._one(self.statements.count_blobs, read=True) or 0
