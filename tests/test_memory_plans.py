"""Memory search is served by its index on a table that has never been analyzed.

A new deployment (or a server whose autovacuum has not caught up) has no
statistics: the plan must not depend on them. Each search statement is run
under ``EXPLAIN (ANALYZE, FORMAT JSON)`` right after a bulk load, and every scan
of the memory table must go through the (app, user, text) index or the key.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conftest import pool_config
from helpers import explained
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKMemoryStore
from sqlspec.extensions.adk.memory import HashingEmbedder
from sqlspec.extensions.adk.memory._codec import MemoryRecord

USERS = 5
PER_USER = 2_000
WORDS = [f"word{i}" for i in range(3_000)] + ["kyoto", "flight", "booking"]
CONTENT = '{"parts":[{"text":"x"}],"role":"user"}'


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def load(store: PsycopgSyncADKMemoryStore, embedder: HashingEmbedder | None) -> None:
    rng = random.Random(7)
    for user in range(USERS):
        texts = [" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(PER_USER)]
        vectors = embedder.embed(texts) if embedder else [None] * len(texts)
        records = [
            MemoryRecord(
                id=f"m{user}-{i}",
                session_id="s",
                author="user",
                event_time=float(i),
                timestamp=None,
                content=CONTENT,
                text=text,
                embedding=vector,
            )
            for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        ]
        store.add(app_name="app", user_id=f"u{user}", records=records)


def scans_of(
    dsn: str, store: PsycopgSyncADKMemoryStore, statement: Any, params: Any, *, generic: bool
) -> list[Any]:
    """The scans of the statement's plan: as run once, or ``generic`` as once prepared.

    psycopg prepares a statement after a few runs, and PostgreSQL then may plan it
    once for any parameters: that plan must use the index as well.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        analyzed = conn.execute(
            "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relname = %s",
            (store.memory_table,),
        ).fetchone()
        assert analyzed in (None, (None, None)), "the table must never have been analyzed"
        with conn.transaction(force_rollback=True):
            nodes = list(plan_nodes(explained(conn, statement, params, generic=generic)))
    return [n for n in nodes if n.get("Relation Name") == store.memory_table or "Index Name" in n]


def assert_indexed(store: PsycopgSyncADKMemoryStore, scans: list[Any]) -> None:
    (search_index,) = store.schema.index_names
    assert scans
    for node in scans:
        kind = node["Node Type"]
        assert kind != "Seq Scan", node
        if kind == "Bitmap Index Scan":
            assert node["Index Name"] == search_index, node
        elif kind == "Index Scan":
            assert node["Index Name"] == f"{store.memory_table}_pkey", node
        else:
            assert kind == "Bitmap Heap Scan", node


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
def test_text_search_reads_only_matching_memories_through_its_index(
    dsn: str, generic: bool
) -> None:
    config = PsycopgSyncConfig(connection_config=pool_config(dsn))
    store = PsycopgSyncADKMemoryStore(config)
    store.create_tables()
    load(store, None)
    statement, params = store.search_params("app", "u1", "kyoto flight", 10, None)
    scans = scans_of(dsn, store, statement, params, generic=generic)
    assert_indexed(store, scans)
    heap = next(n for n in scans if n["Node Type"] == "Bitmap Heap Scan")
    # The matches, not the user's memories: rows read, whether returned or dropped.
    read = heap["Actual Rows"] + heap.get("Rows Removed by Filter", 0)
    assert read + heap.get("Rows Removed by Index Recheck", 0) < PER_USER / 10
    config.close()


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
def test_hybrid_search_is_served_by_the_same_index(dsn: str, generic: bool) -> None:
    with psycopg.connect(dsn) as conn:
        if (
            conn.execute("SELECT FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            is None
        ):
            pytest.skip("this server has no pgvector; the embedded PostgreSQL has it")
    config = PsycopgSyncConfig(connection_config=pool_config(dsn))
    embedder = HashingEmbedder(32)
    store = PsycopgSyncADKMemoryStore(config, embedding_dimension=32)
    store.create_tables()
    load(store, embedder)
    query = "kyoto flight"
    statement, params = store.search_params("app", "u1", query, 10, embedder.embed([query])[0])
    assert_indexed(store, scans_of(dsn, store, statement, params, generic=generic))
    config.close()
