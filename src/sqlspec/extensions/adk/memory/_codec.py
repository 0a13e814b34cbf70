"""ADK memory models to and from plain values; what every memory store shares.

A memory is one event of a conversation (or an entry added directly): its
content, author, time, and the text it is found by. Nothing here knows a
database.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.adk.events.event import Event
from google.adk.memory.memory_entry import MemoryEntry
from google.genai import types

from sqlspec.exceptions import CorruptDataError

__all__ = [
    "MemoryRecord",
    "entry",
    "event_records",
    "format_timestamp",
    "memory_records",
    "query_words",
    "searchable_text",
]

#: Metadata key under which a memory names the session it came from.
SESSION_KEY = "session_id"


@dataclass(frozen=True)
class MemoryRecord:
    """One memory as a store writes it."""

    id: str
    session_id: str | None
    author: str | None
    #: The event's exact epoch time; ``None`` for an entry added with its own ``timestamp``.
    event_time: float | None
    #: The entry's own ``timestamp`` text, kept as given.
    timestamp: str | None
    #: ``types.Content`` in its JSON form.
    content: str
    #: The words a search finds it by.
    text: str
    custom_metadata: dict[str, Any] = field(default_factory=dict)
    #: The text's vector, when the service has an embedder.
    embedding: list[float] | None = None


def searchable_text(content: types.Content) -> str:
    """The text of a content's parts, the words a memory is found by."""
    return " ".join(part.text for part in content.parts or () if part.text)


def _remembered(event: Event) -> bool:
    # As ADK's in-memory service: events without content parts are not memories.
    return bool(event.content and event.content.parts)


def event_records(
    events: Sequence[Event], session_id: str | None, custom_metadata: Mapping[str, Any] | None
) -> list[MemoryRecord]:
    """The memories a sequence of events makes: one per event with content, by event id."""
    return [
        MemoryRecord(
            id=event.id,
            session_id=session_id,
            author=event.author,
            event_time=event.timestamp,
            timestamp=None,
            content=event.content.model_dump_json(exclude_none=True),
            text=searchable_text(event.content),
            custom_metadata=dict(custom_metadata or {}),
        )
        for event in events
        if event.content is not None and _remembered(event)
    ]


def memory_records(
    memories: Sequence[MemoryEntry], custom_metadata: Mapping[str, Any] | None
) -> list[MemoryRecord]:
    """The records of entries added directly; an entry without an id gets a fresh one."""
    return [
        MemoryRecord(
            id=memory.id or str(uuid.uuid4()),
            session_id=None,
            author=memory.author,
            event_time=None,
            timestamp=memory.timestamp,
            content=memory.content.model_dump_json(exclude_none=True),
            text=searchable_text(memory.content),
            custom_metadata={**memory.custom_metadata, **(custom_metadata or {})},
        )
        for memory in memories
    ]


def format_timestamp(timestamp: float) -> str:
    """An event's time as ADK's memory services show it to the model (ISO 8601)."""
    return datetime.fromtimestamp(timestamp).isoformat()


def entry(
    *,
    memory_id: str,
    session_id: str | None,
    author: str | None,
    event_time: float | None,
    timestamp: str | None,
    content: str,
    custom_metadata: dict[str, Any],
) -> MemoryEntry:
    """The :class:`MemoryEntry` a search returns; its metadata names its session."""
    try:
        parsed = types.Content.model_validate_json(content)
    except ValueError as exc:
        raise CorruptDataError(
            f"stored memory {memory_id!r} cannot be read back as ADK content: {exc}"
        ) from exc
    if session_id is not None:
        custom_metadata = {**custom_metadata, SESSION_KEY: session_id}
    return MemoryEntry(
        id=memory_id,
        content=parsed,
        author=author,
        timestamp=timestamp if event_time is None else format_timestamp(event_time),
        custom_metadata=custom_metadata,
    )


#: What ADK's in-memory service counts as a word.
_WORD = re.compile(r"\w+")


def query_words(query: str) -> list[str]:
    """The distinct words of a query, lowercased, in order: what a search looks for."""
    words = _WORD.findall(unicodedata.normalize("NFC", query).lower())
    return list(dict.fromkeys(words))
