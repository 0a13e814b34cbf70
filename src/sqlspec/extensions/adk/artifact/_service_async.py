"""ADK's artifact service over an artifact store: each method is one store call.

Behaviour follows ADK's ``InMemoryArtifactService``: versions count from 0 per
file, ``user:`` filenames belong to the user across sessions, ids are checked
by ADK's own ``artifact_util``, and an ``artifact://`` reference is stored as
given and followed (at most ADK's depth, within the caller's scope) when loaded.
Deleting a session does not delete its artifacts: the session store knows none,
so a session's artifacts stay until ``delete_artifact`` removes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, overload

from google.adk.artifacts import artifact_util
from google.adk.artifacts.artifact_util import (
    _MAX_ARTIFACT_REFERENCE_DEPTH,
    _is_rewind_tombstone,
)
from google.adk.artifacts.base_artifact_service import ArtifactVersion, ensure_part
from google.genai import types

from sqlspec.extensions.adk._bridge import awaitable_method, new_service
from sqlspec.extensions.adk._store_service_async import AsyncStoreService
from sqlspec.extensions.adk.artifact._codec import (
    ArtifactKey,
    artifact_record,
    check_scope,
    referenced,
)
from sqlspec.extensions.adk.artifact._protocol_async import AsyncADKArtifactStore

if True:  # ASYNC
    from google.adk.artifacts.base_artifact_service import (
        BaseArtifactService as ADKArtifactService,
    )

    if TYPE_CHECKING:
        from sqlspec.extensions.adk.artifact._protocol_sync import SyncADKArtifactStore
        from sqlspec.extensions.adk.artifact._service_sync import SyncSQLSpecArtifactService
else:
    from sqlspec.extensions.adk.artifact._service_async import ADKArtifactService

__all__ = ["SQLSpecArtifactService"]


class SQLSpecArtifactService(AsyncStoreService[AsyncADKArtifactStore], ADKArtifactService):
    """ADK artifact service keeping versions in a SQLSpec artifact store.

    Args:
        store: the artifact store its calls go to.
    """

    if True:  # ASYNC

        @overload
        def __new__(cls, store: AsyncADKArtifactStore) -> SQLSpecArtifactService: ...

        @overload
        def __new__(cls, store: SyncADKArtifactStore) -> SyncSQLSpecArtifactService: ...

        def __new__(
            cls, store: AsyncADKArtifactStore | SyncADKArtifactStore
        ) -> SQLSpecArtifactService:
            """Serve an async store; a sync store gets a ``SyncSQLSpecArtifactService``."""
            # No __init__: with one, type checkers would ignore the overloads above.
            return new_service(cls, SQLSpecArtifactService, store, _sync_twin)

    @awaitable_method
    async def save_artifact(
        self,
        *,
        app_name: str,
        user_id: str,
        filename: str,
        artifact: types.Part | dict[str, Any],
        session_id: str | None = None,
        custom_metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a new version of the file; returns its number (0 for the first)."""
        scope = check_scope(app_name, user_id, filename, session_id, saving=True)
        record = artifact_record(
            ensure_part(artifact),
            custom_metadata,
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
        )
        store = await self._ready_store()
        return await store.save(
            app_name=app_name, user_id=user_id, session_id=scope, filename=filename, record=record
        )

    @awaitable_method
    async def load_artifact(
        self,
        *,
        app_name: str,
        user_id: str,
        filename: str,
        session_id: str | None = None,
        version: int | None = None,
    ) -> types.Part | None:
        """The latest version of the file, or ``version``; ``None`` if there is none such.

        An ``artifact://`` reference is followed as ADK's in-memory service does.
        """
        store = await self._ready_store()
        key = ArtifactKey(app_name, user_id, session_id, filename, version)
        depth = _MAX_ARTIFACT_REFERENCE_DEPTH
        while True:
            part = await store.load(**key.ids())
            if part is None:
                return None
            target = referenced(part, key, depth)
            if target is None:
                break
            key, depth = target, depth - 1
        if part == types.Part() or _is_rewind_tombstone(part):
            return None
        return part

    @awaitable_method
    async def list_artifact_keys(
        self, *, app_name: str, user_id: str, session_id: str | None = None
    ) -> list[str]:
        """The session's filenames and the user's (``user:``) ones, sorted."""
        artifact_util.validate_path_segment(app_name, "app_name")
        artifact_util.validate_path_segment(user_id, "user_id")
        if session_id is not None:
            artifact_util.validate_path_segment(session_id, "session_id")
        store = await self._ready_store()
        keys = await store.list_keys(app_name=app_name, user_id=user_id, session_id=session_id)
        return sorted(keys)

    @awaitable_method
    async def delete_artifact(
        self, *, app_name: str, user_id: str, filename: str, session_id: str | None = None
    ) -> None:
        """Delete every version of the file; content no other version holds goes too."""
        scope = check_scope(app_name, user_id, filename, session_id)
        store = await self._ready_store()
        await store.delete(app_name=app_name, user_id=user_id, session_id=scope, filename=filename)

    @awaitable_method
    async def list_versions(
        self, *, app_name: str, user_id: str, filename: str, session_id: str | None = None
    ) -> list[int]:
        """The file's version numbers, ascending; ``[]`` if it has none."""
        scope = check_scope(app_name, user_id, filename, session_id)
        store = await self._ready_store()
        return await store.list_versions(
            app_name=app_name, user_id=user_id, session_id=scope, filename=filename
        )

    @awaitable_method
    async def list_artifact_versions(
        self, *, app_name: str, user_id: str, filename: str, session_id: str | None = None
    ) -> list[ArtifactVersion]:
        """Every version's metadata, ascending."""
        scope = check_scope(app_name, user_id, filename, session_id)
        store = await self._ready_store()
        return await store.version_infos(
            app_name=app_name, user_id=user_id, session_id=scope, filename=filename
        )

    @awaitable_method
    async def get_artifact_version(
        self,
        *,
        app_name: str,
        user_id: str,
        filename: str,
        session_id: str | None = None,
        version: int | None = None,
    ) -> ArtifactVersion | None:
        """One version's metadata (the latest without ``version``); ``None`` if absent."""
        scope = check_scope(app_name, user_id, filename, session_id)
        store = await self._ready_store()
        found = await store.version_infos(
            app_name=app_name,
            user_id=user_id,
            session_id=scope,
            filename=filename,
            version=version,
            latest_only=version is None,
        )
        return found[0] if found else None


if True:  # ASYNC

    def _sync_twin() -> type[SyncSQLSpecArtifactService]:
        from sqlspec.extensions.adk.artifact._service_sync import SyncSQLSpecArtifactService

        return SyncSQLSpecArtifactService
