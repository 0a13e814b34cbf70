"""The driver's errors as this library's, for every store.

A store runs each call inside :func:`translate_errors`, so a caller meets the
typed errors of :mod:`sqlspec.exceptions` (or ADK's own), never a raw driver
error; :func:`rerunnable` says which failed statements may simply run again, and
:func:`prepared_statement_error` which ones a pooler refused over a prepared statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool

from sqlspec.exceptions import (
    DatabaseUnavailableError,
    ImproperConfigurationError,
    InvalidValueError,
    MissingTablesError,
)

__all__ = [
    "TRANSIENT_ATTEMPTS",
    "extension_needed",
    "prepared_statement_error",
    "rerunnable",
    "translate_errors",
]

#: Errors after which a single statement was rolled back whole and may simply run again.
TRANSIENT_ERRORS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
#: How many times a statement that may simply run again is run at most.
TRANSIENT_ATTEMPTS = 3
#: The pool's own errors: no statement was sent, and the pool has said why.
_POOL_ERRORS = (psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed, psycopg_pool.TooManyRequests)
#: What the server says of a prepared statement it does not hold as the client thinks
#: (the first two are also SQLSTATEs 42P05 and 26000; the third, 08P01, is a name held
#: by another client's statement of a different shape).
_PREPARED_STATEMENT = re.compile(
    r'prepared statement "[^"]*" (?:already exists|does not exist)'
    r'|bind message supplies \d+ parameters?, but prepared statement "[^"]*" requires \d+'
)


def prepared_statement_error(exc: psycopg.Error) -> bool:
    """Whether the server refused a statement over the prepared statement it named.

    Behind a pooler in transaction mode the server connection is not the one the
    statement was prepared on: the name is missing there, or another client's
    statement holds it. Either way the server refused it before running it.
    """
    if isinstance(
        exc, (psycopg.errors.DuplicatePreparedStatement, psycopg.errors.InvalidSqlStatementName)
    ):
        return True
    return bool(_PREPARED_STATEMENT.fullmatch(exc.diag.message_primary or ""))


def rerunnable(exc: psycopg.OperationalError, *, read: bool) -> bool:
    """Whether a failed statement may simply run again.

    A deadlock or serialization failure rolled it back whole. A read whose
    connection broke (no SQLSTATE, class 08, or a server shutdown, 57P) changed
    nothing; a write may have been applied before its connection broke. Behind
    PgBouncer the same holds: it passes the server's 57P01 on and closes the
    client's connection, and psycopg's pipeline mode reports any message sent
    before a close as the close alone (no SQLSTATE).
    """
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if not read or isinstance(exc, _POOL_ERRORS):
        return False
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn the driver's errors for bad values, missing tables and lost connections into ours."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise MissingTablesError(
            f"{exc.diag.message_primary}; call the store's create_tables() first"
        ) from exc
    except TRANSIENT_ERRORS:
        raise  # a deadlock or serialization failure: the caller may run the statement again
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise DatabaseUnavailableError(
            f"the server is read-only (a standby?) and refused the write, nothing was "
            f"written: {exc.diag.message_primary}. Name every host in the conninfo with "
            "target_session_attrs=read-write, so connections go to the primary"
        ) from exc
    except psycopg.OperationalError as exc:
        if exc.sqlstate == "08P01" and exc.diag.message_primary == "query_wait_timeout":
            # PgBouncer's word for a query that waited too long for a server connection:
            # it never reached the server.
            raise DatabaseUnavailableError(
                "the connection pooler found no free server connection within its "
                "query_wait_timeout, so the call was not run: the server may be down or "
                "unreachable from the pooler, or the pooler's pool too small for the load"
            ) from exc
        raise DatabaseUnavailableError(
            f"the database connection failed during the call, which may or may not have "
            f"been applied: {exc}"
        ) from exc
    except psycopg.DataError as exc:
        raise InvalidValueError(
            f"PostgreSQL refused a value, nothing was written: {exc} "
            "(common causes: NUL (\\u0000) in text, NaN or Infinity in state, text that is "
            "not JSON, a value longer than its column)"
        ) from exc


@contextmanager
def extension_needed(extension: str, what: str) -> Iterator[None]:
    """Say plainly that ``what`` needs ``extension`` when the server cannot create it.

    It may be missing from the server (pgvector is not in every PostgreSQL), or the
    role may lack the right to create it.
    """
    try:
        yield
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.InsufficientPrivilege) as exc:
        raise ImproperConfigurationError(
            f"{what} needs the {extension} extension (CREATE EXTENSION {extension}), and the "
            f"server said: {exc.diag.message_primary}. Install it on the server, or have a "
            "superuser create it in this database"
        ) from exc
