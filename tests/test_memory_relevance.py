"""How well memory search finds what a user asks for, on a labelled corpus, against ADK's.

``data/memory_corpus.json`` holds one user's conversations on eight topics and
labelled queries, each with the ids of the turns that answer it. The corpus is
loaded into ADK's ``InMemoryMemoryService`` (the reference: word match), into
``SQLSpecMemoryService`` over the async store (PostgreSQL full-text search,
stemmed) and, on a server with pgvector, into a hybrid one (full text and
vectors, fused).

The vectors come from ``HashingEmbedder``: feature hashing of words and their
four-letter prefixes, not a semantic model (none runs offline here). The hybrid
figures therefore say nothing about search by meaning, only that fusing a
second ranking into the text one does not lose what the text ranking found.

Figures per service: recall@5 (the fraction of queries with a relevant memory
in the top five) and MRR (the mean reciprocal rank of the first relevant memory
in the top ten, 0 if none), over every query and over the tagged subsets;
printed with ``-s``. The assertions compare services, never today's numbers.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import psycopg
import pytest
from google.adk.events.event import Event
from google.adk.memory.in_memory_memory_service import InMemoryMemoryService
from google.adk.sessions.session import Session
from google.genai import types

from conftest import pool_config
from sqlspec.adapters.psycopg import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKMemoryStore
from sqlspec.extensions.adk import HashingEmbedder, SQLSpecMemoryService

CORPUS_PATH = Path(__file__).parent / "data" / "memory_corpus.json"
DIMENSION = 256
#: Where a search's results count as found for recall.
RECALL_AT = 5
#: The first session's first turn; each session a day later, each turn a minute later.
BASE_TIME = 1_700_000_000.0

Tag = Literal["exact", "inflected", "stems_only", "question", "paraphrase"]
Kind = Literal["reference", "text", "hybrid"]


class CorpusEvent(TypedDict):
    id: str
    author: Literal["user", "model"]
    text: str


class CorpusSession(TypedDict):
    id: str
    events: list[CorpusEvent]


class CorpusQuery(TypedDict):
    id: str
    query: str
    relevant: list[str]
    tags: list[Tag]


class Corpus(TypedDict):
    description: str
    app_name: str
    user_id: str
    sessions: list[CorpusSession]
    queries: list[CorpusQuery]


CORPUS = cast(Corpus, json.loads(CORPUS_PATH.read_text(encoding="utf-8")))
APP = CORPUS["app_name"]
USER = CORPUS["user_id"]
QUERIES = CORPUS["queries"]
TEXTS = {e["id"]: e["text"] for s in CORPUS["sessions"] for e in s["events"]}

#: The subsets figures are given for: every query, and the queries with a tag.
SUBSETS: dict[str, list[CorpusQuery]] = {
    "all": QUERIES,
    **{tag: [q for q in QUERIES if tag in q["tags"]] for tag in ("inflected", "exact", "question")},
}


def sessions() -> list[Session]:
    """The corpus's conversations as ADK sessions, events under their corpus ids."""
    return [
        Session(
            id=session["id"],
            app_name=APP,
            user_id=USER,
            events=[
                Event(
                    id=event["id"],
                    author=event["author"],
                    invocation_id=f"{session['id']}-{turn}",
                    timestamp=BASE_TIME + day * 86_400 + turn * 60,
                    content=types.Content(
                        role=event["author"], parts=[types.Part(text=event["text"])]
                    ),
                )
                for turn, event in enumerate(session["events"])
            ],
        )
        for day, session in enumerate(CORPUS["sessions"])
    ]


def words(text: str) -> set[str]:
    """A text's words as ADK's in-memory service reads them."""
    return set(re.findall(r"\w+", unicodedata.normalize("NFC", text).lower()))


# ------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Ranks:
    """Where each query's first relevant memory came, 1-based; ``None`` if not in the results."""

    by_query: dict[str, int | None]
    seconds: float

    def hits(self, queries: list[CorpusQuery]) -> int:
        """How many of ``queries`` have a relevant memory in the top :data:`RECALL_AT`."""
        return sum(1 for q in queries if (rank := self.by_query[q["id"]]) and rank <= RECALL_AT)

    def recall(self, queries: list[CorpusQuery]) -> float:
        return self.hits(queries) / len(queries)

    def mrr(self, queries: list[CorpusQuery]) -> float:
        return sum(1 / r for q in queries if (r := self.by_query[q["id"]])) / len(queries)


#: Each service's ranks, measured once per run and shared by the tests (and the report).
MEASURED: dict[Kind, Ranks] = {}


async def ranks_of(memory: Any) -> Ranks:
    """Load the corpus into ``memory``, run every query, and rank the answers."""
    started = time.perf_counter()
    for session in sessions():
        await memory.add_session_to_memory(session)
    by_query: dict[str, int | None] = {}
    for query in QUERIES:
        response = await memory.search_memory(app_name=APP, user_id=USER, query=query["query"])
        found = [m.id for m in response.memories]
        assert len(found) <= 10
        by_query[query["id"]] = next(
            (i for i, memory_id in enumerate(found, 1) if memory_id in query["relevant"]), None
        )
    return Ranks(by_query, time.perf_counter() - started)


def has_pgvector(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    return row is not None


async def measured(kind: Kind, dsn: str) -> Ranks:
    """The ranks of the ``kind`` service, measured the first time a test asks for them."""
    if kind in MEASURED:
        return MEASURED[kind]
    if kind == "reference":
        MEASURED[kind] = await ranks_of(InMemoryMemoryService())
        return MEASURED[kind]
    if kind == "hybrid" and not has_pgvector(dsn):
        pytest.skip("this server has no pgvector; the embedded PostgreSQL has it")
    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    try:
        if kind == "text":
            store = PsycopgAsyncADKMemoryStore(config, memory_table="relevance_text")
            await store.create_tables()
            MEASURED[kind] = await ranks_of(SQLSpecMemoryService(store))
        else:
            store = PsycopgAsyncADKMemoryStore(
                config, memory_table="relevance_hybrid", embedding_dimension=DIMENSION
            )
            await store.create_tables()
            service = SQLSpecMemoryService(store, HashingEmbedder(DIMENSION))
            MEASURED[kind] = await ranks_of(service)
    finally:
        await config.close()
    return MEASURED[kind]


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    """Print the figures once the module's tests have run (``-s``), as the other reports."""
    yield
    if not MEASURED:
        return
    heads = [f"{name} ({len(queries)})" for name, queries in SUBSETS.items()]
    lines = [
        f"\nmemory relevance: {len(QUERIES)} queries over {len(TEXTS)} memories; "
        f"recall@{RECALL_AT} / MRR@10; hybrid vectors by HashingEmbedder({DIMENSION}) "
        "(word hashing, not a semantic model)",
        f"  {'':<10}" + "".join(f"{head:>17}" for head in heads) + f"{'seconds':>10}",
    ]
    for kind in ("reference", "text", "hybrid"):
        if (ranks := MEASURED.get(kind)) is None:
            lines.append(f"  {kind:<10} (not measured: skipped)")
            continue
        cells = "".join(
            f"{f'{ranks.recall(qs):.2f} / {ranks.mrr(qs):.2f}':>17}" for qs in SUBSETS.values()
        )
        lines.append(f"  {kind:<10}{cells}{ranks.seconds:>10.2f}")
    if "reference" in MEASURED and "text" in MEASURED:
        reference, text = MEASURED["reference"].by_query, MEASURED["text"].by_query
        for q in QUERIES:
            ours, theirs = text[q["id"]], reference[q["id"]]
            if theirs is not None and (ours is None or ours > theirs):
                lines.append(
                    f"  text ranks below reference: {q['id']} {q['query']!r} "
                    f"(text {ours}, reference {theirs})"
                )
    print("\n".join(lines))


# ------------------------------------------------------------------- the corpus


def test_the_corpus_labels_hold() -> None:
    """Ids are unique and known; the word-level tags say what the texts show."""
    ids = [e["id"] for s in CORPUS["sessions"] for e in s["events"]]
    assert len(ids) == len(set(ids))
    assert all(8 <= len(s["events"]) <= 15 for s in CORPUS["sessions"])
    assert len({q["id"] for q in QUERIES}) == len(QUERIES)
    for q in QUERIES:
        assert q["relevant"], q
        assert set(q["relevant"]) <= TEXTS.keys(), q
        assert set(q["tags"]) <= {"exact", "inflected", "stems_only", "question", "paraphrase"}
        asked = words(q["query"])
        relevant = [words(TEXTS[i]) for i in q["relevant"]]
        # exact: every word of the query is a word of one relevant turn.
        assert ("exact" in q["tags"]) == any(asked <= turn for turn in relevant), q
        if "stems_only" in q["tags"] or "paraphrase" in q["tags"]:
            assert not asked & set().union(*relevant), q
        if "stems_only" in q["tags"]:
            assert "inflected" in q["tags"], q
    for name in ("inflected", "exact"):
        assert len(SUBSETS[name]) >= 8, name


# ------------------------------------------------------------------ comparisons


async def test_full_text_finds_inflections_the_word_match_misses(dsn: str) -> None:
    reference = await measured("reference", dsn)
    text = await measured("text", dsn)
    inflected = SUBSETS["inflected"]
    assert text.hits(inflected) > reference.hits(inflected)


async def test_full_text_keeps_up_with_the_word_match_on_exact_words(dsn: str) -> None:
    reference = await measured("reference", dsn)
    text = await measured("text", dsn)
    exact = SUBSETS["exact"]
    assert text.hits(exact) >= reference.hits(exact)
    assert text.mrr(exact) >= reference.mrr(exact)


async def test_hybrid_search_keeps_what_the_text_search_finds(dsn: str) -> None:
    hybrid = await measured("hybrid", dsn)
    text = await measured("text", dsn)
    # Fusing in the (here non-semantic) vector ranking loses at most one query's top five.
    assert hybrid.hits(QUERIES) >= text.hits(QUERIES) - 1
