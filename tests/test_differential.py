"""Differential, property-based: both stores behave as ADK's ``InMemorySessionService``.

Hypothesis generates sequences of service calls (create, append with random
``app:``/``user:``/``temp:``/plain deltas, nested values and ``None``, get with a
random ``GetSessionConfig``, list, delete, get_user_state, re-delivery of an
appended event, partial events) and runs each sequence against the in-memory
reference, the async store and the sync store (through the service, awaited
inside the loop). Every result and every exception type must match.

The generator stays inside the README's documented divergences:

- appends go only through a freshly loaded session or the session object last
  appended through (our stores raise ``StaleSessionError`` elsewhere, the
  in-memory service never does);
- event timestamps strictly increase (we order events by ``(timestamp, id)``,
  the in-memory service by append order);
- ``last_update_time`` is compared only once a session has a stored event (a new
  session's is each service's own clock) and to 1e-6, as the contract has it.

Profiles: ``HYPOTHESIS_PROFILE=ci`` (default; fast, derandomized) or ``soak``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.in_memory_session_service import InMemorySessionService
from google.adk.sessions.session import Session
from google.genai import types
from hypothesis import example, given
from hypothesis import strategies as st

from _hypothesis import SOAK, Harness, differential, store_pair
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

APPS = ("app-1", "app-2")
USERS = ("u-1", "u-2")
#: Logical session names; ``GEN`` stands for "created without an id" (the service picks one).
GEN = "<generated>"
NAMES = ("s-1", "s-2", GEN)
#: Each event's timestamp is ``BASE + its sequence number + a fraction < 1``: strictly
#: increasing, in the past (so sessions with events list before new ones in every
#: service), with fractions finer than a microsecond among them.
BASE_TIME = 1_600_000_000.0
FRACTIONS = (0.0, 0.5, 0.25, 0.000001, 0.123456789, 0.999999)
#: Table names of the sync store, so the two stores share the scratch database.
SYNC_TABLES: dict[str, Any] = {
    "session_table": "diff_sessions",
    "events_table": "diff_events",
    "app_state_table": "diff_app_states",
    "user_state_table": "diff_user_states",
}
ALL_TABLES = (
    "adk_sessions",
    "adk_events",
    "adk_app_states",
    "adk_user_states",
    *SYNC_TABLES.values(),
)

# ------------------------------------------------------------------ operations


@dataclass(frozen=True)
class Create:
    app: str
    user: str
    name: str
    spelling: str | None  # how the id is passed: padded with blanks, or None/"" when generated
    state: dict[str, Any]


@dataclass(frozen=True)
class Get:
    app: str
    user: str
    name: str
    num_recent: int | None
    after: tuple[int, float] | None  # (event sequence number, offset) or None


@dataclass(frozen=True)
class ListSessions:
    app: str
    user: str | None


@dataclass(frozen=True)
class Delete:
    app: str
    user: str
    name: str


@dataclass(frozen=True)
class UserState:
    app: str
    user: str


@dataclass(frozen=True)
class Append:
    app: str
    user: str
    name: str
    fresh: bool  # load the session first, or append through the live object
    delta: dict[str, Any]
    text: str
    fraction: float
    partial: bool = False
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Redeliver:
    """Append the session's last stored event again, unchanged: a retried call."""

    app: str
    user: str
    name: str


Op = Create | Get | ListSessions | Delete | UserState | Append | Redeliver

# ------------------------------------------------------------------ strategies

TEXT = st.characters(codec="utf-8", exclude_characters="\x00")  # no lone surrogates
texts = st.text(TEXT, max_size=12)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
state_keys = st.builds(
    lambda prefix, name: prefix + name,
    st.sampled_from(["", "", "app:", "user:", "temp:"]),
    st.sampled_from(["a", "b", "c"]) | texts,
)
deltas = st.dictionaries(state_keys, json_values, max_size=4)
#: The sessions a program works on, skewed towards the first, so most calls meet a
#: session that exists; the same id under another user and another app is among them.
SESSION_KEYS = [
    *[(APPS[0], USERS[0], NAMES[0])] * 5,
    (APPS[0], USERS[1], NAMES[0]),
    (APPS[0], USERS[0], NAMES[1]),
    (APPS[1], USERS[0], NAMES[0]),
    (APPS[0], USERS[0], GEN),
]
keys = st.sampled_from(SESSION_KEYS)
apps = st.sampled_from([APPS[0], APPS[0], APPS[1]])
users = st.sampled_from([USERS[0], USERS[0], USERS[1]])


@st.composite
def creates(draw: st.DrawFn) -> Create:
    app, user, name = draw(keys)
    if name == GEN:
        spelling = draw(st.sampled_from([None, "", "   "]))
    else:
        spelling = draw(st.sampled_from([name, name, f" {name}", f"{name}\t"]))
    return Create(app, user, name, spelling, draw(deltas))


gets = st.builds(
    lambda key, n, after: Get(key[0], key[1], key[2], n, after),
    keys,
    st.sampled_from([None, None, 0, 1, 2, 5]),
    st.none()
    | st.tuples(st.integers(0, 40), st.sampled_from([0.0, -0.5, 0.5, -0.000001, 0.000001])),
)


def _append(partial: bool) -> st.SearchStrategy[Append]:
    return st.builds(
        lambda key, fresh, delta, text, fraction, metadata: Append(
            key[0], key[1], key[2], fresh, delta, text, fraction, partial, metadata
        ),
        keys,
        st.booleans(),
        deltas,
        texts,
        st.sampled_from(FRACTIONS),
        st.none() | st.dictionaries(texts, json_values, max_size=2),
    )


appends = _append(partial=False)
partial_appends = _append(partial=True)
deletes = st.builds(lambda key: Delete(*key), keys)
redeliveries = st.builds(lambda key: Redeliver(*key), keys)

#: Each kind of call, weighted by how often it is drawn (appends most).
WEIGHTED_OPERATIONS: list[st.SearchStrategy[Any]] = [
    creates(),
    *[appends] * 6,
    *[gets] * 2,
    st.builds(ListSessions, apps, st.none() | users),
    deletes,
    st.builds(UserState, apps, users),
    *[redeliveries] * 2,
    partial_appends,
]
operations: st.SearchStrategy[Op] = st.sampled_from(WEIGHTED_OPERATIONS).flatmap(lambda s: s)
programs = st.builds(
    lambda main_state, first, rest: [Create(*SESSION_KEYS[0], NAMES[0], main_state), *first, *rest],
    deltas,
    st.lists(creates(), max_size=3),
    st.lists(operations, min_size=4, max_size=100 if SOAK else 30),
)

# ---------------------------------------------------------------------- model


class Near:
    """A ``last_update_time``, equal to another within the contract's 1e-6 s."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Near) and abs(self.value - other.value) <= 1.5e-6

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"~{self.value!r}"


Key = tuple[str, str, str]


@dataclass
class Backend:
    """One service under test, and what the harness knows of the sessions it holds."""

    label: str
    service: Any
    ids: dict[Key, str] = field(default_factory=dict)  # logical session -> actual id
    live: dict[Key, Session] = field(default_factory=dict)  # the object that may append
    last_event: dict[Key, Event] = field(default_factory=dict)
    stored_events: set[Key] = field(default_factory=set)  # sessions with a stored event
    generated: dict[str, str] = field(default_factory=dict)  # generated id -> its alias

    def actual_id(self, key: Key) -> str:
        if key[2] == GEN:
            return self.ids.get(key, "never-created")
        return key[2]

    def logical(self, app: str, user: str, actual: str) -> str:
        return self.generated.get(actual, actual)

    def session_view(self, session: Session | None) -> Any:
        if session is None:
            return None
        name = self.logical(session.app_name, session.user_id, session.id)
        current = self.ids.get((session.app_name, session.user_id, GEN))
        key = (session.app_name, session.user_id, GEN if session.id == current else name)
        return {
            "app": session.app_name,
            "user": session.user_id,
            "id": name,
            "state": session.state,
            "events": [e.model_dump() for e in session.events],
            "last_update_time": Near(session.last_update_time)
            if key in self.stored_events
            else "new",
        }


def timestamp(sequence: int, fraction: float) -> float:
    return BASE_TIME + sequence + fraction


def make_event(op: Append, sequence: int) -> Event:
    return Event(
        author="user" if sequence % 2 else "model",
        invocation_id=f"inv-{sequence}",
        timestamp=timestamp(sequence, op.fraction),
        content=types.Content(role="user", parts=[types.Part(text=op.text)]),
        actions=EventActions(state_delta=copy.deepcopy(op.delta)),
        partial=op.partial or None,
        custom_metadata=copy.deepcopy(op.metadata),
    )


async def call(awaitable: Any) -> tuple[str, Any]:
    try:
        return "ok", await awaitable
    except Exception as exc:
        return "raised", type(exc)


async def run_op(backend: Backend, op: Op, sequence: int, event: Event | None) -> Any:
    """Run ``op`` on ``backend``; return what a caller could observe of it."""
    svc = backend.service
    if isinstance(op, Create):
        key = (op.app, op.user, op.name)
        status, value = await call(
            svc.create_session(
                app_name=op.app,
                user_id=op.user,
                state=copy.deepcopy(op.state),
                session_id=op.spelling,
            )
        )
        if status == "raised":
            return status, value
        if op.name == GEN:
            backend.ids[key] = value.id
            backend.generated[value.id] = f"{GEN}#{len(backend.generated)}"
        else:
            backend.ids[key] = op.name
            assert value.id == op.name, (backend.label, value.id)
        backend.live[key] = value
        backend.last_event.pop(key, None)
        backend.stored_events.discard(key)
        return status, backend.session_view(value)
    if isinstance(op, Get):
        key = (op.app, op.user, op.name)
        config = None
        if op.num_recent is not None or op.after is not None:
            after = timestamp(op.after[0], op.after[1]) if op.after else None
            config = GetSessionConfig(num_recent_events=op.num_recent, after_timestamp=after)
        status, value = await call(
            svc.get_session(
                app_name=op.app, user_id=op.user, session_id=backend.actual_id(key), config=config
            )
        )
        if status == "raised":
            return status, value
        if value is not None:
            backend.live[key] = value  # a freshly loaded session may append
        return status, backend.session_view(value)
    if isinstance(op, ListSessions):
        status, value = await call(svc.list_sessions(app_name=op.app, user_id=op.user))
        if status == "raised":
            return status, value
        return status, [backend.session_view(s) for s in value.sessions]
    if isinstance(op, Delete):
        key = (op.app, op.user, op.name)
        status, value = await call(
            svc.delete_session(app_name=op.app, user_id=op.user, session_id=backend.actual_id(key))
        )
        backend.last_event.pop(key, None)
        return status, value
    if isinstance(op, UserState):
        return await call(svc.get_user_state(app_name=op.app, user_id=op.user))
    if isinstance(op, Append):
        key = (op.app, op.user, op.name)
        assert event is not None
        if op.fresh:
            status, loaded = await call(
                svc.get_session(app_name=op.app, user_id=op.user, session_id=backend.actual_id(key))
            )
            if status == "raised" or loaded is None:
                return "no session to append through", status, loaded
            backend.live[key] = loaded
        session = backend.live.get(key)
        if session is None:
            return "no live session"
        status, value = await call(svc.append_event(session, event))
        if status == "raised":
            return status, value
        if not event.partial:
            backend.last_event[key] = event
            backend.stored_events.add(key)
        return status, value.model_dump(), backend.session_view(session)
    assert isinstance(op, Redeliver)
    key = (op.app, op.user, op.name)
    last = backend.last_event.get(key)
    session = backend.live.get(key)
    if last is None or session is None:
        return "nothing to redeliver"
    status, value = await call(svc.append_event(session, last))
    if status == "raised":
        return status, value
    return status, value.model_dump(), backend.session_view(session)


def outcome_of(op: Op, observed: Any) -> str:
    """A short label of what a step did, for the run's summary."""
    kind = type(op).__name__
    if isinstance(observed, tuple) and observed and observed[0] == "raised":
        return f"{kind}:{observed[1].__name__}"
    if isinstance(observed, tuple) and observed and observed[0] == "ok":
        return f"{kind}:ok"
    return f"{kind}:skipped"


async def run_program(
    backends: list[Backend], program: list[Op], outcomes: dict[str, int] | None = None
) -> int:
    """Run ``program`` on every backend, comparing each step; return the steps run."""
    for sequence, op in enumerate(program):
        event = make_event(op, sequence) if isinstance(op, Append) else None
        observed = []
        for backend in backends:
            copy_of_event = event.model_copy(deep=True) if event is not None else None
            observed.append(await run_op(backend, op, sequence, copy_of_event))
        reference = observed[0]
        for backend, seen in zip(backends[1:], observed[1:], strict=True):
            assert seen == reference, (
                f"step {sequence} {op!r}: {backend.label} differs from {backends[0].label}\n"
                f"  {backends[0].label}: {reference!r}\n  {backend.label}: {seen!r}"
            )
        if outcomes is not None:
            label = outcome_of(op, reference)
            outcomes[label] = outcomes.get(label, 0) + 1
    return len(program)


# ----------------------------------------------------------------------- tests


async def play(
    async_service: Any, sync_service: Any, program: list[Op], outcomes: dict[str, int]
) -> int:
    backends = [
        Backend("memory", InMemorySessionService()),
        Backend("async-store", async_service),
        Backend("sync-store", sync_service),
    ]
    return await run_program(backends, program, outcomes)


@pytest.fixture
def harness(dsn: str) -> Iterator[Harness]:
    with (
        store_pair(dsn, PsycopgAsyncADKStore, PsycopgSyncADKStore, **SYNC_TABLES) as pair,
        differential("differential", pair, SQLSpecSessionService, ALL_TABLES, play) as h,
    ):
        yield h


S1 = ("app-1", "u-1", "s-1")


@given(program=programs)
@example(
    program=[
        Create(*S1, " s-1", {"a": 1, "app:a": {"x": [None]}, "user:b": None, "temp:t": 1}),
        Append(*S1, False, {"a": 2, "temp:t": 2, "user:b": 3}, "hi", 0.123456789),
        Redeliver(*S1),
        Get(*S1, 1, None),
        Append(*S1, True, {"app:a": None}, "", 0.0),
        Append(*S1, False, {}, "partial", 0.5, partial=True),
        Get(*S1, None, (1, 0.0)),
        Delete(*S1),
        Append(*S1, False, {"a": 3}, "gone", 0.0),
        Create(*S1, "s-1", {}),
        ListSessions("app-1", None),
        UserState("app-1", "u-1"),
    ]
)
@example(
    program=[
        Create("app-1", "u-1", GEN, None, {"user:k": 1}),
        Create("app-1", "u-2", GEN, "", {"app:k": 2}),
        Append("app-1", "u-2", GEN, True, {"k": 1}, "x", 0.0),
        Create("app-1", "u-1", "s-1", "s-1", {}),
        Create("app-1", "u-1", "s-1", "s-1", {"app:lost": 1}),  # AlreadyExists, nothing applied
        ListSessions("app-1", None),
        ListSessions("app-1", "u-2"),
        Get("app-1", "u-1", "s-2", None, None),
    ]
)
def test_stores_match_in_memory_service(harness: Harness, program: list[Op]) -> None:
    harness.run(program)


def test_near_compares_to_a_microsecond() -> None:
    assert Near(1.0) == Near(1.000001)
    assert Near(1.0) != Near(1.00001)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_failed_append_leaves_session_and_event_as_they_were(dsn: str, kind: str) -> None:
    config: Any
    if kind == "async":
        config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
        store: Any = PsycopgAsyncADKStore(config)
        await store.create_tables()
    else:
        config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
        store = PsycopgSyncADKStore(config)
        store.create_tables()
    service: Any = SQLSpecSessionService(store)
    try:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.delete_session(app_name="a", user_id="u", session_id="s")
        event = Event(author="user", actions=EventActions(state_delta={"temp:t": 1, "k": 2}))
        with pytest.raises(SessionNotFoundError):
            await service.append_event(session, event)
        assert event.actions.state_delta == {"temp:t": 1, "k": 2}
        assert session.state == {}
    finally:
        await service.close()
