"""ADK artifacts as plain values: what is stored of a part, and the part read back.

A part's content (``inline_data`` bytes, or ``text`` as UTF-8) is taken out of
it and stored apart, once per distinct content; the rest of the part (its
MIME type, a ``file_data`` reference, any other field) is kept as JSON. Nothing
here knows a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import quote

import pydantic_core
from google.adk.artifacts import artifact_util
from google.adk.artifacts.base_artifact_service import ArtifactVersion
from google.adk.errors.input_validation_error import InputValidationError
from google.adk.platform import time as platform_time
from google.genai import types

from sqlspec.exceptions import InvalidValueError
from sqlspec.extensions.adk._json import readable

__all__ = [
    "USER_PREFIX",
    "ArtifactKey",
    "ArtifactRecord",
    "ContentKind",
    "artifact_record",
    "canonical_uri",
    "check_scope",
    "is_user_scoped",
    "referenced",
    "stored_part",
    "version_info",
]

#: A filename starting with it is the user's, across sessions (ADK's rule).
USER_PREFIX = "user:"

#: Where a part's content was taken from.
ContentKind = Literal["inline_data", "text"]

# Text is stored as its UTF-8 bytes; a lone surrogate travels as its own bytes.
_TEXT_ERRORS = "surrogatepass"


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """One version of an artifact as it is stored."""

    #: The part as JSON, its content taken out.
    part: str
    #: Where the content goes back into the part; ``None``: the part has none (file_data).
    content_kind: ContentKind | None
    #: The content's bytes (``None`` with ``content_kind``).
    content: bytes | None
    #: As ADK's in-memory service derives it.
    mime_type: str | None
    #: ``custom_metadata`` as JSON.
    custom_metadata: str
    #: Epoch seconds, as ADK stamps an ``ArtifactVersion``.
    create_time: float


def is_user_scoped(filename: str) -> bool:
    """Whether ``filename`` names a user-scoped artifact (``user:`` prefix)."""
    return filename.startswith(USER_PREFIX)


def check_scope(
    app_name: str, user_id: str, filename: str, session_id: str | None, *, saving: bool = False
) -> str | None:
    """The session the artifact lives in, ``None`` for a user-scoped one, checked as ADK does.

    The path segments are checked by ADK's ``artifact_util``, as its in-memory
    service checks them; a save also refuses the session ids flat storage reserves.

    Raises:
        InputValidationError: a segment that could alter a path, or a
            session-scoped filename without a session.
    """
    if saving and not is_user_scoped(filename):
        if session_id is None:
            raise InputValidationError("Session ID must be provided for session-scoped artifacts.")
        artifact_util._validate_session_id_for_flat_storage(session_id)
    artifact_util.validate_path_segment(app_name, "app_name")
    artifact_util.validate_path_segment(user_id, "user_id")
    if is_user_scoped(filename):
        return None
    if session_id is None:
        raise InputValidationError("Session ID must be provided for session-scoped artifacts.")
    artifact_util.validate_path_segment(session_id, "session_id")
    return session_id


@dataclass(frozen=True, slots=True)
class ArtifactKey:
    """One version of a file as a caller names it (``version`` ``None``: the latest)."""

    app_name: str
    user_id: str
    session_id: str | None
    filename: str
    version: int | None = None

    def ids(self) -> dict[str, Any]:
        """The key as a store's keyword arguments, its scope checked as ADK checks it."""
        scope = check_scope(self.app_name, self.user_id, self.filename, self.session_id)
        return {
            "app_name": self.app_name,
            "user_id": self.user_id,
            "session_id": scope,
            "filename": self.filename,
            "version": self.version,
        }


def referenced(part: types.Part, key: ArtifactKey, remaining_depth: int) -> ArtifactKey | None:
    """The version an ``artifact://`` part refers to, checked as ADK checks it; else ``None``.

    Raises:
        InputValidationError: a reference out of ``key``'s scope, or past ADK's depth.
    """
    if not artifact_util.is_artifact_ref(part):
        return None
    assert part.file_data is not None
    target = artifact_util.resolve_artifact_reference(
        file_uri=cast(str, part.file_data.file_uri),
        app_name=key.app_name,
        user_id=key.user_id,
        session_id=key.session_id,
        remaining_depth=remaining_depth,
    )
    return ArtifactKey(
        target.app_name, target.user_id, target.session_id, target.filename, target.version
    )


def artifact_record(
    part: types.Part,
    custom_metadata: Mapping[str, Any] | None,
    *,
    app_name: str,
    user_id: str,
    session_id: str | None,
) -> ArtifactRecord:
    """What is stored of ``part``; its type and references checked as ADK's in-memory service does.

    Raises:
        InputValidationError: a part with no content ADK stores, or an
            ``artifact://`` reference that is invalid or leaves the caller's scope.
        InvalidValueError: ``custom_metadata`` that is not JSON.
    """
    # Shallow copies, only serialized: the content is not copied with the part.
    stripped = part
    content_kind: ContentKind | None = None
    content: bytes | None = None
    mime_type: str | None = None
    if part.inline_data is not None:
        content_kind, content = "inline_data", part.inline_data.data or b""
        mime_type = part.inline_data.mime_type
        blob = part.inline_data.model_copy(update={"data": None})
        stripped = part.model_copy(update={"inline_data": blob})
    elif part.text is not None:
        content_kind, content = "text", part.text.encode("utf-8", _TEXT_ERRORS)
        mime_type = "text/plain"
        stripped = part.model_copy(update={"text": None})
    elif (file_data := part.file_data) is not None:
        if artifact_util.is_artifact_ref(part):
            parsed = artifact_util.parse_artifact_uri(cast(str, file_data.file_uri))
            if not parsed:
                raise InputValidationError(f"Invalid artifact reference URI: {file_data.file_uri}")
            artifact_util.validate_artifact_reference_scope(
                app_name=app_name, user_id=user_id, session_id=session_id, parsed_uri=parsed
            )
            # As ADK: a reference's MIME type is not known until it is loaded.
        else:
            mime_type = file_data.mime_type
    else:
        raise InputValidationError("Not supported artifact type.")
    return ArtifactRecord(
        part=readable(stripped.model_dump_json(exclude_none=True)),
        content_kind=content_kind,
        content=content,
        mime_type=mime_type,
        custom_metadata=_json(dict(custom_metadata) if custom_metadata else {}),
        create_time=platform_time.get_time(),
    )


def stored_part(part: str, content_kind: str | None, content: bytes | None) -> types.Part:
    """The part :func:`artifact_record` stored, its content put back."""
    restored = types.Part.model_validate_json(part)
    if content_kind == "inline_data":
        if restored.inline_data is None:
            restored.inline_data = types.Blob()
        restored.inline_data.data = content or b""
    elif content_kind == "text":
        restored.text = (content or b"").decode("utf-8", _TEXT_ERRORS)
    return restored


def canonical_uri(
    table: str,
    *,
    app_name: str,
    user_id: str,
    session_id: str | None,
    filename: str,
    version: int,
) -> str:
    """``sqlspec://<table>/apps/<app>/users/<user>[/sessions/<session>]/artifacts/<file>/versions/<n>``.

    Each segment is percent-encoded, so any id or filename reads back unambiguously.
    """
    path = [("apps", app_name), ("users", user_id)]
    if session_id is not None:
        path.append(("sessions", session_id))
    path += [("artifacts", filename), ("versions", str(version))]
    segments = "/".join(f"{kind}/{quote(value, safe='')}" for kind, value in path)
    return f"sqlspec://{table}/{segments}"


def version_info(
    *,
    table: str,
    app_name: str,
    user_id: str,
    session_id: str | None,
    filename: str,
    version: int,
    mime_type: str | None,
    custom_metadata: str,
    create_time: float,
) -> ArtifactVersion:
    """ADK's ``ArtifactVersion`` of a stored version."""
    return ArtifactVersion(
        version=version,
        canonical_uri=canonical_uri(
            table,
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
            filename=filename,
            version=version,
        ),
        custom_metadata=pydantic_core.from_json(custom_metadata),
        create_time=create_time,
        mime_type=mime_type,
    )


def _json(value: dict[str, Any]) -> str:
    try:
        text = pydantic_core.to_json(value).decode()
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
        raise InvalidValueError(f"custom_metadata cannot be stored as JSON: {exc}") from exc
    return readable(text)
