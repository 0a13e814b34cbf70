"""A statement as a named unit: its SQL, rendered once, and how its rows read back.

Every store keeps its statements as :class:`Statement` objects built once per
set of table names. A statement's rows come back through its own row factory
(usually :func:`record_row` of a record declared beside it), so a
SELECT and the code that reads it cannot drift apart: a column renamed on one
side, or moved, fails at once on the other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from psycopg import BaseConnection, sql
from psycopg.rows import BaseRowFactory, RowMaker, no_result, scalar_row

from sqlspec.exceptions import ImproperConfigurationError

__all__ = [
    "INDEX_ONLY",
    "INDEX_ORDER",
    "Executions",
    "Statement",
    "derived_name",
    "record_row",
    "scalar",
    "validate_identifier",
]

Row_co = TypeVar("Row_co", covariant=True)
Record = TypeVar("Record")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: PostgreSQL's NAMEDATALEN - 1.
MAX_IDENTIFIER_BYTES = 63
#: Line breaks and the indentation around them; no SQL literal here holds one.
_ONE_LINE = re.compile(rb"\s*\n\s*")


def validate_identifier(name: str, what: str) -> str:
    """Accept a plain SQL identifier of at most 63 bytes, or raise saying why not."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ImproperConfigurationError(
            f"{what} {name!r} is not a plain identifier: use letters, digits and underscores, "
            "starting with a letter or underscore"
        )
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise ImproperConfigurationError(
            f"{what} {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte limit"
        )
    return name


def derived_name(table: str, suffix: str) -> str:
    """An index or constraint name for ``table``, shortened with a hash past 63 bytes."""
    name = f"idx_{table}_{suffix}"
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER_BYTES - 9]}_{digest}"


class Statement(Generic[Row_co]):
    """One SQL statement and the row factory that reads its rows.

    The text is rendered once, on one line: psycopg would otherwise walk the
    composed statement on every call, and it caches the parsing of queries only
    up to 4 KiB, which the longest statement fits once joined onto one line.

    ``planner`` is a ``set_config`` query run before the statement, in its
    transaction and round trip, so that its plan never depends on statistics:
    :data:`INDEX_ONLY` for a statement whose index the planner undervalues on a
    table without them (a GIN index, say), :data:`INDEX_ORDER` for one whose
    ``ORDER BY`` names the one index to read (on a table without statistics
    every index of a key looks alike).

    ``binary`` asks for the rows in binary: for large ``bytea`` columns, which
    the text format would send hex-encoded, twice their size, to be decoded here,
    and for arrays of JSON texts, which it would send with every quote escaped,
    to be unescaped here (a third of a 200-event read's time outside pydantic).
    """

    __slots__ = ("binary", "planner", "query", "row_factory", "text")

    def __init__(
        self,
        query: sql.Composable,
        row_factory: BaseRowFactory[Row_co],
        *,
        planner: bytes | None = None,
        binary: bool = False,
    ) -> None:
        self.query = query
        self.row_factory = row_factory
        self.planner = planner
        self.binary = binary
        self.text: bytes = _ONE_LINE.sub(b" ", query.as_bytes(None))

    def __repr__(self) -> str:
        return f"Statement({self.text.decode()[:60]!r}...)"


#: Prices sequential scans out for the rest of the transaction (see ``Statement.planner``).
#: A plan priced so is costed past ``jit_above_cost`` if anything priced out remains in
#: it, and compiling it would take far longer than running it: JIT is turned off too.
INDEX_ONLY = b"SELECT set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)"
#: Prices sequential scans and sorts out for the rest of the transaction: an ``ORDER BY``
#: that changes no result then picks the index that returns rows in its order.
INDEX_ORDER = (
    b"SELECT set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true),"
    b" set_config('jit', 'off', true)"
)


def scalar(query: sql.Composable) -> Statement[Any]:
    """A statement whose rows are read as their first (only) column."""
    return Statement(query, scalar_row)


def record_row(cls: type[Record]) -> BaseRowFactory[Record]:
    """Rows read into ``cls``, a dataclass whose fields are the result's columns, in order.

    The names are compared once per result, and each row is then passed by
    position: half the cost of psycopg's ``class_row``, which builds a keyword
    dict for every row, and stricter, as a column out of place fails too.
    """
    fields = tuple(field.name for field in dataclasses.fields(cls))  # type: ignore[arg-type]

    def for_result(cursor: Any) -> RowMaker[Record]:
        # The names straight from the result: ``cursor.description`` would build a
        # Column object per column first, several times the cost of a short row.
        result = cursor.pgresult
        if result is None or not result.nfields:
            return no_result
        columns = tuple((result.fname(i) or b"").decode() for i in range(result.nfields))
        if columns != fields:
            raise TypeError(
                f"columns {list(columns)} do not build its record: "
                f"{cls.__name__} reads {list(fields)}"
            )

        def make(values: Sequence[Any]) -> Record:
            return cls(*values)

        return make

    return for_result


class Executions:
    """How many times each statement ran on each connection, counted as psycopg counts them.

    psycopg prepares a statement on a connection at the execution that follows
    ``prepare_threshold`` unprepared ones there, and outside pipeline mode sends
    that Parse in a round trip of its own. Counting the same way tells a store
    the one execution to pipeline; every other runs outside a pipeline, which
    costs 35-60 us less a call. psycopg counts a run that failed, unless it was
    the statement's first there, and so does this count. psycopg also forgets
    every statement after a ROLLBACK or DROP on the connection, and counts one
    apart when its parameter types change: then the counts disagree, and one
    execution takes a second round trip, nothing worse.
    """

    def __init__(self) -> None:
        self._counts: WeakKeyDictionary[BaseConnection[Any], dict[bytes, int]] = WeakKeyDictionary()

    def prepares(self, conn: BaseConnection[Any], statement: Statement[Any]) -> bool:
        """Whether psycopg prepares ``statement`` on ``conn`` when it next runs there."""
        threshold = conn.prepare_threshold
        if threshold is None:
            return False
        counts = self._counts.get(conn)
        return (counts.get(statement.text, 0) if counts else 0) == threshold

    @contextmanager
    def counting(self, conn: BaseConnection[Any], statement: Statement[Any]) -> Iterator[None]:
        """Count the block's run of ``statement`` on ``conn``."""
        counts = self._counts.setdefault(conn, {})
        ran = counts.get(statement.text, 0)
        failed = True
        try:
            yield
            failed = False
        finally:
            if conn.prepare_threshold is not None and (ran or not failed):
                counts[statement.text] = ran + 1
