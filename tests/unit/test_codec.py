"""The pure ADK conversions every session store shares (``_codec``), without a server.

State split and merged by scope, ADK's JSON forms of state and events, the
revision marker a read stamps on a session, and listing cursors.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.genai import types

from sqlspec import CorruptDataError, InvalidValueError
from sqlspec.extensions.adk._json import readable
from sqlspec.extensions.adk.session import _codec


def make_event(**fields: Any) -> Event:
    """An event with content, a state delta of every scope and a tool call id."""
    fields.setdefault("author", "agent")
    fields.setdefault("invocation_id", "inv-1")
    fields.setdefault(
        "content",
        types.Content(role="model", parts=[types.Part(text="héllo 👋"), types.Part(text="2nd")]),
    )
    fields.setdefault(
        "actions",
        EventActions(state_delta={"k": 1.5, "app:a": [1, 2], "user:u": {"n": None}}),
    )
    return Event(**fields)


# --------------------------------------------------------------------------- state


def test_split_state_by_scope_and_merge_back() -> None:
    state = {"app:theme": "dark", "user:name": "Ann", "count": 3, "nested": {"a": [1, 2]}}
    parts = _codec.split_state(state)
    assert parts == _codec.StateParts(
        app={"theme": "dark"}, user={"name": "Ann"}, session={"count": 3, "nested": {"a": [1, 2]}}
    )
    assert _codec.merge_state(parts.session or {}, parts.app or {}, parts.user or {}) == state


def test_split_state_drops_temp_keys_and_empty_scopes_are_none() -> None:
    assert _codec.split_state({"temp:scratch": 1, "user:x": 2}) == _codec.StateParts(
        app=None, user={"x": 2}, session=None
    )
    assert _codec.split_state({}) == _codec.StateParts(None, None, None)
    assert _codec.split_state(None) == _codec.StateParts(None, None, None)


@pytest.mark.parametrize("state", [{1: "a"}, {("app", "x"): 1}, ["a", "b"], "app:x", 5])
def test_split_state_refuses_non_str_keys_and_non_mappings(state: Any) -> None:
    with pytest.raises(InvalidValueError):
        _codec.split_state(state)


def test_state_json_writes_a_non_json_value_as_its_string_form_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    with caplog.at_level(logging.WARNING, logger="sqlspec.extensions.adk"):
        text = _codec.state_json({"o": Opaque(), "n": 1})
    assert json.loads(text) == {"o": "opaque!", "n": 1}
    assert any("not JSON-serializable" in r.getMessage() for r in caplog.records)


def test_state_json_of_plain_values_warns_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sqlspec.extensions.adk"):
        text = _codec.state_json({"s": "x", "f": 0.1, "l": [True, None]})
    assert json.loads(text) == {"s": "x", "f": 0.1, "l": [True, None]}
    assert caplog.records == []


def test_state_json_passes_nan_and_infinity_through_for_the_store_to_refuse() -> None:
    # Never silently ``null``: the text keeps NaN, which jsonb then refuses.
    assert _codec.state_json({"a": math.nan, "b": -math.inf}) == '{"a":NaN,"b":-Infinity}'


def test_decode_state_of_nothing_stored_is_empty() -> None:
    assert _codec.decode_state(None) == {}
    assert _codec.decode_state("") == {}
    assert _codec.decode_state('{"a": 1}') == {"a": 1}


# --------------------------------------------------------------------------- nesting


def test_readable_refuses_json_nested_deeper_than_pydantic_reads() -> None:
    deep = "[" * 300 + "]" * 300
    with pytest.raises(InvalidValueError, match="nested too deeply"):
        readable(deep)
    with pytest.raises(InvalidValueError):
        _codec.state_json({"deep": json.loads(deep)})


def test_readable_accepts_ordinary_and_merely_bracket_heavy_json() -> None:
    ordinary = '{"a": [1, {"b": 2}]}'
    assert readable(ordinary) is ordinary
    # Many brackets (past the cheap count), shallow nesting: parsed and accepted.
    wide = json.dumps([[i] for i in range(500)])
    assert readable(wide) == wide
    # Deep but within pydantic's limit.
    nested = "[" * 150 + "]" * 150
    assert readable(nested) == nested


# --------------------------------------------------------------------------- events


def test_event_json_round_trips_to_an_equal_event() -> None:
    event = make_event(
        timestamp=1_700_000_000.123456789,
        branch="root.child",
        long_running_tool_ids={"call-1"},
        turn_complete=True,
        custom_metadata={"big": 1e300, "tiny": 5e-324},
    )
    back = _codec.decode_event(_codec.event_json(event))
    assert back == event
    assert back.timestamp == event.timestamp  # the exact float, not microseconds


def test_event_json_leaves_out_none_fields() -> None:
    assert "error_code" not in json.loads(_codec.event_json(make_event()))


def test_event_json_writes_a_non_json_delta_value_as_its_string_form() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    event = make_event(actions=EventActions(state_delta={"o": Opaque()}))
    stored = _codec.decode_event(_codec.event_json(event))
    assert stored.actions.state_delta == {"o": "opaque!"}


@pytest.mark.parametrize(
    "text",
    ["not json", '{"id": "e1", ', '{"id": "e1", "author": 5}', '{"timestamp": "noon"}'],
)
def test_decode_event_refuses_rows_no_adk_event_comes_from(text: str) -> None:
    with pytest.raises(CorruptDataError, match="cannot be read back as an ADK Event"):
        _codec.decode_event(text)


def test_decode_event_names_the_event_it_refuses() -> None:
    with pytest.raises(CorruptDataError, match="'e-42'"):
        _codec.decode_event('{"id": "e-42", "content": 3}')


@pytest.mark.parametrize("text", ["[]", "null", '"text"', "5"])
def test_decode_event_refuses_json_that_is_not_an_object(text: str) -> None:
    with pytest.raises(CorruptDataError):
        _codec.decode_event(text)


def test_decode_events_keeps_the_order_and_reads_nothing_as_empty() -> None:
    events = [make_event(id=f"e{i}", timestamp=float(i)) for i in range(3)]
    assert _codec.decode_events([_codec.event_json(e) for e in events]) == events
    assert _codec.decode_events(None) == []


def test_without_temp_keys_drops_them_and_leaves_the_callers_event_alone() -> None:
    event = make_event(actions=EventActions(state_delta={"temp:t": 1, "k": 2}))
    stored = _codec.without_temp_keys(event)
    assert stored.actions.state_delta == {"k": 2}
    assert event.actions.state_delta == {"temp:t": 1, "k": 2}
    plain = make_event()
    assert _codec.without_temp_keys(plain) is plain


# --------------------------------------------------------------------------- sessions


def test_build_session_merges_state_and_stamps_the_revision() -> None:
    update_time = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
    session = _codec.build_session(
        session_id="s1",
        app_name="app",
        user_id="u1",
        session_state='{"k": 1}',
        app_state='{"theme": "dark"}',
        user_state=None,
        update_time=update_time,
        revision=7,
    )
    assert session.state == {"k": 1, "app:theme": "dark"}
    assert session.events == []
    assert session.last_update_time == update_time.timestamp()
    assert _codec.get_revision(session) == 7


def test_revision_marker_round_trips() -> None:
    session = Session(id="s", app_name="a", user_id="u")
    _codec.set_revision(session, 42)
    assert _codec.get_revision(session) == 42


def test_a_session_built_by_hand_or_by_another_service_has_no_revision() -> None:
    session = Session(id="s", app_name="a", user_id="u")
    assert _codec.get_revision(session) is None
    session._storage_update_marker = "1714564800.25"  # a timestamp marker, not a revision
    assert _codec.get_revision(session) is None


def test_new_session_id_strips_and_fills_in() -> None:
    assert _codec.new_session_id("  s1 ") == "s1"
    generated = {_codec.new_session_id(None), _codec.new_session_id("   ")}
    assert len(generated) == 2
    assert all(len(s) == 36 for s in generated)
    with pytest.raises(InvalidValueError):
        _codec.new_session_id(5)  # type: ignore[arg-type]


def test_check_get_session_config_refuses_a_negative_count_assigned_later() -> None:
    config = GetSessionConfig(num_recent_events=2)
    _codec.check_get_session_config(config)
    _codec.check_get_session_config(None)
    config.num_recent_events = -1
    with pytest.raises(ValueError, match="num_recent_events"):
        _codec.check_get_session_config(config)


# --------------------------------------------------------------------------- cursors

WHEN = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize("order_by", ["update_time", "create_time"])
def test_cursor_round_trips(order_by: str) -> None:
    cursor = _codec.encode_cursor(order_by, WHEN, "user/é", 'id "1"')
    assert "=" not in cursor  # URL-safe, unpadded
    assert _codec.decode_cursor(cursor, order_by) == (WHEN, "user/é", 'id "1"')


def test_a_cursor_of_one_order_is_refused_for_another() -> None:
    cursor = _codec.encode_cursor("create_time", WHEN, "u", "s")
    with pytest.raises(InvalidValueError, match="create_time"):
        _codec.decode_cursor(cursor, "update_time")


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor!",
        "é",
        _b64(["update_time", "u", "s"]),
        _b64(5),
        _b64(["update_time", "yesterday", "u", "s"]),
        _b64(["update_time", 5, "u", "s"]),
    ],
)
def test_a_garbage_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidValueError):
        _codec.decode_cursor(cursor, "update_time")
