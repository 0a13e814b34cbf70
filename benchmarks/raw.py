# SQL here is built from constants and from column names read off the catalog, never
# from input: the statements are fixed strings once the floor has opened.
# ruff: noqa: S608
"""The raw floor: hand-written psycopg 3 doing the least a correct store must do.

It reads and writes the very rows of the library's tables (default names), so
the library's store reads what it writes and the other way round. Column types
are read from the database when the floor opens (the library's schema evolves:
``json`` or ``jsonb``, new columns), and the split of an event into columns
follows the library's ``EVENT_COLUMNS``:

- append: one statement that checks the session's revision (and expiry), inserts
  the event (split into its columns here, from one ``model_dump``) and merges the
  session, ``app:`` and ``user:`` deltas, app row before user row;
- load: one query returning the merged state and the events as one JSON array of
  text built on the server, rebuilt with ``TypeAdapter(list[Event]).validate_json``;
- list: one query returning the sessions as one JSON array with their merged
  state, rebuilt with ``TypeAdapter(list[Session]).validate_json``.

Statements are built once as bytes (no per-call composition) and run on a
``psycopg_pool`` pool, so psycopg prepares them after a few calls, as it does for
the library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pydantic_core
from google.adk.events.event import Event
from google.adk.sessions.session import Session
from pydantic import TypeAdapter

from sqlspec.adapters.psycopg.adk.session._schema import EVENT_COLUMNS

__all__ = [
    "EVENTS",
    "SCHEMA_QUERY",
    "SCHEMA_TABLES",
    "RawSchema",
    "RawStatements",
    "split_delta",
]

EVENTS = TypeAdapter(list[Event])
SESSIONS = TypeAdapter(list[Session])

_SESSIONS = "adk_sessions"
_EVENTS = "adk_events"
_APP = "adk_app_states"
_USER = "adk_user_states"
_JSON_TYPES = ("json", "jsonb")

#: The column types the floor adapts to: ``(table, column, type)`` rows.
SCHEMA_QUERY = (
    b"SELECT table_name::text, column_name::text, udt_name::text "
    b"FROM information_schema.columns "
    b"WHERE table_schema = current_schema() AND table_name = ANY(%s)"
)
SCHEMA_TABLES = [_SESSIONS, _EVENTS, _APP, _USER]


@dataclass(frozen=True)
class RawSchema:
    """Column types of the library's tables, as found in the database."""

    columns: dict[str, dict[str, str]]

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]]) -> RawSchema:
        columns: dict[str, dict[str, str]] = {}
        for table, column, udt in rows:
            columns.setdefault(str(table), {})[str(column)] = str(udt)
        missing = [t for t in SCHEMA_TABLES if t not in columns]
        if missing:
            raise RuntimeError(f"the library's tables are missing: {missing}")
        return cls(columns)

    def type_of(self, table: str, column: str) -> str:
        try:
            return self.columns[table][column]
        except KeyError:
            raise RuntimeError(
                f"{table}.{column} not found: the library's schema changed"
            ) from None


def split_delta(delta: dict[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """A state delta as (session, app, user) JSON, prefixes removed, ``temp:`` dropped."""
    session: dict[str, Any] = {}
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    for key, value in (delta or {}).items():
        if key.startswith("app:"):
            app[key[4:]] = value
        elif key.startswith("user:"):
            user[key[5:]] = value
        elif not key.startswith("temp:"):
            session[key] = value

    def enc(part: dict[str, Any]) -> str | None:
        return pydantic_core.to_json(part).decode() if part else None

    return enc(session), enc(app), enc(user)


def merge_scoped_state(session: str | None, app: str | None, user: str | None) -> dict[str, Any]:
    """Session state with app and user state merged back in under their prefixes."""
    merged: dict[str, Any] = pydantic_core.from_json(session) if session else {}
    if app:
        merged.update({f"app:{k}": v for k, v in pydantic_core.from_json(app).items()})
    if user:
        merged.update({f"user:{k}": v for k, v in pydantic_core.from_json(user).items()})
    return merged


class RawStatements:
    """The raw floor's SQL for one schema, as bytes, and its client-side encoding."""

    def __init__(self, schema: RawSchema) -> None:
        self.schema = schema
        #: (column, field, how to encode the value here) per event column, in COPY order.
        self.event_plan: list[tuple[str, str, str]] = [("id", "id", "plain")]
        for column, field, kind in EVENT_COLUMNS:
            udt = schema.type_of(_EVENTS, column)
            if udt in _JSON_TYPES or kind == "json_text":
                how = "json_text"
            elif udt == "bytea":
                how = "json_bytes"
            else:
                how = "plain"
            self.event_plan.append((column, field, how))
        expiry = "expire_time" in schema.columns[_SESSIONS]
        live = "(s.expire_time IS NULL OR s.expire_time > now())" if expiry else "true"
        live_unaliased = "(expire_time IS NULL OR expire_time > now())" if expiry else "true"

        def cast(column: str, table: str = _EVENTS) -> str:
            udt = schema.type_of(table, column)
            return f"::{udt}" if udt in _JSON_TYPES else ""

        def merged(table: str, old: str, delta: str) -> str:
            udt = schema.type_of(table, "state")
            return f"({old}::jsonb || {delta}::jsonb)::{udt}"

        def state(table: str) -> str:
            return schema.type_of(table, "state")

        insert_columns = ", ".join(
            ["session_id", "app_name", "user_id"]
            + [f'"{c}"' for c, _, _ in self.event_plan]
            + ['"timestamp"', "event_data"]
        )
        insert_values = ", ".join(
            ["%(session_id)s", "%(app_name)s", "%(user_id)s"]
            + [f"%(c_{c})s{cast(c)}" for c, _, _ in self.event_plan]
            + ["%(c_timestamp)s", f"%(c_event_data)s{cast('event_data')}"]
        )
        upserts = f"""new_app AS (
                INSERT INTO {_APP} AS t (app_name, state)
                SELECT %(app_name)s, %(app_delta)s::jsonb::{state(_APP)} FROM bumped
                WHERE %(app_delta)s::jsonb IS NOT NULL
                ON CONFLICT (app_name) DO UPDATE
                    SET state = {merged(_APP, "t.state", "EXCLUDED.state")}, update_time = now()
                RETURNING 1
            ), new_user AS (
                INSERT INTO {_USER} AS t (app_name, user_id, state)
                SELECT %(app_name)s, %(user_id)s, %(user_delta)s::jsonb::{state(_USER)} FROM bumped
                WHERE %(user_delta)s::jsonb IS NOT NULL
                ON CONFLICT (app_name, user_id) DO UPDATE
                    SET state = {merged(_USER, "t.state", "EXCLUDED.state")}, update_time = now()
                RETURNING 1
            )"""
        # Reading the upserts in the final SELECT runs them app row first, then user
        # row, in one order for every statement: no deadlock between two of them.
        upserts_in_order = "(SELECT count(*) FROM new_app) + (SELECT count(*) FROM new_user)"
        session_update = f"""UPDATE {_SESSIONS} SET
                    state = CASE WHEN %(session_delta)s::jsonb IS NULL THEN state
                        ELSE {merged(_SESSIONS, "state", "%(session_delta)s")} END,
                    update_time = %(update_time)s,
                    revision = revision + 1
                WHERE app_name = %(app_name)s AND user_id = %(user_id)s
                  AND id = %(session_id)s AND {live_unaliased}"""

        #: Check the revision, store the event, merge the three deltas; one statement.
        self.append = f"""WITH bumped AS (
                {session_update} AND revision = %(revision)s
                RETURNING revision
            ), ins AS (
                INSERT INTO {_EVENTS} ({insert_columns}) SELECT {insert_values} FROM bumped
            ), {upserts}
            SELECT revision, {upserts_in_order} FROM bumped""".encode()

        #: Apply a bulk import's merged deltas (after the COPY, same transaction).
        self.bulk_state = f"""WITH bumped AS ({session_update} RETURNING revision), {upserts}
            SELECT revision, {upserts_in_order} FROM bumped""".encode()

        #: COPY straight into the events table, the columns split by the client.
        self.copy_events = f"COPY {_EVENTS} ({insert_columns}) FROM STDIN".encode()

        #: A new session with its app/user state rows.
        self.create = f"""WITH bumped AS (
                INSERT INTO {_SESSIONS} (id, app_name, user_id, state, create_time, update_time)
                VALUES (%(session_id)s, %(app_name)s, %(user_id)s,
                        COALESCE(%(session_delta)s::jsonb, '{{}}'::jsonb)::{state(_SESSIONS)},
                        %(now)s, %(now)s)
                RETURNING revision
            ), {upserts}
            SELECT revision, {upserts_in_order} FROM bumped""".encode()

        ev = self._event_text("e")
        exact = "(e.event_data ->> 'timestamp')::float8"
        #: Session state, scoped state and the (newest ``limit``) events as one JSON array.
        self.get = f"""SELECT s.state::text, s.update_time, s.revision,
                a.state::text, u.state::text,
                (SELECT '[' || string_agg(x.ev, ',' ORDER BY x.ts, x.exact_ts, x.id) || ']' FROM (
                    SELECT {ev} AS ev, e."timestamp" AS ts, {exact} AS exact_ts, e.id
                    FROM {_EVENTS} e
                    WHERE e.app_name = s.app_name AND e.user_id = s.user_id
                      AND e.session_id = s.id
                    ORDER BY e."timestamp" DESC, {exact} DESC, e.id DESC
                    LIMIT %(limit)s) x)
            FROM {_SESSIONS} s
            LEFT JOIN {_APP} a ON a.app_name = s.app_name
            LEFT JOIN {_USER} u ON u.app_name = s.app_name AND u.user_id = s.user_id
            WHERE s.app_name = %(app_name)s AND s.user_id = %(user_id)s
              AND s.id = %(session_id)s AND {live}""".encode()

        #: Every event of one app/user as a JSON line, in session and time order (export).
        self.export_events = f"""COPY (SELECT {ev} FROM {_EVENTS} e
                WHERE e.app_name = %(app_name)s AND e.user_id = %(user_id)s
                ORDER BY e.session_id, e."timestamp", {exact}, e.id
            ) TO STDOUT"""

        #: A user's sessions (or a keyset page of them) as one JSON array of ADK
        #: Session objects, state merged on the server, and their revisions.
        list_template = """WITH scoped AS (
                SELECT COALESCE((SELECT jsonb_object_agg('app:' || key, value)
                                 FROM {app} a, jsonb_each(a.state::jsonb)
                                 WHERE a.app_name = %(app_name)s), '{{}}'::jsonb)
                    || COALESCE((SELECT jsonb_object_agg('user:' || key, value)
                                 FROM {user} u, jsonb_each(u.state::jsonb)
                                 WHERE u.app_name = %(app_name)s AND u.user_id = %(user_id)s),
                                '{{}}'::jsonb) AS state
            ), page AS (
                SELECT s.id, s.user_id, s.state, s.update_time, s.revision
                FROM {sessions} s
                WHERE s.app_name = %(app_name)s AND s.user_id = %(user_id)s AND {live} {after}
                ORDER BY s.update_time, s.id
                {limit}
            )
            SELECT json_agg(json_build_object(
                       'id', p.id, 'appName', %(app_name)s, 'userId', p.user_id,
                       'state', p.state::jsonb || scoped.state,
                       'lastUpdateTime', extract(epoch FROM p.update_time))
                   ORDER BY p.update_time, p.id)::text,
                   array_agg(p.revision ORDER BY p.update_time, p.id),
                   (array_agg(p.update_time ORDER BY p.update_time DESC, p.id DESC))[1],
                   (array_agg(p.id ORDER BY p.update_time DESC, p.id DESC))[1]
            FROM page p, scoped"""
        common = {"app": _APP, "user": _USER, "sessions": _SESSIONS, "live": live}
        self.list_all = list_template.format(after="", limit="", **common).encode()
        self.list_page = list_template.format(
            after="AND (%(after_time)s::timestamptz IS NULL "
            "OR (s.update_time, s.id) > (%(after_time)s, %(after_id)s))",
            limit="LIMIT %(limit)s",
            **common,
        ).encode()

    def _event_text(self, e: str) -> str:
        """One stored event back as the text of ADK's JSON object, built on the server.

        Only prints what each column holds; a NULL column drops out of ``concat_ws``.
        """
        members = [
            f"NULLIF(left(substr({e}.event_data::text, 2), -1), '')",
            f"'\"id\":' || to_json({e}.id)::text",
        ]
        for column, field, how in self.event_plan[1:]:
            udt = self.schema.type_of(_EVENTS, column)
            col = f"{e}.{column}"
            if udt == "bytea":
                value = f"convert_from({col}, 'UTF8')"
            elif how == "json_text" or udt == "bool":
                value = f"{col}::text"
            else:
                value = f"to_json({col})::text"
            members.append(f"'\"{field}\":' || {value}")
        return "('{' || concat_ws(',', " + ", ".join(members) + ") || '}')"

    def event_values(self, event: Event) -> dict[str, Any]:
        """The column parameters of one event, from one ``model_dump``."""
        data = event.model_dump(mode="json", exclude_none=True)
        values: dict[str, Any] = {}
        for column, field, how in self.event_plan:
            value = data.pop(field, None)
            if value is not None and how == "json_text":
                value = pydantic_core.to_json(value).decode()
            elif value is not None and how == "json_bytes":
                value = pydantic_core.to_json(value)
            values[f"c_{column}"] = value
        values["c_timestamp"] = datetime.fromtimestamp(event.timestamp, tz=timezone.utc)
        values["c_event_data"] = pydantic_core.to_json(data).decode()
        return values

    def copy_row(self, app: str, user: str, session_id: str, event: Event) -> tuple[Any, ...]:
        """One event as a COPY row of the events table."""
        values = self.event_values(event)
        return (
            session_id,
            app,
            user,
            *(values[f"c_{column}"] for column, _, _ in self.event_plan),
            values["c_timestamp"],
            values["c_event_data"],
        )

    def append_params(self, session: Session, event: Event, revision: int) -> dict[str, Any]:
        session_delta, app_delta, user_delta = split_delta(
            event.actions.state_delta if event.actions else None
        )
        params = self.event_values(event)
        params.update(
            session_delta=session_delta,
            app_delta=app_delta,
            user_delta=user_delta,
            update_time=params["c_timestamp"],
            app_name=session.app_name,
            user_id=session.user_id,
            session_id=session.id,
            revision=revision,
        )
        return params

    @staticmethod
    def session_from_row(
        app_name: str, user_id: str, session_id: str, row: Sequence[Any] | None
    ) -> Session | None:
        if row is None:
            return None
        state, update_time, revision, app_state, user_state, events = row
        session = Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=merge_scoped_state(state, app_state, user_state),
            events=EVENTS.validate_json(events) if events else [],
            last_update_time=update_time.timestamp(),
        )
        session._storage_update_marker = str(revision)
        return session

    @staticmethod
    def sessions_from_row(row: Sequence[Any] | None) -> tuple[list[Session], Any]:
        """The sessions of a list row, and the keyset (time, id) of its last one."""
        if row is None or row[0] is None:
            return [], None
        sessions = SESSIONS.validate_json(row[0])
        revisions: Iterable[int] = row[1]
        for session, revision in zip(sessions, revisions, strict=True):
            session._storage_update_marker = str(revision)
        return sessions, (row[2], row[3])
