"""Validation of ``connection_config``, shared by the sync and async configs.

``connection_config`` is one flat mapping that mixes pool settings, libpq connection
parameters and psycopg connection options; this module sorts them once so both
configs build their pool from the same, already-checked settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import Conninfo

from sqlspec.exceptions import (
    DatabaseUnavailableError,
    ImproperConfigurationError,
    PoolExhaustedError,
    SQLSpecError,
)

__all__ = ["POOLER_MODES", "PoolSettings", "masked_conninfo"]

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

#: psycopg ``Connection.connect()`` options, with the types they accept.
CONNECTION_KEYS: Mapping[str, tuple[type, ...]] = {
    "autocommit": (bool,),
    "prepare_threshold": (int, type(None)),
}

#: Settings of this library's own, with the types they accept.
CLIENT_KEYS: Mapping[str, tuple[type, ...]] = {
    "command_timeout": (int, float, type(None)),
    "pooler": (str, type(None)),
}

#: What ``pooler`` may say about a connection pooler (such as PgBouncer) between the
#: pool and the server. ``transaction``: it hands each transaction any server
#: connection, so no statement is prepared on the server. ``session``: it keeps one
#: server connection per client connection, so statements are prepared as usual.
#: ``None`` (the default): found out when the pool opens.
POOLER_MODES = ("transaction", "session")

_OWN_KEYS = frozenset({"conninfo", *POOL_KEYS, *CONNECTION_KEYS, *CLIENT_KEYS})

#: The parameters the libpq in use knows, as libpq itself reports them.
_LIBPQ_OPTIONS = {o.keyword.decode(): o.dispchar.decode() for o in Conninfo.get_defaults()}

#: libpq's debug-only parameters ("D"), which postgres_fdw refuses to its users too: they
#: make a replication connection no store can query through (``replication``), carry SCRAM
#: keys meant for postgres_fdw's pass-through (``scram_client_key``, ``scram_server_key``) or
#: write the TLS session secrets to a file (``sslkeylogfile``).
_LIBPQ_DEBUG_KEYS = frozenset(k for k, disp in _LIBPQ_OPTIONS.items() if disp == "D")

#: libpq connection parameters accepted as separate keys (merged into the conninfo): all
#: but the debug-only ones. This library's own keys win over a libpq one of the same name.
LIBPQ_KEYS = frozenset(_LIBPQ_OPTIONS) - _LIBPQ_DEBUG_KEYS - _OWN_KEYS

#: libpq parameters whose values are secrets ("*"), such as password and oauth_client_secret.
_SECRET_KEYS = frozenset(k for k, disp in _LIBPQ_OPTIONS.items() if disp == "*")

VALID_KEYS = _OWN_KEYS | LIBPQ_KEYS

#: Keys (and libpq environment variables) that name a server; with none of them
#: set, the config starts the embedded server instead.
_SERVER_KEYS = ("conninfo", "host", "hostaddr", "port", "dbname", "user", "password", "service")
_SERVER_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE")


def masked_conninfo(conninfo: str) -> str:
    """Return ``conninfo`` with any password or other secret replaced, for messages and reprs."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:
        return "<unparsable conninfo>"
    for key in _SECRET_KEYS & params.keys():
        params[key] = "***"
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def _unknown_keys_message(unknown: list[str]) -> str:
    """Name the unknown keys, with the likely intended ones, then every valid key by kind.

    The kinds keep the list of some sixty keys readable; the libpq ones are listed
    from the libpq in use, whose version decides which of them exist.
    """
    named = []
    for key in unknown:
        if key in _LIBPQ_DEBUG_KEYS:
            named.append(f"{key!r} (a debug-only libpq parameter, not accepted)")
        elif close := get_close_matches(key, VALID_KEYS, n=2):
            named.append(f"{key!r} (did you mean {' or '.join(map(repr, close))}?)")
        else:
            named.append(repr(key))
    return (
        f"unknown connection_config key(s) {', '.join(named)}; valid keys: conninfo; "
        f"pool: {', '.join(POOL_KEYS)}; connection: {', '.join(CONNECTION_KEYS)}; "
        f"client: {', '.join(CLIENT_KEYS)}; libpq parameters: {', '.join(sorted(LIBPQ_KEYS))}"
    )


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
    #: The pool mode of a connection pooler in front of the server (see :data:`POOLER_MODES`).
    pooler: str | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> PoolSettings:
        """Sort and check a user's ``connection_config``; raise on anything unknown or mistyped."""
        config = dict(config or {})
        unknown = sorted(set(config) - VALID_KEYS)
        if unknown:
            raise ImproperConfigurationError(_unknown_keys_message(unknown))
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
        pooler = config.get("pooler")
        if pooler is not None and pooler not in POOLER_MODES:
            raise ImproperConfigurationError(
                f"connection_config['pooler'] must be one of {', '.join(map(repr, POOLER_MODES))} "
                f"or None, got {pooler!r}"
            )
        prepare_threshold = config.get("prepare_threshold", 5)
        if pooler == "transaction":
            if "prepare_threshold" in config and prepare_threshold is not None:
                raise ImproperConfigurationError(
                    "pooler='transaction' shares server connections between transactions, "
                    "where a prepared statement is not found again; drop prepare_threshold "
                    f"(got {prepare_threshold!r}) or set it to None"
                )
            prepare_threshold = None
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
            prepare_threshold=prepare_threshold,
            command_timeout=command_timeout,
            pooler=pooler,
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

    def __repr__(self) -> str:
        return (
            f"PoolSettings(conninfo={masked_conninfo(self.conninfo)!r}, pool={dict(self.pool)!r}, "
            f"autocommit={self.autocommit!r}, command_timeout={self.command_timeout!r}, "
            f"pooler={self.pooler!r})"
        )
