"""The pure half of every artifact store call: checks and parameters, nothing sent."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from google.adk.artifacts.base_artifact_service import ArtifactVersion
from google.genai import types

from sqlspec.adapters.psycopg.adk import _values
from sqlspec.adapters.psycopg.adk.artifact._schema import FILENAME_MAX_BYTES, ArtifactSchema
from sqlspec.adapters.psycopg.adk.artifact._statements import (
    ArtifactStatements,
    ImportedArtifacts,
    VersionRow,
)
from sqlspec.exceptions import ImproperConfigurationError, InvalidValueError
from sqlspec.extensions.adk.artifact._codec import ArtifactRecord, artifact_record, version_info

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_MAX_ARTIFACT_BYTES",
    "ArtifactStoreBase",
    "chunks",
    "rechunked",
    "refuse_rejected",
]

#: The most bytes one chunk row holds.
CHUNK_SIZE = 1 << 20
#: The largest artifact a store takes unless told otherwise.
DEFAULT_MAX_ARTIFACT_BYTES = 100 << 20
#: A ``bytea`` value holds at most 1 GB, and one statement carries a save's chunks.
_MAX_ARTIFACT_BYTES_LIMIT = 512 << 20


class ArtifactStoreBase:
    """Tables, schema, statements and the pure half of every artifact store call."""

    def __init__(
        self,
        *,
        artifact_table: str,
        file_table: str,
        blob_table: str,
        chunk_table: str,
        max_artifact_bytes: int,
    ) -> None:
        if (
            isinstance(max_artifact_bytes, bool)
            or not isinstance(max_artifact_bytes, int)
            or not 0 <= max_artifact_bytes <= _MAX_ARTIFACT_BYTES_LIMIT
        ):
            raise ImproperConfigurationError(
                f"max_artifact_bytes must be an int from 0 to {_MAX_ARTIFACT_BYTES_LIMIT}, "
                f"got {max_artifact_bytes!r}"
            )
        self.max_artifact_bytes = max_artifact_bytes
        self.schema = ArtifactSchema(artifact_table, file_table, blob_table, chunk_table)
        self.statements = ArtifactStatements(self.schema)

    @property
    def artifact_table(self) -> str:
        """Name of the artifact (version) table."""
        return self.schema.table

    def file_params(
        self, app_name: str, user_id: str, session_id: str | None, filename: str
    ) -> dict[str, Any]:
        """The key of one file, checked; the user's scope is session ``''``."""
        _values.check_required_ids(app_name=app_name, user_id=user_id)
        _values.check_ids(session_id=session_id)
        if session_id == "":
            raise InvalidValueError("session_id must not be empty")
        check_filename(filename)
        return {
            "app_name": app_name,
            "user_id": user_id,
            "session_id": session_id or "",
            "filename": filename,
        }

    def save_params(
        self,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        record: ArtifactRecord,
    ) -> dict[str, Any]:
        """Parameters of ``save``: the file's key, the content's hash and chunks.

        Raises:
            InvalidValueError: content larger than ``max_artifact_bytes``, or a key
                PostgreSQL cannot store; nothing is sent.
        """
        params = self.file_params(app_name, user_id, session_id, filename)
        content = record.content
        if content is not None:
            self.check_size(len(content))
        params.update(
            part=record.part,
            content_kind=record.content_kind,
            sha256=None if content is None else hashlib.sha256(content).digest(),
            size=None if content is None else len(content),
            chunks=[] if content is None else chunks(content),
            mime_type=record.mime_type,
            custom_metadata=record.custom_metadata,
            create_time=record.create_time,
        )
        return params

    def stream_params(
        self,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        *,
        mime_type: str,
        custom_metadata: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Parameters of a streamed save, but the content's hash and size (known at its end)."""
        part = types.Part(inline_data=types.Blob(mime_type=mime_type, data=b""))
        record = artifact_record(
            part, custom_metadata, app_name=app_name, user_id=user_id, session_id=session_id
        )
        return self.save_params(app_name, user_id, session_id, filename, record)

    def check_size(self, size: int, *, streamed: bool = False) -> None:
        """Refuse content of ``size`` bytes (``streamed``: so far) over ``max_artifact_bytes``."""
        if size > self.max_artifact_bytes:
            raise InvalidValueError(
                f"the artifact is {size} bytes{' or more' if streamed else ''}; "
                "the store takes at most "
                f"{self.max_artifact_bytes} (max_artifact_bytes), nothing was written"
            )

    def version_params(
        self,
        app_name: str,
        user_id: str,
        session_id: str | None,
        filename: str,
        version: int | None,
    ) -> dict[str, Any]:
        """A file's key and a version number (``None``: any, or the latest)."""
        params = self.file_params(app_name, user_id, session_id, filename)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise InvalidValueError(f"version must be an int or None, got {version!r}")
        # Out of an integer's range: no such version.
        params["version"] = version if version is None or -1 <= version < 2**31 else -1
        return params

    def version_info(self, params: dict[str, Any], row: VersionRow) -> ArtifactVersion:
        """ADK's ``ArtifactVersion`` of one row."""
        return version_info(
            table=self.schema.table,
            app_name=params["app_name"],
            user_id=params["user_id"],
            session_id=row.session_id or None,
            filename=row.filename,
            version=row.version,
            mime_type=row.mime_type,
            custom_metadata=row.custom_metadata,
            create_time=row.create_time,
        )


def check_filename(filename: str) -> None:
    """Refuse a filename PostgreSQL cannot store in its column."""
    size = _values.check_text("filename", filename)
    if size > FILENAME_MAX_BYTES:
        raise InvalidValueError(
            f"filename is {size} bytes in UTF-8; the store keeps at most {FILENAME_MAX_BYTES}"
        )


def chunks(content: bytes) -> list[memoryview]:
    """``content`` in pieces of :data:`CHUNK_SIZE`, as views: nothing is copied."""
    view = memoryview(content)
    return [view[i : i + CHUNK_SIZE] for i in range(0, len(content), CHUNK_SIZE)]


def rechunked(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """``blocks`` of any sizes as chunks of :data:`CHUNK_SIZE` (the last one shorter).

    A block is cut where it stands; only a chunk's worth spanning two blocks is copied
    together.
    """
    pending = bytearray()
    for block in blocks:
        view = memoryview(block)
        if pending:
            take = view[: CHUNK_SIZE - len(pending)]
            pending += take
            view = view[len(take) :]
            if len(pending) < CHUNK_SIZE:
                continue
            yield bytes(pending)
            pending = bytearray()
        while len(view) >= CHUNK_SIZE:
            yield bytes(view[:CHUNK_SIZE])
            view = view[CHUNK_SIZE:]
        pending += view
    if pending:
        yield bytes(pending)


def refuse_rejected(counts: ImportedArtifacts | None) -> None:
    """Refuse an artifact import that would leave out versions (it is rolled back)."""
    if counts is not None and counts.rejected:
        raise InvalidValueError(
            f"{counts.rejected} artifact version line(s) cannot be imported: a field is "
            "missing, or their content is neither stored here nor in the lines whole "
            "(chunks numbered from 0, adding up to its size, hashing to its SHA-256); "
            "nothing of the artifacts was imported"
        )
