"""Bad input, beyond ``test_errors.py``: every value is stored losslessly or refused.

For each hostile input the outcome must be one of two: the value is stored and
reads back equal, or the call raises a typed error (``sqlspec.InvalidValueError``,
``sqlspec.ImproperConfigurationError``) before anything is written. Never a raw
driver or serializer exception, never a half-written or unreadable session.
"Nothing written" is checked on the tables themselves: a fingerprint of every row
of the four tables before and after.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pydantic
import pytest
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.genai import types

from helpers import figures_report
from sqlspec import ImproperConfigurationError, InvalidValueError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

APP = "bad-input-app"
USER = "bad-input-user"
TABLES = ("adk_sessions", "adk_events", "adk_app_states", "adk_user_states")
TEN_MB = 10 * 1024 * 1024

#: Counts for the run's report: inputs tried, by outcome.
TRIED: Counter[str] = Counter()
_report = figures_report("bad input tried", TRIED, total=True)


def tally(outcome: str) -> None:
    TRIED[outcome] += 1


def fingerprint(dsn: str) -> dict[str, str | None]:
    """Every row of the four tables, hashed per table: equal fingerprints, equal contents."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            table: conn.execute(
                psycopg.sql.SQL(
                    "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {} t"
                ).format(psycopg.sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for table in TABLES
        }


async def assert_refused(dsn: str, call: Callable[[], Awaitable[Any]]) -> None:
    """``call`` raises ``InvalidValueError`` and leaves every table as it was."""
    before = fingerprint(dsn)
    with pytest.raises(InvalidValueError):
        await call()
    assert fingerprint(dsn) == before, "a refused call wrote something"
    tally("refused")


def text_event(text: str = "hi", /, **delta: Any) -> Event:
    return Event(
        author="user",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta),
    )


async def new_session(svc: Any, sid: str = "s", /, **state: Any) -> Session:
    session: Session = await svc.create_session(
        app_name=APP, user_id=USER, session_id=sid, state=state or None
    )
    return session


async def load(svc: Any, sid: str = "s") -> Session:
    session: Session | None = await svc.get_session(app_name=APP, user_id=USER, session_id=sid)
    assert session is not None
    return session


def nested(depth: int, leaf: Any = "leaf") -> Any:
    """A dict ``depth`` levels deep: ``{"d": {"d": ... leaf}}``."""
    value = leaf
    for _ in range(depth):
        value = {"d": value}
    return value


# ------------------------------------------------------------------------ NUL

NUL_STATES = [
    pytest.param({"k": {"in\x00ner": 1}}, id="nested-key"),
    pytest.param({"k": ["fine", ["x\x00"]]}, id="nested-list-value"),
    pytest.param({"app:k": {"v": "\x00"}}, id="app-nested-value"),
    pytest.param({"user:k\x00": 1}, id="user-key"),
    pytest.param({"app:\x00": 1}, id="app-key-only-nul"),
]


@pytest.mark.parametrize("state", NUL_STATES)
async def test_nul_in_state_is_refused_at_create(db_service: Any, dsn: str, state: Any) -> None:
    await assert_refused(dsn, lambda: new_session(db_service, **state))


@pytest.mark.parametrize("state", NUL_STATES)
async def test_nul_in_delta_is_refused_at_append(db_service: Any, dsn: str, state: Any) -> None:
    session = await new_session(db_service, k="before", **{"user:u": 1, "app:a": 1})
    await assert_refused(dsn, lambda: db_service.append_event(session, text_event(**state)))
    # The failed append changed nothing, in storage or in the caller's session.
    assert (await load(db_service)).state == {"k": "before", "user:u": 1, "app:a": 1}
    assert session.events == []
    await db_service.append_event(session, text_event(k="after"))
    assert (await load(db_service)).state["k"] == "after"


def _nul_events() -> list[Any]:
    call = types.FunctionCall(name="tool", args={"q": "a\x00b"})
    return [
        pytest.param(Event(author="model", invocation_id="inv\x00"), id="invocation_id"),
        pytest.param(Event(author="model", error_code="E\x00"), id="error_code"),
        pytest.param(Event(author="model", error_message="boom\x00"), id="error_message"),
        pytest.param(Event(author="model", custom_metadata={"a": {"b\x00": 1}}), id="metadata-key"),
        pytest.param(
            Event(
                author="model",
                content=types.Content(role="model", parts=[types.Part(function_call=call)]),
            ),
            id="function-call-args",
        ),
        pytest.param(Event(author="model", long_running_tool_ids={"t\x00"}), id="long-running-ids"),
        pytest.param(Event(author="model", id="ev\x00"), id="event-id"),
    ]


@pytest.mark.parametrize("event", _nul_events())
async def test_nul_anywhere_in_an_event_is_refused(db_service: Any, dsn: str, event: Event) -> None:
    session = await new_session(db_service)
    await assert_refused(dsn, lambda: db_service.append_event(session, event))
    assert (await load(db_service)).events == []


async def test_nul_in_temp_keys_is_never_stored_so_never_refused(db_service: Any) -> None:
    session = await new_session(db_service, **{"temp:t\x00": "x\x00"})
    assert session.state == {}
    await db_service.append_event(session, text_event(**{"temp:k": "v\x00", "k": 1}))
    assert (await load(db_service)).state == {"k": 1}


async def test_partial_event_with_nul_is_not_stored_and_not_refused(db_service: Any) -> None:
    session = await new_session(db_service)
    event = text_event("partial\x00")
    event.partial = True
    assert await db_service.append_event(session, event) is event
    assert (await load(db_service)).events == []


# ------------------------------------------------------------ NaN and Infinity

NON_FINITE = [
    pytest.param({"k": {"x": [1.0, math.nan]}}, id="nested-nan"),
    pytest.param({"app:k": [math.inf]}, id="app-inf"),
    pytest.param({"user:k": {"deep": {"v": -math.inf}}}, id="user-neg-inf"),
]


@pytest.mark.parametrize("delta", NON_FINITE)
async def test_non_finite_numbers_in_delta_are_refused(
    db_service: Any, dsn: str, delta: Any
) -> None:
    session = await new_session(db_service, k=1)
    await assert_refused(dsn, lambda: db_service.append_event(session, text_event(**delta)))
    await db_service.append_event(session, text_event(k=2))


async def test_nan_inside_an_event_reads_back_as_null(db_service: Any) -> None:
    """README: NaN inside an Event becomes null, as in ADK's own JSON form of it."""
    session = await new_session(db_service)
    event = Event(author="model", custom_metadata={"score": math.nan, "list": [math.inf, 1.0]})
    await db_service.append_event(session, event)
    (stored,) = (await load(db_service)).events
    assert stored.custom_metadata == {"score": None, "list": [None, 1.0]}
    tally("stored-documented-lossy")


async def test_identical_retry_of_an_event_holding_nan_is_a_no_op(db_service: Any) -> None:
    session = await new_session(db_service)
    event = Event(author="model", custom_metadata={"score": math.nan})
    await db_service.append_event(session, event)
    fresh = await load(db_service)
    await db_service.append_event(fresh, event.model_copy(deep=True))
    assert len((await load(db_service)).events) == 1


@pytest.mark.parametrize(
    "config",
    [
        GetSessionConfig(after_timestamp=math.nan),
        GetSessionConfig(after_timestamp=math.inf),
        GetSessionConfig(after_timestamp=-math.inf),
        GetSessionConfig(after_timestamp=1e20),
        GetSessionConfig(num_recent_events=2**63),
    ],
    ids=["after-nan", "after-inf", "after-neg-inf", "after-1e20", "limit-2**63"],
)
async def test_odd_get_session_configs_answer_or_raise_a_typed_error(
    db_service: Any, config: GetSessionConfig
) -> None:
    session = await new_session(db_service)
    await db_service.append_event(session, Event(author="u", timestamp=1000.0))
    try:
        got = await db_service.get_session(
            app_name=APP, user_id=USER, session_id="s", config=config
        )
    except InvalidValueError:
        tally("refused")
        return
    tally("stored")
    assert got is not None
    assert len(got.events) in (0, 1)


@pytest.mark.parametrize("timestamp", [math.nan, math.inf, 1e20, -1e12], ids=str)
async def test_unrepresentable_event_timestamp_is_a_typed_error(
    db_service: Any, dsn: str, timestamp: float
) -> None:
    session = await new_session(db_service)
    before = fingerprint(dsn)
    with pytest.raises(InvalidValueError):
        await db_service.append_event(session, Event(author="u", timestamp=timestamp))
    assert fingerprint(dsn) == before


async def test_negative_and_fractional_timestamps_round_trip(db_service: Any) -> None:
    session = await new_session(db_service)
    events = [Event(author="u", timestamp=t) for t in (-5.5, 0.0, 1e-6, 4102444800.123456)]
    for event in events:
        await db_service.append_event(session, event)
    assert (await load(db_service)).events == events
    tally("stored")


# ------------------------------------------------- values without a JSON form


class Color(enum.Enum):
    RED = "red"


class Point(pydantic.BaseModel):
    x: int
    y: list[float]


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def _circular() -> dict[str, Any]:
    value: dict[str, Any] = {"n": 1}
    value["self"] = value
    return value


JSON_FORMS = [
    pytest.param(
        dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "2025-01-02T03:04:05Z",
        id="datetime",
    ),
    pytest.param(dt.date(2025, 1, 2), "2025-01-02", id="date"),
    pytest.param(decimal.Decimal("1.10"), "1.10", id="decimal"),
    pytest.param(uuid.UUID(int=7), "00000000-0000-0000-0000-000000000007", id="uuid"),
    pytest.param(Color.RED, "red", id="enum"),
    pytest.param((1, "two"), [1, "two"], id="tuple"),
    pytest.param(frozenset({3}), [3], id="frozenset"),
    pytest.param(b"plain bytes", "plain bytes", id="utf8-bytes"),
    pytest.param(Point(x=1, y=[0.5]), {"x": 1, "y": [0.5]}, id="pydantic-model"),
    pytest.param(2**200, 2**200, id="huge-int"),
    pytest.param(-(2**64) - 1, -(2**64) - 1, id="negative-huge-int"),
    pytest.param(5e-324, 5e-324, id="subnormal-float"),
    pytest.param(0.1 + 0.2, 0.1 + 0.2, id="inexact-float"),
    pytest.param(1j, "1j", id="complex"),
]


@pytest.mark.parametrize(("value", "json_form"), JSON_FORMS)
async def test_values_with_a_json_form_read_back_as_it(
    db_service: Any, dsn: str, value: Any, json_form: Any
) -> None:
    session = await new_session(db_service, k=value, **{"user:k": value})
    assert (await load(db_service)).state == {"k": json_form, "user:k": json_form}
    await db_service.append_event(session, text_event(**{"app:k": value}))
    assert (await load(db_service)).state["app:k"] == json_form
    tally("stored-json-form")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lambda: 1, id="lambda"),
        pytest.param(object(), id="object"),
        pytest.param(Unprintable(), id="unprintable"),
        pytest.param(_circular(), id="circular"),
    ],
)
async def test_values_without_a_json_form_are_stored_as_text_with_a_warning(
    db_service: Any, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    session = await new_session(db_service, k=value)
    await db_service.append_event(session, text_event(**{"user:k": value}))
    stored = (await load(db_service)).state
    assert isinstance(stored["k"], (str, dict)), stored
    assert stored["k"] == stored["user:k"]
    assert any("JSON" in r.getMessage() for r in caplog.records)
    tally("stored-string-form")


@pytest.mark.parametrize(
    "state",
    [{"k": "bad \udcff byte"}, {"\ud800": 1}, {"user:k": ["\udfff"]}],
    ids=["value", "key", "user-nested"],
)
async def test_lone_surrogates_in_state_are_a_typed_error(
    db_service: Any, dsn: str, state: Any
) -> None:
    before = fingerprint(dsn)
    with pytest.raises(InvalidValueError):
        await new_session(db_service, **state)
    assert fingerprint(dsn) == before


@pytest.mark.parametrize("field", ["app_name", "user_id", "session_id"])
async def test_lone_surrogates_in_ids_are_a_typed_error(
    db_service: Any, dsn: str, field: str
) -> None:
    ids = {"app_name": APP, "user_id": USER, "session_id": "s", field: "id-\udc80"}
    before = fingerprint(dsn)
    with pytest.raises(InvalidValueError):
        await db_service.create_session(**ids)
    assert fingerprint(dsn) == before


async def test_lone_surrogate_in_event_text_is_a_typed_error(db_service: Any, dsn: str) -> None:
    session = await new_session(db_service)
    before = fingerprint(dsn)
    with pytest.raises(InvalidValueError):
        await db_service.append_event(session, text_event("caf\udce9"))
    assert fingerprint(dsn) == before


async def test_non_utf8_bytes_are_stored_in_a_string_form_or_refused(
    db_service: Any, dsn: str
) -> None:
    before = fingerprint(dsn)
    try:
        await new_session(db_service, k=b"\x00\xff\xfe")
    except InvalidValueError:
        assert fingerprint(dsn) == before
        return
    assert isinstance((await load(db_service)).state["k"], str)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"app_name": None},
        {"user_id": None},
        {"session_id": 42},
        {"state": {1: "int key"}},
        {"state": {None: "none key"}},
        {"state": [("k", 1)]},
    ],
    ids=["app-none", "user-none", "sid-int", "int-key", "none-key", "state-list"],
)
async def test_wrong_types_are_a_typed_error_before_io(
    db_service: Any, dsn: str, kwargs: Any
) -> None:
    args = {"app_name": APP, "user_id": USER, "session_id": "s", **kwargs}
    before = fingerprint(dsn)
    with pytest.raises(InvalidValueError):
        await db_service.create_session(**args)
    assert fingerprint(dsn) == before


# ------------------------------------------------------------------ big values


async def test_ten_megabytes_of_state_round_trip(db_service: Any) -> None:
    big = "x" * TEN_MB
    many = {f"k{i}": i for i in range(100_000)}
    started = time.monotonic()
    session = await new_session(db_service, big=big, **{"user:many": many})
    await db_service.append_event(session, text_event(**{"app:big": big[::-1] + "é"}))
    loaded = await load(db_service)
    assert loaded.state["big"] == big
    assert loaded.state["user:many"] == many
    assert loaded.state["app:big"] == big[::-1] + "é"
    listed = await db_service.list_sessions(app_name=APP, user_id=USER)
    assert listed.sessions[0].state["big"] == big
    assert time.monotonic() - started < 60
    tally("stored")


async def test_ten_megabyte_event_round_trips(db_service: Any) -> None:
    session = await new_session(db_service)
    event = text_event("y" * TEN_MB)
    await db_service.append_event(session, event)
    assert (await load(db_service)).events == [event]
    tally("stored")


# --------------------------------------------------------------------- nesting

#: Below pydantic's limit of about 200 levels, just above it, and far above it.
DEPTHS = [150, 201, 1000]


@pytest.mark.parametrize("depth", DEPTHS)
async def test_deeply_nested_state_is_lossless_or_refused(
    db_service: Any, dsn: str, depth: int
) -> None:
    value = nested(depth)
    before = fingerprint(dsn)
    try:
        await new_session(db_service, k=value)
    except InvalidValueError:
        assert fingerprint(dsn) == before
        tally("refused")
        return
    assert (await load(db_service)).state == {"k": value}  # must not raise
    tally("stored")


@pytest.mark.parametrize("depth", DEPTHS)
async def test_deeply_nested_delta_and_event_are_lossless_or_refused(
    db_service: Any, dsn: str, depth: int
) -> None:
    session = await new_session(db_service)
    event = Event(author="model", custom_metadata={"m": nested(depth)})
    event.actions.state_delta["k"] = nested(depth)
    before = fingerprint(dsn)
    try:
        await db_service.append_event(session, event)
    except InvalidValueError:
        assert fingerprint(dsn) == before
        assert (await load(db_service)).events == []  # still readable
        tally("refused")
        return
    loaded = await load(db_service)  # must not raise
    assert loaded.state == {"k": nested(depth)}
    assert loaded.events == [event]
    tally("stored")


# ------------------------------------------------------------------ large floats


@pytest.mark.parametrize("value", [1e300, -1.7976931348623157e308, 1e16, 6.02214076e23])
async def test_large_float_round_trips(db_service: Any, value: float) -> None:
    await new_session(db_service, k=value, **{"app:k": [value]})
    state = (await load(db_service)).state
    assert type(state["k"]) is float
    assert state == {"k": value, "app:k": [value]}


async def test_numbers_written_inside_strings_are_left_as_written(db_service: Any) -> None:
    text = 'quoted \\"1e+16\\" and 2.5e+300, "3e+20"'
    session = await new_session(db_service, k=text, **{"1e+16": 1e16})
    await db_service.append_event(session, text_event(**{"user:k": [text, 4e17]}))
    state = (await load(db_service)).state
    assert state == {"k": text, "1e+16": 1e16, "user:k": [text, 4e17]}
    assert [type(state["1e+16"]), type(state["user:k"][1])] == [float, float]


# ----------------------------------------------------------------- hostile ids

HOSTILE_IDS = [
    "%s",
    "%(app_name)s",
    "{}",
    "{0}",
    "\\",
    "'",
    '"',
    "$$",
    "$1",
    "-- comment",
    "/* c */",
    "line\nbreak\ttab",
    "\u202eevil",  # right-to-left override
    "e\u0301",  # combining accent
    "zero\u200bwidth",
    "日本語",
    "\U0001f600" * 128,  # 128 characters, 512 bytes: fits VARCHAR(128)
    "ä" * 128,
    "x' OR '1'='1",
    "'); DROP TABLE adk_sessions; --",
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=lambda s: repr(s)[:24])
async def test_hostile_ids_work_in_every_call(db_service: Any, hostile: str) -> None:
    ids = {"app_name": hostile, "user_id": hostile, "session_id": hostile}
    session = await db_service.create_session(**ids, state={"user:u": hostile, "k": hostile})
    assert session.id == hostile.strip()
    await db_service.append_event(session, text_event(hostile, **{"app:a": hostile}))
    got = await db_service.get_session(**ids)
    assert got is not None
    assert got.state == {"k": hostile, "user:u": hostile, "app:a": hostile}
    assert [e.content.parts[0].text for e in got.events] == [hostile]
    for user in (hostile, None):
        listed = await db_service.list_sessions(app_name=hostile, user_id=user)
        assert [s.id for s in listed.sessions] == [hostile.strip()]
    assert await db_service.get_user_state(app_name=hostile, user_id=hostile) == {"u": hostile}
    await db_service.delete_session(**ids)
    assert await db_service.get_session(**ids) is None
    tally("stored")


LONG = "x" * 129
LONG_EMOJI = "\U0001f600" * 129


@pytest.mark.parametrize("long_id", [LONG, LONG_EMOJI], ids=["ascii", "emoji"])
@pytest.mark.parametrize(
    "method", ["get_session", "list_sessions", "delete_session", "get_user_state"]
)
async def test_ids_longer_than_their_columns_are_refused_by_every_method(
    db_service: Any, dsn: str, method: str, long_id: str
) -> None:
    before = fingerprint(dsn)
    calls = {
        "get_session": lambda **k: db_service.get_session(app_name=APP, session_id="s", **k),
        "list_sessions": lambda **k: db_service.list_sessions(app_name=APP, **k),
        "delete_session": lambda **k: db_service.delete_session(app_name=APP, session_id="s", **k),
        "get_user_state": lambda **k: db_service.get_user_state(app_name=APP, **k),
    }
    with pytest.raises(InvalidValueError):
        await calls[method](user_id=long_id)
    assert fingerprint(dsn) == before
    tally("refused")


async def test_append_through_a_session_with_a_too_long_id_is_refused(
    db_service: Any, dsn: str
) -> None:
    """Such a session cannot exist: not found (as ADK says) or refused, nothing written."""
    session = Session(id=LONG, app_name=APP, user_id=USER)
    before = fingerprint(dsn)
    with pytest.raises((InvalidValueError, SessionNotFoundError)):
        await db_service.append_event(session, text_event())
    assert fingerprint(dsn) == before
    tally("refused")


@pytest.mark.parametrize("field", ["invocation_id", "error_code"])
async def test_event_text_fields_longer_than_their_columns_are_refused(
    db_service: Any, dsn: str, field: str
) -> None:
    session = await new_session(db_service)
    before = fingerprint(dsn)
    too_long: dict[str, Any] = {field: "z" * 257}
    with pytest.raises(InvalidValueError):
        await db_service.append_event(session, Event(author="model", **too_long))
    assert fingerprint(dsn) == before
    longest: dict[str, Any] = {field: "\U0001f600" * 256}
    ok = Event(author="model", **longest)
    await db_service.append_event(session, ok)
    assert (await load(db_service)).events == [ok]
    tally("refused")


async def test_padded_session_id_accepted_by_create_is_accepted_by_delete(db_service: Any) -> None:
    padded = " " * 10 + "p" * 120 + " " * 10
    await db_service.create_session(app_name=APP, user_id=USER, session_id=padded)
    assert await db_service.get_session(app_name=APP, user_id=USER, session_id=padded) is not None
    await db_service.delete_session(app_name=APP, user_id=USER, session_id=padded)
    assert await db_service.get_session(app_name=APP, user_id=USER, session_id=padded) is None


# ---------------------------------------------------------------- table names

TABLE_ARGS = ["session_table", "events_table", "app_state_table", "user_state_table"]
BAD_TABLE_NAMES = [
    'adk"; DROP TABLE adk_sessions; --',
    "adk_sessions; DROP TABLE x",
    "a b",
    "a-b",
    "",
    "1abc",
    "x" * 64,
    "ä" * 32,
    "adk\x00",
    'a"b',
    "public.adk_sessions",
    "%s",
    None,
    42,
]


@pytest.mark.parametrize("store_class", [PsycopgAsyncADKStore, PsycopgSyncADKStore])
@pytest.mark.parametrize("arg", TABLE_ARGS)
@pytest.mark.parametrize("name", BAD_TABLE_NAMES, ids=lambda s: repr(s)[:20])
def test_table_names_carrying_sql_are_refused_at_construction(
    store_class: Any, arg: str, name: Any
) -> None:
    config_class = PsycopgAsyncConfig if store_class is PsycopgAsyncADKStore else PsycopgSyncConfig
    config = config_class(connection_config={"conninfo": "dbname=unused"})
    with pytest.raises(ImproperConfigurationError):
        store_class(config, **{arg: name})
    tally("refused")


@pytest.mark.parametrize(
    "names",
    [
        ("select", "from", "where", "user"),
        ("Sessions", "EVENTS", "App_States", "uSeR_StAtEs"),
        ("s" * 63, "e" * 63, "a" * 63, "u" * 63),
    ],
    ids=["keywords", "mixed-case", "63-bytes"],
)
async def test_keyword_mixed_case_and_longest_table_names_work(
    dsn: str, names: tuple[str, ...]
) -> None:
    config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    table_names: dict[str, Any] = dict(zip(TABLE_ARGS, names, strict=True))
    store = PsycopgAsyncADKStore(config, **table_names)
    await store.create_tables()
    await store.create_tables()  # idempotent
    svc = SQLSpecSessionService(store)
    session = await svc.create_session(app_name=APP, user_id=USER, state={"app:a": 1, "user:u": 2})
    await svc.append_event(session, text_event(k=3))
    got = await svc.get_session(app_name=APP, user_id=USER, session_id=session.id)
    assert got is not None
    assert got.state == {"app:a": 1, "user:u": 2, "k": 3}
    await svc.delete_session(app_name=APP, user_id=USER, session_id=session.id)
    await config.close()
    with psycopg.connect(dsn) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert set(names) <= tables
    assert not {"adk_sessions", "adk_events"} & tables
    tally("stored")
