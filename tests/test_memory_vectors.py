"""Vector and hybrid memory search, on a server with pgvector (the embedded one has it).

The embedded PostgreSQL ships pgvector, so these run wherever the test command
runs without a ``SQLSPEC_TEST_DSN``; on a server without it, the one test of the
error a user then gets runs instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import psycopg
import pytest
from google import genai
from google.adk.events.event import Event
from google.genai import types

from conftest import pool_config
from sqlspec import ImproperConfigurationError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKMemoryStore, PsycopgSyncADKMemoryStore
from sqlspec.extensions.adk import SQLSpecMemoryService
from sqlspec.extensions.adk.memory import GenAIEmbedder, HashingEmbedder

APP = "vec-app"
USER = "vec-user"
DIMENSION = 64


def has_pgvector(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    return row is not None


@pytest.fixture
def vector_dsn(dsn: str) -> str:
    if not has_pgvector(dsn):
        pytest.skip("this server has no pgvector; the embedded PostgreSQL has it")
    return dsn


def said(text: str) -> Event:
    return Event(
        author="user",
        invocation_id="inv",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
    )


@pytest.fixture(params=["async", "sync"])
async def hybrid(request: pytest.FixtureRequest, vector_dsn: str) -> AsyncIterator[Any]:
    """A memory service with a hashing embedder over each store."""
    embedder = HashingEmbedder(DIMENSION)
    if request.param == "async":
        config = PsycopgAsyncConfig(connection_config=pool_config(vector_dsn))
        async_store = PsycopgAsyncADKMemoryStore(config, embedding_dimension=DIMENSION)
        await async_store.create_tables()
        yield SQLSpecMemoryService(async_store, embedder)
        await config.close()
        return
    sync_config = PsycopgSyncConfig(connection_config=pool_config(vector_dsn))
    sync_store = PsycopgSyncADKMemoryStore(sync_config, embedding_dimension=DIMENSION)
    sync_store.create_tables()
    yield SQLSpecMemoryService(sync_store, embedder)
    sync_config.close()


async def found(memory: Any, query: str) -> list[str]:
    response = await memory.search_memory(app_name=APP, user_id=USER, query=query)
    return [m.content.parts[0].text for m in response.memories if m.content.parts]


async def test_the_vector_ranking_finds_what_no_word_matches(hybrid: Any) -> None:
    await hybrid.add_events_to_memory(
        app_name=APP,
        user_id=USER,
        events=[said("a spring trip to Kyoto"), said("the quarterly tax return")],
    )
    # No stem of "kyotoesque" is in either text; the embedder's word prefixes are.
    assert (await found(hybrid, "kyotoesque"))[0] == "a spring trip to Kyoto"


async def test_a_memory_found_both_ways_ranks_first(hybrid: Any) -> None:
    await hybrid.add_events_to_memory(
        app_name=APP,
        user_id=USER,
        events=[
            said("garden hose"),
            said("garden party invitations for the summer garden"),
            said("summer"),
        ],
    )
    assert (await found(hybrid, "summer garden party"))[0] == (
        "garden party invitations for the summer garden"
    )


async def test_deleted_memories_are_found_neither_way(hybrid: Any) -> None:
    event = said("the alarm code is 1942")
    await hybrid.add_events_to_memory(app_name=APP, user_id=USER, events=[event])
    await hybrid.delete_memory(app_name=APP, user_id=USER, memory_id=event.id)
    assert await found(hybrid, "alarm code") == []


async def test_an_embedder_must_match_the_store(vector_dsn: str) -> None:
    config = PsycopgAsyncConfig(connection_config=pool_config(vector_dsn))
    with pytest.raises(ImproperConfigurationError, match="embedding_dimension=64"):
        SQLSpecMemoryService(PsycopgAsyncADKMemoryStore(config), HashingEmbedder(DIMENSION))
    store = PsycopgAsyncADKMemoryStore(config, embedding_dimension=DIMENSION)
    with pytest.raises(ImproperConfigurationError, match="32 floats"):
        SQLSpecMemoryService(store, HashingEmbedder(32))
    await store.create_tables()
    other = PsycopgAsyncADKMemoryStore(config, embedding_dimension=128)
    with pytest.raises(ImproperConfigurationError, match=r"vector\(64\)"):
        await other.create_tables()
    await config.close()


async def test_asking_for_vectors_without_pgvector_names_the_extension(dsn: str) -> None:
    if has_pgvector(dsn):
        pytest.skip("this server has pgvector")
    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    store = PsycopgAsyncADKMemoryStore(config, embedding_dimension=DIMENSION)
    with pytest.raises(ImproperConfigurationError, match="pgvector"):
        await store.create_tables()
    # Full-text search still works on the same table.
    text_only = SQLSpecMemoryService(PsycopgAsyncADKMemoryStore(config))
    await text_only.add_events_to_memory(app_name=APP, user_id=USER, events=[said("plain words")])
    assert await found(text_only, "words") == ["plain words"]
    await config.close()


def test_the_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder(DIMENSION)
    first, again, empty = embedder.embed(["Booked a table", "booked a TABLE", ""])
    assert first == again
    assert abs(sum(x * x for x in first) - 1) < 1e-9
    assert not any(empty)


class FakeGemini:
    """Google's embedding endpoint, answered on a mock transport: no network."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append({"url": str(request.url), **body})
        texts = [r["content"]["parts"][0]["text"] for r in body["requests"]]
        assert all(text.strip() for text in texts), "an empty text was sent"
        vectors = HashingEmbedder(DIMENSION).embed(texts)
        return httpx.Response(200, json={"embeddings": [{"values": v} for v in vectors]})

    def client(self) -> genai.Client:
        transport = httpx.MockTransport(self)
        return genai.Client(
            api_key="fake-key",
            http_options=types.HttpOptions(
                httpx_client=httpx.Client(transport=transport),
                httpx_async_client=httpx.AsyncClient(transport=transport),
            ),
        )


async def test_the_genai_embedder_asks_for_the_configured_model_and_dimension() -> None:
    fake = FakeGemini()
    embedder = GenAIEmbedder(model="text-embedding-x", dimension=DIMENSION, client=fake.client())
    vectors: Sequence[Sequence[float]] = await embedder.embed(["one text"])
    assert len(vectors) == 1
    assert len(vectors[0]) == DIMENSION
    (request,) = fake.requests
    assert request["url"].endswith("models/text-embedding-x:batchEmbedContents")
    assert request["requests"][0]["outputDimensionality"] == DIMENSION


async def test_the_genai_embedder_serves_the_memory_service(vector_dsn: str) -> None:
    fake = FakeGemini()
    config = PsycopgAsyncConfig(connection_config=pool_config(vector_dsn))
    store = PsycopgAsyncADKMemoryStore(config, embedding_dimension=DIMENSION)
    await store.create_tables()
    memory = SQLSpecMemoryService(store, GenAIEmbedder(dimension=DIMENSION, client=fake.client()))
    await memory.add_events_to_memory(app_name=APP, user_id=USER, events=[said("hello there")])
    assert await found(memory, "hello") == ["hello there"]
    assert len(fake.requests) == 2  # one batch for the events, one for the query
    await config.close()


async def test_the_genai_embedder_sends_at_most_a_hundred_texts_a_request() -> None:
    fake = FakeGemini()
    embedder = GenAIEmbedder(dimension=DIMENSION, client=fake.client())
    vectors = await embedder.embed([f"text {i}" for i in range(250)])
    assert len(vectors) == 250
    assert [len(r["requests"]) for r in fake.requests] == [100, 100, 50]


def test_a_sync_service_embeds_through_the_blocking_api(vector_dsn: str) -> None:
    fake = FakeGemini()
    config = PsycopgSyncConfig(connection_config=pool_config(vector_dsn))
    store = PsycopgSyncADKMemoryStore(config, embedding_dimension=DIMENSION)
    store.create_tables()
    memory = SQLSpecMemoryService(store, GenAIEmbedder(dimension=DIMENSION, client=fake.client()))
    call = types.FunctionCall(name="tool", args={})
    silent = Event(
        author="agent",
        invocation_id="inv",
        content=types.Content(role="model", parts=[types.Part(function_call=call)]),
    )
    for round_ in range(2):  # twice: no event loop is kept between calls
        memory.add_events_to_memory(
            app_name=APP, user_id=USER, events=[said(f"walk the dog {round_}"), silent]
        )
    response = memory.search_memory(app_name=APP, user_id=USER, query="dog")
    assert len(response.memories) == 2
    assert len(fake.requests) == 3  # two adds (the tool call sent no text) and the query
    config.close()
