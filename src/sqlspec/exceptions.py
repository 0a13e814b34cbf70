"""The errors this library raises, under one root class.

Each error subclasses the builtin a caller would already catch (``ValueError`` for
bad input), so code written against ADK's own services keeps working.
"""

from __future__ import annotations

__all__ = [
    "CorruptDataError",
    "DatabaseUnavailableError",
    "ImproperConfigurationError",
    "InvalidValueError",
    "MissingTablesError",
    "PoolExhaustedError",
    "SQLSpecError",
    "SchemaVersionError",
]


class SQLSpecError(Exception):
    """Root of every error raised by this library."""

    __module__ = "sqlspec"


class ImproperConfigurationError(SQLSpecError, ValueError):
    """A configuration or table name that cannot work; fix the argument named in the message."""

    __module__ = "sqlspec"


class InvalidValueError(SQLSpecError, ValueError):
    """A value PostgreSQL cannot store as given; nothing was written."""

    __module__ = "sqlspec"


class MissingTablesError(SQLSpecError, RuntimeError):
    """The store's tables do not exist yet; call ``create_tables()`` first."""

    __module__ = "sqlspec"


class SchemaVersionError(SQLSpecError, RuntimeError):
    """The database schema is at a version this library cannot migrate; the message says why."""

    __module__ = "sqlspec"


class DatabaseUnavailableError(SQLSpecError, ConnectionError):
    """The server could not be reached, or the connection broke during the call.

    A write that failed this way may or may not have been applied; retrying an
    append with the same event is safe (a stored event is not stored twice).
    """

    __module__ = "sqlspec"


class PoolExhaustedError(SQLSpecError, TimeoutError):
    """No pooled connection came free in time; the message names the pool's limits."""

    __module__ = "sqlspec"


class CorruptDataError(SQLSpecError, ValueError):
    """A stored row cannot be read back as an ADK model; the message names the row.

    Rows this library writes always read back: this means a row written or changed
    by other means.
    """

    __module__ = "sqlspec"
