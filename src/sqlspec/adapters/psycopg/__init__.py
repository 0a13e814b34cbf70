"""psycopg 3 adapter: pooled sync and async configs."""

from sqlspec.adapters.psycopg._config import PsycopgAsyncConfig, PsycopgSyncConfig

__all__ = ["PsycopgAsyncConfig", "PsycopgSyncConfig"]
