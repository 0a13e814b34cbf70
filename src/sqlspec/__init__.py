"""Durable Google ADK session storage on PostgreSQL through psycopg 3."""

from sqlspec.exceptions import (
    ImproperConfigurationError,
    InvalidValueError,
    MissingTablesError,
    SchemaVersionError,
    SQLSpecError,
)

__all__ = [
    "ImproperConfigurationError",
    "InvalidValueError",
    "MissingTablesError",
    "SQLSpecError",
    "SchemaVersionError",
]
__version__ = "0.1.0"
