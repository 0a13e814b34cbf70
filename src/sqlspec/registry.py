"""ADK's own command line on SQLSpec: ``sqlspec://`` service URIs for ``adk``.

``adk web``, ``adk api_server`` and ``adk run`` build their session, memory and
artifact services from ``--session_service_uri``, ``--memory_service_uri`` and
``--artifact_service_uri``, looking the scheme up in ADK's service registry. This
module gives them one::

    adk api_server --session_service_uri "sqlspec+postgresql://user:pw@host/db" \
        --memory_service_uri "sqlspec+postgresql://user:pw@host/db" agents/

once the agents directory registers the schemes, with a ``services.yaml``::

    services:
      - scheme: sqlspec+postgresql
        type: session
        class: sqlspec.registry.SQLSpecURISessionService
      - scheme: sqlspec+postgresql
        type: memory
        class: sqlspec.registry.SQLSpecURIMemoryService
      - scheme: sqlspec+postgresql
        type: artifact
        class: sqlspec.registry.SQLSpecURIArtifactService

or a ``services.py``::

    from sqlspec.registry import (
        register_artifact_services,
        register_memory_services,
        register_session_services,
    )

    register_session_services()
    register_memory_services()
    register_artifact_services()

The URI is a PostgreSQL URL whose scheme is one of :data:`SCHEMES`; its query may
carry pool settings (``min_size``, ``max_size``, ``timeout``, ...), ``command_timeout``,
``pooler`` (``pooler=transaction`` behind PgBouncer in transaction mode), the session
store's options (``session_table``, ``events_table``, ``app_state_table``,
``user_state_table``, a default ``session_ttl``: ``30d``, ``12h``, or seconds,
``partitioned_events=true``), the
memory store's (``memory_table``, ``text_search_config``), the artifact store's
(``artifact_table``, ``file_table``, ``blob_table``, ``chunk_table``,
``max_artifact_bytes``), ``create_tables=false`` and ``replica``, a read
replica's URL (percent-encoded) for the reads that tolerate lag, pooled with the
same settings; every other query parameter is a libpq one and stays in the conninfo. Each service
takes its own store's options, so one URI can serve all three, and services whose URIs
name the same connection share one pool (closing one service closes it for all;
the next call opens it again). ``sqlspec://`` with no host names no server: the
embedded PostgreSQL is used, as everywhere else. Tables are created (or migrated)
on the service's first call. A memory service built from a URI searches by text
only: vectors need an embedder, which code passes to ``SQLSpecMemoryService``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from google.adk.sessions.session import Session

from sqlspec.adapters.psycopg import PsycopgAsyncConfig
from sqlspec.adapters.psycopg._settings import (
    CLIENT_KEYS,
    CONNECTION_KEYS,
    POOL_KEYS,
    masked_conninfo,
)
from sqlspec.adapters.psycopg.adk import (
    PsycopgAsyncADKArtifactStore,
    PsycopgAsyncADKMemoryStore,
    PsycopgAsyncADKStore,
)
from sqlspec.exceptions import ImproperConfigurationError
from sqlspec.extensions.adk import (
    SQLSpecArtifactService,
    SQLSpecMemoryService,
    SQLSpecSessionService,
)
from sqlspec.extensions.adk.session._cache import EventCache

__all__ = [
    "ARTIFACT_OPTIONS",
    "MEMORY_OPTIONS",
    "SCHEMES",
    "SESSION_OPTIONS",
    "SQLSpecURIArtifactService",
    "SQLSpecURIMemoryService",
    "SQLSpecURISessionService",
    "ServiceURI",
    "create_artifact_service",
    "create_memory_service",
    "create_session_service",
    "is_service_uri",
    "parse_duration",
    "parse_service_uri",
    "register_artifact_services",
    "register_memory_services",
    "register_session_services",
]

#: The URI schemes this module handles; ``sqlspec://`` is short for ``sqlspec+postgresql://``.
SCHEMES = ("sqlspec", "sqlspec+postgresql", "sqlspec+postgres")

#: Query parameters (and keyword arguments) that configure a store rather than the connection.
SESSION_OPTIONS = (
    "session_table",
    "events_table",
    "app_state_table",
    "user_state_table",
    "session_ttl",
    "partitioned_events",
)
MEMORY_OPTIONS = ("memory_table", "text_search_config")
ARTIFACT_OPTIONS = (
    "artifact_table",
    "file_table",
    "blob_table",
    "chunk_table",
    "max_artifact_bytes",
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)", re.IGNORECASE)
_DURATION_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_duration(value: str | float | timedelta) -> timedelta:
    """Read a duration: ``30d``, ``12h``, ``90m``, ``45s``, ``2w``, ``1d12h``, or seconds.

    Raises:
        ImproperConfigurationError: not a duration, or negative.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            result = timedelta(seconds=float(text))
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or _DURATION_PART.sub("", text).strip():
                raise ImproperConfigurationError(
                    f"{value!r} is not a duration; write it like 30d, 12h, 90m, 45s, 2w "
                    "or 1d12h (or a number of seconds)"
                ) from None
            result = sum(
                (float(n) * _DURATION_UNITS[unit.lower()] for n, unit in parts), timedelta()
            )
    else:
        raise ImproperConfigurationError(f"{value!r} is not a duration")
    if result < timedelta(0):
        raise ImproperConfigurationError(f"a duration may not be negative, got {value!r}")
    return result


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ImproperConfigurationError(f"{key} must be true or false, got {value!r}")


def _typed(key: str, value: Any, types: tuple[type, ...]) -> Any:
    """Convert a query-string value to the type a pool or connection setting takes."""
    if not isinstance(value, str):
        return value
    if bool in types:
        return _to_bool(key, value)
    if type(None) in types and value.strip().lower() in ("", "none", "null"):
        return None
    for kind in (int, float):
        if kind in types:
            try:
                return kind(value)
            except ValueError:
                continue
    if str in types:
        return value
    names = " or ".join(t.__name__ for t in types if t is not type(None))
    raise ImproperConfigurationError(f"{key} must be {names}, got {value!r}")


@dataclass(frozen=True)
class ServiceURI:
    """What a session-service URI says: where to connect, how to pool, which tables."""

    #: The ``connection_config`` of :class:`PsycopgAsyncConfig` / ``PsycopgSyncConfig``.
    connection_config: dict[str, Any] = field(default_factory=dict)
    #: Keyword arguments of the stores: table names, ``session_ttl``, ``text_search_config``.
    store_options: dict[str, Any] = field(default_factory=dict)
    #: Whether the service creates (or migrates) its tables on first use.
    create_tables: bool = True
    #: The ``replica_config`` of the configs: a read replica (``?replica=``), if named.
    replica_config: dict[str, Any] | None = None
    #: The session service's ``event_cache_bytes`` (``None``: its default).
    event_cache_bytes: int | None = None

    @property
    def conninfo(self) -> str:
        """The PostgreSQL URL the URI maps to (empty: no server named)."""
        conninfo: str = self.connection_config.get("conninfo", "")
        return conninfo

    def masked(self) -> str:
        """The conninfo with any password hidden, for messages."""
        return masked_conninfo(self.conninfo) if self.conninfo else "(embedded server)"

    def options_of(self, names: Iterable[str]) -> dict[str, Any]:
        """The store options among ``names``: those of one wing's store."""
        return {key: value for key, value in self.store_options.items() if key in names}


def is_service_uri(uri: str) -> bool:
    """Whether ``uri`` uses one of :data:`SCHEMES`."""
    scheme, sep, _ = uri.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


#: What a replica named in a URI takes from the primary's settings.
_CARRIED_TO_REPLICA = frozenset({*POOL_KEYS, *CONNECTION_KEYS, *CLIENT_KEYS})


def parse_service_uri(uri: str, **options: Any) -> ServiceURI:
    """Map a ``sqlspec+postgresql://`` URI (and keyword ``options``) to configs.

    ``options`` take the same keys as the query string and win over it; ``agents_dir``
    (passed by ADK) is ignored.

    Raises:
        ImproperConfigurationError: a scheme this module does not handle, or a
            parameter of the wrong type.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES:
        raise ImproperConfigurationError(
            f"session service URI scheme {parts.scheme!r} is not one of {', '.join(SCHEMES)}"
        )
    params: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    options.pop("agents_dir", None)
    params.update(options)

    connection_config: dict[str, Any] = {}
    store_options: dict[str, Any] = {}
    create_tables = True
    replica: str | None = None
    event_cache_bytes: int | None = None
    libpq: list[tuple[str, str]] = []
    for key, value in params.items():
        if key in POOL_KEYS:
            connection_config[key] = _typed(key, value, POOL_KEYS[key])
        elif key in CONNECTION_KEYS:
            connection_config[key] = _typed(key, value, CONNECTION_KEYS[key])
        elif key in CLIENT_KEYS:
            connection_config[key] = _typed(key, value, CLIENT_KEYS[key])
        elif key == "session_ttl":
            ttl = parse_duration(value)
            store_options[key] = ttl if ttl > timedelta(0) else None
        elif key == "max_artifact_bytes":
            store_options[key] = _typed(key, value, (int,))
        elif key == "partitioned_events":
            store_options[key] = _to_bool(key, value)
        elif key in SESSION_OPTIONS or key in MEMORY_OPTIONS or key in ARTIFACT_OPTIONS:
            store_options[key] = value
        elif key == "create_tables":
            create_tables = _to_bool(key, value)
        elif key == "replica":
            replica = str(value)
        elif key == "event_cache_bytes":
            event_cache_bytes = _typed(key, value, (int,))
        elif key in options:
            # Keyword options go to connection_config as they are (libpq keys, say).
            connection_config[key] = value
        else:
            libpq.append((key, str(value)))

    if parts.netloc or parts.path.strip("/") or libpq:
        query = f"?{urlencode(libpq)}" if libpq else ""
        connection_config["conninfo"] = f"postgresql://{parts.netloc}{parts.path}{query}"
    replica_config = None
    if replica is not None:
        # The pool and client settings carry over; the server and libpq keys are the
        # replica URL's own (a host given as a keyword option names the primary).
        shared = {k: v for k, v in connection_config.items() if k in _CARRIED_TO_REPLICA}
        replica_config = {**shared, "conninfo": replica}
    return ServiceURI(
        connection_config=connection_config,
        store_options=store_options,
        create_tables=create_tables,
        replica_config=replica_config,
        event_cache_bytes=event_cache_bytes,
    )


def _ttl(ttl: timedelta | float | str | None) -> timedelta | None:
    """A ``ttl`` as ADK's HTTP API can pass it (seconds or ``"12h"``), as a timedelta."""
    return None if ttl is None else parse_duration(ttl)


#: One config per connection: services whose URIs name the same connection share its pool.
_configs: dict[str, PsycopgAsyncConfig] = {}


def shared_config(
    connection_config: dict[str, Any], replica_config: dict[str, Any] | None = None
) -> PsycopgAsyncConfig:
    """The config (and so the pools) of every service built for the same connections."""
    key = repr((sorted(connection_config.items()), sorted((replica_config or {}).items())))
    config = _configs.get(key)
    if config is None:
        config = _configs.setdefault(
            key,
            PsycopgAsyncConfig(connection_config=connection_config, replica_config=replica_config),
        )
    return config


class _BuiltFromURI:
    """What a service built from a URI adds: its store from the URI, tables made on first use.

    Constructed as ADK's ``services.yaml`` does, ``Service(uri=..., agents_dir=...)``;
    keyword options beyond ``agents_dir`` are those of :func:`parse_service_uri`.
    """

    store: Any
    service_uri: ServiceURI

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # The service classes are built from a store; these build their own in __init__.
        return object.__new__(cls)

    def _open_store(self, uri: str, options: dict[str, Any]) -> PsycopgAsyncConfig:
        """Parse the URI; return the shared config the store is to use."""
        self.service_uri = parse_service_uri(uri, **options)
        self._tables_ready = not self.service_uri.create_tables
        return shared_config(self.service_uri.connection_config, self.service_uri.replica_config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.service_uri.masked()!r})"

    async def _ready_store(self) -> Any:
        # create_tables() is idempotent and serialized by an advisory lock, so
        # two first calls racing each other are harmless.
        if not self._tables_ready:
            await self.store.create_tables()
            self._tables_ready = True
        return self.store


class SQLSpecURISessionService(_BuiltFromURI, SQLSpecSessionService):
    """The async SQLSpec session service, built from a service URI.

    The tables are created (or migrated) on the first call, unless the URI says
    ``create_tables=false``.
    """

    store: PsycopgAsyncADKStore

    def __init__(self, uri: str = "sqlspec://", **options: Any) -> None:
        config = self._open_store(uri, options)
        self.store = PsycopgAsyncADKStore(config, **self.service_uri.options_of(SESSION_OPTIONS))
        self._events = EventCache(self.service_uri.event_cache_bytes)

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
        ttl: timedelta | float | str | None = None,
    ) -> Session:
        """Create a session; ``ttl`` may also be seconds or a duration such as ``"12h"``."""
        return await super().create_session(
            app_name=app_name, user_id=user_id, state=state, session_id=session_id, ttl=_ttl(ttl)
        )


class SQLSpecURIMemoryService(_BuiltFromURI, SQLSpecMemoryService):
    """The async SQLSpec memory service, built from a service URI.

    The table is created (or migrated) on the first call, unless the URI says
    ``create_tables=false``.
    """

    store: PsycopgAsyncADKMemoryStore

    def __init__(self, uri: str = "sqlspec://", **options: Any) -> None:
        config = self._open_store(uri, options)
        self.store = PsycopgAsyncADKMemoryStore(
            config, **self.service_uri.options_of(MEMORY_OPTIONS)
        )


class SQLSpecURIArtifactService(_BuiltFromURI, SQLSpecArtifactService):
    """The async SQLSpec artifact service, built from a service URI.

    The tables are created (or migrated) on the first call, unless the URI says
    ``create_tables=false``.
    """

    store: PsycopgAsyncADKArtifactStore

    def __init__(self, uri: str = "sqlspec://", **options: Any) -> None:
        config = self._open_store(uri, options)
        self.store = PsycopgAsyncADKArtifactStore(
            config, **self.service_uri.options_of(ARTIFACT_OPTIONS)
        )


def create_session_service(uri: str, **kwargs: Any) -> SQLSpecURISessionService:
    """ADK service-registry factory: ``factory(uri, **kwargs)`` for :data:`SCHEMES`."""
    return SQLSpecURISessionService(uri, **kwargs)


def create_memory_service(uri: str, **kwargs: Any) -> SQLSpecURIMemoryService:
    """ADK service-registry factory for memory: ``factory(uri, **kwargs)``."""
    return SQLSpecURIMemoryService(uri, **kwargs)


def create_artifact_service(uri: str, **kwargs: Any) -> SQLSpecURIArtifactService:
    """ADK service-registry factory for artifacts: ``factory(uri, **kwargs)``."""
    return SQLSpecURIArtifactService(uri, **kwargs)


def _adk_registry(registry: Any | None) -> Any:
    if registry is not None:
        return registry
    from google.adk.cli.service_registry import get_service_registry

    return get_service_registry()


def register_session_services(
    registry: Any | None = None, schemes: Iterable[str] = SCHEMES
) -> None:
    """Register :func:`create_session_service` for ``schemes`` in ADK's service registry.

    Call it from an agents directory's ``services.py``. ``registry`` defaults to
    ADK's singleton (``google.adk.cli.service_registry.get_service_registry()``).
    """
    registry = _adk_registry(registry)
    for scheme in schemes:
        registry.register_session_service(scheme, create_session_service)


def register_memory_services(registry: Any | None = None, schemes: Iterable[str] = SCHEMES) -> None:
    """Register :func:`create_memory_service` for ``schemes``, as the session one does."""
    registry = _adk_registry(registry)
    for scheme in schemes:
        registry.register_memory_service(scheme, create_memory_service)


def register_artifact_services(
    registry: Any | None = None, schemes: Iterable[str] = SCHEMES
) -> None:
    """Register :func:`create_artifact_service` for ``schemes``, as the session one does.

    ADK falls back to in-memory artifacts for a scheme nobody registered: register
    these before passing ``--artifact_service_uri sqlspec://...``.
    """
    registry = _adk_registry(registry)
    for scheme in schemes:
        registry.register_artifact_service(scheme, create_artifact_service)
