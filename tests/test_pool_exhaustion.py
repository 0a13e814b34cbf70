"""Pool exhaustion: more concurrent callers than ``max_size``, a short ``timeout``.

Every service call holds one pooled connection for one statement. Here a table
lock held by an outside connection keeps the first ``max_size`` callers inside
the server, so the others must wait for the pool, and run out of ``timeout``.
What must hold: every caller gets an answer or an error within a bounded time
(never a hang); the error is clear; once the lock goes the pool serves again
with nothing leaked, on the pool's side and on the server's.

The error is ``sqlspec.PoolExhaustedError``, naming the pool's limits.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

import sqlspec
from helpers import figures_report
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

APP = "pool-app"
USER = "pool-user"
MAX_SIZE = 2
TIMEOUT = 0.5
CALLERS = 12
#: Generous bound on any one call: the pool timeout, plus the lock's hold, plus slack.
HOLD = 1.5
BOUND = TIMEOUT + HOLD + 5.0

#: What a caller may see when the pool is exhausted.
POOL_ERRORS: tuple[type[BaseException], ...] = (sqlspec.PoolExhaustedError,)

FIGURES: Counter[str] = Counter()
_report = figures_report("pool exhaustion", FIGURES)


def pool_settings(dsn: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "conninfo": dsn,
        "min_size": 1,
        "max_size": MAX_SIZE,
        "timeout": TIMEOUT,
        "application_name": name,
        **extra,
    }


@contextmanager
def table_locked(dsn: str, table: str = "adk_sessions") -> Iterator[None]:
    """Hold an exclusive lock on ``table`` from an outside connection."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            psycopg.sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                psycopg.sql.Identifier(table)
            )
        )
        yield
        conn.rollback()


def server_connections(dsn: str, application_name: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert row is not None
    value: int = row[0]
    return value


def settled(stats: dict[str, int]) -> bool:
    return stats["requests_waiting"] == 0 and stats["pool_available"] == stats["pool_size"]


async def settle_async(pool: psycopg_pool.AsyncConnectionPool[Any]) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while not settled(stats := pool.get_stats()):
        assert time.monotonic() < deadline, f"the pool never settled: {stats}"
        await asyncio.sleep(0.02)
    return stats


def settle_sync(pool: psycopg_pool.ConnectionPool[Any]) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while not settled(stats := pool.get_stats()):
        assert time.monotonic() < deadline, f"the pool never settled: {stats}"
        time.sleep(0.02)
    return stats


async def wait_for_server_connections(dsn: str, name: str, at_most: int) -> int:
    deadline = time.monotonic() + 10
    while (n := server_connections(dsn, name)) > at_most:
        assert time.monotonic() < deadline, f"{n} server connections of {name!r} stay open"
        await asyncio.sleep(0.05)
    return n


# ------------------------------------------------------------------- async


async def exhaust_async(dsn: str, name: str, **extra: Any) -> tuple[list[Any], list[float], Any]:
    """``CALLERS`` concurrent reads against a pool of ``MAX_SIZE`` while the table is locked."""
    config = PsycopgAsyncConfig(connection_config=pool_settings(dsn, name, **extra))
    store = PsycopgAsyncADKStore(config)
    await store.create_tables()
    service = SQLSpecSessionService(store)
    await service.create_session(app_name=APP, user_id=USER, session_id="s")
    pool = await config.provide_pool()
    await settle_async(pool)

    async def caller() -> tuple[Any, float]:
        started = time.monotonic()
        try:
            result: Any = await service.get_session(app_name=APP, user_id=USER, session_id="s")
        except Exception as exc:
            result = exc
        return result, time.monotonic() - started

    with table_locked(dsn):
        tasks = [asyncio.create_task(caller()) for _ in range(CALLERS)]
        await asyncio.sleep(HOLD)
    done = await asyncio.wait_for(asyncio.gather(*tasks), timeout=BOUND + 10)
    FIGURES["async callers"] += CALLERS
    return [r for r, _ in done], [t for _, t in done], service


async def test_async_callers_beyond_max_size_fail_fast_and_the_pool_recovers(dsn: str) -> None:
    name = "exhaust-async"
    results, times, service = await exhaust_async(dsn, name)
    errors = [r for r in results if isinstance(r, BaseException)]
    served = [r for r in results if not isinstance(r, BaseException)]
    FIGURES["pool errors seen"] += len(errors)
    # The lock held the first MAX_SIZE inside the server; they finish once it goes.
    assert len(served) >= MAX_SIZE
    assert len(errors) >= CALLERS - MAX_SIZE - 2, results
    assert all(isinstance(e, POOL_ERRORS) for e in errors), {type(e) for e in errors}
    assert max(times) < BOUND, times
    # Recovered: more callers than max_size at once, all served, nothing leaked.
    got = await asyncio.gather(
        *(service.get_session(app_name=APP, user_id=USER, session_id="s") for _ in range(CALLERS))
    )
    assert all(s is not None for s in got)
    pool = await service.store.config.provide_pool()
    stats = await settle_async(pool)
    assert stats["pool_size"] <= MAX_SIZE
    assert await wait_for_server_connections(dsn, name, MAX_SIZE) <= MAX_SIZE
    await service.close()
    assert await wait_for_server_connections(dsn, name, 0) == 0


async def test_async_pool_timeout_is_a_typed_error_naming_the_limits(dsn: str) -> None:
    results, _, service = await exhaust_async(dsn, "exhaust-async-typed")
    await service.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors
    for error in errors:
        assert isinstance(error, sqlspec.PoolExhaustedError), repr(error)
        assert f"max_size={MAX_SIZE}" in str(error)
        assert "timeout" in str(error)


async def test_async_max_waiting_refuses_at_once(dsn: str) -> None:
    name = "exhaust-async-waiting"
    results, times, service = await exhaust_async(dsn, name, max_waiting=2)
    errors = [r for r in results if isinstance(r, BaseException)]
    FIGURES["pool errors seen"] += len(errors)
    refused = [
        e
        for e in errors
        if isinstance(e, psycopg_pool.TooManyRequests)
        or isinstance(e.__cause__, psycopg_pool.TooManyRequests)
    ]
    assert len(refused) >= CALLERS - MAX_SIZE - 2 - 1, results
    assert all(isinstance(e, POOL_ERRORS) for e in errors)
    assert max(times) < BOUND
    assert await service.get_session(app_name=APP, user_id=USER, session_id="s") is not None
    await settle_async(await service.store.config.provide_pool())
    await service.close()


async def test_async_max_waiting_is_a_typed_error(dsn: str) -> None:
    results, _, service = await exhaust_async(dsn, "exhaust-async-waiting-typed", max_waiting=2)
    await service.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors
    assert all(isinstance(e, sqlspec.SQLSpecError) and "max_waiting=2" in str(e) for e in errors)


async def test_cancelled_callers_leak_no_connection(dsn: str) -> None:
    """Callers cancelled while waiting in the pool or blocked in the server give everything back."""
    name = "exhaust-cancel"
    config = PsycopgAsyncConfig(connection_config=pool_settings(dsn, name, timeout=30.0))
    store = PsycopgAsyncADKStore(config)
    await store.create_tables()
    service = SQLSpecSessionService(store)
    session = await service.create_session(app_name=APP, user_id=USER, session_id="s")
    with table_locked(dsn):
        tasks = [
            asyncio.create_task(service.get_session(app_name=APP, user_id=USER, session_id="s"))
            for _ in range(CALLERS)
        ]
        await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
        results = await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), timeout=BOUND
        )
    FIGURES["cancelled callers"] += sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    # Writes and reads work, at full concurrency, and nothing stays checked out.
    from google.adk.events.event import Event

    await service.append_event(session, Event(author="user"))
    got = await asyncio.gather(
        *(service.get_session(app_name=APP, user_id=USER, session_id="s") for _ in range(CALLERS))
    )
    assert all(s is not None and len(s.events) == 1 for s in got)
    stats = await settle_async(await config.provide_pool())
    assert stats["pool_size"] <= MAX_SIZE
    assert await wait_for_server_connections(dsn, name, MAX_SIZE) <= MAX_SIZE
    await service.close()


# -------------------------------------------------------------------- sync


def exhaust_sync(dsn: str, name: str, **extra: Any) -> tuple[list[Any], list[float], Any]:
    config = PsycopgSyncConfig(connection_config=pool_settings(dsn, name, **extra))
    store = PsycopgSyncADKStore(config)
    store.create_tables()
    store.create_session(app_name=APP, user_id=USER, session_id="s")
    settle_sync(config.provide_pool())
    started_all = threading.Barrier(CALLERS + 1)

    def caller() -> tuple[Any, float]:
        started_all.wait(timeout=10)
        started = time.monotonic()
        try:
            result: Any = store.get_session(app_name=APP, user_id=USER, session_id="s")
        except Exception as exc:
            result = exc
        return result, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=CALLERS) as executor:
        with table_locked(dsn):
            futures = [executor.submit(caller) for _ in range(CALLERS)]
            started_all.wait(timeout=10)
            time.sleep(HOLD)
        done = [f.result(timeout=BOUND + 10) for f in futures]
    FIGURES["sync callers"] += CALLERS
    return [r for r, _ in done], [t for _, t in done], store


def test_sync_callers_beyond_max_size_fail_fast_and_the_pool_recovers(dsn: str) -> None:
    name = "exhaust-sync"
    results, times, store = exhaust_sync(dsn, name)
    errors = [r for r in results if isinstance(r, BaseException)]
    FIGURES["pool errors seen"] += len(errors)
    assert len(errors) >= CALLERS - MAX_SIZE - 2, results
    assert all(isinstance(e, POOL_ERRORS) for e in errors), {type(e) for e in errors}
    assert max(times) < BOUND, times
    with ThreadPoolExecutor(max_workers=CALLERS) as executor:
        got = list(
            executor.map(
                lambda _: store.get_session(app_name=APP, user_id=USER, session_id="s"),
                range(CALLERS),
            )
        )
    assert all(s is not None for s in got)
    stats = settle_sync(store.config.provide_pool())
    assert stats["pool_size"] <= MAX_SIZE
    assert asyncio.run(wait_for_server_connections(dsn, name, MAX_SIZE)) <= MAX_SIZE
    store.close()
    assert asyncio.run(wait_for_server_connections(dsn, name, 0)) == 0


def test_sync_pool_timeout_is_a_typed_error_naming_the_limits(dsn: str) -> None:
    results, _, store = exhaust_sync(dsn, "exhaust-sync-typed")
    store.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors
    for error in errors:
        assert isinstance(error, sqlspec.PoolExhaustedError), repr(error)
        assert f"max_size={MAX_SIZE}" in str(error)
