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

    Args:
        model: the embedding model.
        dimension: the length of the vectors asked for (``output_dimensionality``).
        client: a ``google.genai.Client``; by default one is made at the first call,
            from the environment's credentials (``GOOGLE_API_KEY``, or Vertex AI's).
    """

    def __init__(
        self, *, model: str = "gemini-embedding-001", dimension: int = 768, client: Any = None
    ) -> None:
        self.model = model
        self.dimension = dimension
        self._client = client

    async def embed(self, texts: Sequence[str], /) -> list[list[float]]:
        from google import genai
        from google.genai import types

        if self._client is None:
            self._client = genai.Client()
        response = await self._client.aio.models.embed_content(
            model=self.model,
            contents=list(texts),
            config=types.EmbedContentConfig(output_dimensionality=self.dimension),
        )
        return [list(embedding.values or ()) for embedding in response.embeddings or ()]


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
    """As :func:`embed_texts`, where no event loop runs (an async embedder is run to its end)."""
    result = embedder.embed(texts)
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
