"""Scenario 7, memory: ingest rate and search latency of the memory service.

``SQLSpecMemoryService`` over ``PsycopgAsyncADKMemoryStore``, full-text only and
hybrid (``HashingEmbedder`` vectors beside the text, where the server has
pgvector), against ADK's ``InMemoryMemoryService``: an in-process dict searched
by a linear scan in Python, not a database, so it is only a reference point.

Memories are short texts (~25 words) from a fixed set of templates, each with one
*topic* word out of 200; a search asks for two topics, so ~1% of a user's
memories match. Both searched tables give every user the same number of memories,
so the large table's cost over the small one's is what the table size adds; one
heavy user in the large table shows what a user's own size adds. Both tables are
searched first fresh (never analyzed, autovacuum held off: no statistics at all),
then after ``VACUUM (ANALYZE)``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from google.adk.events.event import Event
from google.adk.memory.base_memory_service import BaseMemoryService
from google.adk.memory.in_memory_memory_service import InMemoryMemoryService
from google.genai import types
from psycopg import sql

from benchmarks import seed
from benchmarks.measure import Budget, Result, Series, time_interleaved
from benchmarks.workload import APP
from sqlspec.adapters.psycopg import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKMemoryStore
from sqlspec.exceptions import ImproperConfigurationError
from sqlspec.extensions.adk import HashingEmbedder, SQLSpecMemoryService

if TYPE_CHECKING:
    from benchmarks.scenarios import Context

__all__ = ["MEMORY_IMPLEMENTATIONS", "S7", "scenario_memory"]

S7 = "7 memory"

TEXT = "sqlspec async · memory service (text)"
HYBRID = "sqlspec async · memory service (hybrid)"
IN_MEMORY_INGEST = "ADK InMemoryMemoryService (in-process dict, no database)"
IN_MEMORY_SEARCH = "ADK InMemoryMemoryService (in-process, linear scan in Python)"
SEED = "server-side INSERT ... SELECT"

#: ``--impl`` key -> (label, family) of the memory scenario's implementations.
MEMORY_IMPLEMENTATIONS: dict[str, tuple[str, str]] = {
    "sqlspec-memory": (TEXT, "sqlspec"),
    "sqlspec-memory-hybrid": (HYBRID, "sqlspec"),
    "adk-in-memory": (IN_MEMORY_SEARCH, "adk"),
}
#: Every label the scenario's rows carry, and its family (for the report's ratios).
MEMORY_FAMILIES: dict[str, str] = {
    TEXT: "sqlspec",
    HYBRID: "sqlspec",
    IN_MEMORY_INGEST: "adk",
    IN_MEMORY_SEARCH: "adk",
}

#: The vector dimension of the hybrid rows.
DIMENSION = 256
#: Template memories, and the topic words among them (template ``t`` holds topic ``t % TOPICS``).
TEMPLATES = 1_000
TOPICS = 200
#: Filler words per memory (plus its topic word) and the vocabulary they come from.
FILLER_WORDS = 24
VOCABULARY = 2_000

TEMPLATE_TABLE = "bench_memory_templates"
TEMPLATE_USER = "template"
INGEST_TABLES = {TEXT: "bench_memory_ingest", HYBRID: "bench_memory_ingest_vec"}
SMALL_TABLE, LARGE_TABLE = "bench_memories_small", "bench_memories_large"
SEARCHED = (SMALL_TABLE, LARGE_TABLE)
SPREAD_PREFIX, HEAVY_PREFIX = "user-", "heavy-"
FRESH, ANALYZED = "fresh table, never analyzed", "after VACUUM (ANALYZE)"


def _words() -> tuple[list[str], list[str]]:
    """(filler vocabulary, topic words): made-up words, no topic a filler word."""
    rng = random.Random(7)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    filler: set[str] = set()
    while len(filler) < VOCABULARY:
        filler.add("".join(rng.choice(syllables) for _ in range(3)))
    topics: set[str] = set()
    while len(topics) < TOPICS:
        # Filler words never start with x nor end with q.
        topics.add("x" + "".join(rng.choice(syllables) for _ in range(2)) + "q")
    return sorted(filler), sorted(topics)


FILLER, TOPIC_WORDS = _words()


def _template_text(t: int) -> str:
    rng = random.Random(1000 + t)
    words = [rng.choice(FILLER) for _ in range(FILLER_WORDS)]
    words.insert(rng.randrange(FILLER_WORDS + 1), TOPIC_WORDS[t % TOPICS])
    return " ".join(words)


def _template_events() -> list[Event]:
    """The template memories (ids in template order), as events of a conversation."""
    now = time.time()
    events = []
    for t in range(TEMPLATES):
        role = "model" if t % 2 else "user"
        events.append(
            Event(
                id=f"tpl-{t:04d}",
                invocation_id=f"inv-{t // 2}",
                author=role if role == "user" else "bench_agent",
                content=types.Content(role=role, parts=[types.Part(text=_template_text(t))]),
                timestamp=now + t * 0.001,
            )
        )
    return events


def _copies(templates: list[Event], ids: list[tuple[str, int]]) -> list[Event]:
    """Events with the given ids, each a copy of template ``k % TEMPLATES``."""
    return [templates[k % TEMPLATES].model_copy(update={"id": i}) for i, k in ids]


@dataclass(frozen=True)
class Layout:
    """One seeded population: ``users`` users of ``per_user`` memories, as ``seed`` clones them."""

    users: int
    per_user: int
    user_prefix: str
    id_prefix: str

    @property
    def count(self) -> int:
        return self.users * self.per_user

    def user(self, u: int) -> str:
        return f"{self.user_prefix}{u:05d}"

    def memory_ids(self, u: int) -> list[tuple[str, int]]:
        """User ``u``'s memory ids, each with its number ``k`` (a copy of template ``k``)."""
        return [(f"{self.id_prefix}{k * self.users + u:08d}", k) for k in range(self.per_user)]

    def probe(self, i: int) -> tuple[str, str, tuple[int, int]]:
        """Search number ``i``: (user, query of 2-4 words, the two topics it asks for)."""
        user = self.user((i * 7919) % self.users)
        present = min(TOPICS, self.per_user)  # the topics every user holds
        a = (i * 31) % present
        b = (a + 1 + (i * 17) % (present - 1)) % present
        first, second = TOPIC_WORDS[a], TOPIC_WORDS[b]
        query = (f"{first} {second}", f"{first} {second} trip", f"plans for {first} {second}")[
            i % 3
        ]
        return user, query, (a, b)

    def matches(self, topics: tuple[int, int]) -> int:
        """How many of a user's memories hold either topic."""
        return sum(1 for k in range(self.per_user) if k % TOPICS in topics)


@dataclass
class Memory:
    """The scenario's services: each sqlspec mode's pool and its service per table."""

    configs: list[PsycopgAsyncConfig] = field(default_factory=list)
    #: label -> table -> service.
    services: dict[str, dict[str, BaseMemoryService]] = field(default_factory=dict)

    async def close(self) -> None:
        for config in self.configs:
            await config.close()


def _chosen(ctx: Context, key: str) -> bool:
    return ctx.selected is None or key in ctx.selected


async def _has_vectors(ctx: Context) -> str | None:
    """Why the hybrid rows cannot run here, or ``None`` when they can."""
    cur = await ctx.admin.execute(
        "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'vector')"
    )
    row = await cur.fetchone()
    if not (row and row[0]):
        return "the server has no pgvector (no 'vector' in pg_available_extensions)"
    return None


async def _open(
    ctx: Context, memory: Memory, label: str, tables: list[str], vectors: bool
) -> dict[str, BaseMemoryService]:
    """One pool for ``label``, and a service (its store's tables created) per table."""
    config = PsycopgAsyncConfig(
        {"conninfo": ctx.dsn, "min_size": 1, "max_size": ctx.sizes.pool_size}
    )
    memory.configs.append(config)
    services: dict[str, BaseMemoryService] = {}
    for table in tables:
        store = PsycopgAsyncADKMemoryStore(
            config, memory_table=table, embedding_dimension=DIMENSION if vectors else None
        )
        await store.create_tables()
        services[table] = SQLSpecMemoryService(
            store, HashingEmbedder(DIMENSION) if vectors else None
        )
    memory.services[label] = services
    return services


async def scenario_memory(ctx: Context) -> None:
    labels = [
        label
        for key, (label, _) in MEMORY_IMPLEMENTATIONS.items()
        if _chosen(ctx, key) and label != IN_MEMORY_SEARCH
    ]
    in_memory = _chosen(ctx, "adk-in-memory")
    if HYBRID in labels:
        why = await _has_vectors(ctx)
        if why is not None:
            labels.remove(HYBRID)
            ctx.notes.append(f"{S7}: hybrid rows skipped: {why}")
    if not labels and not in_memory:
        ctx.notes.append(f"{S7}: skipped: no memory implementation among --impl")
        return
    # The hybrid store first: the tables both modes search get its vector column.
    labels.sort(key=lambda label: label != HYBRID)
    memory = Memory()
    try:
        for label in list(labels):
            other = INGEST_TABLES[TEXT if label == HYBRID else HYBRID]
            tables = [t for t in (*INGEST_TABLES.values(), *SEARCHED, TEMPLATE_TABLE) if t != other]

            async def do_open(label: str = label, tables: list[str] = tables) -> bool:
                try:
                    await _open(ctx, memory, label, tables, vectors=label == HYBRID)
                except ImproperConfigurationError as exc:
                    if label != HYBRID:
                        raise
                    # pgvector is there but cannot be used (e.g. CREATE EXTENSION refused).
                    ctx.notes.append(f"{S7}: hybrid rows skipped: {exc}")
                    return False
                return True

            if not await ctx.guard(S7, "create the memory tables", label, do_open):
                labels.remove(label)
        labels.sort(key=lambda label: label != TEXT)  # the rows: text first
        templates = _template_events()
        await _ingest(ctx, memory, labels, in_memory, templates)
        await _search(ctx, memory, labels, in_memory, templates)
    finally:
        await memory.close()


# --- ingest ----------------------------------------------------------------------------


@dataclass
class _Call:
    label: str
    operation: str
    fn: Callable[[int], Awaitable[Any]]


async def _timed(ctx: Context, calls: list[_Call], budget: Budget) -> dict[tuple[str, str], Result]:
    """Time ``calls`` interleaved; one row each, grouped by operation (as ``Context.timed``)."""
    operations = list(dict.fromkeys(call.operation for call in calls))
    ctx.status(f"{S7} · {' / '.join(operations)}")
    series = [Series((c.label, c.operation), True, c.fn) for c in calls]
    await time_interleaved(series, budget)
    out: dict[tuple[str, str], Result] = {}
    for operation in operations:
        for call, entry in zip(calls, series, strict=True):
            if call.operation != operation:
                continue
            if entry.error is not None:
                ctx.fail(S7, operation, call.label, entry.error)
                continue
            result = Result(S7, operation, call.label, entry.samples)
            ctx.results.append(result)
            out[call.label, operation] = result
    return out


async def _count(ctx: Context, table: str, where: sql.Composable | None = None) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
    if where is not None:
        query = sql.SQL("{} WHERE {}").format(query, where)
    cur = await ctx.admin.execute(query)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _ingest(
    ctx: Context, memory: Memory, labels: list[str], in_memory: bool, templates: list[Event]
) -> None:
    s = ctx.sizes
    batch, runs, warmup = s.memory_batch, s.memory_batches, 1
    operation = f"add_events_to_memory, batches of {batch:,} events (one statement each)"
    ctx.status(f"{S7} · building {(warmup + runs) * batch:,} events")
    batches = [
        _copies(templates, [(f"ingest-{i:04d}-{j:05d}", i * batch + j) for j in range(batch)])
        for i in range(warmup + runs)
    ]

    def call(service: BaseMemoryService) -> Callable[[int], Awaitable[Any]]:
        def add(i: int) -> Awaitable[Any]:
            return service.add_events_to_memory(
                app_name=APP, user_id=f"ingest-{i % 10}", events=batches[i], session_id=f"b{i}"
            )

        return add

    calls = [
        _Call(label, operation, call(memory.services[label][INGEST_TABLES[label]]))
        for label in labels
    ]
    if in_memory:
        calls.append(_Call(IN_MEMORY_INGEST, operation, call(InMemoryMemoryService())))
    if not calls:
        return
    results = await _timed(ctx, calls, Budget(runs, warmup, seconds=s.budget, chunk=1))

    embedded_ms = None
    if HYBRID in labels:
        texts = [_template_text(k % TEMPLATES) for k in range(batch)]
        embedder = HashingEmbedder(DIMENSION)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            embedder.embed(texts)
            times.append(time.perf_counter() - t0)
        embedded_ms = sorted(times)[1] * 1000
    for (label, _), result in results.items():
        rate = batch * result.n / sum(result.samples)
        result.throughput = rate
        result.extra = f"{rate:,.0f} memories/s"
        if label in INGEST_TABLES:
            stored = await _count(ctx, INGEST_TABLES[label])
            if stored != batch * (warmup + result.n):
                result.extra += f"; WRONG: {stored:,} rows stored"
        if label == HYBRID and embedded_ms is not None:
            result.extra += f"; HashingEmbedder({DIMENSION}): {embedded_ms:.0f} ms of each batch"
        if label == IN_MEMORY_INGEST:
            result.extra += "; in-process, nothing written anywhere"


# --- search ----------------------------------------------------------------------------


async def _seed_table(ctx: Context, table: str, parts: list[tuple[Layout, int, int]]) -> float:
    """Clone the parts (layout, first, stop) into ``table``, concurrently; seconds taken."""
    conns = [await psycopg.AsyncConnection.connect(ctx.dsn, autocommit=True) for _ in parts]
    try:
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(
                seed.clone_memories(
                    conn,
                    table,
                    templates=TEMPLATE_TABLE,
                    app=APP,
                    template_user=TEMPLATE_USER,
                    template_count=TEMPLATES,
                    start=start,
                    stop=stop,
                    users=layout.users,
                    user_prefix=layout.user_prefix,
                    id_prefix=layout.id_prefix,
                )
                for conn, (layout, start, stop) in zip(conns, parts, strict=True)
            )
        )
        elapsed = time.perf_counter() - started
    finally:
        for conn in conns:
            await conn.close()
    want = sum(stop - start for _, start, stop in parts)
    if sum(counts) != want:
        raise AssertionError(f"seeded {sum(counts):,} memories of {want:,}")
    return elapsed


def _split(layout: Layout, parts: int) -> list[tuple[Layout, int, int]]:
    step = -(-layout.count // parts)
    return [(layout, a, min(a + step, layout.count)) for a in range(0, layout.count, step)]


async def _sizes_of(ctx: Context, table: str) -> str:
    cur = await ctx.admin.execute(
        "SELECT pg_size_pretty(pg_table_size(c.oid)), pg_size_pretty(pg_indexes_size(c.oid)) "
        "FROM pg_class c WHERE c.oid = %s::regclass",
        (table,),
    )
    row = await cur.fetchone()
    return f"table {row[0]}, indexes {row[1]}" if row else ""


async def _analyzed(ctx: Context, table: str) -> bool:
    """Whether ``table`` has statistics (or has ever been analyzed)."""
    cur = await ctx.admin.execute(
        "SELECT EXISTS (SELECT FROM pg_stats WHERE schemaname = current_schema() "
        "AND tablename = %s) OR coalesce((SELECT analyze_count + autoanalyze_count "
        "FROM pg_stat_user_tables WHERE relid = %s::regclass), 0) > 0",
        (table, table),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def _autovacuum(ctx: Context, table: str, on: bool) -> None:
    name = sql.Identifier(table)
    if on:
        query = sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled)").format(name)
    else:
        query = sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(name)
    await ctx.admin.execute(query)


async def _search(
    ctx: Context, memory: Memory, labels: list[str], in_memory: bool, templates: list[Event]
) -> None:
    s = ctx.sizes
    per_user = s.memory_per_user
    small = Layout(max(1, s.memory_small // per_user), per_user, SPREAD_PREFIX, "m")
    large = Layout(max(1, s.memory_large // per_user), per_user, SPREAD_PREFIX, "m")
    heavy = Layout(1, s.memory_heavy, HEAVY_PREFIX, "h")
    seeded = list(SEARCHED) if labels else []

    # The templates, written through the service itself (the hybrid one: with vectors).
    if labels:
        writer = HYBRID if HYBRID in labels else labels[0]
        service = memory.services[writer][TEMPLATE_TABLE]

        async def write_templates() -> None:
            await service.add_events_to_memory(
                app_name=APP, user_id=TEMPLATE_USER, events=templates, session_id="templates"
            )

        await ctx.guard(S7, "write the template memories", writer, write_templates)

    # Seed both tables, fresh: never analyzed, and autovacuum kept from analyzing them.
    parts = max(1, min(4, os.cpu_count() or 1))
    plans = {
        SMALL_TABLE: (f"{small.count:,} memories", _split(small, parts)),
        LARGE_TABLE: (
            f"{large.count:,} + heavy user's {heavy.count:,} memories",
            [*_split(large, parts), *_split(heavy, 1)],
        ),
    }
    for table in list(seeded):
        what, plan = plans[table]

        async def do_seed(table: str = table, what: str = what, plan: Any = plan) -> bool:
            await _autovacuum(ctx, table, on=False)
            elapsed = await _seed_table(ctx, table, plan)
            rows = sum(stop - start for _, start, stop in plan)
            ctx.results.append(
                Result(
                    S7,
                    f"seed {what} ({SEED}, {len(plan)} in parallel)",
                    "sqlspec memory table (both modes)",
                    [elapsed],
                    throughput=rows / elapsed,
                    extra=f"{rows / elapsed:,.0f} memories/s; {await _sizes_of(ctx, table)}",
                )
            )
            return True

        if not await ctx.guard(S7, f"seed {what}", table, do_seed):
            seeded.remove(table)

    in_memory_service: InMemoryMemoryService | None = None
    if in_memory:
        in_memory_service = InMemoryMemoryService()

        async def load() -> None:
            assert in_memory_service is not None
            for u in range(small.users):
                await in_memory_service.add_events_to_memory(
                    app_name=APP,
                    user_id=small.user(u),
                    events=_copies(templates, small.memory_ids(u)),
                    session_id="seed",
                )

        await ctx.guard(S7, f"load {small.count:,} memories", IN_MEMORY_SEARCH, load)

    tables = {SMALL_TABLE: small, LARGE_TABLE: large}
    for phase in (FRESH, ANALYZED):
        if phase == ANALYZED:
            for table in seeded:

                async def vacuum(table: str = table) -> None:
                    await _autovacuum(ctx, table, on=True)
                    started = time.perf_counter()
                    await seed.settle(ctx.admin, table)
                    elapsed = time.perf_counter() - started
                    what = f"{tables[table].count + (heavy.count if table == LARGE_TABLE else 0):,}"
                    ctx.results.append(
                        Result(
                            S7,
                            f"VACUUM (ANALYZE) of the {what}-memory table",
                            "sqlspec memory table (both modes)",
                            [elapsed],
                            extra=await _sizes_of(ctx, table),
                        )
                    )

                await ctx.guard(S7, "VACUUM (ANALYZE)", table, vacuum)
        else:
            for table in seeded:
                if await _analyzed(ctx, table):
                    ctx.notes.append(f"{S7}: {table} had statistics before its fresh measurement")
        await _search_phase(
            ctx,
            memory,
            labels=labels,
            in_memory=in_memory_service,
            phase=phase,
            seeded=seeded,
            small=small,
            large=large,
            heavy=heavy,
        )


async def _search_phase(
    ctx: Context,
    memory: Memory,
    *,
    labels: list[str],
    in_memory: InMemoryMemoryService | None,
    phase: str,
    seeded: list[str],
    small: Layout,
    large: Layout,
    heavy: Layout,
) -> None:
    s = ctx.sizes
    total = large.count + heavy.count
    cases: list[tuple[str, Layout, str, dict[str, float]]] = []  # table, layout, operation, metrics
    stage = 0.0 if phase == FRESH else 1.0
    if SMALL_TABLE in seeded or in_memory is not None:
        cases.append(
            (
                SMALL_TABLE,
                small,
                f"search_memory, {small.count:,} memories ({small.users:,} users x "
                f"{small.per_user:,}), {phase}",
                {"memory_table": small.count, "memory_phase": stage},
            )
        )
    if LARGE_TABLE in seeded:
        cases.append(
            (
                LARGE_TABLE,
                large,
                f"search_memory, {large.count:,} memories ({large.users:,} users x "
                f"{large.per_user:,}), {phase}",
                {"memory_table": large.count, "memory_phase": stage},
            )
        )
        cases.append(
            (
                LARGE_TABLE,
                heavy,
                f"search_memory, heavy user: {heavy.count:,} of the {total:,} memories, {phase}",
                {"memory_heavy": heavy.count, "memory_phase": stage},
            )
        )
    calls: list[_Call] = []
    metrics: dict[str, dict[str, float]] = {}
    for table, layout, operation, tags in cases:
        metrics[operation] = tags
        services: list[tuple[str, BaseMemoryService]] = []
        if table in seeded:
            services += [(label, memory.services[label][table]) for label in labels]
        if in_memory is not None and table == SMALL_TABLE and layout is small:
            services.append((IN_MEMORY_SEARCH, in_memory))
        for label, service in services:

            async def setup(
                service: BaseMemoryService = service,
                layout: Layout = layout,
                table: str = table,
                label: str = label,
            ) -> Callable[[int], Awaitable[Any]]:
                if phase == FRESH:
                    await _check_search(ctx, service, layout, table, label)

                def search(i: int) -> Awaitable[Any]:
                    user, query, _ = layout.probe(i)
                    return service.search_memory(app_name=APP, user_id=user, query=query)

                return search

            fn = await ctx.guard(S7, operation, label, setup)
            if fn is not None:
                calls.append(_Call(label, operation, fn))
    if not calls:
        return
    budget = Budget(s.memory_searches, s.warmup, seconds=s.budget, chunk=10)
    results = await _timed(ctx, calls, budget)
    for (label, operation), result in results.items():
        result.metrics.update(metrics[operation])
        if label == IN_MEMORY_SEARCH:
            result.extra = "in-process, not a database: scans the user's memories in Python"
        elif label == HYBRID:
            result.extra = f"text and exact vector rankings fused; HashingEmbedder({DIMENSION})"
        else:
            result.extra = "full-text (GIN on app, user, search_vector)"


async def _check_search(
    ctx: Context, service: BaseMemoryService, layout: Layout, table: str, label: str
) -> None:
    """The seeded data are what the benchmark says: ~1% of a user's memories match a probe,
    and a text search finds the same memories ADK's in-memory service does."""
    user, query, topics = layout.probe(0)
    want = layout.matches(topics)
    got = await service.search_memory(app_name=APP, user_id=user, query=query)
    ids = {m.id for m in got.memories}
    if label == HYBRID:
        if len(ids) != min(10, layout.per_user):
            raise AssertionError(f"hybrid search found {len(ids)} memories")
        return
    if len(ids) != min(10, want):
        raise AssertionError(f"search found {len(ids)} memories, {want} match")
    words = {TOPIC_WORDS[t] for t in topics}
    for entry in got.memories:
        text = " ".join(p.text or "" for p in entry.content.parts or ())
        if not words & set(text.split()):
            raise AssertionError(f"memory {entry.id} holds no query word")
    if label == IN_MEMORY_SEARCH:
        return
    # Every match, counted by the server (the index read, as the store reads it).
    async with ctx.admin.transaction():
        await ctx.admin.execute("SET LOCAL enable_seqscan = off")
        counted = await _count(
            ctx,
            table,
            sql.SQL(
                "app_name = {} AND user_id = {} AND search_vector @@ "
                "websearch_to_tsquery('english', {})"
            ).format(
                sql.Literal(APP),
                sql.Literal(user),
                sql.Literal(" or ".join(TOPIC_WORDS[t] for t in topics)),
            ),
        )
    if counted != want:
        raise AssertionError(f"{counted} memories match the probe, {want} expected")
    if want <= 10:
        expected = {i for i, k in layout.memory_ids(int(user[-5:])) if k % TOPICS in topics}
        if ids != expected:
            raise AssertionError("the search found other memories than those that match")
