"""JSON the services store: only what can be read back is written."""

from __future__ import annotations

import pydantic_core

from sqlspec.exceptions import InvalidValueError

__all__ = ["readable"]

#: JSON with fewer brackets than this cannot nest deep enough to need a check.
_NESTING_CHECKED_FROM = 128


def readable(text: str) -> str:
    """``text``, if it can be read back: refuse JSON nested deeper than pydantic parses.

    pydantic stops at about 200 levels; such JSON would be stored, then fail
    every read. Counting brackets is cheap, so only large documents are parsed.
    """
    if text.count("{") + text.count("[") < _NESTING_CHECKED_FROM:
        return text
    try:
        pydantic_core.from_json(text)
    except ValueError as exc:
        raise InvalidValueError(f"value nested too deeply to be read back: {exc}") from exc
    return text
