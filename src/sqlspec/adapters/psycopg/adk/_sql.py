"""Every SQL statement of the psycopg ADK stores, built once per set of table names.

Identifiers are validated, then quoted with :class:`psycopg.sql.Identifier` in
DDL and DML alike, so a mixed-case name means the same table everywhere. Each
service call maps to one statement here, so it costs one round trip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from psycopg import sql

from sqlspec.exceptions import ImproperConfigurationError

__all__ = ["ADKStatements", "TableNames", "validate_identifier"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDENTIFIER_BYTES = 63

#: Event fields kept in a column of their own, as (column, field, how the column stores it).
#: Every other field, and the exact float timestamp, lives in ``event_data``. Event
#: JSON is kept as ``json``, never ``jsonb``: ``jsonb`` rewrites numbers (``1e23``
#: reads back as the integer ``10**23``), ``json`` keeps the text as written.
EVENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("invocation_id", "invocation_id", "text"),
    ("author", "author", "text"),
    ("actions", "actions", "bytea"),
    ("long_running_tool_ids_json", "long_running_tool_ids", "json_text"),
    ("branch", "branch", "text"),
    ("content", "content", "json"),
    ("grounding_metadata", "grounding_metadata", "json"),
    ("custom_metadata", "custom_metadata", "json"),
    ("partial", "partial", "boolean"),
    ("turn_complete", "turn_complete", "boolean"),
    ("interrupted", "interrupted", "boolean"),
    ("error_code", "error_code", "text"),
    ("error_message", "error_message", "text"),
)


#: The schema version this code writes; ``migrate()`` brings older ones up to it.
SCHEMA_VERSION = 2
#: Where each table set's schema version is recorded, keyed by sessions table.
SCHEMA_TABLE = "sqlspec_adk_schema"

#: Columns ``list_sessions`` can order by.
LIST_ORDERS = ("update_time", "create_time")


def validate_identifier(name: str, what: str) -> str:
    """Accept a plain SQL identifier of at most 63 bytes, or raise saying why not."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ImproperConfigurationError(
            f"{what} {name!r} is not a plain identifier: use letters, digits and underscores, "
            "starting with a letter or underscore"
        )
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise ImproperConfigurationError(
            f"{what} {name!r} is longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES}-byte limit"
        )
    return name


def _derived_name(table: str, suffix: str) -> str:
    """An index or constraint name for ``table``, shortened with a hash past 63 bytes."""
    name = f"idx_{table}_{suffix}"
    if len(name.encode()) <= _MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: _MAX_IDENTIFIER_BYTES - 9]}_{digest}"


@dataclass(frozen=True)
class TableNames:
    """The four tables one store uses."""

    sessions: str = "adk_sessions"
    events: str = "adk_events"
    app_states: str = "adk_app_states"
    user_states: str = "adk_user_states"

    def __post_init__(self) -> None:
        for field, value in (
            ("session_table", self.sessions),
            ("events_table", self.events),
            ("app_state_table", self.app_states),
            ("user_state_table", self.user_states),
        ):
            validate_identifier(value, field)
        names = [self.sessions, self.events, self.app_states, self.user_states]
        if len(set(names)) != len(names):
            raise ImproperConfigurationError(f"table names must differ, got {names}")


def _event_json(alias: str) -> sql.Composable:
    """Rebuild one event's JSON text from its columns and ``event_data``.

    Built as text: the server only prints each column, as it was written.
    Columns holding SQL NULL are left out (``concat_ws`` skips NULLs), so the
    object equals the event's ``model_dump(exclude_none=True)``.
    """
    e = sql.Identifier(alias)
    members: list[sql.Composable] = [
        # event_data's own members, without its braces (none: NULL, skipped).
        sql.SQL("nullif(btrim(left(substr({}.event_data::text, 2), -1)), '')").format(e),
        # A row written without the exact timestamp (by hand, with COPY) takes the column's.
        sql.SQL(
            "CASE WHEN {e}.event_data ->> 'timestamp' IS NULL THEN "
            '\'"timestamp":\' || extract(epoch FROM {e}."timestamp")::float8::text END'
        ).format(e=e),
        sql.SQL("'\"id\":' || to_json({}.id)::text").format(e),
    ]
    for column, field, kind in EVENT_COLUMNS:
        col = sql.SQL("{}.{}").format(e, sql.Identifier(column))
        if kind == "bytea":
            value: sql.Composable = sql.SQL("convert_from({}, 'UTF8')").format(col)
        elif kind == "json_text":
            value = col
        elif kind == "json":
            value = sql.SQL("{}::text").format(col)
        else:
            value = sql.SQL("to_json({})::text").format(col)
        members.append(sql.SQL("{} || {}").format(sql.Literal(f'"{field}":'), value))
    return sql.SQL("('{{' || concat_ws(',', {}) || '}}')").format(sql.SQL(", ").join(members))


def _event_insert_values(
    j: sql.Composable,
) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
    """Split ``json`` event ``j`` into columns: (column list, SELECT list, FROM item).

    ``json_to_record`` parses the event once (``->`` would parse it per column) and
    hands back ``json`` members as the text they were written as. The FROM item
    (alias ``r``) goes after the one that provides ``j``.
    """
    types = {"text": "text", "boolean": "boolean", "json": "json", "json_text": "json"}
    fields: list[sql.Composable] = [sql.SQL("id text")]
    columns: list[sql.Composable] = [sql.Identifier("id")]
    values: list[sql.Composable] = [sql.SQL("r.id")]
    for column, field, kind in EVENT_COLUMNS:
        columns.append(sql.Identifier(column))
        field_id = sql.Identifier(field)
        fields.append(sql.SQL("{} {}").format(field_id, sql.SQL(types.get(kind, "json"))))
        if kind in ("text", "boolean", "json"):
            values.append(sql.SQL("r.{}").format(field_id))
        elif kind == "json_text":
            values.append(sql.SQL("r.{}::text").format(field_id))
        else:
            values.append(sql.SQL("convert_to(r.{}::text, 'UTF8')").format(field_id))
    fields.append(sql.SQL('"timestamp" float8'))
    columns.append(sql.Identifier("timestamp"))
    values.append(sql.SQL('to_timestamp(r."timestamp")'))
    in_columns = sql.SQL("ARRAY[{}]::text[]").format(
        sql.SQL(", ").join(sql.Literal(f) for f in ("id", *(f for _, f, _ in EVENT_COLUMNS)))
    )
    columns.append(sql.Identifier("event_data"))
    values.append(
        sql.SQL(
            "(SELECT json_object_agg(f.key, f.value) FROM json_each({}) AS f "
            "WHERE f.key <> ALL ({}))"
        ).format(sql.SQL("({})").format(j), in_columns)
    )
    record = sql.SQL("json_to_record({}) AS r({})").format(j, sql.SQL(", ").join(fields))
    return sql.SQL(", ").join(columns), sql.SQL(", ").join(values), record


class ADKStatements:
    """The DDL and DML for one :class:`TableNames`."""

    def __init__(self, tables: TableNames) -> None:
        self.tables = tables
        s = sql.Identifier(tables.sessions)
        e = sql.Identifier(tables.events)
        a = sql.Identifier(tables.app_states)
        u = sql.Identifier(tables.user_states)
        names = {
            "sessions": s,
            "events": e,
            "app_states": a,
            "user_states": u,
            "idx_app_user": sql.Identifier(_derived_name(tables.sessions, "app_user")),
            "idx_update_time": sql.Identifier(_derived_name(tables.sessions, "update_time")),
            "idx_state": sql.Identifier(_derived_name(tables.sessions, "state")),
            "idx_events": sql.Identifier(_derived_name(tables.events, "session")),
            "fk_events": sql.Identifier(_derived_name(tables.events, "session_fk")),
            "idx_expire_time": sql.Identifier(_derived_name(tables.sessions, "expire_time")),
            "schema_table": sql.Identifier(SCHEMA_TABLE),
            # An event's exact float timestamp; rows written without one (by hand,
            # with COPY) fall back to the column's microseconds.
            "exact_ts": sql.SQL(
                "COALESCE((e.event_data ->> 'timestamp')::float8, "
                'extract(epoch FROM e."timestamp")::float8)'
            ),
            # A session past its expire_time is gone for every read and write.
            "live": sql.SQL("(expire_time IS NULL OR expire_time > now())"),
        }

        #: The secondary indexes the schema creates: index name -> table name.
        self.index_names: dict[str, str] = {
            _derived_name(tables.sessions, "app_user"): tables.sessions,
            _derived_name(tables.sessions, "update_time"): tables.sessions,
            _derived_name(tables.sessions, "state"): tables.sessions,
            _derived_name(tables.sessions, "expire_time"): tables.sessions,
            _derived_name(tables.events, "session"): tables.events,
        }
        #: Serializes ``create_tables()``/``migrate()`` calls in a database: table sets
        #: share the schema table (and may share the state tables).
        self.lock_key = int.from_bytes(
            hashlib.sha1(b"sqlspec.adk.schema").digest()[:8], "big", signed=True
        )
        version_1: tuple[sql.Composed, ...] = tuple(
            sql.SQL(stmt).format(**names)
            for stmt in (
                """CREATE TABLE IF NOT EXISTS {sessions} (
                    id VARCHAR(128) NOT NULL,
                    app_name VARCHAR(128) NOT NULL,
                    user_id VARCHAR(128) NOT NULL,
                    state JSONB NOT NULL DEFAULT '{{}}'::jsonb,
                    create_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
                    update_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
                    revision BIGINT NOT NULL DEFAULT 0,
                    PRIMARY KEY (app_name, user_id, id)
                ) WITH (fillfactor = 80)""",
                """CREATE INDEX IF NOT EXISTS {idx_app_user}
                    ON {sessions} (app_name, user_id, update_time, id)""",
                """CREATE INDEX IF NOT EXISTS {idx_update_time}
                    ON {sessions} (update_time DESC)""",
                """CREATE INDEX IF NOT EXISTS {idx_state}
                    ON {sessions} USING GIN (state) WHERE state != '{{}}'::jsonb""",
                """CREATE TABLE IF NOT EXISTS {events} (
                    id VARCHAR(128) NOT NULL,
                    session_id VARCHAR(128) NOT NULL,
                    app_name VARCHAR(128) NOT NULL,
                    user_id VARCHAR(128) NOT NULL,
                    invocation_id VARCHAR(256),
                    author VARCHAR(256),
                    actions BYTEA,
                    long_running_tool_ids_json TEXT,
                    branch VARCHAR(256),
                    "timestamp" TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
                    content JSON,
                    grounding_metadata JSON,
                    custom_metadata JSON,
                    partial BOOLEAN,
                    turn_complete BOOLEAN,
                    interrupted BOOLEAN,
                    error_code VARCHAR(256),
                    error_message TEXT,
                    event_data JSON NOT NULL DEFAULT '{{}}'::json,
                    PRIMARY KEY (app_name, user_id, session_id, id),
                    CONSTRAINT {fk_events} FOREIGN KEY (app_name, user_id, session_id)
                        REFERENCES {sessions} (app_name, user_id, id) ON DELETE CASCADE
                )""",
                """CREATE INDEX IF NOT EXISTS {idx_events}
                    ON {events} (app_name, user_id, session_id, "timestamp" ASC)""",
                """CREATE TABLE IF NOT EXISTS {app_states} (
                    app_name VARCHAR(128) PRIMARY KEY,
                    state JSONB NOT NULL DEFAULT '{{}}'::jsonb,
                    update_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
                )""",
                """CREATE TABLE IF NOT EXISTS {user_states} (
                    app_name VARCHAR(128) NOT NULL,
                    user_id VARCHAR(128) NOT NULL,
                    state JSONB NOT NULL DEFAULT '{{}}'::jsonb,
                    update_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
                    PRIMARY KEY (app_name, user_id)
                )""",
            )
        )
        version_2 = tuple(
            sql.SQL(stmt).format(**names)
            for stmt in (
                "ALTER TABLE {sessions} ADD COLUMN IF NOT EXISTS expire_time TIMESTAMPTZ",
                """CREATE INDEX IF NOT EXISTS {idx_expire_time} ON {sessions} (expire_time)
                    WHERE expire_time IS NOT NULL""",
            )
        )
        #: The DDL that brings the schema to each version from the one before;
        #: creating the tables is migrating from nothing.
        self.migrations: dict[int, tuple[sql.Composed, ...]] = {1: version_1, 2: version_2}

        self.create_schema_table = sql.SQL(
            """CREATE TABLE IF NOT EXISTS {schema_table} (
                session_table VARCHAR(63) PRIMARY KEY,
                version INTEGER NOT NULL,
                migrated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
            )"""
        ).format(**names)
        #: Whether the version table and the sessions table exist.
        self.schema_tables_exist = sql.SQL(
            "SELECT to_regclass(%(schema_table)s) IS NOT NULL, "
            "to_regclass(%(sessions)s) IS NOT NULL"
        )
        #: One stored event's JSON, by id: what an append that met the id learns.
        self.stored_event = sql.SQL(
            """SELECT {event_json} FROM {events} e
            WHERE e.app_name = %(app_name)s AND e.user_id = %(user_id)s
              AND e.session_id = %(session_id)s AND e.id = %(event_id)s"""
        ).format(event_json=_event_json("e"), **names)
        #: The recorded version of this table set.
        self.read_schema_version = sql.SQL(
            "SELECT version FROM {schema_table} WHERE session_table = %(table)s"
        ).format(**names)
        self.write_schema_version = sql.SQL(
            """INSERT INTO {schema_table} (session_table, version) VALUES (%(table)s, %(version)s)
            ON CONFLICT (session_table) DO UPDATE
                SET version = EXCLUDED.version, migrated_at = CURRENT_TIMESTAMP"""
        ).format(**names)

        idle = sql.SQL(
            """FROM {sessions} s
            WHERE (%(app_name)s::text IS NULL OR s.app_name = %(app_name)s)
              AND (%(user_id)s::text IS NULL OR s.user_id = %(user_id)s)
              AND ((%(idle_since)s::timestamptz IS NOT NULL AND s.update_time < %(idle_since)s)
                   OR s.expire_time <= now())"""
        ).format(**names)
        #: How many sessions (and events) are idle since ``%(idle_since)s`` or expired.
        self.count_prunable = sql.SQL(
            """SELECT count(*), COALESCE(sum((SELECT count(*) FROM {events} e
                WHERE e.app_name = s.app_name AND e.user_id = s.user_id
                  AND e.session_id = s.id)), 0)::bigint {idle}"""
        ).format(idle=idle, **names)
        #: Delete those sessions (their events go by cascade); same answer as the count.
        self.prune = sql.SQL(
            """WITH doomed AS (
                SELECT s.app_name, s.user_id, s.id, (SELECT count(*) FROM {events} e
                    WHERE e.app_name = s.app_name AND e.user_id = s.user_id
                      AND e.session_id = s.id) AS events
                {idle} FOR UPDATE
            ), gone AS (
                DELETE FROM {sessions} s USING doomed d
                WHERE s.app_name = d.app_name AND s.user_id = d.user_id AND s.id = d.id
                RETURNING d.events
            )
            SELECT count(*), COALESCE(sum(events), 0)::bigint FROM gone"""
        ).format(idle=idle, **names)

        upsert_app = sql.SQL(
            """{a_cte} AS (
                INSERT INTO {app_states} AS t (app_name, state)
                SELECT %(app_name)s, %(app_delta)s::jsonb FROM {gate}
                WHERE %(app_delta)s::jsonb IS NOT NULL
                ON CONFLICT (app_name) DO UPDATE
                    SET state = t.state || EXCLUDED.state, update_time = now()
                RETURNING t.state
            ), {u_cte} AS (
                INSERT INTO {user_states} AS t (app_name, user_id, state)
                SELECT %(app_name)s, %(user_id)s, %(user_delta)s::jsonb FROM {gate}
                WHERE %(user_delta)s::jsonb IS NOT NULL
                ON CONFLICT (app_name, user_id) DO UPDATE
                    SET state = t.state || EXCLUDED.state, update_time = now()
                RETURNING t.state
            )"""
        )

        #: Insert a session and apply its app/user deltas, all or nothing; no row
        #: back means the id is taken.
        self.create_session = sql.SQL(
            """WITH new_session AS (
                INSERT INTO {sessions}
                    (id, app_name, user_id, state, create_time, update_time, expire_time)
                VALUES (%(session_id)s, %(app_name)s, %(user_id)s,
                        COALESCE(%(session_state)s::jsonb, '{{}}'::jsonb), %(now)s, %(now)s,
                        %(expire_time)s)
                ON CONFLICT DO NOTHING
                RETURNING revision, update_time
            ), {upserts}
            SELECT n.revision, n.update_time,
                COALESCE((SELECT state FROM new_app),
                         (SELECT state FROM {app_states} WHERE app_name = %(app_name)s))::text,
                COALESCE((SELECT state FROM new_user),
                         (SELECT state FROM {user_states}
                          WHERE app_name = %(app_name)s AND user_id = %(user_id)s))::text
            FROM new_session n"""
        ).format(
            upserts=upsert_app.format(
                a_cte=sql.Identifier("new_app"),
                u_cte=sql.Identifier("new_user"),
                gate=sql.Identifier("new_session"),
                **names,
            ),
            **names,
        )

        events_of_session = sql.SQL(
            """SELECT array_agg(x.ev ORDER BY x.ts, x.exact_ts, x.id) FROM (
                SELECT {event_json} AS ev, e."timestamp" AS ts,
                       {exact_ts} AS exact_ts, e.id
                FROM {events} e
                WHERE e.app_name = s.app_name AND e.user_id = s.user_id AND e.session_id = s.id
                {after}
                ORDER BY e."timestamp" DESC, {exact_ts} DESC, e.id DESC
                LIMIT %(limit)s
            ) x"""
        )
        after_filter = sql.SQL(
            """AND e."timestamp" >= to_timestamp(%(after)s) - interval '1 microsecond'
               AND {exact_ts} >= %(after)s"""
        ).format(**names)
        get_session = sql.SQL(
            """SELECT s.state::text, s.update_time, s.revision, a.state::text, u.state::text,
                ({events_query})
            FROM {sessions} s
            LEFT JOIN {app_states} a ON a.app_name = s.app_name
            LEFT JOIN {user_states} u ON u.app_name = s.app_name AND u.user_id = s.user_id
            WHERE s.app_name = %(app_name)s AND s.user_id = %(user_id)s AND s.id = %(session_id)s
              AND {live}"""
        )
        event_json = _event_json("e")
        #: Load a session with its merged state and (a window of) its events.
        self.get_session = get_session.format(
            events_query=events_of_session.format(
                event_json=event_json, after=sql.SQL(""), **names
            ),
            **names,
        )
        #: As :attr:`get_session`, keeping only events at or after ``%(after)s``.
        self.get_session_after = get_session.format(
            events_query=events_of_session.format(
                event_json=event_json, after=after_filter, **names
            ),
            **names,
        )

        list_sessions = sql.SQL(
            """SELECT s.id, s.user_id, s.state::text, s.update_time, s.create_time, s.revision,
                a.state::text, u.state::text
            FROM {sessions} s
            LEFT JOIN {app_states} a ON a.app_name = s.app_name
            LEFT JOIN {user_states} u ON u.app_name = s.app_name AND u.user_id = s.user_id
            WHERE s.app_name = %(app_name)s {user_filter} {after_cursor} AND {live}
            ORDER BY {order}
            LIMIT %(limit)s"""
        )
        #: Sessions of an app or of one user, oldest first by ``order_by``, a page
        #: at a time: keyed by (of one user?, order_by, after a cursor?). With a
        #: user fixed the keyset is (time, id), which the composite index serves.
        self.list_sessions: dict[tuple[bool, str, bool], sql.Composed] = {}
        for column in LIST_ORDERS:
            time = sql.SQL("s.{}").format(sql.Identifier(column))
            for of_user in (True, False):
                keys = (
                    [time, sql.SQL("s.id")]
                    if of_user
                    else [time, sql.SQL("s.user_id"), sql.SQL("s.id")]
                )
                bounds = (
                    sql.SQL("(%(after_time)s, %(after_id)s)")
                    if of_user
                    else sql.SQL("(%(after_time)s, %(after_user)s, %(after_id)s)")
                )
                for paged in (False, True):
                    self.list_sessions[of_user, column, paged] = list_sessions.format(
                        user_filter=sql.SQL("AND s.user_id = %(user_id)s" if of_user else ""),
                        after_cursor=(
                            sql.SQL("AND ({}) > {}").format(sql.SQL(", ").join(keys), bounds)
                            if paged
                            else sql.SQL("")
                        ),
                        order=sql.SQL(", ").join(keys),
                        **names,
                    )

        #: Delete a session (its events go by cascade); returns how many went (0 or 1).
        self.delete_session = sql.SQL(
            """WITH gone AS (
                DELETE FROM {sessions}
                WHERE app_name = %(app_name)s AND user_id = %(user_id)s AND id = %(session_id)s
                RETURNING 1
            ) SELECT count(*) FROM gone"""
        ).format(**names)

        self.get_user_state = sql.SQL(
            "SELECT state::text FROM {user_states} WHERE app_name = %(app_name)s "
            "AND user_id = %(user_id)s"
        ).format(**names)

        #: The revision a session is at, and its last event's id (for sessions
        #: that carry no revision marker).
        self.session_revision = sql.SQL(
            """SELECT s.revision, s.update_time, (
                SELECT e.id FROM {events} e
                WHERE e.app_name = s.app_name AND e.user_id = s.user_id AND e.session_id = s.id
                ORDER BY e."timestamp" DESC, {exact_ts} DESC, e.id DESC
                LIMIT 1)
            FROM {sessions} s
            WHERE s.app_name = %(app_name)s AND s.user_id = %(user_id)s AND s.id = %(session_id)s
              AND {live}"""
        ).format(**names)

        insert_columns, insert_values, insert_record = _event_insert_values(sql.SQL("ev.j"))
        #: Check the revision, write the event and every state delta, all in one
        #: statement: the UPDATE's row lock makes a second writer from the same
        #: revision match no row, and the events primary key refuses an id stored
        #: before (the statement then fails whole). The result's first column is
        #: the new revision; reading the upserts next runs them app row first,
        #: then user row, the order create_session locks them in (no deadlock).
        #: When nothing was written, the last two say why: the session's current
        #: revision (NULL: no such session) and the stored event of this id, if any.
        self.append_event = sql.SQL(
            """WITH ev AS (SELECT %(event)s::json AS j),
            bumped AS (
                UPDATE {sessions} SET
                    state = CASE WHEN %(session_delta)s::jsonb IS NULL THEN state
                                 ELSE state || %(session_delta)s::jsonb END,
                    update_time = %(update_time)s,
                    revision = revision + 1
                WHERE app_name = %(app_name)s AND user_id = %(user_id)s AND id = %(session_id)s
                  AND revision = %(revision)s AND {live}
                RETURNING revision
            ), inserted AS (
                INSERT INTO {events} (session_id, app_name, user_id, {insert_columns})
                SELECT %(session_id)s, %(app_name)s, %(user_id)s, {insert_values}
                FROM ev, bumped, {insert_record}
            ), {upserts}
            SELECT (SELECT revision FROM bumped) AS revision,
                (SELECT count(*) FROM new_app) + (SELECT count(*) FROM new_user) AS upserts,
                CASE WHEN NOT EXISTS (SELECT FROM bumped) THEN
                    (SELECT revision FROM {sessions}
                     WHERE app_name = %(app_name)s AND user_id = %(user_id)s
                       AND id = %(session_id)s AND {live})
                END AS current_revision,
                CASE WHEN NOT EXISTS (SELECT FROM bumped) THEN
                    (SELECT {event_json} FROM {events} e
                     WHERE e.app_name = %(app_name)s AND e.user_id = %(user_id)s
                       AND e.session_id = %(session_id)s AND e.id = %(event_id)s)
                END AS stored_event"""
        ).format(
            insert_columns=insert_columns,
            insert_values=insert_values,
            insert_record=insert_record,
            upserts=upsert_app.format(
                a_cte=sql.Identifier("new_app"),
                u_cte=sql.Identifier("new_user"),
                gate=sql.Identifier("bumped"),
                **names,
            ),
            event_json=event_json,
            **names,
        )

        chronological = sql.SQL('e."timestamp", {exact_ts}, e.id').format(**names)
        events_in_order = sql.SQL(
            """SELECT {event_json} FROM {events} e
            WHERE e.app_name = %(app_name)s AND e.user_id = %(user_id)s
              AND e.session_id = %(session_id)s {after}
            ORDER BY {chronological}"""
        )
        newest_events_in_order = sql.SQL(
            """SELECT x.ev FROM (
                SELECT {event_json} AS ev, e."timestamp" AS ts,
                       {exact_ts} AS exact_ts, e.id
                FROM {events} e
                WHERE e.app_name = %(app_name)s AND e.user_id = %(user_id)s
                  AND e.session_id = %(session_id)s {after}
                ORDER BY e."timestamp" DESC, {exact_ts} DESC, e.id DESC
                LIMIT %(limit)s
            ) x ORDER BY x.ts, x.exact_ts, x.id"""
        )
        #: One session's events as JSON text, oldest first, for a server-side
        #: cursor: keyed by (after a timestamp?, newest N only?).
        self.iter_events: dict[tuple[bool, bool], sql.Composed] = {
            (after, limited): (newest_events_in_order if limited else events_in_order).format(
                event_json=event_json,
                after=after_filter if after else sql.SQL(""),
                chronological=chronological,
                **names,
            )
            for after in (False, True)
            for limited in (False, True)
        }

        scope = sql.SQL(
            "(%(app_name)s::text IS NULL OR {t}.app_name = %(app_name)s) "
            "AND (%(user_id)s::text IS NULL OR {t}.user_id = %(user_id)s)"
        )
        #: JSON Lines export, one query per kind, each row one line: app states,
        #: user states, sessions, then events (in session and chronological order).
        self.export: tuple[tuple[str, sql.Composed], ...] = (
            (
                "app_state",
                sql.SQL(
                    """SELECT jsonb_build_object('kind', 'app_state', 'app_name', t.app_name,
                        'state', t.state, 'update_time', t.update_time)::text
                    FROM {app_states} t
                    WHERE (%(app_name)s::text IS NULL OR t.app_name = %(app_name)s)
                    ORDER BY t.app_name"""
                ).format(**names),
            ),
            (
                "user_state",
                sql.SQL(
                    """SELECT jsonb_build_object('kind', 'user_state', 'app_name', t.app_name,
                        'user_id', t.user_id, 'state', t.state, 'update_time', t.update_time)::text
                    FROM {user_states} t WHERE {scope} ORDER BY t.app_name, t.user_id"""
                ).format(scope=scope.format(t=sql.Identifier("t")), **names),
            ),
            (
                "session",
                sql.SQL(
                    """SELECT jsonb_build_object('kind', 'session', 'app_name', t.app_name,
                        'user_id', t.user_id, 'id', t.id, 'state', t.state,
                        'create_time', t.create_time, 'update_time', t.update_time)::text
                    FROM {sessions} t WHERE {scope} ORDER BY t.app_name, t.user_id, t.id"""
                ).format(scope=scope.format(t=sql.Identifier("t")), **names),
            ),
            (
                "event",
                sql.SQL(
                    """SELECT '{{"kind":"event","app_name":' || to_json(e.app_name)::text
                        || ',"user_id":' || to_json(e.user_id)::text
                        || ',"session_id":' || to_json(e.session_id)::text
                        || ',"event":' || {event_json} || '}}'
                    FROM {events} e WHERE {scope}
                    ORDER BY e.app_name, e.user_id, e.session_id, {chronological}"""
                ).format(
                    scope=scope.format(t=sql.Identifier("e")),
                    event_json=event_json,
                    chronological=chronological,
                    **names,
                ),
            ),
        )

        staged_columns, staged_values, staged_record = _event_insert_values(
            sql.SQL("st.line -> 'event'")
        )
        #: A transaction-scoped table that COPY fills with one JSON line per row.
        self.create_staging = sql.SQL(
            "CREATE TEMP TABLE sqlspec_staging (seq bigserial, line json NOT NULL) ON COMMIT DROP"
        )
        self.copy_staging = sql.SQL("COPY sqlspec_staging (line) FROM STDIN")
        #: Load staged JSON Lines (as written by :attr:`export`): state is merged
        #: into existing state, existing sessions and events are kept, events of
        #: sessions that exist neither before nor in the import are skipped.
        #: Returns the rows taken per kind and the rows staged per kind.
        self.import_staged = sql.SQL(
            """WITH new_app AS (
                INSERT INTO {app_states} AS t (app_name, state, update_time)
                SELECT st.line ->> 'app_name', (st.line -> 'state')::jsonb,
                       COALESCE((st.line ->> 'update_time')::timestamptz, now())
                FROM sqlspec_staging st WHERE st.line ->> 'kind' = 'app_state'
                ON CONFLICT (app_name) DO UPDATE SET state = t.state || EXCLUDED.state
                RETURNING 1
            ), new_user AS (
                INSERT INTO {user_states} AS t (app_name, user_id, state, update_time)
                SELECT st.line ->> 'app_name', st.line ->> 'user_id', (st.line -> 'state')::jsonb,
                       COALESCE((st.line ->> 'update_time')::timestamptz, now())
                FROM sqlspec_staging st WHERE st.line ->> 'kind' = 'user_state'
                ON CONFLICT (app_name, user_id) DO UPDATE SET state = t.state || EXCLUDED.state
                RETURNING 1
            ), new_session AS (
                INSERT INTO {sessions} (app_name, user_id, id, state, create_time, update_time)
                SELECT st.line ->> 'app_name', st.line ->> 'user_id', st.line ->> 'id',
                       COALESCE((st.line -> 'state')::jsonb, '{{}}'::jsonb),
                       COALESCE((st.line ->> 'create_time')::timestamptz, now()),
                       COALESCE((st.line ->> 'update_time')::timestamptz, now())
                FROM sqlspec_staging st WHERE st.line ->> 'kind' = 'session'
                ON CONFLICT DO NOTHING
                RETURNING app_name, user_id, id
            ), new_event AS (
                INSERT INTO {events} (app_name, user_id, session_id, {staged_columns})
                SELECT st.line ->> 'app_name', st.line ->> 'user_id', st.line ->> 'session_id',
                       {staged_values}
                FROM sqlspec_staging st, {staged_record}
                WHERE st.line ->> 'kind' = 'event' AND (
                    EXISTS (SELECT 1 FROM {sessions} s
                            WHERE s.app_name = st.line ->> 'app_name'
                              AND s.user_id = st.line ->> 'user_id'
                              AND s.id = st.line ->> 'session_id')
                    OR EXISTS (SELECT 1 FROM new_session n
                               WHERE n.app_name = st.line ->> 'app_name'
                                 AND n.user_id = st.line ->> 'user_id'
                                 AND n.id = st.line ->> 'session_id'))
                ORDER BY st.seq
                ON CONFLICT DO NOTHING
                RETURNING app_name, user_id, session_id
            ), bumped AS (
                UPDATE {sessions} s SET revision = s.revision + 1
                FROM (SELECT DISTINCT app_name, user_id, session_id FROM new_event) ne
                WHERE s.app_name = ne.app_name AND s.user_id = ne.user_id AND s.id = ne.session_id
            )
            SELECT (SELECT count(*) FROM new_app), (SELECT count(*) FROM new_user),
                   (SELECT count(*) FROM new_session), (SELECT count(*) FROM new_event),
                   (SELECT count(*) FILTER (WHERE line ->> 'kind' = 'app_state')
                    || ',' || count(*) FILTER (WHERE line ->> 'kind' = 'user_state')
                    || ',' || count(*) FILTER (WHERE line ->> 'kind' = 'session')
                    || ',' || count(*) FILTER (WHERE line ->> 'kind' = 'event')
                    FROM sqlspec_staging)"""
        ).format(
            staged_columns=staged_columns,
            staged_values=staged_values,
            staged_record=staged_record,
            **names,
        )

        events_columns, events_values, events_record = _event_insert_values(sql.SQL("st.line"))
        #: Store staged events (one event JSON per line) in one session and apply
        #: their merged state deltas, bumping the revision once. Reading the upserts
        #: locks the app row before the user row, as every statement here does.
        self.import_events = sql.SQL(
            """WITH target AS (
                UPDATE {sessions} SET
                    state = CASE WHEN %(session_delta)s::jsonb IS NULL THEN state
                                 ELSE state || %(session_delta)s::jsonb END,
                    update_time = %(update_time)s,
                    revision = revision + 1
                WHERE app_name = %(app_name)s AND user_id = %(user_id)s AND id = %(session_id)s
                  AND {live}
                RETURNING revision
            ), inserted AS (
                INSERT INTO {events} (session_id, app_name, user_id, {events_columns})
                SELECT %(session_id)s, %(app_name)s, %(user_id)s, {events_values}
                FROM sqlspec_staging st, target, {events_record} ORDER BY st.seq
                RETURNING 1
            ), {upserts}
            SELECT (SELECT revision FROM target), (SELECT count(*) FROM inserted),
                (SELECT count(*) FROM new_app) + (SELECT count(*) FROM new_user)"""
        ).format(
            events_columns=events_columns,
            events_values=events_values,
            events_record=events_record,
            upserts=upsert_app.format(
                a_cte=sql.Identifier("new_app"),
                u_cte=sql.Identifier("new_user"),
                gate=sql.Identifier("target"),
                **names,
            ),
            **names,
        )
