"""The store interface the artifact service is written against."""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

from google.adk.artifacts.base_artifact_service import ArtifactVersion
from google.genai import types

from sqlspec.extensions.adk.artifact._codec import ArtifactRecord

__all__ = ["AsyncADKArtifactStore"]


class AsyncADKArtifactStore(Protocol):
    """An artifact store; the service calls nothing else of it.

    ``session_id`` ``None`` is the user's scope (filenames starting ``user:``);
    the service has checked the scope rules before it calls.
    """

    is_async: ClassVar[Literal[True]]  # SYNC: True -> False

    async def create_tables(self) -> None: ...

    async def save(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        record: ArtifactRecord,
    ) -> int: ...

    async def load(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        version: int | None = None,
    ) -> types.Part | None: ...

    async def list_keys(
        self, *, app_name: str, user_id: str, session_id: str | None
    ) -> list[str]: ...

    async def delete(
        self, *, app_name: str, user_id: str, session_id: str | None, filename: str
    ) -> int: ...

    async def list_versions(
        self, *, app_name: str, user_id: str, session_id: str | None, filename: str
    ) -> list[int]: ...

    async def version_infos(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        version: int | None = None,
        latest_only: bool = False,
    ) -> list[ArtifactVersion]: ...

    async def close(self) -> None: ...
