"""The psycopg ADK artifact store: versioned files, content stored once, one round trip a call.

The async store is the source: ``tools/async_to_sync.py`` generates the sync
one from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar

import psycopg
from google.adk.artifacts.base_artifact_service import ArtifactVersion
from google.genai import types

from sqlspec.adapters.psycopg._config_async import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk._errors import TRANSIENT_ATTEMPTS, translate_errors
from sqlspec.adapters.psycopg.adk._jsonl import Progress, TextSink
from sqlspec.adapters.psycopg.adk._statement import Statement
from sqlspec.adapters.psycopg.adk._store_async import AsyncStore
from sqlspec.adapters.psycopg.adk.artifact._schema import ArtifactSchema
from sqlspec.adapters.psycopg.adk.artifact._statements import (
    COPY_STAGING,
    CREATE_STAGING,
    LoadedChunk,
    PrunedBlobs,
)
from sqlspec.adapters.psycopg.adk.artifact._store_base import (
    DEFAULT_MAX_ARTIFACT_BYTES,
    ArtifactStoreBase,
    rechunked,
    refuse_rejected,
)
from sqlspec.extensions.adk.artifact._codec import ArtifactRecord, stored_part

__all__ = ["OpenedVersion", "PsycopgAsyncADKArtifactStore"]

Row = TypeVar("Row")


class OpenedVersion(NamedTuple):
    """A version being read: what :meth:`PsycopgAsyncADKArtifactStore.open_version` gives."""

    #: The stored part, its content left empty.
    part: types.Part
    #: The content's size in bytes; ``None`` for a part without content (a reference).
    size: int | None
    #: The content, a chunk at a time.
    chunks: AsyncIterator[bytes]


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
        version = await self._rerun_on_blob_race(self.statements.save, params)
        assert version is not None  # the statement always returns one row
        return int(version)

    async def save_stream(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        content: Iterable[bytes],
        mime_type: str,
        custom_metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Store ``content`` (blocks of any size) as the file's next ``inline_data`` version.

        For content too big to hold: it is copied (COPY) chunk by chunk into a
        table of the transaction while its hash is computed, then stored as
        :meth:`save` stores it, so the client holds one block and one chunk at a
        time. Nothing is written if ``content`` fails or exceeds ``max_artifact_bytes``.
        """
        params = self.stream_params(
            app_name,
            user_id,
            session_id,
            filename,
            mime_type=mime_type,
            custom_metadata=custom_metadata,
        )
        digest, size = hashlib.sha256(), 0
        with translate_errors():
            async with self.config.provide_connection(prepare=False) as conn, conn.transaction():
                for statement in CREATE_STAGING:
                    await conn.execute(statement.text)
                async with conn.cursor() as cur, cur.copy(COPY_STAGING) as copy:
                    copy.set_types(["int4", "bytea"])
                    for seq, chunk in enumerate(rechunked(content)):
                        size += len(chunk)
                        self.check_size(size, streamed=True)
                        digest.update(chunk)
                        await copy.write_row((seq, chunk))
                params.update(sha256=digest.digest(), size=size)
                attempt = 1
                while True:
                    try:
                        # A savepoint: a lost race reruns the statement, not the copy.
                        async with conn.transaction(), conn.cursor() as cur:
                            await cur.execute(self.statements.save_staged.text, params)
                            row = await cur.fetchone()
                    except psycopg.errors.ForeignKeyViolation:
                        if attempt == TRANSIENT_ATTEMPTS:
                            raise
                        attempt += 1
                        continue
                    assert row is not None  # the statement always returns one row
                    return int(row[0])

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

    @asynccontextmanager
    async def open_version(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        version: int | None = None,
    ) -> AsyncIterator[OpenedVersion | None]:
        """One version as its part (content left empty) and its content's chunks, in order.

        ``None`` if there is no such version. The chunks come one at a time
        from one statement (one snapshot), so a version of any size is read
        holding one chunk; a connection is held until the block exits.
        """
        params = self.version_params(app_name, user_id, session_id, filename, version)
        load = self.statements.load
        with translate_errors():
            async with (
                self.config.provide_connection() as conn,
                conn.transaction(),
                conn.cursor(name="sqlspec_artifact_load", row_factory=load.row_factory) as cur,
            ):
                # A server-side cursor: a chunk or two travels per fetch.
                cur.itersize = 2
                await cur.execute(load.text, params, binary=True)
                first = await cur.fetchone()
                if first is None:
                    yield None
                else:
                    part = stored_part(first.part, first.content_kind, b"")
                    yield OpenedVersion(part, first.size, _chunks(first, cur))

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
        return await self._rerun_on_blob_race(self.statements.delete, params) or 0

    async def prune_blobs(self) -> PrunedBlobs:
        """Delete the contents no version holds (two deletes at once can leave one); counts them."""
        pruned = await self._rerun_on_blob_race(self.statements.prune_blobs, {})
        assert pruned is not None  # the statement always returns one row
        return pruned

    async def _rerun_on_blob_race(
        self, statement: Statement[Row], params: Mapping[str, Any]
    ) -> Row | None:
        """The first row of ``statement``, run again if it lost a race over a blob.

        A save taking a blob a delete (or prune) is removing, or a delete removing
        a blob a save just took, fails the foreign key and is rolled back whole.
        """
        attempt = 1
        while True:
            try:
                return await self._one(statement, params)
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

    async def export_jsonl(
        self,
        sink: TextSink,
        *,
        app_name: str | None = None,
        user_id: str | None = None,
        batch_size: int = 1000,
        progress: Progress | None = None,
    ) -> dict[str, int]:
        """Write the artifacts (in an app, and a user, if given) as JSON Lines.

        Each content once (``artifact_blob``), its bytes a chunk a line in base64
        (``artifact_chunk``), then every version (``artifact``); streamed from one
        snapshot, a few chunks held at a time. Returns lines written per kind.
        """
        return await self._export_lines(
            sink,
            self.statements.export,
            {"app_name": app_name, "user_id": user_id},
            batch_size=batch_size,
            progress=progress,
            fetch_sizes={"artifact_chunk": 2},
        )

    async def import_jsonl(self, source: Iterable[str | bytes]) -> tuple[int, int]:
        """Load the artifact lines of an export, in one transaction; other lines are left.

        Versions already stored are kept as they are. Returns (imported, skipped)
        versions.

        Raises:
            InvalidValueError: a version line lacks a field, or its content is
                neither stored nor in the lines whole and matching its SHA-256;
                nothing of the artifacts is imported.
        """
        counts = await self._import_lines(
            source, self.statements.import_staged, check=refuse_rejected
        )
        assert counts is not None  # the statement always returns one row
        return counts.imported, counts.staged - counts.imported

    async def scope_versions(
        self, *, app_name: str, user_id: str, session_id: str | None
    ) -> dict[str, list[ArtifactVersion]]:
        """Every version's metadata of the user's files (and the session's), by filename.

        Filenames sorted, versions ascending: what listing a scope shows, in one
        call. A listing tolerates lag: it reads from the config's read replica, if any.
        """
        params = self.file_params(app_name, user_id, session_id, "")
        rows = await self._run(self.statements.scope_versions, params, read=True, replica=True)
        files: dict[str, list[ArtifactVersion]] = {}
        for row in rows:
            files.setdefault(row.filename, []).append(self.version_info(params, row))
        return files

    async def count_blobs(self) -> int:
        """How many distinct contents are stored."""
        return await self._one(self.statements.count_blobs, read=True) or 0


async def _chunks(first: LoadedChunk, rest: AsyncIterator[LoadedChunk]) -> AsyncIterator[bytes]:
    """The content's chunks: ``first``'s, then the rest's (a row without one has no content)."""
    if first.chunk is not None:
        yield first.chunk
    async for row in rest:
        if row.chunk is not None:
            yield row.chunk
