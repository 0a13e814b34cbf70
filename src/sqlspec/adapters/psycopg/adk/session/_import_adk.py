"""Import the tables of ADK's own ``DatabaseSessionService`` into a sqlspec store.

ADK's service (``google.adk.sessions.DatabaseSessionService``, schema version 1)
keeps ``sessions``, ``events``, ``app_states`` and ``user_states`` tables, plus
``adk_internal_metadata`` recording the schema version. :class:`ADKSource` reads
them on PostgreSQL, from one consistent snapshot through server-side cursors,
and turns every row into a line of the store's JSON Lines format; the store's
``import_jsonl`` then loads the lines through COPY in one transaction. So an
import streams however large the tables are, keeps existing sqlspec sessions and
events as they are, merges state, and can be run again safely.

Each event is rebuilt exactly as ADK reads it back (``StorageEvent.to_event``: the
stored JSON with the ``id`` and ``invocation_id`` columns, and the exact float
timestamp) and validated as an ADK ``Event``, so the sessions read through sqlspec
equal those ADK returned. ADK's legacy v0 schema (pickled actions) is refused:
unpickling can run code; ``adk migrate session`` converts it first.

Needs only psycopg, not SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import psycopg
from google.adk.events.event import Event
from psycopg import sql
from psycopg.rows import TupleRow

from sqlspec.adapters.psycopg._settings import masked_conninfo
from sqlspec.adapters.psycopg.adk import _values
from sqlspec.adapters.psycopg.adk._jsonl import Progress
from sqlspec.adapters.psycopg.adk.session._encoding import encode_event
from sqlspec.adapters.psycopg.adk.session._schema import TableNames
from sqlspec.adapters.psycopg.adk.session._store_sync import PsycopgSyncADKStore
from sqlspec.exceptions import SQLSpecError
from sqlspec.extensions.adk.session._types import ImportResult

__all__ = [
    "ADK_KINDS",
    "ADKSource",
    "ADKSourceError",
    "adk_sessions_beside",
    "import_from_adk",
    "source_conninfo",
]

#: What an import reads, in order, as (JSON Lines kind, ADK table).
ADK_KINDS: tuple[tuple[str, str], ...] = (
    ("app_state", "app_states"),
    ("user_state", "user_states"),
    ("session", "sessions"),
    ("event", "events"),
)
_METADATA_TABLE = "adk_internal_metadata"
_SUPPORTED_VERSION = "1"


class ADKSourceError(SQLSpecError, RuntimeError):
    """The source holds no ADK ``DatabaseSessionService`` tables this import can read."""


def source_conninfo(url: str) -> str:
    """A libpq conninfo from a SQLAlchemy URL (``postgresql+psycopg://`` and the like).

    The ``+driver`` part is dropped; a conninfo or ``postgresql://`` URL passes as is.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    dialect = scheme.split("+", 1)[0].lower()
    if dialect not in ("postgresql", "postgres"):
        raise ADKSourceError(
            f"only PostgreSQL sources can be imported, got a {dialect!r} URL; "
            "for another database, export it with ADK to PostgreSQL first"
        )
    return f"postgresql://{rest}"


def _utc(value: datetime | None) -> str | None:
    """ADK writes naive UTC datetimes on PostgreSQL; give them their zone back."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


class ADKSource:
    """ADK ``DatabaseSessionService`` tables on a PostgreSQL server, read for an import.

    Use as a context manager: entering connects, opens a read-only repeatable-read
    transaction (every read sees one snapshot) and checks the schema version.

    Args:
        conninfo: the source server: a conninfo, ``postgresql://`` URL, or the
            SQLAlchemy URL given to ADK (``postgresql+psycopg://...``).
        schema: the PostgreSQL schema holding ADK's tables (default: the search path).
        app_name: import only this app.
        user_id: import only this user.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str | None = None,
        app_name: str | None = None,
        user_id: str | None = None,
    ) -> None:
        _values.check_ids(app_name=app_name, user_id=user_id)
        self.conninfo = source_conninfo(conninfo)
        self.schema = schema
        self.app_name = app_name
        self.user_id = user_id
        self.version: str | None = None
        self._conn: psycopg.Connection[TupleRow] | None = None

    def open(self) -> None:
        """Connect, start the read-only snapshot and check the schema version (once)."""
        if self._conn is not None:
            return
        conn = psycopg.connect(self.conninfo, autocommit=False)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        self._conn = conn
        try:
            self.version = self._check_schema()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ADKSource:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End the snapshot and disconnect."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.rollback()
            conn.close()

    @property
    def conn(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None:
            raise RuntimeError("ADKSource is used outside its `with` block")
        return self._conn

    def describe(self) -> str:
        """Where the source is, password hidden."""
        where = masked_conninfo(self.conninfo)
        return f"{where} (schema {self.schema})" if self.schema else where

    def _table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name) if self.schema else sql.Identifier(name)

    def _regclass(self, name: str) -> str:
        return self._table(name).as_string(self.conn)

    def _exists(self, name: str) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self._regclass(name),))
        found = row.fetchone()
        return bool(found and found[0])

    def _columns(self, name: str) -> set[str]:
        rows = self.conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped",
            (self._regclass(name),),
        ).fetchall()
        return {row[0] for row in rows}

    def _check_schema(self) -> str:
        """The ADK schema version of the source; raise if it cannot be imported."""
        if not (self._exists("sessions") and self._exists("events")):
            raise ADKSourceError(
                f"no ADK DatabaseSessionService tables (sessions, events) in {self.describe()}"
            )
        version: str | None = None
        if self._exists(_METADATA_TABLE):
            row = self.conn.execute(
                sql.SQL("SELECT value FROM {} WHERE key = 'schema_version'").format(
                    self._table(_METADATA_TABLE)
                )
            ).fetchone()
            version = str(row[0]) if row else None
        columns = self._columns("events")
        if version is None and "actions" in columns and "event_data" not in columns:
            version = "0"
        if version == "0":
            raise ADKSourceError(
                "the ADK tables use the legacy v0 schema (pickled actions), which this import "
                "does not unpickle; convert them with `adk migrate session` first"
            )
        if version not in (None, _SUPPORTED_VERSION) or "event_data" not in columns:
            raise ADKSourceError(
                f"the ADK tables are at schema version {version or 'unknown'}; this import "
                f"reads version {_SUPPORTED_VERSION} (google-adk 1.19 and later)"
            )
        return _SUPPORTED_VERSION

    def _filter(self, table: str) -> tuple[sql.Composable, dict[str, Any]]:
        clauses: list[sql.Composable] = []
        params: dict[str, Any] = {}
        if self.app_name is not None:
            clauses.append(sql.SQL("app_name = %(app_name)s"))
            params["app_name"] = self.app_name
        if self.user_id is not None and table != "app_states":
            clauses.append(sql.SQL("user_id = %(user_id)s"))
            params["user_id"] = self.user_id
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
        return where, params

    def _present(self, table: str) -> bool:
        # ADK creates all four tables; tolerate a source without the state tables.
        return table in ("sessions", "events") or self._exists(table)

    def counts(self) -> dict[str, int]:
        """Rows to import per kind (``app_state``, ``user_state``, ``session``, ``event``)."""
        counts: dict[str, int] = {}
        for kind, table in ADK_KINDS:
            if not self._present(table):
                counts[kind] = 0
                continue
            where, params = self._filter(table)
            row = self.conn.execute(
                sql.SQL("SELECT count(*) FROM {}{}").format(self._table(table), where), params
            ).fetchone()
            counts[kind] = int(row[0]) if row else 0
        return counts

    def _rows(
        self, kind: str, query: sql.Composed, params: dict[str, Any], batch_size: int
    ) -> Iterator[tuple[Any, ...]]:
        with self.conn.cursor(name=f"sqlspec_adk_import_{kind}") as cur:
            cur.itersize = batch_size
            cur.execute(query, params)
            yield from cur

    def lines(self, *, batch_size: int = 1000, progress: Progress | None = None) -> Iterator[str]:
        """Every selected row as a JSON Lines line for ``import_jsonl``, streamed.

        ``progress(kind, n)`` is told of every ``batch_size`` lines and of the rest.
        """
        for kind, table in ADK_KINDS:
            if not self._present(table):
                continue
            select, to_line = _READERS[kind]
            where, params = self._filter(table)
            query = sql.SQL(select).format(table=self._table(table), where=where)
            pending = 0
            for row in self._rows(kind, query, params, batch_size):
                yield to_line(row)
                pending += 1
                if progress is not None and pending == batch_size:
                    progress(kind, pending)
                    pending = 0
            if progress is not None and pending:
                progress(kind, pending)


def _app_state_line(row: tuple[Any, ...]) -> str:
    app_name, state, update_time = row
    return json.dumps(
        {
            "kind": "app_state",
            "app_name": app_name,
            "state": state,
            "update_time": _utc(update_time),
        }
    )


def _user_state_line(row: tuple[Any, ...]) -> str:
    app_name, user_id, state, update_time = row
    return json.dumps(
        {
            "kind": "user_state",
            "app_name": app_name,
            "user_id": user_id,
            "state": state,
            "update_time": _utc(update_time),
        }
    )


def _session_line(row: tuple[Any, ...]) -> str:
    app_name, user_id, session_id, state, create_time, update_time = row
    return json.dumps(
        {
            "kind": "session",
            "app_name": app_name,
            "user_id": user_id,
            "id": session_id,
            "state": state,
            "create_time": _utc(create_time),
            "update_time": _utc(update_time),
        }
    )


def _event_line(row: tuple[Any, ...]) -> str:
    app_name, user_id, session_id = row[:3]
    dumps = json.dumps
    return (
        f'{{"kind":"event","app_name":{dumps(app_name)},"user_id":{dumps(user_id)},'
        f'"session_id":{dumps(session_id)},"event":{encode_event(_event(row))}}}'
    )


#: Per kind: the SELECT reading its ADK table, and how a row becomes a line.
_READERS: dict[str, tuple[str, Callable[[tuple[Any, ...]], str]]] = {
    "app_state": (
        "SELECT app_name, COALESCE(state, '{{}}'::jsonb), update_time FROM {table}{where} "
        "ORDER BY app_name",
        _app_state_line,
    ),
    "user_state": (
        "SELECT app_name, user_id, COALESCE(state, '{{}}'::jsonb), update_time "
        "FROM {table}{where} ORDER BY app_name, user_id",
        _user_state_line,
    ),
    "session": (
        "SELECT app_name, user_id, id, COALESCE(state, '{{}}'::jsonb), create_time, update_time "
        "FROM {table}{where} ORDER BY app_name, user_id, id",
        _session_line,
    ),
    "event": (
        'SELECT app_name, user_id, session_id, id, invocation_id, "timestamp", event_data '
        'FROM {table}{where} ORDER BY app_name, user_id, session_id, "timestamp", id',
        _event_line,
    ),
}


def _event(row: tuple[Any, ...]) -> Event:
    """The event ADK's ``StorageEvent.to_event`` reads from an ``events`` row."""
    _app, _user, session_id, event_id, invocation_id, timestamp, event_data = row
    data = dict(event_data or {})
    exact = data.get("timestamp")
    if exact is None and timestamp is not None:
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=timezone.utc)
        exact = timestamp.timestamp()
    try:
        return Event.model_validate(
            {**data, "id": event_id, "invocation_id": invocation_id, "timestamp": exact}
        )
    except ValueError as exc:
        raise ADKSourceError(
            f"event {event_id!r} of session {session_id!r} is not a valid ADK event: {exc}"
        ) from None


def import_from_adk(
    store: PsycopgSyncADKStore,
    source: str,
    *,
    schema: str | None = None,
    app_name: str | None = None,
    user_id: str | None = None,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ImportResult:
    """Copy the sessions, events and state ADK's ``DatabaseSessionService`` stored into ``store``.

    ``source`` is the database ADK used (a conninfo, a ``postgresql://`` URL or ADK's
    SQLAlchemy URL). The store's tables must exist. Existing sessions and events are
    kept (counted as skipped); app and user state is merged. Returns what was
    imported and skipped per kind.

    Raises:
        ADKSourceError: no ADK tables in ``source``, or a schema version it cannot read.
    """
    with ADKSource(source, schema=schema, app_name=app_name, user_id=user_id) as adk:
        return store.import_jsonl(adk.lines(batch_size=batch_size, progress=progress))


def adk_sessions_beside(conn: psycopg.Connection[TupleRow], tables: TableNames) -> int | None:
    """Sessions in ADK ``DatabaseSessionService`` tables beside ``tables``; ``None``: none there.

    ADK's tables are told from ours by their columns: an ``events`` table with
    ``event_data`` and without ``author``.
    """
    if "sessions" in (tables.sessions, tables.events):
        return None
    row = conn.execute(
        """SELECT to_regclass('sessions') IS NOT NULL
              AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('events')
                          AND attname = 'event_data' AND NOT attisdropped)
              AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('events')
                              AND attname = 'author' AND NOT attisdropped)"""
    ).fetchone()
    if not (row and row[0]):
        return None
    count = conn.execute("SELECT count(*) FROM sessions").fetchone()
    return int(count[0]) if count else 0
