"""psycopg 3 adapter: pooled sync and async configs."""

from sqlspec.adapters.psycopg._config_async import PsycopgAsyncConfig
from sqlspec.adapters.psycopg._config_sync import PsycopgSyncConfig

__all__ = ["PsycopgAsyncConfig", "PsycopgSyncConfig"]
