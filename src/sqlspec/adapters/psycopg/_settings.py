"""Validation of ``connection_config``, shared by the sync and async configs.

The seed documents one flat mapping that mixes pool settings, libpq connection
parameters and psycopg connection options; this module sorts them once so both
configs build their pool from the same, already-checked settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sqlspec.exceptions import (
    DatabaseUnavailableError,
    ImproperConfigurationError,
    PoolExhaustedError,
    SQLSpecError,
)

__all__ = ["PoolSettings", "masked_conninfo"]

#: Keys handed to ``psycopg_pool``'s pool constructor, with the types they accept.
POOL_KEYS: Mapping[str, tuple[type, ...]] = {
    "min_size": (int,),
    "max_size": (int,),
    "timeout": (int, float),
    "max_waiting": (int,),
    "max_lifetime": (int, float),
    "max_idle": (int, float),
    "reconnect_timeout": (int, float),
    "num_workers": (int,),
    "name": (str,),
}

#: libpq connection parameters accepted as separate keys (merged into the conninfo).
LIBPQ_KEYS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "service",
        "connect_timeout",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslrootcert",
        "sslcrl",
        "sslnegotiation",
        "require_auth",
        "channel_binding",
        "gssencmode",
        "krbsrvname",
        "target_session_attrs",
        "load_balance_hosts",
    }
)

#: psycopg ``Connection.connect()`` options, with the types they accept.
CONNECTION_KEYS: Mapping[str, tuple[type, ...]] = {
    "autocommit": (bool,),
    "prepare_threshold": (int, type(None)),
}

#: Settings of this library's own, with the types they accept.
CLIENT_KEYS: Mapping[str, tuple[type, ...]] = {
    "command_timeout": (int, float, type(None)),
}

VALID_KEYS = frozenset({"conninfo", *POOL_KEYS, *LIBPQ_KEYS, *CONNECTION_KEYS, *CLIENT_KEYS})

#: Keys (and libpq environment variables) that name a server; with none of them
#: set, the config starts the embedded server instead.
_SERVER_KEYS = ("conninfo", "host", "hostaddr", "port", "dbname", "user", "password", "service")
_SERVER_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE")


def masked_conninfo(conninfo: str) -> str:
    """Return ``conninfo`` with any password replaced, for messages and reprs."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:
        return "<unparsable conninfo>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


@dataclass(frozen=True)
class PoolSettings:
    """The checked contents of one ``connection_config`` mapping."""

    conninfo: str
    libpq: Mapping[str, Any] = field(default_factory=dict)
    pool: Mapping[str, Any] = field(default_factory=dict)
    autocommit: bool = True
    prepare_threshold: int | None = 5
    #: Seconds a store's statement may wait for the server's answer (``None``: forever).
    command_timeout: float | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> PoolSettings:
        """Sort and check a user's ``connection_config``; raise on anything unknown or mistyped."""
        config = dict(config or {})
        unknown = sorted(set(config) - VALID_KEYS)
        if unknown:
            raise ImproperConfigurationError(
                f"unknown connection_config key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys are: {', '.join(sorted(VALID_KEYS))}"
            )
        for key, types in (*POOL_KEYS.items(), *CONNECTION_KEYS.items(), *CLIENT_KEYS.items()):
            if key in config and (
                not isinstance(config[key], types)
                or (bool not in types and isinstance(config[key], bool))
            ):
                names = " or ".join(t.__name__ for t in types)
                raise ImproperConfigurationError(
                    f"connection_config[{key!r}] must be {names}, got {config[key]!r}"
                )
        conninfo = config.get("conninfo", "")
        if not isinstance(conninfo, str):
            raise ImproperConfigurationError(
                f"connection_config['conninfo'] must be a str, got {type(conninfo).__name__}"
            )
        libpq: dict[str, Any] = {k: v for k, v in config.items() if k in LIBPQ_KEYS}
        try:
            merged = make_conninfo(conninfo, **libpq)
        except Exception as exc:
            raise ImproperConfigurationError(
                f"connection_config does not form a valid conninfo: {exc}"
            ) from None
        command_timeout = config.get("command_timeout")
        if command_timeout is not None and not command_timeout > 0:
            raise ImproperConfigurationError(
                f"connection_config['command_timeout'] must be positive seconds or None, "
                f"got {command_timeout!r}"
            )
        pool = {k: v for k, v in config.items() if k in POOL_KEYS}
        # psycopg_pool's default min_size (4), lowered to fit a smaller max_size.
        min_size = pool.setdefault("min_size", min(4, pool.get("max_size", 4)))
        max_size = pool.get("max_size", min_size)
        if min_size < 0 or max_size < 1 or max_size < min_size:
            raise ImproperConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size and max_size >= 1; "
                f"got min_size={min_size}, max_size={max_size}"
            )
        return cls(
            conninfo=merged,
            libpq=libpq,
            pool=pool,
            autocommit=config.get("autocommit", True),
            prepare_threshold=config.get("prepare_threshold", 5),
            command_timeout=command_timeout,
        )

    @staticmethod
    def unreachable(conninfo: str, cause: BaseException) -> DatabaseUnavailableError:
        """The typed error for a server a direct connection just failed to reach."""
        return DatabaseUnavailableError(
            f"cannot connect to {masked_conninfo(conninfo)}: {str(cause).strip()}"
        )

    def pool_error(self, stats: Mapping[str, int], conninfo: str, lent: int) -> SQLSpecError:
        """The typed error for a pool that gave no connection in time, its server reachable.

        A pool with fewer than ``max_size`` connections lent out could not open
        or reopen the others; a fully lent one is too small for the load.
        """
        timeout = self.pool.get("timeout", 30.0)
        if lent < self.max_size:
            return DatabaseUnavailableError(
                f"no connection to {masked_conninfo(conninfo)} within timeout={timeout}s: "
                f"{lent} of max_size={self.max_size} connections are in use and the pool "
                "could not open or reopen the others in time (psycopg_pool logs why)"
            )
        return PoolExhaustedError(
            f"no pooled connection came free within timeout={timeout}s: "
            f"all max_size={self.max_size} connections are in use and "
            f"{stats.get('requests_waiting', 0)} callers wait "
            f"(max_waiting={self.pool.get('max_waiting', 0)}); raise max_size or timeout, "
            "or lower the concurrency"
        )

    @property
    def max_size(self) -> int:
        """The most connections the pool opens."""
        size: int = self.pool.get("max_size", self.pool.get("min_size", 4))
        return size

    @property
    def names_a_server(self) -> bool:
        """Whether the config or libpq's environment says which server to use."""
        if self.conninfo and any(k in conninfo_to_dict(self.conninfo) for k in _SERVER_KEYS):
            return True
        return any(os.environ.get(var) for var in _SERVER_ENV)

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Connection.connect()`` beyond the conninfo."""
        return {"autocommit": self.autocommit, "prepare_threshold": self.prepare_threshold}

    def __repr__(self) -> str:
        return (
            f"PoolSettings(conninfo={masked_conninfo(self.conninfo)!r}, pool={dict(self.pool)!r}, "
            f"autocommit={self.autocommit!r}, command_timeout={self.command_timeout!r})"
        )
