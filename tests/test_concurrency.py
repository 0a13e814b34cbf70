"""Real concurrency against PostgreSQL: processes, threads and tasks writing at once.

Every test is bounded (barriers and joins have timeouts, child processes are
killed on the way out) and the module runs in well under 30 seconds.

Where "at the same moment" matters, the tests do not rely on timing alone: the
test holds a row lock, waits until every writer is visibly blocked on it in
``pg_stat_activity``, and only then lets them all go.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import psycopg
import pytest
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.session import Session
from google.genai import types

from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import (
    PsycopgAsyncADKStore,
    PsycopgSyncADKArtifactStore,
    PsycopgSyncADKStore,
)
from sqlspec.extensions.adk import SQLSpecArtifactService, SQLSpecSessionService

N = 20
TIMEOUT = 20.0
APPEND_SQL_PREFIX = "WITH ev AS"
#: Writers in the create/append mix; small, since each deadlock costs a deadlock_timeout (1 s).
MIXED = 12


def _event(author: str, delta: dict[str, Any], event_id: str | None = None) -> Event:
    kwargs: dict[str, Any] = {"id": event_id} if event_id else {}
    return Event(
        author=author,
        invocation_id=f"inv-{author}",
        actions=EventActions(state_delta=delta),
        **kwargs,
    )


@contextlib.contextmanager
def _row_lock(dsn: str, sql: str, params: tuple[Any, ...]) -> Iterator[psycopg.Connection[Any]]:
    """Hold ``SELECT ... FOR UPDATE`` on the rows ``sql`` selects until the block ends."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(sql, params).fetchall()
        assert rows, "nothing to lock"
        yield conn
        conn.commit()


def _wait_for_waiters(dsn: str, count: int, query_prefix: str = APPEND_SQL_PREFIX) -> None:
    """Wait until ``count`` backends are blocked on a lock running a statement so prefixed."""
    deadline = time.monotonic() + TIMEOUT
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND ltrim(query) LIKE %s",
                (query_prefix + "%",),
            ).fetchone()
            assert row is not None
            if row[0] >= count:
                return
            assert time.monotonic() < deadline, f"only {row[0]} of {count} writers blocked"
            time.sleep(0.01)


def _stored_app_state(dsn: str, app: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT state FROM adk_app_states WHERE app_name = %s", (app,)
        ).fetchone()
    return dict(row[0]) if row else {}


# ----------------------------------------------------------------- services


@pytest.fixture
async def wide_async(dsn: str) -> AsyncIterator[Any]:
    """An async service whose pool has a connection for each of N concurrent callers."""
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": dsn, "min_size": N, "max_size": N + 2}
    )
    store = PsycopgAsyncADKStore(config)
    await store.create_tables()
    await (await config.provide_pool()).wait(timeout=TIMEOUT)
    yield SQLSpecSessionService(store)
    await config.close()


@pytest.fixture
def wide_sync(dsn: str) -> Iterator[Any]:
    """A sync service whose pool has a connection for each of N concurrent threads."""
    config = PsycopgSyncConfig(
        connection_config={"conninfo": dsn, "min_size": N, "max_size": N + 2}
    )
    store = PsycopgSyncADKStore(config)
    store.create_tables()
    config.provide_pool().wait(timeout=TIMEOUT)
    yield SQLSpecSessionService(store)
    config.close()


def _in_threads(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread, all released together; results or exceptions."""
    barrier = threading.Barrier(len(fns))

    def run(fn: Callable[[], Any]) -> Any:
        barrier.wait(timeout=TIMEOUT)
        try:
            return fn()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(fns)) as pool:
        futures = [pool.submit(run, fn) for fn in fns]
        return [f.result(timeout=TIMEOUT) for f in futures]


# ------------------------------------------- two processes, one session, one winner


def _race_worker(
    dsn: str,
    worker: int,
    kind: str,
    app: str,
    session_ids: list[str],
    barrier: Any,
    results: Any,
) -> None:
    """Child process: per trial, load the session, meet at the barrier, append one event."""

    def outcome_of(exc: BaseException | None) -> str:
        if exc is None:
            return "ok"
        if isinstance(exc, StaleSessionError):
            return "stale"
        return f"error: {exc!r}"

    def event_for(trial: int) -> Event:
        return _event(
            f"worker{worker}",
            {"winner": worker, f"app:t{trial}": worker, f"user:t{trial}": worker},
            event_id=f"w{worker}-t{trial}",
        )

    conninfo = {"conninfo": dsn, "min_size": 1, "max_size": 1}
    if kind == "sync":
        sync_store = PsycopgSyncADKStore(PsycopgSyncConfig(connection_config=conninfo))
        sync_service: Any = SQLSpecSessionService(sync_store)
        for trial, sid in enumerate(session_ids):
            session = sync_service.get_session(app_name=app, user_id="u", session_id=sid)
            barrier.wait(timeout=TIMEOUT)
            event = event_for(trial)
            error: BaseException | None = None
            try:
                sync_service.append_event(session, event)
            except Exception as exc:
                error = exc
            results.put((trial, worker, outcome_of(error), event.model_dump_json()))
        sync_store.close()
        return

    async def main() -> None:
        async_store = PsycopgAsyncADKStore(PsycopgAsyncConfig(connection_config=conninfo))
        async_service = SQLSpecSessionService(async_store)
        for trial, sid in enumerate(session_ids):
            session = await async_service.get_session(app_name=app, user_id="u", session_id=sid)
            assert session is not None
            await asyncio.to_thread(barrier.wait, TIMEOUT)
            event = event_for(trial)
            error: BaseException | None = None
            try:
                await async_service.append_event(session, event)
            except Exception as exc:
                error = exc
            results.put((trial, worker, outcome_of(error), event.model_dump_json()))
        await async_store.close()

    asyncio.run(main())


@pytest.mark.parametrize("kinds", [("sync", "async"), ("async", "async"), ("sync", "sync")])
def test_two_processes_same_revision_exactly_one_append_wins(
    dsn: str, kinds: tuple[str, str]
) -> None:
    trials = 4  # even trials: released by a barrier; odd: both provably blocked first
    app = "race"
    setup = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 1})
    store = PsycopgSyncADKStore(setup)
    store.create_tables()
    service: Any = SQLSpecSessionService(store)
    session_ids = [f"race-{t}" for t in range(trials)]
    for sid in session_ids:
        service.create_session(app_name=app, user_id="u", session_id=sid, state={"winner": None})

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)  # two workers and this test
    results: Any = ctx.Queue()
    workers = [
        ctx.Process(
            target=_race_worker,
            args=(dsn, w, kinds[w], app, session_ids, barrier, results),
            daemon=True,
        )
        for w in (0, 1)
    ]
    for p in workers:
        p.start()
    outcomes: dict[int, dict[int, tuple[str, str]]] = {}
    try:
        for trial, sid in enumerate(session_ids):
            if trial % 2:
                lock = _row_lock(
                    dsn,
                    "SELECT 1 FROM adk_sessions WHERE app_name = %s AND id = %s FOR UPDATE",
                    (app, sid),
                )
                with lock:
                    barrier.wait(timeout=45)  # the children's first import is slow
                    _wait_for_waiters(dsn, 2)
            else:
                barrier.wait(timeout=45)
            for _ in range(2):
                t, w, outcome, event_json = results.get(timeout=TIMEOUT)
                outcomes.setdefault(t, {})[w] = (outcome, event_json)
        for p in workers:
            p.join(timeout=TIMEOUT)
            assert p.exitcode == 0
    finally:
        for p in workers:
            if p.is_alive():
                p.kill()
                p.join()

    for trial, sid in enumerate(session_ids):
        by_worker = outcomes[trial]
        assert sorted(o for o, _ in by_worker.values()) == ["ok", "stale"], (trial, by_worker)
        winner = next(w for w, (o, _) in by_worker.items() if o == "ok")
        winner_event = Event.model_validate_json(by_worker[winner][1])
        stored = service.get_session(app_name=app, user_id="u", session_id=sid)
        # Exactly the winner's event: nothing lost, nothing duplicated, loser's delta absent.
        assert stored.events == [winner_event], trial
        assert stored.state["winner"] == winner
        assert stored.state[f"app:t{trial}"] == winner
        assert stored.state[f"user:t{trial}"] == winner
        assert stored.last_update_time == pytest.approx(winner_event.timestamp, abs=1e-6)
        # The loser can reload and append on top.
        loser_event = _event("loser", {"after": True})
        service.append_event(stored, loser_event)
        again = service.get_session(app_name=app, user_id="u", session_id=sid)
        assert again.events == [winner_event, loser_event]
    store.close()


# ---------------------------------------- 20 sessions of one user, distinct user: keys


async def test_user_keys_from_concurrent_tasks_all_survive(wide_async: Any, dsn: str) -> None:
    service = wide_async
    sessions = [
        await service.create_session(app_name="ua", user_id="u", state={"user:seed": True})
        for _ in range(N)
    ]
    events = [_event(f"a{i}", {f"user:k{i}": i, "n": i}) for i in range(N)]
    await asyncio.gather(
        *(service.append_event(s, e) for s, e in zip(sessions, events, strict=True))
    )
    await _check_user_keys(service, "ua", sessions, events)

    # Again, with every writer provably blocked on the user-state row, then released.
    more = [_event(f"b{i}", {f"user:m{i}": i}) for i in range(N)]
    with _row_lock(
        dsn,
        "SELECT 1 FROM adk_user_states WHERE app_name = %s AND user_id = %s FOR UPDATE",
        ("ua", "u"),
    ):
        tasks = [
            asyncio.ensure_future(service.append_event(s, e))
            for s, e in zip(sessions, more, strict=True)
        ]
        await asyncio.to_thread(_wait_for_waiters, dsn, N)
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    state = await service.get_user_state(app_name="ua", user_id="u")
    assert {f"m{i}" for i in range(N)} <= set(state)
    assert {f"k{i}" for i in range(N)} <= set(state)


def test_user_keys_from_concurrent_threads_all_survive(wide_sync: Any, dsn: str) -> None:
    service = wide_sync
    sessions = [
        service.create_session(app_name="us", user_id="u", state={"user:seed": True})
        for _ in range(N)
    ]
    events = [_event(f"a{i}", {f"user:k{i}": i, "n": i}) for i in range(N)]
    outcomes = _in_threads(
        [partial(service.append_event, s, e) for s, e in zip(sessions, events, strict=True)]
    )
    assert outcomes == events
    asyncio.run(_check_user_keys(_Awaitable(service), "us", sessions, events))


class _Awaitable:
    """The sync service's direct results, awaitable, so one checker serves both."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.service, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


async def _check_user_keys(
    service: Any, app: str, sessions: list[Session], events: list[Event]
) -> None:
    keys = {f"k{i}" for i in range(N)}
    user_state = await service.get_user_state(app_name=app, user_id="u")
    assert set(user_state) == keys | {"seed"}
    assert all(user_state[f"k{i}"] == i for i in range(N))
    for i, (session, event) in enumerate(zip(sessions, events, strict=True)):
        got = await service.get_session(app_name=app, user_id="u", session_id=session.id)
        assert got.events == [event]
        assert got.state == {"n": i, "user:seed": True, **{f"user:{k}": int(k[1:]) for k in keys}}
    listed = await service.list_sessions(app_name=app, user_id="u")
    assert len(listed.sessions) == N
    for s in listed.sessions:
        assert {f"user:{k}" for k in keys} <= set(s.state)


# ------------------------------------------------ 20 creates of one id, one winner


def _check_one_creator(results: list[Any], app: str, dsn: str, service_state: Any) -> int:
    winners = [r for r in results if isinstance(r, Session)]
    losers = [r for r in results if isinstance(r, AlreadyExistsError)]
    others = [r for r in results if not isinstance(r, Session | AlreadyExistsError)]
    assert not others, others
    assert len(winners) == 1
    assert len(losers) == N - 1
    winner = winners[0]
    w = winner.state["s"]
    assert winner.state == {"s": w, f"app:c{w}": w, f"user:c{w}": w}
    # The losers' app:/user: deltas were not applied.
    assert _stored_app_state(dsn, app) == {f"c{w}": w}
    assert service_state == {f"c{w}": w}
    return int(w)


async def test_concurrent_creates_same_id_one_wins_async(wide_async: Any, dsn: str) -> None:
    service = wide_async
    results = await asyncio.gather(
        *(
            service.create_session(
                app_name="ca",
                user_id="u",
                session_id="same",
                state={"s": i, f"app:c{i}": i, f"user:c{i}": i, f"temp:x{i}": i},
            )
            for i in range(N)
        ),
        return_exceptions=True,
    )
    user_state = await service.get_user_state(app_name="ca", user_id="u")
    w = _check_one_creator(list(results), "ca", dsn, user_state)
    got = await service.get_session(app_name="ca", user_id="u", session_id="same")
    assert got.state == {"s": w, f"app:c{w}": w, f"user:c{w}": w}


def test_concurrent_creates_same_id_one_wins_threads(wide_sync: Any, dsn: str) -> None:
    service = wide_sync
    results = _in_threads(
        [
            partial(
                service.create_session,
                app_name="cs",
                user_id="u",
                session_id="same",
                state={"s": i, f"app:c{i}": i, f"user:c{i}": i},
            )
            for i in range(N)
        ]
    )
    user_state = service.get_user_state(app_name="cs", user_id="u")
    w = _check_one_creator(results, "cs", dsn, user_state)
    got = service.get_session(app_name="cs", user_id="u", session_id="same")
    assert got.state == {"s": w, f"app:c{w}": w, f"user:c{w}": w}


# ------------------------------------------------ app: writers from many sessions


async def test_concurrent_app_writers_lose_nothing_async(wide_async: Any, dsn: str) -> None:
    service = wide_async
    # Sessions of several users, all writing the one app row (and their user's row).
    sessions = [
        await service.create_session(app_name="aa", user_id=f"u{i % 4}", state={"app:seed": 0})
        for i in range(N)
    ]
    events = [_event(f"e{i}", {f"app:k{i}": i, f"user:k{i}": i}) for i in range(N)]
    with _row_lock(dsn, "SELECT 1 FROM adk_app_states WHERE app_name = %s FOR UPDATE", ("aa",)):
        tasks = [
            asyncio.ensure_future(service.append_event(s, e))
            for s, e in zip(sessions, events, strict=True)
        ]
        await asyncio.to_thread(_wait_for_waiters, dsn, N)
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    expected_app = {"seed": 0, **{f"k{i}": i for i in range(N)}}
    assert _stored_app_state(dsn, "aa") == expected_app
    for i, session in enumerate(sessions):
        got = await service.get_session(
            app_name="aa", user_id=session.user_id, session_id=session.id
        )
        assert {f"app:{k}": v for k, v in expected_app.items()}.items() <= got.state.items()
        mine = {f"user:k{j}": j for j in range(N) if j % 4 == i % 4}
        assert got.state == {**{f"app:{k}": v for k, v in expected_app.items()}, **mine}


def test_concurrent_app_writers_lose_nothing_threads(wide_sync: Any, dsn: str) -> None:
    service = wide_sync
    sessions = [service.create_session(app_name="at", user_id=f"u{i % 4}") for i in range(N)]
    events = [_event(f"e{i}", {f"app:k{i}": i, "plain": i}) for i in range(N)]
    outcomes = _in_threads(
        [partial(service.append_event, s, e) for s, e in zip(sessions, events, strict=True)]
    )
    assert outcomes == events
    expected_app = {f"k{i}": i for i in range(N)}
    assert _stored_app_state(dsn, "at") == expected_app
    listed = service.list_sessions(app_name="at")
    assert len(listed.sessions) == N
    for s in listed.sessions:
        assert {k: v for k, v in s.state.items() if k.startswith("app:")} == {
            f"app:{k}": v for k, v in expected_app.items()
        }


async def test_concurrent_creates_and_appends_on_shared_rows_no_deadlock(
    wide_async: Any, dsn: str
) -> None:
    """Creates and appends of one user, each writing the same app and user rows, at once.

    Each round parks every writer behind a lock on the user-state row (the
    appends queue first, then the creates), then lets them all go; every call
    must succeed and every key must be kept.
    """
    service = wide_async
    half = MIXED // 2
    for rnd in range(2):
        app = f"mx{rnd}"
        base = [
            await service.create_session(app_name=app, user_id="u", state={"app:a": 0, "user:b": 0})
            for _ in range(half)
        ]
        with _row_lock(
            dsn,
            "SELECT 1 FROM adk_user_states WHERE app_name = %s AND user_id = %s FOR UPDATE",
            (app, "u"),
        ):
            appends = [
                asyncio.ensure_future(
                    service.append_event(s, _event(f"p{i}", {f"app:p{i}": i, f"user:p{i}": i}))
                )
                for i, s in enumerate(base)
            ]
            await asyncio.to_thread(_wait_for_waiters, dsn, half)
            creates = [
                asyncio.ensure_future(
                    service.create_session(
                        app_name=app, user_id="u", state={f"app:c{i}": i, f"user:c{i}": i}
                    )
                )
                for i in range(half)
            ]
            await asyncio.to_thread(_wait_for_waiters, dsn, half, "WITH new_session AS")
        done = await asyncio.wait_for(
            asyncio.gather(*appends, *creates, return_exceptions=True), TIMEOUT
        )
        errors = [type(d).__name__ for d in done if isinstance(d, BaseException)]
        assert not errors, f"round {rnd}: {len(errors)} of {MIXED} calls failed: {errors}"
        keys = {f"p{i}" for i in range(half)} | {f"c{i}" for i in range(half)}
        assert set(_stored_app_state(dsn, app)) == keys | {"a"}
        assert set(await service.get_user_state(app_name=app, user_id="u")) == keys | {"b"}


async def test_unsynchronized_creates_and_appends_on_shared_rows_no_deadlock(
    wide_async: Any,
) -> None:
    """The same mix with no lock to line them up: plain asyncio.gather, a few rounds."""
    service = wide_async
    half = MIXED // 2
    for rnd in range(5):
        app = f"free{rnd}"
        base = [
            await service.create_session(app_name=app, user_id="u", state={"app:a": 0, "user:b": 0})
            for _ in range(half)
        ]
        done = await asyncio.wait_for(
            asyncio.gather(
                *(
                    service.append_event(s, _event(f"p{i}", {f"app:p{i}": i, f"user:p{i}": i}))
                    for i, s in enumerate(base)
                ),
                *(
                    service.create_session(
                        app_name=app, user_id="u", state={f"app:c{i}": i, f"user:c{i}": i}
                    )
                    for i in range(half)
                ),
                return_exceptions=True,
            ),
            TIMEOUT,
        )
        failures = [type(d).__name__ for d in done if isinstance(d, BaseException)]
        # Stop at the first bad round: each deadlock costs the server's deadlock_timeout.
        assert not failures, f"round {rnd}: {len(failures)} of {MIXED} calls failed: {failures}"


# ------------------------------------ processes saving one artifact file at once


def _artifact_saver(dsn: str, worker: int, saves: int, barrier: Any, results: Any) -> None:
    """Child process: meet at the barrier, then save ``saves`` versions of one file."""
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 2})
    store = PsycopgSyncADKArtifactStore(config)
    service: Any = SQLSpecArtifactService(store)
    barrier.wait(timeout=45)  # the children's first import is slow
    for i in range(saves):
        data = f"{worker}-{i}".encode()
        part = types.Part(inline_data=types.Blob(mime_type="a/b", data=data))
        version = service.save_artifact(
            app_name="race", user_id="u", filename="user:shared", artifact=part
        )
        results.put((version, data))
    store.close()


def test_processes_saving_one_artifact_get_distinct_consecutive_versions(dsn: str) -> None:
    setup = PsycopgSyncADKArtifactStore(PsycopgSyncConfig(connection_config={"conninfo": dsn}))
    setup.create_tables()
    processes, saves = 3, 15
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results: Any = ctx.Queue()
    workers = [
        ctx.Process(target=_artifact_saver, args=(dsn, w, saves, barrier, results), daemon=True)
        for w in range(processes)
    ]
    for p in workers:
        p.start()
    try:
        saved = dict(results.get(timeout=60) for _ in range(processes * saves))
        for p in workers:
            p.join(timeout=TIMEOUT)
            assert p.exitcode == 0
    finally:
        for p in workers:
            if p.is_alive():
                p.kill()
                p.join()
    # Every save got its own version, none lost, none taken twice, none skipped.
    assert sorted(saved) == list(range(processes * saves))
    service: Any = SQLSpecArtifactService(setup)
    try:
        for version, data in saved.items():
            part = service.load_artifact(
                app_name="race", user_id="u", filename="user:shared", version=version
            )
            assert part.inline_data.data == data
    finally:
        setup.close()
