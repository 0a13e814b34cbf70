"""Durable Google ADK sessions and memory on PostgreSQL through psycopg 3."""

from sqlspec.exceptions import (
    CorruptDataError,
    DatabaseUnavailableError,
    ImproperConfigurationError,
    InvalidValueError,
    MissingTablesError,
    PoolExhaustedError,
    SchemaVersionError,
    SQLSpecError,
)

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
__version__ = "0.1.0"
