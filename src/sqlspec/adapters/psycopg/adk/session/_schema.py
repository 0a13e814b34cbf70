"""The session tables: their names, their DDL, and the numbered migrations to them.

This is the one place the session schema is written. The stores' ``migrate()``
runs :attr:`SessionSchema.migrations`; ``doctor`` and ``migrate --repair`` read
:attr:`SessionSchema.index_names` and :attr:`SessionSchema.objects` and re-run the
same migrations. Identifiers are validated, then quoted with
:class:`psycopg.sql.Identifier`, so a mixed-case name means the same table in
DDL and DML alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from sqlspec.adapters.psycopg.adk._statement import (
    MAX_IDENTIFIER_BYTES,
    Statement,
    derived_name,
    record_row,
    scalar,
    validate_identifier,
)
from sqlspec.adapters.psycopg.adk._values import ID_MAX_LENGTH, TEXT_FIELD_MAX_LENGTH
from sqlspec.adapters.psycopg.adk._versions import VersionStatements
from sqlspec.exceptions import ImproperConfigurationError

__all__ = ["EVENT_COLUMNS", "SCHEMA_VERSION", "SessionSchema", "TableNames"]

#: The schema version this code writes; ``migrate()`` brings older ones up to it.
SCHEMA_VERSION = 5

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


def exact_timestamp(alias: str | None = None) -> sql.Composable:
    """An event's exact float timestamp, as the events order index holds it.

    ``event_data`` keeps it; a row written without it (by hand, with COPY) falls
    back to the column's microseconds. Written with ``AT TIME ZONE 'UTC'`` so the
    expression is immutable, as an index needs; statements use this very
    expression, so the planner matches it to the index.
    """
    e = sql.SQL("{}.").format(sql.Identifier(alias)) if alias else sql.SQL("")
    return sql.SQL(
        "COALESCE(({e}event_data ->> 'timestamp')::float8, "
        "extract(epoch FROM ({e}\"timestamp\" AT TIME ZONE 'UTC'))::float8)"
    ).format(e=e)


@dataclass(frozen=True)
class TableNames:
    """The four tables one session store uses."""

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
        if len(set(self.all)) != len(self.all):
            raise ImproperConfigurationError(f"table names must differ, got {list(self.all)}")

    @property
    def all(self) -> tuple[str, str, str, str]:
        """Every table, sessions first."""
        return (self.sessions, self.events, self.app_states, self.user_states)

    def identifiers(self) -> dict[str, sql.Identifier]:
        """Each table's quoted name, by role: the names statements are formatted with."""
        return {
            "sessions": sql.Identifier(self.sessions),
            "events": sql.Identifier(self.events),
            "app_states": sql.Identifier(self.app_states),
            "user_states": sql.Identifier(self.user_states),
        }


@dataclass(frozen=True, slots=True)
class MissingObject:
    """A table or index of the schema, and whether it exists."""

    kind: str
    name: str
    missing: bool


#: A monthly partition's name is the events table's and this suffix (``_p202611``, ``_default``).
PARTITION_SUFFIX_BYTES = 8
#: Months, from the current one, that have their events partition made before they start.
MONTHS_AHEAD = 3


class SessionSchema:
    """The DDL of one :class:`TableNames`, by version, and what it creates.

    With ``partitioned``, the events table is partitioned by month of its
    session's creation (``session_create_time``, copied from the session row), so
    a month whose sessions are all prunable goes as one partition (see
    ``docs/scale-out.md``). The choice is made when the tables are created.
    """

    def __init__(self, tables: TableNames, *, partitioned: bool = False) -> None:
        self.tables = tables
        self.partitioned = partitioned
        if (
            partitioned
            and len(tables.events.encode()) > MAX_IDENTIFIER_BYTES - PARTITION_SUFFIX_BYTES
        ):
            raise ImproperConfigurationError(
                f"events_table {tables.events!r} is too long for partitioned events: its "
                f"partitions add {PARTITION_SUFFIX_BYTES} bytes to it, within PostgreSQL's "
                f"{MAX_IDENTIFIER_BYTES}-byte limit"
            )
        self.versions = VersionStatements(tables.sessions)
        #: The secondary indexes the schema creates: index name -> table name.
        self.index_names: dict[str, str] = {
            derived_name(tables.sessions, "app_user"): tables.sessions,
            derived_name(tables.sessions, "update_time"): tables.sessions,
            derived_name(tables.sessions, "state"): tables.sessions,
            derived_name(tables.sessions, "expire_time"): tables.sessions,
            derived_name(tables.events, "session"): tables.events,
            derived_name(tables.events, "order"): tables.events,
            derived_name(tables.sessions, "app_update_time"): tables.sessions,
            derived_name(tables.sessions, "app_create_time"): tables.sessions,
            derived_name(tables.sessions, "user_create_time"): tables.sessions,
            derived_name(tables.events, "revision"): tables.events,
        }
        names: dict[str, Any] = {
            **tables.identifiers(),
            "id": sql.SQL("VARCHAR({})").format(ID_MAX_LENGTH),
            "text_field": sql.SQL("VARCHAR({})").format(TEXT_FIELD_MAX_LENGTH),
            "idx_app_user": sql.Identifier(derived_name(tables.sessions, "app_user")),
            "idx_update_time": sql.Identifier(derived_name(tables.sessions, "update_time")),
            "idx_state": sql.Identifier(derived_name(tables.sessions, "state")),
            "idx_expire_time": sql.Identifier(derived_name(tables.sessions, "expire_time")),
            "idx_events": sql.Identifier(derived_name(tables.events, "session")),
            "idx_events_order": sql.Identifier(derived_name(tables.events, "order")),
            "idx_app_update_time": sql.Identifier(derived_name(tables.sessions, "app_update_time")),
            "idx_app_create_time": sql.Identifier(derived_name(tables.sessions, "app_create_time")),
            "idx_user_create_time": sql.Identifier(
                derived_name(tables.sessions, "user_create_time")
            ),
            "idx_events_revision": sql.Identifier(derived_name(tables.events, "revision")),
            "listing_indexes": sql.Literal(
                [derived_name(tables.sessions, suffix) for suffix in _LISTING_SUFFIXES]
            ),
            "exact_timestamp": exact_timestamp(),
            "fk_events": sql.Identifier(derived_name(tables.events, "session_fk")),
            "partition_column": sql.SQL(""),
            "partition_key": sql.SQL(""),
            "partition_by": sql.SQL(""),
        }
        if partitioned:
            names.update(
                partition_column=sql.SQL(" session_create_time TIMESTAMPTZ NOT NULL,"),
                partition_key=sql.SQL(", session_create_time"),
                partition_by=sql.SQL(" PARTITION BY RANGE (session_create_time)"),
                events_default=sql.Identifier(f"{tables.events}_default"),
            )
        #: Creates the events partitions of this month and the next ones (partitioned only).
        self.month_partitions = scalar(
            sql.SQL(_MONTH_PARTITIONS).format(
                parent=sql.Literal(tables.events),
                prefix=sql.Literal(f"{tables.events}_p"),
                months=sql.Literal(MONTHS_AHEAD - 1),
            )
        )
        #: The DDL that brings the schema to each version from the one before;
        #: creating the tables is migrating from nothing. Every statement is
        #: idempotent, so running them all again recreates what was dropped.
        first = _VERSION_1 + (_DEFAULT_PARTITION if partitioned else ())
        self.migrations: dict[int, tuple[Statement[Any], ...]] = {
            1: tuple(scalar(sql.SQL(ddl).format(**names)) for ddl in first)
            + ((self.month_partitions,) if partitioned else ()),
            2: tuple(scalar(sql.SQL(ddl).format(**names)) for ddl in _VERSION_2),
            3: tuple(scalar(sql.SQL(ddl).format(**names)) for ddl in _VERSION_3),
            4: tuple(scalar(sql.SQL(ddl).format(**names)) for ddl in _VERSION_4),
            5: tuple(scalar(sql.SQL(ddl).format(**names)) for ddl in _VERSION_5),
        }
        objects = [("table", name) for name in tables.all]
        if partitioned:
            objects.append(("table", f"{tables.events}_default"))
        objects += [("index", name) for name in self.index_names]
        #: Every table and index of the current version, and whether it is missing.
        self.objects = Statement(
            sql.SQL(
                "SELECT o.kind, o.name, to_regclass(quote_ident(o.name)) IS NULL AS missing "
                "FROM (VALUES {}) AS o(kind, name)"
            ).format(sql.SQL(", ").join(sql.SQL("({}, {})").format(*pair) for pair in objects)),
            record_row(MissingObject),
        )


#: The sessions indexes a listing walks. Each compares ``app_name`` bytewise (``COLLATE
#: "C"``: equality is the same as with any deterministic collation), as the listing
#: statements do, so that no statement looking a session up by its key can use them: with
#: no statistics, the planner reckons every index on (app_name, user_id) returns one row
#: for a key, and of equally cheap indexes it takes the one created last. A lookup then
#: walked all of a user's entries in a listing index (1.5 ms for a user with 30,000
#: sessions, against 0.18 ms through the primary key), and so did the foreign-key check
#: of every event written. Only the primary key can serve such a lookup now.
_LISTING_SUFFIXES = ("app_user", "app_update_time", "app_create_time", "user_create_time")
_APP_USER_INDEX = """CREATE INDEX IF NOT EXISTS {idx_app_user}
    ON {sessions} (app_name COLLATE "C", user_id, update_time, id)"""
_LISTING_INDEXES = (
    """CREATE INDEX IF NOT EXISTS {idx_app_update_time}
        ON {sessions} (app_name COLLATE "C", update_time, user_id, id)""",
    """CREATE INDEX IF NOT EXISTS {idx_app_create_time}
        ON {sessions} (app_name COLLATE "C", create_time, user_id, id)""",
    """CREATE INDEX IF NOT EXISTS {idx_user_create_time}
        ON {sessions} (app_name COLLATE "C", user_id, create_time, id)""",
)

_VERSION_1 = (
    """CREATE TABLE IF NOT EXISTS {sessions} (
        id {id} NOT NULL,
        app_name {id} NOT NULL,
        user_id {id} NOT NULL,
        state JSONB NOT NULL DEFAULT '{{}}'::jsonb,
        create_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
        update_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
        revision BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (app_name, user_id, id)
    ) WITH (fillfactor = 80)""",
    _APP_USER_INDEX,
    """CREATE INDEX IF NOT EXISTS {idx_update_time} ON {sessions} (update_time DESC)""",
    """CREATE INDEX IF NOT EXISTS {idx_state}
        ON {sessions} USING GIN (state) WHERE state != '{{}}'::jsonb""",
    """CREATE TABLE IF NOT EXISTS {events} (
        id {id} NOT NULL,
        session_id {id} NOT NULL,
        app_name {id} NOT NULL,
        user_id {id} NOT NULL,
        invocation_id {text_field},
        author {text_field},
        actions BYTEA,
        long_running_tool_ids_json TEXT,
        branch {text_field},
        "timestamp" TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
        content JSON,
        grounding_metadata JSON,
        custom_metadata JSON,
        partial BOOLEAN,
        turn_complete BOOLEAN,
        interrupted BOOLEAN,
        error_code {text_field},
        error_message TEXT,
        event_data JSON NOT NULL DEFAULT '{{}}'::json,{partition_column}
        PRIMARY KEY (app_name, user_id, session_id, id{partition_key}),
        CONSTRAINT {fk_events} FOREIGN KEY (app_name, user_id, session_id)
            REFERENCES {sessions} (app_name, user_id, id) ON DELETE CASCADE
    ){partition_by}""",
    """CREATE INDEX IF NOT EXISTS {idx_events}
        ON {events} (app_name, user_id, session_id, "timestamp" ASC)""",
    """CREATE TABLE IF NOT EXISTS {app_states} (
        app_name {id} PRIMARY KEY,
        state JSONB NOT NULL DEFAULT '{{}}'::jsonb,
        update_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS {user_states} (
        app_name {id} NOT NULL,
        user_id {id} NOT NULL,
        state JSONB NOT NULL DEFAULT '{{}}'::jsonb,
        update_time TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
        PRIMARY KEY (app_name, user_id)
    )""",
)

_VERSION_2 = (
    "ALTER TABLE {sessions} ADD COLUMN IF NOT EXISTS expire_time TIMESTAMPTZ",
    """CREATE INDEX IF NOT EXISTS {idx_expire_time} ON {sessions} (expire_time)
        WHERE expire_time IS NOT NULL""",
)

#: Every read of events (the whole history, the newest N, those after a time, the
#: last one) walks the events order index in the order it returns, and every
#: listing (an app's sessions or a user's, by update or creation time) walks one
#: of the sessions indexes: no plan sorts more than it returns, statistics or not.
_VERSION_3 = (
    """CREATE INDEX IF NOT EXISTS {idx_events_order}
        ON {events} (app_name, user_id, session_id, "timestamp", ({exact_timestamp}), id)""",
    *_LISTING_INDEXES,
)

#: Partitioned events: rows of a month without its partition (a session imported with
#: an old creation time, or months past the last ones made) land here.
_DEFAULT_PARTITION = ("CREATE TABLE IF NOT EXISTS {events_default} PARTITION OF {events} DEFAULT",)

#: Each month's partition is made once, in UTC months. A month whose rows are already
#: in the default partition (check_violation) is left there, where prune deletes by rows.
_MONTH_PARTITIONS = """DO $$
DECLARE
    month timestamp;
BEGIN
    FOR i IN 0..{months} LOOP
        month := date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i);
        BEGIN
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                {prefix} || to_char(month, 'YYYYMM'), {parent},
                month AT TIME ZONE 'UTC', (month + interval '1 month') AT TIME ZONE 'UTC');
        EXCEPTION WHEN check_violation THEN NULL;
        END;
    END LOOP;
END $$"""

#: What a service that keeps sessions' events needs to ask only for what it lacks.
#: A session's ``incarnation`` is new each time a session of its key is created,
#: so one deleted and created again is told from the one held (sessions created
#: before this version have none: no later one can share that). An event's
#: ``revision`` is the session revision its write produced (0 for events written
#: before this version, or without it), and the index finds those past a revision.
_VERSION_4 = (
    "ALTER TABLE {sessions} ADD COLUMN IF NOT EXISTS incarnation UUID",
    "ALTER TABLE {sessions} ALTER COLUMN incarnation SET DEFAULT gen_random_uuid()",
    "ALTER TABLE {events} ADD COLUMN IF NOT EXISTS revision BIGINT NOT NULL DEFAULT 0",
    """CREATE INDEX IF NOT EXISTS {idx_events_revision}
        ON {events} (app_name, user_id, session_id, revision)""",
)

#: The listing indexes of versions 1 and 3 compared ``app_name`` with its own collation,
#: which let key lookups take them (see :data:`_LISTING_INDEXES`): each one still so is
#: dropped and made again as it is now. Indexes already made so are left as they are.
_VERSION_5 = (
    """DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY {listing_indexes}::text[] LOOP
        IF EXISTS (
            SELECT FROM pg_index i
            WHERE i.indexrelid = to_regclass(quote_ident(name))
              AND i.indcollation[0] <> (SELECT c.oid FROM pg_collation c
                                        WHERE c.collname = 'C'
                                          AND c.collnamespace = 'pg_catalog'::regnamespace)
        ) THEN
            EXECUTE format('DROP INDEX %I', name);
        END IF;
    END LOOP;
END $$""",
    _APP_USER_INDEX,
    *_LISTING_INDEXES,
)
