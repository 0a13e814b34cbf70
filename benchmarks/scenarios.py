"""The scenarios. Each one seeds what it reads, warms up, then times every implementation.

The memory scenario (7) lives in :mod:`benchmarks.memory`; the command line adds it.

Latency series are interleaved across implementations (see :mod:`benchmarks.measure`).
A failure of one implementation in one scenario becomes an error row; the run goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from benchmarks import seed
from benchmarks.export_worker import export_method
from benchmarks.impls import Impl, RawAsync, SQLSpecAsyncService, SQLSpecSyncStore
from benchmarks.measure import Budget, Result, Series, time_interleaved
from benchmarks.options import Sizes
from benchmarks.raw import EVENTS, SCHEMA_QUERY, SCHEMA_TABLES, RawSchema, RawStatements
from benchmarks.workload import APP, DeltaMix, make_event, make_events, session_state
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore

__all__ = ["SCENARIO_FUNCTIONS", "Context"]

T = TypeVar("T")

#: The tables of the library's store (default names) and of ADK's service (schema v1).
OUR_EVENTS, OUR_SESSIONS = "adk_events", "adk_sessions"
ADK_EVENTS, ADK_SESSIONS = "events", "sessions"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


@dataclass
class Context:
    """What every scenario gets: the database, the sizes, the implementations, the results."""

    dsn: str
    sizes: Sizes
    impls: list[Impl]
    admin: AsyncConnection[TupleRow]
    #: The library's sync store on its own small pool: seeds and checks rows, never timed.
    reader: PsycopgSyncADKStore
    status: Callable[[str], None]
    verbose: bool = False
    #: The ``--impl`` keys chosen, ``None`` for all (the memory scenario reads its own).
    selected: set[str] | None = None
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def family(self, *families: str) -> list[Impl]:
        return [impl for impl in self.impls if impl.family in families]

    def first(self, *families: str) -> Impl | None:
        found = self.family(*families)
        return found[0] if found else None

    def budget(self, runs: int, warmup: int | None = None, **kwargs: Any) -> Budget:
        return Budget(
            runs=runs,
            warmup=self.sizes.warmup if warmup is None else warmup,
            seconds=self.sizes.budget,
            **kwargs,
        )

    def fail(self, scenario: str, operation: str, label: str, exc: BaseException) -> None:
        if self.verbose:
            traceback.print_exception(exc)
        self.results.append(Result(scenario, operation, label, error=_describe(exc)))

    async def guard(
        self, scenario: str, operation: str, label: str, body: Callable[[], Awaitable[T]]
    ) -> T | None:
        """Run ``body``; an exception becomes an error row (and ``None``), not the run's end."""
        self.status(f"{scenario} · {operation} · {label}")
        try:
            return await body()
        except Exception as exc:
            self.fail(scenario, operation, label, exc)
            return None

    async def timed(self, scenario: str, calls: list[Call], budget: Budget) -> dict[str, Result]:
        """Time ``calls`` interleaved (every implementation, every operation given); one
        result row each, keyed ``"<impl key>|<operation>"``, rows grouped by operation.
        """
        operations = list(dict.fromkeys(call.operation for call in calls))
        self.status(f"{scenario} · {' / '.join(operations)}")
        series = [
            Series(f"{c.impl.key}|{c.operation}", c.impl.is_async, c.fn, prepare=c.prepare)
            for c in calls
        ]
        await time_interleaved(series, budget)
        out: dict[str, Result] = {}
        for operation in operations:
            for call, entry in zip(calls, series, strict=True):
                if call.operation != operation:
                    continue
                if entry.error is not None:
                    self.fail(scenario, operation, call.impl.label, entry.error)
                    continue
                result = Result(scenario, operation, call.impl.label, entry.samples)
                self.results.append(result)
                out[f"{call.impl.key}|{operation}"] = result
        return out

    async def reader_call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def raw_statements(self) -> RawStatements:
        cur = await self.admin.execute(SCHEMA_QUERY, (SCHEMA_TABLES,))
        return RawStatements(RawSchema.from_rows(await cur.fetchall()))


@dataclass
class Call:
    """One timed series: ``fn(i)`` on ``impl`` for ``operation`` (``prepare`` before each turn)."""

    impl: Impl
    operation: str
    fn: Callable[[int], Any]
    prepare: Callable[[], Any] | None = None


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _recent(n: int | None) -> GetSessionConfig | None:
    return None if n is None else GetSessionConfig(num_recent_events=n)


# --- 1. append_event ------------------------------------------------------------------


async def _appender(
    impl: Impl, key: str, number: int, count: int, text_bytes: int
) -> tuple[Session, list[Event], Callable[[int], Any]]:
    """Benchmark session ``number`` (``key`` as user and id), ``count`` events for it,
    and a call that appends event ``i``."""
    session = await impl.call(impl.create_session, APP, key, key, session_state(number))
    events = make_events(count, text_bytes=text_bytes)

    def append(i: int) -> Any:
        return impl.append_event(session, events[i])

    return session, events, append


S1 = "1 append"


async def scenario_append(ctx: Context) -> None:
    s = ctx.sizes
    operation = f"append_event ({s.text_bytes} B text; plain, user:, app: keys)"
    calls: list[Call] = []
    sessions: dict[str, tuple[Any, list[Event]]] = {}
    for impl in ctx.impls:

        async def setup(impl: Impl = impl) -> Callable[[int], Any]:
            session, events, append = await _appender(
                impl, f"append-{impl.key}", 1, s.warmup + s.appends, s.text_bytes
            )
            sessions[impl.key] = (session, events)
            return append

        fn = await ctx.guard(S1, operation, impl.label, setup)
        if fn is not None:
            calls.append(Call(impl, operation, fn))
    results = await ctx.timed(S1, calls, ctx.budget(s.appends, chunk=25))

    # The floor must write what the library reads: read its rows back through the store.
    for impl in ctx.family("raw"):
        result = results.get(f"{impl.key}|{operation}")
        if result is None:
            continue

        async def check(impl: Impl = impl, result: Result = result) -> None:
            key = f"append-{impl.key}"
            stored = s.warmup + result.n
            got = await ctx.reader_call(
                ctx.reader.get_session, app_name=APP, user_id=key, session_id=key
            )
            _check(got is not None and len(got.events) == stored, "raw rows not read back")
            assert got is not None
            _check(got.events[-1] == sessions[impl.key][1][stored - 1], "raw rows read back differ")

        await ctx.guard(S1, "read back the floor's rows", impl.label, check)

    await _create_sessions(ctx)
    await _append_to_long_session(ctx)


async def _create_sessions(ctx: Context) -> None:
    """New sessions, each of its own user, with plain, ``user:`` and ``app:`` state."""
    s = ctx.sizes
    operation = "create_session (plain, user:, app: keys)"
    calls: list[Call] = []
    for impl in ctx.impls:
        numbers = itertools.count()

        def create(_: int, impl: Impl = impl, numbers: Iterator[int] = numbers) -> Any:
            number = next(numbers)
            key = f"create-{impl.key}-{number}"
            return impl.create_session(APP, key, key, session_state(number))

        calls.append(Call(impl, operation, create))
    await ctx.timed(S1, calls, ctx.budget(s.appends, chunk=25))


async def _append_to_long_session(ctx: Context) -> None:
    """Appends to a session already holding a long history: the cost must not grow with it.

    Implementations of one table family share the seeded session, so each turn of
    each implementation starts by reloading it (metadata only, untimed).
    """
    s = ctx.sizes
    n = s.append_history
    operation = f"append_event, session of {n:,} events"
    seeded: dict[str, tuple[str, str]] = {}
    for family in _families(ctx):

        async def do_seed(family: str = family) -> None:
            seeded[family] = await _seed_long_session(ctx, family, n, "long")

        await ctx.guard(S1, f"seed {n:,} events", family, do_seed)
    calls: list[Call] = []
    for impl in ctx.impls:
        where = seeded.get(_family_of(impl))
        if where is None:
            continue
        user, session_id = where
        loaded: dict[str, Any] = {}
        events = make_events(s.history_appends + 2, text_bytes=s.text_bytes)

        def reload(
            impl: Impl = impl,
            user: str = user,
            sid: str = session_id,
            loaded: dict[str, Any] = loaded,
        ) -> Any:
            got = impl.get_session(APP, user, sid, 0)
            if not impl.is_async:
                loaded["session"] = got
                return got

            async def store() -> None:
                loaded["session"] = await got

            return store()

        def append(
            i: int, impl: Impl = impl, loaded: dict[str, Any] = loaded, events: list[Event] = events
        ) -> Any:
            return impl.append_event(loaded["session"], events[i])

        calls.append(Call(impl, operation, append, prepare=reload))
    await ctx.timed(S1, calls, ctx.budget(s.history_appends, 2, chunk=2, min_runs=4))


# --- 2. get_session, whole history ----------------------------------------------------

S2 = "2 get whole"


async def _seed_history(ctx: Context, family: str, count: int) -> tuple[str, str]:
    """A session of ``count`` appended events in one family's tables: (user, id)."""
    s = ctx.sizes
    user = session_id = "history"
    events = make_events(count, text_bytes=s.text_bytes)
    if family == "ours":
        session = await ctx.reader_call(
            ctx.reader.create_session,
            app_name=APP,
            user_id=user,
            session_id=session_id,
            state=session_state(2),
        )
        for event in events:
            await ctx.reader_call(ctx.reader.append_event, session, event)
    else:
        adk = ctx.first("adk")
        assert adk is not None
        session = await adk.call(adk.create_session, APP, user, session_id, session_state(2))
        for event in events:
            await adk.call(adk.append_event, session, event)
    return user, session_id


def _families(ctx: Context) -> list[str]:
    """The table families in use: ``ours`` (library and floor) and ``adk``."""
    families = []
    if ctx.family("sqlspec", "raw"):
        families.append("ours")
    if ctx.family("adk"):
        families.append("adk")
    return families


def _family_of(impl: Impl) -> str:
    return "adk" if impl.family == "adk" else "ours"


async def scenario_get(ctx: Context) -> None:
    s = ctx.sizes
    operation = f"get_session, {s.history} events"
    seeded: dict[str, tuple[str, str]] = {}
    for family in _families(ctx):

        async def do_seed(family: str = family) -> None:
            seeded[family] = await _seed_history(ctx, family, s.history)

        await ctx.guard(S2, f"seed {s.history} appended events", family, do_seed)

    calls: list[Call] = []
    for impl in ctx.impls:
        where = seeded.get(_family_of(impl))
        if where is None:
            continue
        user, session_id = where

        async def setup(impl: Impl = impl, user: str = user, sid: str = session_id) -> Any:
            got = await impl.call(impl.get_session, APP, user, sid, None)
            _check(got is not None and len(got.events) == s.history, "wrong event count")

            def get(_: int) -> Any:
                return impl.get_session(APP, user, sid, None)

            return get

        fn = await ctx.guard(S2, operation, impl.label, setup)
        if fn is not None:
            calls.append(Call(impl, operation, fn))
    await ctx.timed(S2, calls, ctx.budget(s.gets, min(s.warmup, 5), chunk=5))

    if "ours" in seeded:
        user, session_id = seeded["ours"]
        await ctx.guard(S2, operation, "pydantic", lambda: _rebuild(ctx, user, session_id))
    await _get_again(ctx)


async def _seed_sizes(
    ctx: Context, scenario: str, sizes: tuple[int, ...], tag: str
) -> dict[tuple[str, int], tuple[str, str]]:
    """One long session of each size per family: (family, size) -> (user, session id)."""
    seeded: dict[tuple[str, int], tuple[str, str]] = {}
    for family in _families(ctx):
        for size in sizes:

            async def do_seed(family: str = family, size: int = size) -> None:
                seeded[family, size] = await _seed_long_session(ctx, family, size, tag)

            await ctx.guard(scenario, f"seed {size:,} events", family, do_seed)
    return seeded


async def _get_again(ctx: Context) -> None:
    """The same session read again and again, a small one and a long one in one series:
    a service that keeps the events it read should not pay for the history it holds."""
    s = ctx.sizes
    seeded = await _seed_sizes(ctx, S2, (s.again_small, s.again_big), "again")
    calls: list[Call] = []
    for size in (s.again_small, s.again_big):
        operation = f"get_session again, {size:,} events"
        for impl in ctx.impls:
            where = seeded.get((_family_of(impl), size))
            if where is None:
                continue

            async def setup(
                impl: Impl = impl, where: tuple[str, str] = where, n: int = size
            ) -> Any:
                user, session_id = where
                got = await impl.call(impl.get_session, APP, user, session_id, None)
                _check(got is not None and len(got.events) == n, "wrong event count")

                def get(_: int) -> Any:
                    return impl.get_session(APP, user, session_id, None)

                return get

            fn = await ctx.guard(S2, operation, impl.label, setup)
            if fn is not None:
                calls.append(Call(impl, operation, fn))
    await ctx.timed(S2, calls, ctx.budget(s.gets, min(s.warmup, 5), chunk=5))


async def _rebuild(ctx: Context, user: str, session_id: str) -> None:
    """The pydantic share: validate the same events from their JSON text alone, no I/O."""
    s = ctx.sizes
    statements = await ctx.raw_statements()
    params = {"app_name": APP, "user_id": user, "session_id": session_id, "limit": None}
    cur = await ctx.admin.execute(statements.get, params)
    row = await cur.fetchone()
    _check(row is not None and row[5] is not None, "no events to rebuild")
    assert row is not None
    text: str = row[5]
    _check(len(EVENTS.validate_json(text)) == s.history, "wrong event count")

    def rebuild(_: int) -> Any:
        return EVENTS.validate_json(text)

    series = Series("pydantic", False, rebuild)
    await time_interleaved([series], ctx.budget(s.gets, min(s.warmup, 5), chunk=5))
    if series.error is not None:
        raise series.error
    ctx.results.append(
        Result(
            S2,
            f"get_session, {s.history} events",
            "pydantic rebuild only (no I/O)",
            series.samples,
            extra=f"TypeAdapter(list[Event]).validate_json of {len(text) / 1024:.0f} KiB",
        )
    )


# --- 3. get_session(num_recent_events=N) on small and big sessions -----------------------

S3 = "3 get recent"


async def _seed_long_session(ctx: Context, family: str, size: int, name: str) -> tuple[str, str]:
    """A session of ``size`` events: one appended for real, the rest cloned from it."""
    user, session_id = name, f"{name}-{size}"
    template = make_event(0, text_bytes=ctx.sizes.text_bytes)
    if family == "ours":
        session = await ctx.reader_call(
            ctx.reader.create_session,
            app_name=APP,
            user_id=user,
            session_id=session_id,
            state=session_state(3),
        )
        await ctx.reader_call(ctx.reader.append_event, session, template)
        table, naive = OUR_EVENTS, False
    else:
        adk = ctx.first("adk")
        assert adk is not None
        session = await adk.call(adk.create_session, APP, user, session_id, session_state(3))
        await adk.call(adk.append_event, session, template)
        table, naive = ADK_EVENTS, True
    await seed.clone_events(
        ctx.admin,
        table,
        app=APP,
        user=user,
        session_id=session_id,
        event_id=template.id,
        count=size - 1,
        naive_timestamp=naive,
    )
    await seed.settle(ctx.admin, table)
    return user, session_id


async def scenario_recent(ctx: Context) -> None:
    s = ctx.sizes
    seeded = await _seed_sizes(ctx, S3, (s.small_session, s.big_session), "recent")

    # Both sizes in one interleaved series: their ratio is what matters here.
    calls: list[Call] = []
    for size in (s.small_session, s.big_session):
        operation = f"get_session(num_recent_events={s.recent}), {size:,} events"
        for impl in ctx.impls:
            where = seeded.get((_family_of(impl), size))
            if where is None:
                continue

            async def setup(
                impl: Impl = impl, where: tuple[str, str] = where, n: int = size
            ) -> Any:
                user, session_id = where
                got = await impl.call(impl.get_session, APP, user, session_id, s.recent)
                _check(got is not None, "seeded session not found")
                want = [f"seed-{i:07d}" for i in range(n - s.recent, n)]
                _check([e.id for e in got.events] == want, "wrong recent events")

                def get(_: int) -> Any:
                    return impl.get_session(APP, user, session_id, s.recent)

                return get

            fn = await ctx.guard(S3, operation, impl.label, setup)
            if fn is not None:
                calls.append(Call(impl, operation, fn))
    await ctx.timed(S3, calls, ctx.budget(s.recent_runs, chunk=20))


# --- 4. list_sessions: whole list and pages -----------------------------------------------

S4 = "4 list"


async def _seed_sessions(ctx: Context, family: str, count: int) -> str:
    """A user with ``count`` sessions: one created for real, the rest cloned from it."""
    user = f"lister-{count}"
    template_id = "listed"
    if family == "ours":
        await ctx.reader_call(
            ctx.reader.create_session,
            app_name=APP,
            user_id=user,
            session_id=template_id,
            state=session_state(4),
        )
        table = OUR_SESSIONS
    else:
        adk = ctx.first("adk")
        assert adk is not None
        await adk.call(adk.create_session, APP, user, template_id, session_state(4))
        table = ADK_SESSIONS
    await seed.clone_sessions(
        ctx.admin, table, app=APP, user=user, session_id=template_id, count=count - 1
    )
    await seed.settle(ctx.admin, table)
    return user


async def scenario_list(ctx: Context) -> None:
    s = ctx.sizes
    counts = (s.few_sessions, s.many_sessions)
    users: dict[tuple[str, int], str] = {}
    for family in _families(ctx):
        for count in counts:

            async def do_seed(family: str = family, count: int = count) -> None:
                users[family, count] = await _seed_sessions(ctx, family, count)

            await ctx.guard(S4, f"seed {count:,} sessions", family, do_seed)

    for count in counts:
        operation = f"list_sessions, whole list of {count:,}"
        calls: list[Call] = []
        for impl in ctx.impls:
            user = users.get((_family_of(impl), count))
            if user is None:
                continue

            async def setup(impl: Impl = impl, user: str = user, n: int = count) -> Any:
                got = await impl.call(impl.list_sessions, APP, user)  # doubles as warm-up
                _check(len(got) == n, f"listed {len(got)} sessions, expected {n}")

                def list_all(_: int) -> Any:
                    return impl.list_sessions(APP, user)

                return list_all

            fn = await ctx.guard(S4, operation, impl.label, setup)
            if fn is not None:
                calls.append(Call(impl, operation, fn))
        big = count == s.many_sessions
        budget = ctx.budget(s.list_runs, 0, chunk=1 if big else 2, min_runs=2 if big else 3)
        await ctx.timed(S4, calls, budget)

    # Paging: the library's newer API, measured wherever it exists.
    missing = [
        f"{impl.label}: {impl.paging_missing()}"
        for impl in ctx.impls
        if impl.family == "sqlspec" and impl.paging_missing() is not None
    ]
    if missing:
        ctx.notes.append("4 list, pages: skipped for " + "; ".join(missing))
    pagers = [impl for impl in ctx.impls if impl.paging_missing() is None]
    if not any(impl.family == "sqlspec" for impl in pagers):
        return
    cursors: dict[tuple[str, int], Any] = {}
    for count in counts:
        user = users.get(("ours", count))
        if user is None:
            continue
        for impl in pagers:

            async def check(impl: Impl = impl, user: str = user, count: int = count) -> None:
                first, cursor = await impl.call(impl.list_page, APP, user, s.page_size, None)
                _check(len(first) == s.page_size and cursor is not None, "first page wrong")
                second, _ = await impl.call(impl.list_page, APP, user, s.page_size, cursor)
                _check(len(second) == s.page_size, "second page wrong")
                _check(second[0].id != first[0].id, "second page repeats the first")
                cursors[impl.key, count] = cursor

            await ctx.guard(S4, f"pages of {s.page_size} from {count:,}", impl.label, check)
    # Every size and both pages in one interleaved series: the ratios are what matter.
    page_calls: list[Call] = []
    for label in ("first page", "next page (cursor)"):
        for count in counts:
            operation = f"list_sessions, {label} of {s.page_size} from {count:,}"
            for impl in pagers:
                if (impl.key, count) not in cursors:
                    continue
                at = None if label == "first page" else cursors[impl.key, count]

                def page(
                    _: int, impl: Impl = impl, user: str = users["ours", count], at: Any = at
                ) -> Any:
                    return impl.list_page(APP, user, s.page_size, at)

                page_calls.append(Call(impl, operation, page))
    await ctx.timed(S4, page_calls, ctx.budget(s.page_runs, chunk=20))


# --- 5. concurrent appends through a small pool -------------------------------------------

S5 = "5 concurrency"
MIXES = (("app: 1 in 10", DeltaMix(1, 10)), ("app: every event", DeltaMix(1, 1)))


def _is_pool_timeout(exc: BaseException) -> bool:
    from psycopg_pool import PoolTimeout

    if isinstance(exc, PoolTimeout):
        return True
    return type(exc).__name__ == "TimeoutError" and type(exc).__module__.startswith("sqlalchemy")


@dataclass
class _Round:
    """One round of one implementation: one task alone, then every task at once."""

    single: list[float]
    single_rate: float
    latencies: list[float]
    rate: float
    errors: list[BaseException]


async def scenario_concurrency(ctx: Context) -> None:
    """Rounds of every implementation in turn, each on a pool grown for it and released
    after: a round takes a second or less, and the machine drifts between rounds more
    than implementations differ (six runs of one round each, one commit: 0.74-0.99x the floor)."""
    s = ctx.sizes
    appenders: list[tuple[Impl, Callable[[Any, Event], Awaitable[Any]]]] = []
    for impl in ctx.impls:
        append = impl.loop_append()
        if append is None:
            ctx.notes.append(f"5 concurrency: {impl.label} skipped (no asyncio API)")
        else:
            appenders.append((impl, append))
    for mix_name, mix in MIXES:
        rounds: dict[str, list[_Round]] = {impl.key: [] for impl, _ in appenders}
        failed: set[str] = set()
        for number in range(s.concurrency_rounds):
            shift = number % max(len(appenders), 1)
            for impl, append in appenders[shift:] + appenders[:shift]:
                if impl.key in failed:
                    continue

                async def body(
                    impl: Impl = impl,
                    append: Callable[[Any, Event], Awaitable[Any]] = append,
                    number: int = number,
                    mix: DeltaMix = mix,
                ) -> _Round:
                    await impl.grow()
                    try:
                        return await _concurrency_round(ctx, impl, append, mix, number)
                    finally:
                        await impl.release()

                operation = f"{s.tasks} tasks ({mix_name}), round {number + 1}"
                done = await ctx.guard(S5, operation, impl.label, body)
                if done is None:
                    failed.add(impl.key)
                else:
                    rounds[impl.key].append(done)
        for impl, _ in appenders:
            if impl.key not in failed and rounds[impl.key]:
                _concurrency_results(ctx, impl, mix_name, rounds[impl.key])


async def _concurrency_round(
    ctx: Context,
    impl: Impl,
    append: Callable[[Any, Event], Awaitable[Any]],
    mix: DeltaMix,
    number: int,
) -> _Round:
    s = ctx.sizes
    tag = "a10" if mix.app_every == 10 else "a1"
    sessions = [
        await impl.call(
            impl.create_session,
            APP,
            f"conc-{impl.key}-{k}",
            f"conc-{tag}-{number}-{k}",
            session_state(k),
        )
        for k in range(s.tasks)
    ]
    per_task = s.appends_per_task
    single_n = per_task * 4
    # Per task: one warm-up event, then its concurrent appends; task 0 first appends
    # the single-task series (those events are the oldest, so time only moves forward).
    events = [
        make_events(
            1 + (single_n if k == 0 else 0) + per_task,
            text_bytes=s.text_bytes,
            mix=mix,
            invocation=f"t{k}",
        )
        for k in range(s.tasks)
    ]
    # Warm every pooled connection (and its prepared statements) first.
    await asyncio.gather(*(append(sessions[k], events[k][0]) for k in range(s.tasks)))

    # One task alone: the baseline throughput.
    single: list[float] = []
    started = time.perf_counter()
    for event in events[0][1 : 1 + single_n]:
        t0 = time.perf_counter()
        await append(sessions[0], event)
        single.append(time.perf_counter() - t0)
    single_rate = len(single) / (time.perf_counter() - started)

    # Every task at once, each on its own session, all through the one pool.
    latencies: list[float] = []
    errors: list[BaseException] = []

    async def task(k: int) -> int:
        done = 0
        for event in events[k][-per_task:]:
            t0 = time.perf_counter()
            try:
                await append(sessions[k], event)
            except Exception as exc:
                errors.append(exc)
                continue
            latencies.append(time.perf_counter() - t0)
            done += 1
        return done

    started = time.perf_counter()
    done = sum(await asyncio.gather(*(task(k) for k in range(s.tasks))))
    rate = done / (time.perf_counter() - started)
    return _Round(single, single_rate, latencies, rate, errors)


def _concurrency_results(ctx: Context, impl: Impl, mix_name: str, rounds: list[_Round]) -> None:
    """Two rows from an implementation's rounds: the rates are the rounds' medians."""
    s = ctx.sizes
    single_rate = statistics.median(r.single_rate for r in rounds)
    ctx.results.append(
        Result(
            S5,
            f"1 task, sequential ({mix_name})",
            impl.label,
            [x for r in rounds for x in r.single],
            throughput=single_rate,
            extra=f"{single_rate:,.0f} appends/s",
        )
    )
    rates = [r.rate for r in rounds]
    rate = statistics.median(rates)
    errors = [exc for r in rounds for exc in r.errors]
    timeouts = sum(1 for exc in errors if _is_pool_timeout(exc))
    other = len(errors) - timeouts
    speedup = rate / single_rate
    extra = (
        f"{rate:,.0f} appends/s (median of {len(rates)} rounds, {min(rates):,.0f}-"
        f"{max(rates):,.0f}) = {speedup:.1f}x one task; {timeouts} pool timeouts"
    )
    if other:
        extra += f"; {other} other errors ({_describe(errors[0])[:80]})"
    if not impl.is_async:
        extra += "; called from the event loop (awaitables on its default executor)"
    ctx.results.append(
        Result(
            S5,
            f"{s.tasks} tasks, pool of {s.pool_size} ({mix_name})",
            impl.label,
            [x for r in rounds for x in r.latencies],
            throughput=rate,
            extra=extra,
            metrics={"timeouts": timeouts, "errors": other, "speedup": speedup},
        )
    )


# --- 6. bulk import and streaming export ----------------------------------------------------

S6 = "6 bulk"

#: ``importer(user, session_id, events)``: bulk import into an existing session.
Importer = Callable[[str, str, list[Event]], Awaitable[int]]


async def scenario_bulk(ctx: Context) -> None:
    await _bulk_import(ctx)
    await _export(ctx)


def _importer(impl: Impl) -> tuple[str, Importer] | str | None:
    """The bulk import an implementation offers, a note saying why not, or ``None``."""
    if isinstance(impl, RawAsync):
        raw = impl

        async def copy(user: str, session_id: str, events: list[Event]) -> int:
            return await raw.import_events(APP, user, session_id, events)

        return "raw psycopg · async COPY (floor)", copy
    if type(impl) not in (SQLSpecAsyncService, SQLSpecSyncStore):
        return None
    store: Any = getattr(impl, "store", None)
    label = "sqlspec async · store" if impl.is_async else impl.label
    method = getattr(store, "import_events", None)
    if method is None:
        return f"6 bulk import: {label} skipped: the store has no import_events"

    async def run(user: str, session_id: str, events: list[Event]) -> int:
        kwargs = {"app_name": APP, "user_id": user, "session_id": session_id, "events": events}
        stored: int = await impl.call(method, **kwargs)
        return stored

    return label, run


async def _bulk_import(ctx: Context) -> None:
    s = ctx.sizes
    n = s.import_events

    # The append loop, extrapolated from a sample, for every implementation.
    loop_operation = f"append_event loop x {n:,} (extrapolated)"
    calls: list[Call] = []
    for impl in ctx.impls:
        if impl.key == "sqlspec-sync-service":
            continue  # the same store as sqlspec-sync-store

        async def setup(impl: Impl = impl) -> Callable[[int], Any]:
            _, _, append = await _appender(
                impl, f"loop-{impl.key}", 6, s.append_sample + 5, s.text_bytes
            )
            return append

        fn = await ctx.guard(S6, loop_operation, impl.label, setup)
        if fn is not None:
            calls.append(Call(impl, loop_operation, fn))
    samples = await ctx.timed(S6, calls, ctx.budget(s.append_sample, 5, chunk=25))
    loop_totals: dict[str, float] = {}
    for series_key, result in samples.items():
        key = series_key.split("|", 1)[0]
        mean = sum(result.samples) / result.n
        loop_totals[key] = mean * n
        result.extra = f"{result.n} appends timed, mean {mean * 1000:.2f} ms, x {n:,}"
        result.samples = [mean * n]

    importers: list[tuple[str, Impl, Importer]] = []
    for impl in ctx.impls:
        found = _importer(impl)
        if isinstance(found, str):
            ctx.notes.append(found)
        elif found is not None:
            importers.append((found[0], impl, found[1]))
    if not importers:
        return
    ctx.status(f"{S6} · building {n:,} events")
    events = make_events(n, text_bytes=s.text_bytes)
    operation = f"bulk import of {n:,} events"
    for label, impl, run in importers:

        async def body(label: str = label, impl: Impl = impl, run_import: Importer = run) -> None:
            user = f"import-{impl.key}"
            elapsed = 0.0
            for session_id, batch in (("warm", events[: max(1, n // 100)]), ("bulk", events)):
                await ctx.reader_call(
                    ctx.reader.create_session,
                    app_name=APP,
                    user_id=user,
                    session_id=session_id,
                    state=session_state(6),
                )
                started = time.perf_counter()
                stored = await run_import(user, session_id, batch)
                elapsed = time.perf_counter() - started
                _check(stored == len(batch), f"imported {stored} of {len(batch)}")
            got = await ctx.reader_call(
                ctx.reader.get_session,
                app_name=APP,
                user_id=user,
                session_id="bulk",
                config=_recent(1),
            )
            _check(got is not None and got.events == [events[-1]], "imported rows read back differ")
            extra = f"{n / elapsed:,.0f} events/s"
            metrics: dict[str, float] = {}
            loop_total = loop_totals.get(impl.key)
            if loop_total:
                metrics["speedup"] = loop_total / elapsed
                extra += f"; {loop_total / elapsed:.1f}x faster than its append loop"
            ctx.results.append(
                Result(
                    S6,
                    operation,
                    label,
                    [elapsed],
                    throughput=n / elapsed,
                    extra=extra,
                    metrics=metrics,
                )
            )

        await ctx.guard(S6, operation, label, body)

    # The import floor: the raw COPY's time, shown against each store's import.
    rows = [r for r in ctx.results if r.scenario == S6 and r.operation == operation and r.n]
    floor = next((r for r in rows if r.impl.startswith("raw")), None)
    for row in rows:
        if floor is not None and row is not floor:
            row.extra += f"; {row.median / floor.median:.1f}x the raw COPY floor"


async def _export(ctx: Context) -> None:
    s = ctx.sizes
    method = export_method(ctx.reader)
    apis: list[tuple[str, str, str]] = []  # (worker api, name shown, implementation label)
    if method is not None:
        apis.append(("export_jsonl", method.__name__, "sqlspec async · store"))
    else:
        ctx.notes.append(
            "6 bulk export: skipped: the store has no export_events_jsonl/export_jsonl"
        )
    if hasattr(ctx.reader, "iter_events"):
        apis.append(("iter_events", "iter_events", "sqlspec async · store"))
    else:
        ctx.notes.append("6 bulk export: iter_events skipped: the store has no iter_events")
    if not apis:
        return
    apis.append(("raw_copy", "COPY (...) TO STDOUT", "raw psycopg · COPY TO (floor)"))

    sizes = (s.export_small, s.export_large)
    apps: dict[int, str] = {}
    for size in sizes:

        async def do_seed(size: int = size) -> None:
            app = f"bench-export-{size}"
            template = make_event(0, text_bytes=s.text_bytes)
            session = await ctx.reader_call(
                ctx.reader.create_session,
                app_name=app,
                user_id="exporter",
                session_id="export",
                state=session_state(7),
            )
            await ctx.reader_call(ctx.reader.append_event, session, template)
            await seed.clone_events(
                ctx.admin,
                OUR_EVENTS,
                app=app,
                user="exporter",
                session_id="export",
                event_id=template.id,
                count=size - 1,
            )
            await seed.settle(ctx.admin, OUR_EVENTS)
            apps[size] = app

        await ctx.guard(S6, f"seed {size:,} events", "ours", do_seed)

    for api, name, label in apis:
        peaks: dict[int, float] = {}
        for size in sizes:
            if size not in apps:
                continue
            operation = f"{name}, {size:,} events (own process)"

            async def body(
                api: str = api,
                size: int = size,
                operation: str = operation,
                label: str = label,
                peaks: dict[int, float] = peaks,
            ) -> None:
                out = await _run_worker(ctx.dsn, api, apps[size])
                _check(out["events"] >= size, f"exported {out['events']} events of {size}")
                peak = float(out["peak_rss_mb"])
                peaks[size] = peak
                extra = f"{out['events'] / out['seconds']:,.0f} events/s; peak RSS {peak:.0f} MB"
                metrics = {"peak_rss_mb": peak}
                if size == s.export_large and s.export_small in peaks:
                    growth = peak - peaks[s.export_small]
                    extra += f" ({growth:+.1f} MB vs {s.export_small:,})"
                    metrics["rss_growth_mb"] = growth
                ctx.results.append(
                    Result(
                        S6,
                        operation,
                        label,
                        [out["seconds"]],
                        throughput=out["events"] / out["seconds"],
                        extra=extra,
                        metrics=metrics,
                    )
                )

            await ctx.guard(S6, operation, label, body)


#: The repository root: the export worker runs from there, as ``python -m``.
_ROOT = Path(__file__).resolve().parent.parent
#: Seconds an export worker may take before it is killed.
WORKER_TIMEOUT = 1800


async def _run_worker(dsn: str, api: str, app: str) -> dict[str, Any]:
    root = _ROOT
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.export_worker",
        "--dsn",
        dsn,
        "--api",
        api,
        "--app",
        app,
        "--user",
        "exporter",
        "--session",
        "export",
        cwd=str(root),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), WORKER_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"export worker gave no answer within {WORKER_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"export worker failed: {stderr.decode()[-500:]}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


SCENARIO_FUNCTIONS: dict[str, Callable[[Context], Awaitable[None]]] = {
    "append": scenario_append,
    "get": scenario_get,
    "recent": scenario_recent,
    "list": scenario_list,
    "concurrency": scenario_concurrency,
    "bulk": scenario_bulk,
}
