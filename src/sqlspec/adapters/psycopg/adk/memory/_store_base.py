"""What the sync and async memory stores share: checks and parameters, decided once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pydantic_core

from sqlspec.adapters.psycopg.adk import _values
from sqlspec.adapters.psycopg.adk._statement import Statement
from sqlspec.adapters.psycopg.adk.memory._schema import MemorySchema
from sqlspec.adapters.psycopg.adk.memory._statements import FoundMemory, MemoryStatements
from sqlspec.exceptions import ImproperConfigurationError, InvalidValueError
from sqlspec.extensions.adk.memory import _codec
from sqlspec.extensions.adk.memory._codec import MemoryRecord

__all__ = [
    "MemoryStoreBase",
    "check_vector_type",
    "prune_params",
    "records_json",
    "vector_text",
]

#: The most text a memory is found by: a ``tsvector`` holds at most 1 MB.
SEARCH_TEXT_MAX_LENGTH = 200_000
#: The longest vector pgvector stores.
MAX_DIMENSION = 16_000
#: How many candidates each ranking of a hybrid search offers the fusion.
HYBRID_CANDIDATES = 50


class MemoryStoreBase:
    """Table, schema, statements and the pure half of every memory store call."""

    def __init__(
        self, *, memory_table: str, text_search_config: str, embedding_dimension: int | None
    ) -> None:
        if not isinstance(text_search_config, str) or not text_search_config:
            raise ImproperConfigurationError(
                f"text_search_config must name a text-search configuration, "
                f"got {text_search_config!r}"
            )
        if embedding_dimension is not None and (
            isinstance(embedding_dimension, bool)
            or not isinstance(embedding_dimension, int)
            or not 1 <= embedding_dimension <= MAX_DIMENSION
        ):
            raise ImproperConfigurationError(
                f"embedding_dimension must be an int from 1 to {MAX_DIMENSION} or None, "
                f"got {embedding_dimension!r}"
            )
        self.text_search_config = text_search_config
        self.embedding_dimension = embedding_dimension
        self.schema = MemorySchema(memory_table, embedding_dimension)
        self.statements = MemoryStatements(memory_table, vectors=embedding_dimension is not None)

    @property
    def memory_table(self) -> str:
        """Name of the memory table."""
        return self.schema.table

    def add_params(
        self, app_name: str, user_id: str, records: Sequence[MemoryRecord]
    ) -> dict[str, Any]:
        """Parameters of ``add``, checked before anything is sent."""
        _values.check_required_ids(app_name=app_name, user_id=user_id)
        return {
            "app_name": app_name,
            "user_id": user_id,
            "config": self.text_search_config,
            "records": records_json(records),
        }

    def search_params(
        self,
        app_name: str,
        user_id: str,
        query: str,
        limit: int,
        embedding: Sequence[float] | None,
    ) -> tuple[Statement[FoundMemory], dict[str, Any]]:
        """The search statement and its parameters; ``query`` ``None``: no word to look for."""
        _values.check_required_ids(app_name=app_name, user_id=user_id)
        if not isinstance(query, str):
            raise InvalidValueError(f"query must be a str, got {type(query).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidValueError(f"limit must be a positive int, got {limit!r}")
        words = _codec.query_words(query)
        params: dict[str, Any] = {
            "app_name": app_name,
            "user_id": user_id,
            "config": self.text_search_config,
            # Any of the words, the memories with more of them first, as ADK's own search.
            "query": " or ".join(words) if words else None,
            "limit": limit,
        }
        if embedding is None or self.embedding_dimension is None:
            return self.statements.search, params
        params["embedding"] = vector_text(embedding)
        params["candidates"] = max(limit, HYBRID_CANDIDATES)
        return self.statements.hybrid_search, params

    def delete_params(self, app_name: str, user_id: str, memory_id: str) -> dict[str, Any]:
        """Parameters of ``delete``."""
        _values.check_required_ids(app_name=app_name, user_id=user_id, memory_id=memory_id)
        return {"app_name": app_name, "user_id": user_id, "memory_id": memory_id}


def check_vector_type(declared: str | None, dimension: int | None) -> None:
    """Refuse a vector column of another dimension than the store's."""
    if declared != f"vector({dimension})":
        raise ImproperConfigurationError(
            f"the memory table's embedding column is {declared}, but the store keeps "
            f"vector({dimension}) (embedding_dimension={dimension}); use a dimension that "
            "matches, or another memory_table"
        )


def prune_params(
    older_than: timedelta, app_name: str | None, user_id: str | None
) -> dict[str, Any]:
    """Parameters of the prune statements."""
    _values.check_ids(app_name=app_name, user_id=user_id)
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidValueError(f"older_than must be a non-negative timedelta, got {older_than!r}")
    before = (datetime.now(timezone.utc) - older_than).timestamp()
    return {"app_name": app_name, "user_id": user_id, "before": before}


def vector_text(vector: Sequence[float]) -> str:
    """A vector in pgvector's text form: it travels as text, so no adapter is registered."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def records_json(records: Sequence[MemoryRecord]) -> str:
    """The JSON array ``add`` reads its rows from; content goes in as the JSON it is."""
    rows = []
    for record in records:
        _values.check_ids(memory_id=record.id, session_id=record.session_id)
        if record.author is not None and len(record.author) > _values.TEXT_FIELD_MAX_LENGTH:
            raise InvalidValueError(
                f"author is {len(record.author)} characters long; "
                f"the column holds at most {_values.TEXT_FIELD_MAX_LENGTH}"
            )
        head = _json(
            {
                "id": record.id,
                "session_id": record.session_id,
                "author": record.author,
                "event_time": record.event_time,
                "timestamp": record.timestamp,
                "custom_metadata": record.custom_metadata,
                # PostgreSQL text holds no NUL; a search never looks for one.
                "text": record.text.replace("\x00", " ")[:SEARCH_TEXT_MAX_LENGTH],
                "embedding": record.embedding,
            }
        )
        rows.append(f'{head[:-1]},"content":{record.content}}}')
    return f"[{','.join(rows)}]"


def _json(value: dict[str, Any]) -> str:
    try:
        return pydantic_core.to_json(value, serialize_unknown=True).decode()
    except (pydantic_core.PydanticSerializationError, ValueError) as exc:
        raise InvalidValueError(f"a memory cannot be stored as JSON: {exc}") from exc
