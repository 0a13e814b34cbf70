"""What PostgreSQL can store (``_values``) and how session state and events are encoded for it.

No server: every value refused here is refused before anything is sent, and
must be one its column (or ``jsonb``) would refuse or mangle.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions

from sqlspec import InvalidValueError
from sqlspec.adapters.psycopg.adk._values import (
    ID_MAX_LENGTH,
    TEXT_FIELD_MAX_LENGTH,
    check_ids,
    check_required_ids,
    jsonb_text,
    to_timestamptz,
)
from sqlspec.adapters.psycopg.adk.artifact._store_base import CHUNK_SIZE, rechunked
from sqlspec.adapters.psycopg.adk.session import _encoding
from sqlspec.adapters.psycopg.adk.session._encoding import StateDeltas

# --------------------------------------------------------------------------- ids


def test_an_id_of_the_column_width_passes_and_one_more_is_refused() -> None:
    assert ID_MAX_LENGTH == 128
    check_required_ids(session_id="x" * 128)
    check_required_ids(session_id="é" * 128)  # characters, as VARCHAR counts them
    with pytest.raises(InvalidValueError, match="session_id is 129 characters"):
        check_required_ids(session_id="x" * 129)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\x00b", "NUL"),
        ("a\ud800b", "lone surrogate"),
        (5, "must be a str"),
        (b"bytes", "must be a str"),
    ],
)
def test_ids_postgresql_cannot_store_are_refused(value: Any, reason: str) -> None:
    with pytest.raises(InvalidValueError, match=reason):
        check_ids(user_id=value)
    with pytest.raises(InvalidValueError, match=reason):
        check_required_ids(user_id=value)


def test_none_stands_for_any_only_where_an_id_is_optional() -> None:
    check_ids(app_name="app", user_id=None)
    with pytest.raises(InvalidValueError, match="user_id must be a str"):
        check_required_ids(app_name="app", user_id=None)  # type: ignore[arg-type]


def test_every_id_is_checked_and_the_bad_one_named() -> None:
    with pytest.raises(InvalidValueError, match=r"^user_id"):
        check_required_ids(app_name="app", user_id="u\x00", session_id="s")


# --------------------------------------------------------------------------- jsonb_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e+16", "10000000000000000.0"),
        ('{"a":1e+16}', '{"a":10000000000000000.0}'),
        ("[-2.5e+20]", "[-250000000000000000000.0]"),
        ('{"a":[1.5e+300]}', '{"a":[1' + "5" + "0" * 299 + ".0]}"),
    ],
)
def test_jsonb_text_writes_large_floats_positionally(text: str, expected: str) -> None:
    out = jsonb_text(text)
    assert out == expected
    assert json.loads(out) == json.loads(text)  # the same value, still a float
    assert all(isinstance(v, float) for v in _numbers(json.loads(out)))


def _numbers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value]


def test_jsonb_text_leaves_strings_alone() -> None:
    text = '{"1e+16": "1e+16", "q": "say \\"2e+20\\" 3e+18", "n": 1e+16}'
    assert jsonb_text(text) == (
        '{"1e+16": "1e+16", "q": "say \\"2e+20\\" 3e+18", "n": 10000000000000000.0}'
    )


def test_jsonb_text_returns_text_without_an_exponent_as_is() -> None:
    text = '{"a": 1.5, "b": 1e-07, "c": 12345678901234567890}'
    assert jsonb_text(text) is text


def test_encode_state_keeps_floats_floats_for_jsonb() -> None:
    text = _encoding.encode_state({"big": 1e16, "huge": -2.5e20, "s": "1e+16", "i": 10**17})
    assert json.loads(text) == {"big": 1e16, "huge": -2.5e20, "s": "1e+16", "i": 10**17}
    assert "e+" not in text.replace('"1e+16"', "")
    assert "10000000000000000.0" in text


# --------------------------------------------------------------------------- timestamps


def test_to_timestamptz_is_aware_utc_with_microseconds() -> None:
    assert to_timestamptz(1_700_000_000.25) == datetime(
        2023, 11, 14, 22, 13, 20, 250000, tzinfo=timezone.utc
    )
    assert to_timestamptz(0.000001).microsecond == 1
    assert to_timestamptz(1_700_000_000.25).tzinfo is timezone.utc


@pytest.mark.parametrize("timestamp", [1e20, -1e20, math.nan, math.inf])
def test_to_timestamptz_refuses_times_no_column_holds(timestamp: float) -> None:
    with pytest.raises(InvalidValueError, match="not a storable time"):
        to_timestamptz(timestamp)


# --------------------------------------------------------------------------- session state


def test_split_state_encodes_each_scope_for_its_column() -> None:
    deltas = _encoding.split_state(
        {"app:big": 1e16, "user:name": "Ann", "k": [1, None], "temp:scratch": object()}
    )
    assert deltas == StateDeltas(
        app='{"big":10000000000000000.0}', user='{"name":"Ann"}', session='{"k":[1,null]}'
    )


def test_split_state_of_nothing_is_nothing() -> None:
    assert _encoding.split_state(None) == StateDeltas(None, None, None)
    assert _encoding.split_state({"temp:only": 1}) == StateDeltas(None, None, None)


def test_split_state_refuses_what_the_codec_refuses() -> None:
    with pytest.raises(InvalidValueError):
        _encoding.split_state({1: "x"})  # type: ignore[dict-item]


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize("field", ["author", "invocation_id", "branch", "error_code"])
def test_encode_event_refuses_a_text_field_longer_than_its_column(field: str) -> None:
    assert TEXT_FIELD_MAX_LENGTH == 256
    fits = Event.model_validate({"author": "a", field: "x" * TEXT_FIELD_MAX_LENGTH})
    assert json.loads(_encoding.encode_event(fits))[field] == "x" * TEXT_FIELD_MAX_LENGTH
    too_long = Event.model_validate({"author": "a", field: "x" * (TEXT_FIELD_MAX_LENGTH + 1)})
    with pytest.raises(InvalidValueError, match=rf"event\.{field} is 257 characters"):
        _encoding.encode_event(too_long)


def test_encode_event_refuses_an_id_longer_than_its_column() -> None:
    _encoding.encode_event(Event(author="a", id="e" * ID_MAX_LENGTH))
    with pytest.raises(InvalidValueError, match=r"event\.id is 129 characters"):
        _encoding.encode_event(Event(author="a", id="e" * (ID_MAX_LENGTH + 1)))


def test_encode_event_is_the_events_json() -> None:
    event = Event(author="a", actions=EventActions(state_delta={"k": 1}), timestamp=12.5)
    assert Event.model_validate_json(_encoding.encode_event(event)) == event


@pytest.mark.parametrize(
    "block", [1000, 4099, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 7, 5 * CHUNK_SIZE]
)
def test_blocks_of_any_size_come_out_in_whole_chunks(block: int) -> None:
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256) + b"tail"
    pieces = [data[i : i + block] for i in range(0, len(data), block)]
    chunked = list(rechunked(pieces))
    assert b"".join(chunked) == data
    assert [len(c) for c in chunked] == [CHUNK_SIZE] * 3 + [4]
