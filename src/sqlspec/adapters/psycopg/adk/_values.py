"""What PostgreSQL can store as given, checked before anything is sent.

The column widths here are the ones the schemas declare (they build their DDL
from these constants), so a value refused here is one its column would refuse.
"""

from __future__ import annotations

import decimal
import re
from datetime import datetime, timezone

from sqlspec.exceptions import InvalidValueError

__all__ = [
    "ID_MAX_LENGTH",
    "TEXT_FIELD_MAX_LENGTH",
    "check_ids",
    "check_required_ids",
    "check_text",
    "jsonb_text",
    "to_timestamptz",
]

#: Width of the id columns (``VARCHAR(128)``).
ID_MAX_LENGTH = 128
#: Width of the event fields kept in ``VARCHAR(256)`` columns.
TEXT_FIELD_MAX_LENGTH = 256


def check_ids(**ids: str | None) -> None:
    """Refuse ids PostgreSQL cannot store in their columns, before anything is sent.

    ``None`` passes: it stands for "any" where an id is optional (list filters).
    """
    for name, value in ids.items():
        if value is not None:
            check_id(name, value)


def check_required_ids(**ids: str) -> None:
    """As :func:`check_ids`, for ids that must be given."""
    for name, value in ids.items():
        check_id(name, value)


def check_id(name: str, value: object) -> None:
    """Refuse one id PostgreSQL cannot store in its column."""
    check_text(name, value)
    assert isinstance(value, str)
    if len(value) > ID_MAX_LENGTH:
        raise InvalidValueError(
            f"{name} is {len(value)} characters long; the column holds at most {ID_MAX_LENGTH}"
        )


def check_text(name: str, value: object) -> int:
    """Refuse a value no PostgreSQL text column stores; returns its size in UTF-8 bytes."""
    if not isinstance(value, str):
        raise InvalidValueError(f"{name} must be a str, got {type(value).__name__}")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise InvalidValueError(
            f"{name} holds a lone surrogate, which is not valid UTF-8"
        ) from None
    if "\x00" in value:
        raise InvalidValueError(f"{name} contains a NUL character, which PostgreSQL cannot store")
    return size


#: A JSON string (skipped), or a number written with a positive exponent (group 1).
_STRING_OR_EXPONENT_NUMBER = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?\d+(?:\.\d+)?e\+\d+)')


def jsonb_text(text: str) -> str:
    """JSON ``text`` with floats of 1e16 and more written out in full, with a fraction.

    ``jsonb`` keeps numbers as ``numeric``: ``1e+16`` reads back as the integer
    ``10000000000000000``. ``10000000000000000.0`` keeps its scale, so it reads
    back as the float that was written.
    """
    if "e+" not in text:
        return text
    return _STRING_OR_EXPONENT_NUMBER.sub(_positional, text)


def _positional(match: re.Match[str]) -> str:
    number = match.group(1)
    if number is None:
        return match.group(0)
    return f"{decimal.Decimal(number):f}.0"


def to_timestamptz(timestamp: float) -> datetime:
    """An epoch timestamp as the aware datetime a ``TIMESTAMPTZ`` column keeps (microseconds)."""
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidValueError(f"timestamp {timestamp!r} is not a storable time") from exc
