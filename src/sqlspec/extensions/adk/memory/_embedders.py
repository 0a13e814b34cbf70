"""Embedders: what turns texts into vectors for the memory service's vector search.

An embedder is anything with a ``dimension`` and an ``embed(texts)`` that returns
one vector per text, directly or as an awaitable. Two ship here:
:class:`HashingEmbedder`, deterministic and offline, and :class:`GenAIEmbedder`,
over Google's embedding API.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from sqlspec.exceptions import ImproperConfigurationError, InvalidValueError
from sqlspec.extensions.adk.memory._codec import query_words

__all__ = [
    "Embedder",
    "GenAIEmbedder",
    "HashingEmbedder",
    "check_embedder",
    "embed_texts",
    "embed_texts_blocking",
]

Vectors = Sequence[Sequence[float]]


class Embedder(Protocol):
    """Texts to vectors of ``dimension`` floats, one per text, in order."""

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str], /) -> Vectors | Awaitable[Vectors]: ...


class HashingEmbedder:
    """Deterministic vectors from feature hashing of words: offline, fast, and not semantic.

    Each word of a text (and its first four letters, so ``booked`` and
    ``booking`` share a feature) adds a signed unit to a bucket chosen by a hash.
    Texts that share words get close vectors; synonyms do not. Use it offline and
    in tests; use a model's embeddings (:class:`GenAIEmbedder`) for meaning.
    """

    def __init__(self, dimension: int = 256) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 2:
            raise ImproperConfigurationError(f"dimension must be an int >= 2, got {dimension!r}")
        self.dimension = dimension

    def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        for word in query_words(text):
            for feature in {word, word[:4]}:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "big") % self.dimension
                vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector


class GenAIEmbedder:
    """Embeddings from Google's embedding API through ``google-genai``.

    Texts go in requests of at most :attr:`batch_size`. A sync memory service
    calls :meth:`embed_blocking`, on the client's blocking API.

    Args:
        model: the embedding model.
        dimension: the length of the vectors asked for (``output_dimensionality``).
        client: a ``google.genai.Client``; by default one is made at the first call,
            from the environment's credentials (``GOOGLE_API_KEY``, or Vertex AI's).
    """

    #: Texts per request: the Gemini API takes at most 100 in one batch.
    batch_size = 100

    def __init__(
        self, *, model: str = "gemini-embedding-001", dimension: int = 768, client: Any = None
    ) -> None:
        self.model = model
        self.dimension = dimension
        self._client = client

    def _ready_client(self) -> Any:
        if self._client is None:
            from google import genai

            self._client = genai.Client()
        return self._client

    def _config(self) -> Any:
        from google.genai import types

        return types.EmbedContentConfig(output_dimensionality=self.dimension)

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        return [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]

    async def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        client = self._ready_client()
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            response = await client.aio.models.embed_content(
                model=self.model, contents=batch, config=self._config()
            )
            vectors += [list(e.values or ()) for e in response.embeddings or ()]
        return vectors

    def embed_blocking(self, texts: Sequence[str], /) -> list[list[float]]:
        """As :meth:`embed`, blocking: what a sync memory service calls."""
        client = self._ready_client()
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            response = client.models.embed_content(
                model=self.model, contents=batch, config=self._config()
            )
            vectors += [list(e.values or ()) for e in response.embeddings or ()]
        return vectors


def check_embedder(embedder: Embedder | None, dimension: int | None) -> Embedder | None:
    """``embedder``, if the store keeps vectors of its dimension."""
    if embedder is None:
        return None
    if dimension is None:
        raise ImproperConfigurationError(
            "an embedder needs a store that keeps vectors: create the memory store with "
            f"embedding_dimension={embedder.dimension}"
        )
    if embedder.dimension != dimension:
        raise ImproperConfigurationError(
            f"the embedder makes vectors of {embedder.dimension} floats; the store keeps "
            f"vectors of {dimension} (embedding_dimension)"
        )
    return embedder


async def embed_texts(embedder: Embedder, texts: Sequence[str]) -> list[list[float] | None]:
    """One vector per text (``None`` for a text with nothing to embed), checked."""
    result = embedder.embed(texts)
    if inspect.isawaitable(result):
        result = await result
    return _checked(result, embedder.dimension, len(texts))


def embed_texts_blocking(embedder: Embedder, texts: Sequence[str]) -> list[list[float] | None]:
    """As :func:`embed_texts`, where no event loop runs.

    An embedder's ``embed_blocking``, if it has one, serves; an async ``embed``
    is otherwise run to its end in an event loop of its own.
    """
    blocking = getattr(embedder, "embed_blocking", None)
    result = blocking(texts) if blocking is not None else embedder.embed(texts)
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return _checked(result, embedder.dimension, len(texts))


async def _awaited(result: Awaitable[Vectors]) -> Vectors:
    return await result


def _checked(vectors: Vectors, dimension: int, count: int) -> list[list[float] | None]:
    if len(vectors) != count:
        raise InvalidValueError(f"the embedder returned {len(vectors)} vectors for {count} texts")
    checked: list[list[float] | None] = []
    for vector in vectors:
        if len(vector) != dimension:
            raise InvalidValueError(
                f"the embedder returned a vector of {len(vector)} floats; its dimension is "
                f"{dimension}"
            )
        # A zero vector has no direction: such a memory is found by its words only.
        checked.append([float(x) for x in vector] if any(vector) else None)
    return checked
