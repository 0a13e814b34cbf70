"""Every service call costs exactly one network round trip on a warm pool.

Round trips are counted from libpq's own protocol trace of the pooled
connections (see :class:`helpers.RoundTripCounter`): each switch from client
(F) to server (B) messages is one round trip. This works over TCP and unix
sockets alike. The method is validated first on known sequences.

Each call is repeated more times than psycopg's ``prepare_threshold`` (5), so
the executions that get a statement prepared on the server are measured too:
psycopg (outside pipeline mode) sends that Parse in a round trip of its own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
from psycopg import sql
from psycopg.rows import scalar_row

from helpers import RoundTripCounter, count_round_trips, trace_bursts
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk._statement import INDEX_ORDER, Statement, scalar
from sqlspec.exceptions import SQLSpecError
from sqlspec.extensions.adk import SQLSpecSessionService

APP = "rt-app"
USER = "rt-user"
#: psycopg prepares a statement on a connection at its 6th execution there (the
#: default ``prepare_threshold`` is 5); the pool round-robins over its connections
#: (two here, after the pool opened under load), so 14 calls reach it on each.
REPEATS = 14

CONFIGS = [
    pytest.param({}, id="autocommit-default"),
    pytest.param({"autocommit": False}, id="autocommit-false"),
    # Diagnosis: with server-side preparation off, no call ever takes a second trip.
    pytest.param({"prepare_threshold": None}, id="prepare-off"),
]


def _event(i: int) -> Event:
    return Event(
        author="user",
        invocation_id=f"inv-{i}",
        content=types.Content(role="user", parts=[types.Part(text=f"message {i}")]),
        actions=EventActions(
            state_delta={"plain": i, "app:a": i, "user:u": i, f"k{i}": {"nested": [i]}}
        ),
    )


# ----------------------------------------------------------------- the method


def test_count_round_trips_parses_trace_directions() -> None:
    trace = "\n".join(
        [
            "F\t10\tParse\t...",
            "F\t10\tBind\t...",
            "F\t4\tSync",
            "B\t4\tParseComplete",
            "B\t5\tReadyForQuery\tI",
            "F\t10\tQuery\t...",
            "B\t5\tReadyForQuery\tI",
            "F\t4\tTerminate",
        ]
    )
    assert count_round_trips(trace) == 2
    assert count_round_trips("") == 0
    # A pipeline's answer arriving before its Sync was sent: the client never waited twice.
    early = ["F\t10\tParse", "F\t10\tExecute", "B\t4\tParseComplete", "F\t4\tSync"]
    assert count_round_trips("\n".join([*early, "B\t5\tReadyForQuery\tI"])) == 1
    # A Flush after a Sync still unanswered asks for nothing more: one.
    late = ["F\t4\tSync", "B\t9\tDataRow", "F\t4\tFlush", "B\t9\tDataRow"]
    assert count_round_trips("\n".join([*early[:2], *late, "B\t5\tReadyForQuery\tI"])) == 1
    # A forced flush the client waits on, then its Sync: two.
    flushed = ["F\t10\tParse", "F\t4\tFlush", "B\t4\tParseComplete", "F\t4\tSync"]
    assert count_round_trips("\n".join([*flushed, "B\t5\tReadyForQuery\tI"])) == 2


def test_counter_counts_two_statements_as_two_sync(dsn: str) -> None:
    config = PsycopgSyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": 2, "autocommit": True}
    )
    try:
        counter = RoundTripCounter(config)
        with config.provide_connection() as conn:  # warm the pool
            conn.execute("SELECT 1")
        counter.take_sync()

        with config.provide_connection() as conn:
            conn.execute("SELECT 1")
            conn.execute("SELECT 2")
        assert counter.take_sync() == 2, counter.last_trace

        with config.provide_connection() as conn, conn.pipeline():
            conn.execute("SELECT 1")
            conn.execute("SELECT 2")
        assert counter.take_sync() == 1, counter.last_trace

        # Nothing borrowed, nothing counted.
        assert counter.take_sync() == 0
    finally:
        config.close()


async def test_counter_counts_two_statements_as_two_async(dsn: str) -> None:
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": 2, "autocommit": True}
    )
    try:
        counter = RoundTripCounter(config)
        async with config.provide_connection() as conn:
            await conn.execute("SELECT 1")
        await counter.take()

        async with config.provide_connection() as conn:
            await conn.execute("SELECT 1")
            await conn.execute("SELECT 2")
        assert await counter.take() == 2, counter.last_trace

        async with config.provide_connection() as conn, conn.pipeline():
            await conn.execute("SELECT 1")
            await conn.execute("SELECT 2")
        assert await counter.take() == 1, counter.last_trace

        # A transaction left open is rolled back by the pool when it comes back,
        # in putconn(): take() counts it.
        pool = await config.provide_pool()
        conn = await pool.getconn()
        counter._attach(conn)
        await conn.set_autocommit(False)
        await conn.execute("SELECT 1")  # BEGIN, then SELECT: two round trips
        await pool.putconn(conn)  # the reset's ROLLBACK: a third
        assert await counter.take() == 3, counter.last_trace
    finally:
        await config.close()


def _check_one_trip_each(
    kind: str, measured: dict[str, list[int]], examples: dict[str, str]
) -> None:
    """Print the measurements; fail naming each call that took other than one trip."""
    print(f"\nround trips per call ({kind}):")
    for name, trips in measured.items():
        print(f"  {name}: {trips}")
    offenders = {
        name: [f"call #{n + 1}: {t} trips" for n, t in enumerate(trips) if t != 1]
        for name, trips in measured.items()
        if any(t != 1 for t in trips)
    }
    example = next(iter(examples.items()), None)
    assert not offenders, (
        f"calls not taking exactly one round trip: {offenders}; an offending trace: {example}"
    )


# ------------------------------------------------------------------- fixtures


@pytest.fixture(
    params=[*CONFIGS, pytest.param({"partitioned_events": True}, id="partitioned-events")]
)
async def async_counted(
    request: pytest.FixtureRequest, dsn: str
) -> AsyncIterator[tuple[Any, RoundTripCounter]]:
    extra: dict[str, Any] = dict(request.param)
    partitioned = extra.pop("partitioned_events", False)
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": 4, **extra}
    )
    store = PsycopgAsyncADKStore(config, partitioned_events=partitioned)
    await store.create_tables()
    counter = RoundTripCounter(config)
    await counter.take()
    service = SQLSpecSessionService(store)
    yield service, counter
    await config.close()


@pytest.fixture(params=CONFIGS)
def sync_counted(
    request: pytest.FixtureRequest, dsn: str
) -> Iterator[tuple[Any, RoundTripCounter]]:
    extra: dict[str, Any] = request.param
    config = PsycopgSyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": 4, **extra}
    )
    store = PsycopgSyncADKStore(config)
    store.create_tables()
    counter = RoundTripCounter(config)
    counter.take_sync()
    service = SQLSpecSessionService(store)
    yield service, counter
    config.close()


# ---------------------------------------------------------------------- async


async def test_async_store_one_round_trip_per_call(
    async_counted: tuple[Any, RoundTripCounter],
) -> None:
    service, counter = async_counted
    measured: dict[str, list[int]] = {}

    examples: dict[str, str] = {}

    async def measure(name: str, coro: Any) -> Any:
        result = await coro
        trips = await counter.take()
        measured.setdefault(name, []).append(trips)
        if trips != 1:
            examples.setdefault(name, trace_bursts(counter.last_trace))
        return result

    sessions = []
    for i in range(REPEATS):
        sessions.append(
            await measure(
                "create_session",
                service.create_session(
                    app_name=APP,
                    user_id=USER,
                    session_id=f"s{i}",
                    state={"plain": i, "app:a": i, "user:u": i, "temp:t": i},
                ),
            )
        )
    cut = 0.0
    for i, session in enumerate(sessions):
        for j in range(3):
            if i == 0 and j == 2:
                cut = time.time()
            await measure("append_event", service.append_event(session, _event(10 * i + j)))
    for _ in range(REPEATS):
        got = await measure(
            "get_session",
            service.get_session(app_name=APP, user_id=USER, session_id="s0"),
        )
        assert got is not None
        assert len(got.events) == 3
        assert got.state["app:a"] == 10 * (REPEATS - 1) + 2
        recent = await measure(
            "get_session(num_recent_events=2)",
            service.get_session(
                app_name=APP,
                user_id=USER,
                session_id="s0",
                config=GetSessionConfig(num_recent_events=2),
            ),
        )
        assert recent is not None
        assert recent.events == got.events[-2:]
        after = await measure(
            "get_session(after_timestamp)",
            service.get_session(
                app_name=APP,
                user_id=USER,
                session_id="s0",
                config=GetSessionConfig(after_timestamp=cut),
            ),
        )
        assert after is not None
        assert after.events == got.events[-1:]
        both = await measure(
            "get_session(num_recent_events=0)",
            service.get_session(
                app_name=APP,
                user_id=USER,
                session_id="s0",
                config=GetSessionConfig(num_recent_events=0),
            ),
        )
        assert both is not None
        assert both.events == []
        listed = await measure("list_sessions", service.list_sessions(app_name=APP, user_id=USER))
        assert len(listed.sessions) == len(sessions)
        await measure("list_sessions(app)", service.list_sessions(app_name=APP))
        user_state = await measure(
            "get_user_state", service.get_user_state(app_name=APP, user_id=USER)
        )
        assert user_state["u"] == 10 * (REPEATS - 1) + 2
    for session in sessions:
        await measure(
            "delete_session",
            service.delete_session(app_name=APP, user_id=USER, session_id=session.id),
        )
    _check_one_trip_each("async", measured, examples)


async def test_an_append_that_writes_nothing_asks_why_in_a_second_round_trip(
    async_counted: tuple[Any, RoundTripCounter],
) -> None:
    """A stored append is one round trip; one that wrote nothing (a retry whose first
    attempt was stored, a stale session, an event id taken) learns why in a second, and
    only then."""
    service, counter = async_counted
    session = await service.create_session(app_name=APP, user_id=USER, session_id="refused")
    behind = session.model_copy(deep=True)
    event = _event(1)
    await counter.take()
    await service.append_event(session, event)
    assert await counter.take() == 1
    # The same event from the revision before it: a retry whose first answer was lost.
    retried = behind.model_copy(deep=True)
    await service.append_event(retried, event.model_copy(deep=True))
    assert await counter.take() == 2
    assert [e.id for e in retried.events] == [event.id]
    with pytest.raises(StaleSessionError):
        await service.append_event(behind, _event(2))
    assert await counter.take() == 2
    # From the current revision, the id of an event stored before it: the primary key
    # refuses it. The same event again is a no-op; another under its id is refused.
    later = _event(3)
    await service.append_event(session, later)
    await counter.take()
    await service.append_event(session, event.model_copy(deep=True))
    assert await counter.take() == 2
    assert [e.id for e in session.events] == [event.id, later.id]
    with pytest.raises(AlreadyExistsError):
        await service.append_event(session, _event(4).model_copy(update={"id": event.id}))
    assert await counter.take() == 2


# ----------------------------------------------------------------------- sync


def test_sync_store_one_round_trip_per_call(sync_counted: tuple[Any, RoundTripCounter]) -> None:
    service, counter = sync_counted
    measured: dict[str, list[int]] = {}

    examples: dict[str, str] = {}

    def measure(name: str, result: Any) -> Any:
        trips = counter.take_sync()
        measured.setdefault(name, []).append(trips)
        if trips != 1:
            examples.setdefault(name, trace_bursts(counter.last_trace))
        return result

    sessions = [
        measure(
            "create_session",
            service.create_session(
                app_name=APP,
                user_id=USER,
                session_id=f"s{i}",
                state={"plain": i, "app:a": i, "user:u": i, "temp:t": i},
            ),
        )
        for i in range(REPEATS)
    ]
    cut = 0.0
    for i, session in enumerate(sessions):
        for j in range(3):
            if i == 0 and j == 2:
                cut = time.time()
            measure("append_event", service.append_event(session, _event(10 * i + j)))
    for _ in range(REPEATS):
        got = measure(
            "get_session", service.get_session(app_name=APP, user_id=USER, session_id="s0")
        )
        assert len(got.events) == 3
        recent = measure(
            "get_session(num_recent_events=2)",
            service.get_session(
                app_name=APP,
                user_id=USER,
                session_id="s0",
                config=GetSessionConfig(num_recent_events=2),
            ),
        )
        assert recent.events == got.events[-2:]
        after = measure(
            "get_session(after_timestamp)",
            service.get_session(
                app_name=APP,
                user_id=USER,
                session_id="s0",
                config=GetSessionConfig(after_timestamp=cut),
            ),
        )
        assert after.events == got.events[-1:]
        measure(
            "get_session(num_recent_events=0)",
            service.get_session(
                app_name=APP,
                user_id=USER,
                session_id="s0",
                config=GetSessionConfig(num_recent_events=0),
            ),
        )
        measure("list_sessions", service.list_sessions(app_name=APP, user_id=USER))
        measure("list_sessions(app)", service.list_sessions(app_name=APP))
        assert measure("get_user_state", service.get_user_state(app_name=APP, user_id=USER))
    for session in sessions:
        measure(
            "delete_session",
            service.delete_session(app_name=APP, user_id=USER, session_id=session.id),
        )
    _check_one_trip_each("sync", measured, examples)


def test_failed_runs_count_as_psycopg_counts_them(
    sync_counted: tuple[Any, RoundTripCounter],
) -> None:
    """psycopg counts a failed run towards preparing a statement, except its first, which
    it forgets: the store must foresee the run that prepares it all the same, or that
    run takes two round trips."""
    service, counter = sync_counted
    store = service.store
    divide = scalar(sql.SQL("SELECT 1 / %(d)s::int"))
    trips = []
    for d in (0, 0, 1, 1, 0, 1, 0, *[1] * REPEATS):
        try:
            store._run(divide, {"d": d})
        except SQLSpecError:
            assert d == 0
        trips.append(counter.take_sync())
    assert trips == [1] * len(trips), (trips, trace_bursts(counter.last_trace))


def test_planner_settings_hold_for_their_statement_alone(
    sync_counted: tuple[Any, RoundTripCounter],
) -> None:
    """A statement's planner settings hold while it runs and end with it, whether it
    succeeds or fails, on every pooled connection; each run is one round trip."""
    service, counter = sync_counted
    store = service.store
    sees = Statement(
        sql.SQL("SELECT current_setting('enable_sort') || 1 / %(d)s::int"),
        scalar_row,
        planner=INDEX_ORDER,
    )
    for d in (1, 0, 1, 0, *[1] * REPEATS, 0, 1):
        try:
            assert store._run(sees, {"d": d}) == ["off1"]
        except SQLSpecError:
            assert d == 0
        assert counter.take_sync() == 1, trace_bursts(counter.last_trace)
        with store.config.provide_connection() as conn:
            settings = conn.execute(
                "SELECT current_setting('enable_sort'), current_setting('enable_seqscan'),"
                " current_setting('jit')"
            ).fetchone()
        assert settings == ("on", "on", "on")
        counter.take_sync()
