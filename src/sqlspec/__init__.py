"""Durable Google ADK session storage on PostgreSQL through psycopg 3."""

from sqlspec.exceptions import (
    DatabaseUnavailableError,
    ImproperConfigurationError,
    InvalidValueError,
    MissingTablesError,
    PoolExhaustedError,
    SchemaVersionError,
    SQLSpecError,
)

__all__ = [
    "DatabaseUnavailableError",
    "ImproperConfigurationError",
    "InvalidValueError",
    "MissingTablesError",
    "PoolExhaustedError",
    "SQLSpecError",
    "SchemaVersionError",
]
__version__ = "0.1.0"
