"""JSON Lines in and out of any store: the staging table COPY fills, the export snapshot.

Every wing exports its rows as one JSON object per line (each with a ``kind``)
and imports them back by COPY into a staging table, then one statement that
takes the lines of its kinds. Lines of other kinds pass through untouched, so
one file can carry every wing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from psycopg import sql

from sqlspec.adapters.psycopg.adk._statement import scalar

__all__ = [
    "COPY_STAGING",
    "CREATE_STAGING",
    "EXPORT_SNAPSHOT",
    "Progress",
    "TextSink",
    "staged_line",
]

#: A transaction-scoped table that COPY fills with one JSON line per row.
CREATE_STAGING = scalar(
    sql.SQL("CREATE TEMP TABLE sqlspec_staging (seq bigserial, line json NOT NULL) ON COMMIT DROP")
)
COPY_STAGING = sql.SQL("COPY sqlspec_staging (line) FROM STDIN")
#: First statement of an export: every query of it reads one snapshot.
EXPORT_SNAPSHOT = sql.SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

#: ``progress(kind, n)``: ``n`` more lines of ``kind`` were written.
Progress = Callable[[str, int], None]


class TextSink(Protocol):
    """Where an export writes: anything with a ``write(str)``, such as a text file."""

    def write(self, text: str, /) -> object: ...


def staged_line(line: str | bytes) -> str | None:
    """One JSON Lines line ready to stage, or ``None`` for a blank line."""
    text = line.decode() if isinstance(line, bytes) else line
    text = text.strip()
    return text or None
