"""Every statement of the session stores, each a named unit beside the record it returns.

Each service call maps to one statement here, so it costs one round trip. A
statement that returns rows reads them through ``record_row`` of the record
declared next to it: its columns must be the record's fields, by name and in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.adk.events.event import Event
from google.adk.sessions.session import Session
from psycopg import sql

from sqlspec.adapters.psycopg.adk._statement import INDEX_ORDER, Statement, record_row, scalar
from sqlspec.adapters.psycopg.adk.session._schema import (
    EVENT_COLUMNS,
    TableNames,
    exact_timestamp,
)
from sqlspec.extensions.adk.session import _codec
from sqlspec.extensions.adk.session._types import ImportResult, SessionUpdate

__all__ = [
    "LIST_ORDERS",
    "AppendOutcome",
    "AppendRefusal",
    "ListedSession",
    "RefreshedSession",
    "SessionRevision",
    "SessionStatements",
    "StoredSession",
]

#: Columns ``list_sessions`` can order by.
LIST_ORDERS = ("update_time", "create_time")

#: An event's exact float timestamp (alias ``e``), as the events order index holds it.
EXACT_TS = exact_timestamp("e")
#: A session past its expire_time is gone for every read and write.
LIVE = sql.SQL("(expire_time IS NULL OR expire_time > now())")
#: Events in the order they happened: the index order, then the exact timestamp.
CHRONOLOGICAL = sql.SQL('e."timestamp", {}, e.id').format(EXACT_TS)
#: Only events at or after ``%(after)s`` (an epoch float).
AFTER = sql.SQL(
    """AND e."timestamp" >= to_timestamp(%(after)s) - interval '1 microsecond'
       AND {} >= %(after)s"""
).format(EXACT_TS)


def event_json() -> sql.Composable:
    """One event's JSON text (alias ``e``), rebuilt from its columns and ``event_data``.

    Built as text: the server only prints each column, as it was written.
    Columns holding SQL NULL are left out (``concat_ws`` skips NULLs), so the
    object equals the event's ``model_dump(exclude_none=True)``. A row written
    without the exact timestamp (by hand, with COPY) takes the column's.
    """
    members: list[sql.Composable] = [
        sql.SQL("nullif(btrim(left(substr(e.event_data::text, 2), -1)), '')"),
        sql.SQL(
            "CASE WHEN e.event_data ->> 'timestamp' IS NULL THEN "
            '\'"timestamp":\' || extract(epoch FROM e."timestamp")::float8::text END'
        ),
        sql.SQL("'\"id\":' || to_json(e.id)::text"),
    ]
    for column, field, kind in EVENT_COLUMNS:
        col = sql.SQL("e.{}").format(sql.Identifier(column))
        value = {
            "bytea": sql.SQL("convert_from({}, 'UTF8')"),
            "json_text": sql.SQL("{}"),
            "json": sql.SQL("{}::text"),
        }.get(kind, sql.SQL("to_json({})::text"))
        members.append(sql.SQL("{} || {}").format(sql.Literal(f'"{field}":'), value.format(col)))
    return sql.SQL("('{{' || concat_ws(',', {}) || '}}')").format(sql.SQL(", ").join(members))


@dataclass(frozen=True)
class EventInsert:
    """How a ``json`` event ``j`` becomes an events row: column list, SELECT list, FROM item.

    ``json_to_record`` parses the event once (``->`` would parse it per column) and
    hands back ``json`` members as the text they were written as. The FROM item
    (alias ``r``) goes after the one that provides ``j``. With ``created`` (the
    session's creation time), the row also fills partitioned events' partition key.
    ``event_data`` holds every other member: split out of ``j`` here, unless ``rest``
    gives it (the client split it, as an append does: 17 us of the server's time).
    """

    columns: sql.Composable
    values: sql.Composable
    record: sql.Composable

    @classmethod
    def of(
        cls,
        j: sql.Composable,
        revision: sql.Composable,
        created: sql.Composable | None = None,
        rest: sql.Composable | None = None,
    ) -> EventInsert:
        """``revision``: the session revision the write produces, stamped on the row;
        ``created``: the session's creation time, for a partitioned events table;
        ``rest``: the ``event_data`` JSON, when the client split it."""
        types = {"text": "text", "boolean": "boolean", "json": "json", "json_text": "json"}
        fields: list[sql.Composable] = [sql.SQL("id text")]
        columns: list[sql.Composable] = [sql.Identifier("id"), sql.Identifier("revision")]
        values: list[sql.Composable] = [sql.SQL("r.id"), revision]
        for column, field, kind in EVENT_COLUMNS:
            columns.append(sql.Identifier(column))
            field_id = sql.Identifier(field)
            fields.append(sql.SQL("{} {}").format(field_id, sql.SQL(types.get(kind, "json"))))
            value = {
                "json_text": sql.SQL("r.{}::text"),
                "bytea": sql.SQL("convert_to(r.{}::text, 'UTF8')"),
            }.get(kind, sql.SQL("r.{}"))
            values.append(value.format(field_id))
        fields.append(sql.SQL('"timestamp" float8'))
        columns.append(sql.Identifier("timestamp"))
        values.append(sql.SQL('to_timestamp(r."timestamp")'))
        # A text array literal: the shortest spelling, and the statement must stay
        # within psycopg's query cache (tests/unit/test_statements_build.py).
        in_columns = sql.Literal("{" + ",".join(("id", *(f for _, f, _ in EVENT_COLUMNS))) + "}")
        if created is not None:
            columns.append(sql.Identifier("session_create_time"))
            values.append(created)
        columns.append(sql.Identifier("event_data"))
        values.append(
            rest
            or sql.SQL(
                "(SELECT json_object_agg(f.key, f.value) FROM json_each(({})) AS f "
                "WHERE f.key <> ALL ({}::text[]))"
            ).format(j, in_columns)
        )
        return cls(
            columns=sql.SQL(", ").join(columns),
            values=sql.SQL(", ").join(values),
            record=sql.SQL("json_to_record({}) AS r({})").format(j, sql.SQL(", ").join(fields)),
        )


def bump_revision(
    n: dict[str, sql.Composable], *, checked: bool, created: bool = False
) -> sql.Composable:
    """Merge ``%(session_delta)s`` into a live session and bump its revision; return it.

    ``checked``: only if the session is still at ``%(revision)s``; ``created``:
    return its ``create_time`` too (partitioned events' partition key).
    """
    return sql.SQL(
        """UPDATE {sessions} SET
            state = CASE WHEN %(session_delta)s::jsonb IS NULL THEN state
                         ELSE state || %(session_delta)s::jsonb END,
            update_time = %(update_time)s,
            revision = revision + 1
        WHERE app_name = %(app_name)s AND user_id = %(user_id)s AND id = %(session_id)s
          {revision} AND {live}
        RETURNING revision{created}"""
    ).format(
        revision=sql.SQL("AND revision = %(revision)s" if checked else ""),
        created=sql.SQL(", create_time" if created else ""),
        live=LIVE,
        **n,
    )


#: CTE ``new_app``: merge ``%(app_delta)s`` into the app's state if CTE {gate} returned a row.
_APP_UPSERT = """new_app AS (
    INSERT INTO {app_states} AS t (app_name, state)
    SELECT %(app_name)s, %(app_delta)s::jsonb FROM {gate}
    WHERE %(app_delta)s::jsonb IS NOT NULL
    ON CONFLICT (app_name) DO UPDATE
        SET state = t.state || EXCLUDED.state, update_time = now()
    RETURNING t.state
)"""
#: CTE ``new_app`` of a statement for calls without an ``app:`` delta: it writes nothing,
#: and names no app-states table to write (on Citus, a reference table: every node).
_NO_APP_UPSERT = "new_app AS (SELECT NULL::jsonb AS state WHERE false)"


def state_upserts(n: dict[str, sql.Composable], gate: str, *, app: bool = True) -> sql.Composable:
    """CTEs ``new_app`` and ``new_user`` merging ``%(app_delta)s``/``%(user_delta)s``.

    They write only if CTE ``gate`` returned a row. Every statement reads them app
    row first, then user row, so concurrent writers lock in one order (no deadlock).
    Without ``app``, ``new_app`` is empty whatever ``%(app_delta)s`` holds.
    """
    return sql.SQL(
        """{new_app}, new_user AS (
            INSERT INTO {user_states} AS t (app_name, user_id, state)
            SELECT %(app_name)s, %(user_id)s, %(user_delta)s::jsonb FROM {gate}
            WHERE %(user_delta)s::jsonb IS NOT NULL
            ON CONFLICT (app_name, user_id) DO UPDATE
                SET state = t.state || EXCLUDED.state, update_time = now()
            RETURNING t.state
        )"""
    ).format(
        new_app=sql.SQL(_APP_UPSERT if app else _NO_APP_UPSERT).format(
            gate=sql.Identifier(gate), **n
        ),
        gate=sql.Identifier(gate),
        **n,
    )


@dataclass(frozen=True, slots=True)
class CreatedSession:
    """What :func:`create_session` returns: the new row's revision and the shared state."""

    revision: int
    update_time: datetime
    app_state: str | None
    user_state: str | None


def create_session(n: dict[str, sql.Composable], *, app: bool = True) -> Statement[CreatedSession]:
    """Insert a session and apply its app/user deltas, all or nothing; no row: the id is taken.

    Without ``app``: for a session with no ``app:`` key.
    """
    return Statement(
        sql.SQL(
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
                         (SELECT state FROM {app_states} WHERE app_name = %(app_name)s))::text
                    AS app_state,
                COALESCE((SELECT state FROM new_user),
                         (SELECT state FROM {user_states}
                          WHERE app_name = %(app_name)s AND user_id = %(user_id)s))::text
                    AS user_state
            FROM new_session n"""
        ).format(upserts=state_upserts(n, "new_session", app=app), **n),
        record_row(CreatedSession),
    )


@dataclass(frozen=True, slots=True)
class StoredSession:
    """What :func:`get_session` returns: the session's row, shared state and chosen events."""

    session_state: str | None
    update_time: datetime
    revision: int
    app_state: str | None
    user_state: str | None
    events: list[str] | None

    def to_session(self, app_name: str, user_id: str, session_id: str) -> Session:
        events = _codec.decode_events(self.events)
        return _session(self, app_name, user_id, session_id, events)


def session_events(
    n: dict[str, sql.Composable], *, after: bool = False, newest: bool = False
) -> sql.Composable:
    """Session ``s``'s events as an array of JSON texts, oldest first.

    ``after`` keeps only events at or after ``%(after)s``; ``newest`` only the
    newest ``%(limit)s`` of them, taken walking the events order index backwards,
    then put back in chronological order.
    """
    order = sql.SQL(
        'e."timestamp" DESC, {} DESC, e.id DESC LIMIT %(limit)s'
        if newest
        else 'e."timestamp", {}, e.id'
    )
    return sql.SQL(
        """(SELECT array_agg(x.ev ORDER BY x.ts, x.exact_ts, x.id) FROM (
            SELECT {event_json} AS ev, e."timestamp" AS ts, {exact_ts} AS exact_ts, e.id
            FROM {events} e
            WHERE e.app_name = s.app_name AND e.user_id = s.user_id
              AND e.session_id = s.id {after}
            ORDER BY {order}
        ) x)"""
    ).format(
        event_json=event_json(),
        exact_ts=EXACT_TS,
        after=AFTER if after else sql.SQL(""),
        order=order.format(EXACT_TS),
        **n,
    )


def get_session(
    n: dict[str, sql.Composable], *, after: bool, newest: bool
) -> Statement[StoredSession]:
    """Load a live session, its merged state and its events, oldest first.

    ``after`` and ``newest`` choose the events as :func:`session_events` says.
    """
    return Statement(
        sql.SQL(
            """SELECT s.state::text AS session_state, s.update_time, s.revision,
                a.state::text AS app_state, u.state::text AS user_state,
                {events_array} AS events
            FROM {sessions} s
            LEFT JOIN {app_states} a ON a.app_name = s.app_name
            LEFT JOIN {user_states} u ON u.app_name = s.app_name AND u.user_id = s.user_id
            WHERE s.app_name = %(app_name)s AND s.user_id = %(user_id)s AND s.id = %(session_id)s
              AND {live}"""
        ).format(
            events_array=session_events(n, after=after, newest=newest),
            live=LIVE,
            **n,
        ),
        record_row(StoredSession),
        binary=True,
    )


@dataclass(frozen=True, slots=True)
class RefreshedSession:
    """What :func:`refresh_session` returns: the session's row and shared state, and either
    the events past the revision held (``whole`` false) or every event (``whole``)."""

    session_state: str | None
    update_time: datetime
    revision: int
    incarnation: str | None
    app_state: str | None
    user_state: str | None
    whole: bool
    events: list[str] | None

    def to_update(self, app_name: str, user_id: str, session_id: str) -> SessionUpdate:
        texts = self.events or []
        return SessionUpdate(
            session=_session(self, app_name, user_id, session_id),
            incarnation=self.incarnation,
            whole=self.whole,
            events=_codec.decode_events(texts),
            event_bytes=sum(len(text) for text in texts),
        )


def refresh_session(n: dict[str, sql.Composable]) -> Statement[RefreshedSession]:
    """Load a live session for a caller holding its events up to a revision.

    The caller says what it holds (``%(held)s``): the session's ``%(incarnation)s``,
    the ``%(revision)s`` it read, its ``%(last_event_id)s``. Only the events
    written past that revision come back, found by the events revision index,
    when they are exactly what the caller lacks: the session is the one it
    held, every revision since has its events (an event written without its
    revision, by ``import_staged`` or an older library, leaves a gap), and every
    one sorts after the last event held.
    Otherwise, or when nothing is held, every event comes back (``revision`` is
    never negative). ``fresh`` reads the new events' keys to judge; their JSON is
    built once, by the events subquery.

    ``last_held`` is the newest event up to the revision held, which must be the
    last the caller holds: the events order index walked backwards finds it past
    the few new ones. On tables never analyzed every index of a session's events
    looks alike to the planner, each said to hold one row, so it took any (and
    read the whole history through it). With sorts priced out (``INDEX_ORDER``),
    each read takes the one index that returns rows in its ``ORDER BY``: the
    revision index for the new events (an order that changes no result), the
    order index backwards for the last event held.
    """
    return Statement(
        sql.SQL(
            """WITH s AS (
                SELECT s.app_name, s.user_id, s.id, s.state::text AS session_state,
                    s.update_time, s.revision, s.incarnation::text AS incarnation,
                    %(held)s AND s.incarnation IS NOT DISTINCT FROM %(incarnation)s::uuid
                        AND s.revision >= %(revision)s AS same
                FROM {sessions} s
                WHERE s.app_name = %(app_name)s AND s.user_id = %(user_id)s
                  AND s.id = %(session_id)s AND {live}
            ), fresh AS (
                SELECT e."timestamp" AS ts, {exact_ts} AS exact_ts, e.id, e.revision
                FROM {events} e
                WHERE (SELECT s.same FROM s) AND e.app_name = %(app_name)s
                  AND e.user_id = %(user_id)s AND e.session_id = %(session_id)s
                  AND e.revision > %(revision)s
                ORDER BY e.revision
            ), last_held AS (
                SELECT e."timestamp" AS ts, {exact_ts} AS exact_ts, e.id
                FROM {events} e
                WHERE (SELECT s.same FROM s) AND e.app_name = %(app_name)s
                  AND e.user_id = %(user_id)s AND e.session_id = %(session_id)s
                  AND e.revision <= %(revision)s
                ORDER BY e."timestamp" DESC, {exact_ts} DESC, e.id DESC
                LIMIT 1
            ), complete AS (
                SELECT s.same
                    AND (SELECT count(DISTINCT f.revision) FROM fresh f)
                        = s.revision - %(revision)s
                    AND (SELECT h.id FROM last_held h) IS NOT DISTINCT FROM %(last_event_id)s
                    AND NOT EXISTS (
                        SELECT FROM fresh f, last_held h
                        WHERE (f.ts, f.exact_ts, f.id) <= (h.ts, h.exact_ts, h.id)
                    ) AS yes
                FROM s
            )
            SELECT s.session_state, s.update_time, s.revision, s.incarnation,
                a.state::text AS app_state, u.state::text AS user_state,
                NOT c.yes AS whole,
                (SELECT array_agg(x.ev ORDER BY x.ts, x.exact_ts, x.id) FROM (
                    SELECT {event_json} AS ev, e."timestamp" AS ts, {exact_ts} AS exact_ts, e.id
                    FROM {events} e
                    WHERE e.app_name = s.app_name AND e.user_id = %(user_id)s
                      AND e.session_id = s.id
                      AND e.revision > CASE WHEN c.yes THEN %(revision)s ELSE -1 END
                    ORDER BY e.revision
                ) x) AS events
            FROM s CROSS JOIN complete c
            LEFT JOIN {app_states} a ON a.app_name = %(app_name)s
            LEFT JOIN {user_states} u ON u.app_name = %(app_name)s AND u.user_id = %(user_id)s"""
        ).format(event_json=event_json(), exact_ts=EXACT_TS, live=LIVE, **n),
        record_row(RefreshedSession),
        planner=INDEX_ORDER,
        binary=True,
    )


@dataclass(frozen=True, slots=True)
class ListedSession:
    """One row of :func:`list_sessions`: a session without its events."""

    id: str
    user_id: str
    session_state: str | None
    update_time: datetime
    create_time: datetime
    revision: int
    app_state: str | None
    user_state: str | None

    def to_session(self, app_name: str) -> Session:
        return _session(self, app_name, self.user_id, self.id)

    def cursor(self, order_by: str) -> str:
        """The cursor that resumes a listing after this session."""
        sort_time: datetime = getattr(self, order_by)
        return _codec.encode_cursor(order_by, sort_time, self.user_id, self.id)


def _session(
    row: StoredSession | ListedSession | RefreshedSession,
    app_name: str,
    user_id: str,
    session_id: str,
    events: list[Event] | None = None,
) -> Session:
    """The session a row of :func:`get_session` or :func:`list_sessions` stands for."""
    return _codec.build_session(
        session_id=session_id,
        app_name=app_name,
        user_id=user_id,
        session_state=row.session_state,
        app_state=row.app_state,
        user_state=row.user_state,
        update_time=row.update_time,
        revision=row.revision,
        events=events,
    )


def list_sessions(
    n: dict[str, sql.Composable], *, of_user: bool, order_by: str, paged: bool
) -> Statement[ListedSession]:
    """Live sessions of an app (``of_user``: of ``%(user_id)s``), oldest first by ``order_by``.

    ``paged`` resumes after a cursor's sort key. With a user fixed the keyset is
    (time, id), which the composite index serves. ``app_name`` is compared bytewise
    (``COLLATE "C"``), as the listing indexes hold it: only such a comparison can use them
    (and the planner does not carry it to the joins, which take the parameter). Sorts are
    priced out: without statistics the planner reckons an app holds a row or two, and
    would sort all of its sessions for a page rather than walk the index in order.
    """
    time = sql.SQL("s.{}").format(sql.Identifier(order_by))
    keys = [time, sql.SQL("s.id")] if of_user else [time, sql.SQL("s.user_id"), sql.SQL("s.id")]
    bounds = (
        sql.SQL("(%(after_time)s, %(after_id)s)")
        if of_user
        else sql.SQL("(%(after_time)s, %(after_user)s, %(after_id)s)")
    )
    order = sql.SQL(", ").join(keys)
    return Statement(
        sql.SQL(
            """SELECT s.id, s.user_id, s.state::text AS session_state, s.update_time,
                s.create_time, s.revision, a.state::text AS app_state, u.state::text AS user_state
            FROM {sessions} s
            LEFT JOIN {app_states} a ON a.app_name = %(app_name)s
            LEFT JOIN {user_states} u ON u.app_name = %(app_name)s AND u.user_id = s.user_id
            WHERE s.app_name COLLATE "C" = %(app_name)s {user_filter} {after_cursor} AND {live}
            ORDER BY {order}
            LIMIT %(limit)s"""
        ).format(
            user_filter=sql.SQL("AND s.user_id = %(user_id)s" if of_user else ""),
            after_cursor=sql.SQL("AND ({}) > {}").format(order, bounds) if paged else sql.SQL(""),
            order=order,
            live=LIVE,
            **n,
        ),
        record_row(ListedSession),
        planner=INDEX_ORDER,
    )


def delete_session(n: dict[str, sql.Composable]) -> Statement[int]:
    """Delete a session (its events go by cascade); returns how many went (0 or 1)."""
    return scalar(
        sql.SQL(
            """WITH gone AS (
                DELETE FROM {sessions}
                WHERE app_name = %(app_name)s AND user_id = %(user_id)s AND id = %(session_id)s
                RETURNING 1
            ) SELECT count(*) FROM gone"""
        ).format(**n)
    )


def get_user_state(n: dict[str, sql.Composable]) -> Statement[str]:
    """A user's ``user:`` state as JSON text."""
    return scalar(
        sql.SQL(
            "SELECT state::text FROM {user_states} "
            "WHERE app_name = %(app_name)s AND user_id = %(user_id)s"
        ).format(**n)
    )


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """What :func:`append_event` returns: the new revision, ``None`` if nothing was written."""

    revision: int | None
    upserts: int


def append_event(
    n: dict[str, sql.Composable], *, partitioned: bool, app: bool = True
) -> Statement[AppendOutcome]:
    """Check the revision, write the event and every state delta, all in one statement.

    Without ``app``: for an event with no ``app:`` delta.

    The UPDATE's row lock makes a second writer from the same revision match no
    row, and the events primary key refuses an id stored before (the statement
    then fails whole). Why nothing was written is not asked here but by
    :func:`append_refused`: the server sets up every subquery of a statement on
    each run, used or not, and those that would say why cost 10-40 us of an
    append's 0.2 ms.
    """
    insert = EventInsert.of(
        sql.SQL("ev.j"),
        sql.SQL("bumped.revision"),
        sql.SQL("bumped.create_time") if partitioned else None,
        rest=sql.SQL("%(event_data)s::json"),
    )
    return Statement(
        sql.SQL(
            """WITH ev AS (SELECT %(event)s::json AS j),
            bumped AS ({bump}), inserted AS (
                INSERT INTO {events} (session_id, app_name, user_id, {insert_columns})
                SELECT %(session_id)s, %(app_name)s, %(user_id)s, {insert_values}
                FROM ev, bumped, {insert_record}
            ), {upserts}
            SELECT (SELECT revision FROM bumped) AS revision,
                (SELECT count(*) FROM new_app) + (SELECT count(*) FROM new_user) AS upserts"""
        ).format(
            insert_columns=insert.columns,
            insert_values=insert.values,
            insert_record=insert.record,
            upserts=state_upserts(n, "bumped", app=app),
            bump=bump_revision(n, checked=True, created=partitioned),
            **n,
        ),
        record_row(AppendOutcome),
    )


@dataclass(frozen=True, slots=True)
class AppendRefusal:
    """What :func:`append_refused` returns for a live session."""

    current_revision: int
    stored_event: str | None


def append_refused(n: dict[str, sql.Composable]) -> Statement[AppendRefusal]:
    """Why an append wrote nothing (its revision was stale, or its event id taken): the
    session's revision now and the stored event of the append's id, if any; no row when
    there is no such session.

    It runs after the append, in a transaction of its own. A writer in between can only
    move the session on or delete it, which the caller would meet next anyway, or store
    this very event, which then reads as stored: never a wrong answer.

    The event is asked as the first from that id on, in id order: only the primary key
    returns a session's events in id order, so no plan reads them through another
    index. Asked by equality, on tables without statistics, every index on the
    session's columns looks as cheap, and the planner took the newest (the revision
    index), reading every event of the session to find one.
    """
    return Statement(
        sql.SQL(
            """SELECT revision AS current_revision, (
                SELECT {event_json} FROM (
                    SELECT * FROM {events} e
                    WHERE e.app_name = %(app_name)s AND e.user_id = %(user_id)s
                      AND e.session_id = %(session_id)s AND e.id >= %(event_id)s
                    ORDER BY e.id LIMIT 1) e
                WHERE e.id = %(event_id)s) AS stored_event
            FROM {sessions}
            WHERE app_name = %(app_name)s AND user_id = %(user_id)s AND id = %(session_id)s
              AND {live}"""
        ).format(event_json=event_json(), live=LIVE, **n),
        record_row(AppendRefusal),
    )


@dataclass(frozen=True, slots=True)
class SessionRevision:
    """What :func:`session_revision` returns."""

    revision: int
    update_time: datetime
    last_event_id: str | None


def session_revision(n: dict[str, sql.Composable]) -> Statement[SessionRevision]:
    """The revision a live session is at, and its last event's id (for marker-less sessions)."""
    return Statement(
        sql.SQL(
            """SELECT s.revision, s.update_time, (
                SELECT e.id FROM {events} e
                WHERE e.app_name = s.app_name AND e.user_id = s.user_id AND e.session_id = s.id
                ORDER BY e."timestamp" DESC, {exact_ts} DESC, e.id DESC
                LIMIT 1) AS last_event_id
            FROM {sessions} s
            WHERE s.app_name = %(app_name)s AND s.user_id = %(user_id)s AND s.id = %(session_id)s
              AND {live}"""
        ).format(exact_ts=EXACT_TS, live=LIVE, **n),
        record_row(SessionRevision),
    )


def iter_events(n: dict[str, sql.Composable], *, after: bool, newest: bool) -> Statement[str]:
    """One session's events as JSON text, oldest first, for a server-side cursor.

    ``after`` keeps events at or after ``%(after)s``; ``newest`` only the newest
    ``%(limit)s`` of them.
    """
    chosen = sql.SQL(
        """SELECT {event_json} AS ev, e."timestamp" AS ts, {exact_ts} AS exact_ts, e.id
        FROM {events} e
        WHERE e.app_name = %(app_name)s AND e.user_id = %(user_id)s
          AND e.session_id = %(session_id)s {after}"""
    ).format(event_json=event_json(), exact_ts=EXACT_TS, after=AFTER if after else sql.SQL(""), **n)
    if not newest:
        return scalar(
            sql.SQL("SELECT x.ev FROM ({}) x ORDER BY x.ts, x.exact_ts, x.id").format(chosen)
        )
    return scalar(
        sql.SQL(
            """SELECT x.ev FROM ({} ORDER BY e."timestamp" DESC, {} DESC, e.id DESC
            LIMIT %(limit)s) x ORDER BY x.ts, x.exact_ts, x.id"""
        ).format(chosen, EXACT_TS)
    )


@dataclass(frozen=True, slots=True)
class Pruned:
    """What :func:`prune` and :func:`count_prunable` return."""

    sessions: int
    events: int


#: Whether a session ``s`` is idle since ``%(idle_since)s`` (if given) or expired; may be null.
_PRUNABLE = sql.SQL(
    """((%(idle_since)s::timestamptz IS NOT NULL AND s.update_time < %(idle_since)s)
       OR s.expire_time <= now())"""
)
#: Sessions idle since ``%(idle_since)s`` (if given) or expired, in an app or a user's.
_IDLE = sql.SQL(
    """FROM {sessions} s
    WHERE (%(app_name)s::text IS NULL OR s.app_name = %(app_name)s)
      AND (%(user_id)s::text IS NULL OR s.user_id = %(user_id)s)
      AND {prunable}"""
)
#: How many events a session ``s`` holds.
_EVENT_COUNT = sql.SQL(
    """(SELECT count(*) FROM {events} e
    WHERE e.app_name = s.app_name AND e.user_id = s.user_id AND e.session_id = s.id)"""
)


def count_prunable(n: dict[str, sql.Composable]) -> Statement[Pruned]:
    """How many sessions (and events) are idle or expired: a dry-run prune."""
    return Statement(
        sql.SQL(
            "SELECT count(*) AS sessions, COALESCE(sum({event_count}), 0)::bigint AS events {idle}"
        ).format(event_count=_EVENT_COUNT.format(**n), idle=_IDLE.format(prunable=_PRUNABLE, **n)),
        record_row(Pruned),
    )


def prune(n: dict[str, sql.Composable]) -> Statement[Pruned]:
    """Delete idle or expired sessions (their events go by cascade); same answer as the count."""
    return Statement(
        sql.SQL(
            """WITH doomed AS (
                SELECT s.app_name, s.user_id, s.id, {event_count} AS events {idle} FOR UPDATE
            ), gone AS (
                DELETE FROM {sessions} s USING doomed d
                WHERE s.app_name = d.app_name AND s.user_id = d.user_id AND s.id = d.id
                RETURNING d.events
            )
            SELECT count(*) AS sessions, COALESCE(sum(events), 0)::bigint AS events FROM gone"""
        ).format(
            event_count=_EVENT_COUNT.format(**n),
            idle=_IDLE.format(prunable=_PRUNABLE, **n),
            **n,
        ),
        record_row(Pruned),
    )


def count_expired(n: dict[str, sql.Composable]) -> Statement[int]:
    """Sessions past their ``expire_time`` still stored (``prune`` deletes them)."""
    return scalar(
        sql.SQL(
            "SELECT count(*) FROM {sessions} WHERE expire_time IS NOT NULL AND expire_time <= now()"
        ).format(**n)
    )


def events_partitioned(events: str) -> Statement[bool]:
    """Whether the events table is partitioned by month (``None`` if it does not exist)."""
    return scalar(
        sql.SQL("SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass({})").format(
            sql.Literal(sql.Identifier(events).as_string(None))
        )
    )


@dataclass(frozen=True, slots=True)
class Month:
    """One monthly events partition: its table, and the session creation times it holds."""

    name: str
    lo: datetime
    hi: datetime


def prunable_partitions(n: dict[str, sql.Composable], events: str) -> Statement[Month]:
    """Past months' events partitions whose sessions all look prunable, oldest first.

    Read without locks: :func:`lock_month` decides, once the partition is detached.
    A month's bounds are read back from the partition's own bound expression.
    """
    return Statement(
        sql.SQL(
            """SELECT c.relname AS name, b.bounds[1]::timestamptz AS lo,
                b.bounds[2]::timestamptz AS hi
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                'FROM [(]''([^'']+)''[)] TO [(]''([^'']+)''[)]') AS b(bounds)
            WHERE i.inhparent = to_regclass({events_name}) AND b.bounds IS NOT NULL
              AND b.bounds[2]::timestamptz <= now()
              AND NOT EXISTS (
                  SELECT FROM {sessions} s
                  WHERE s.create_time >= b.bounds[1]::timestamptz
                    AND s.create_time < b.bounds[2]::timestamptz AND {prunable} IS NOT TRUE)
            ORDER BY lo"""
        ).format(
            events_name=sql.Literal(sql.Identifier(events).as_string(None)),
            prunable=_PRUNABLE,
            **n,
        ),
        record_row(Month),
    )


@dataclass(frozen=True, slots=True)
class MonthLock:
    """What :func:`lock_month` returns: a month's sessions, and how many are not prunable."""

    sessions: int
    live: int


def lock_month(n: dict[str, sql.Composable]) -> Statement[MonthLock]:
    """Lock the sessions created in ``[%(lo)s, %(hi)s)`` and count those not prunable.

    ``FOR UPDATE`` reads each session's latest version, and holds it: no append
    can make one live again before the month is dropped.
    """
    return Statement(
        sql.SQL(
            """SELECT count(*) AS sessions, count(*) FILTER (WHERE {prunable} IS NOT TRUE) AS live
            FROM (SELECT s.update_time, s.expire_time FROM {sessions} s
                  WHERE s.create_time >= %(lo)s AND s.create_time < %(hi)s FOR UPDATE) s"""
        ).format(prunable=_PRUNABLE, **n),
        record_row(MonthLock),
    )


def delete_month(n: dict[str, sql.Composable]) -> Statement[int]:
    """Delete the sessions created in ``[%(lo)s, %(hi)s)``, once their events' month is dropped."""
    return scalar(
        sql.SQL(
            """WITH gone AS (
                DELETE FROM {sessions} s
                WHERE s.create_time >= %(lo)s AND s.create_time < %(hi)s
                RETURNING 1
            ) SELECT count(*) FROM gone"""
        ).format(**n)
    )


#: How long prune waits to detach a month before leaving it to be deleted by rows: a
#: detach queued behind a long reader (an export) would hold every append behind it.
DETACH_LOCK_TIMEOUT = "2s"
#: The transaction's lock timeout, to put back after a detach.
CURRENT_LOCK_TIMEOUT = scalar(sql.SQL("SELECT current_setting('lock_timeout')"))
#: Sets the lock timeout to ``%(lock_timeout)s`` for the rest of the transaction.
SET_LOCK_TIMEOUT = scalar(sql.SQL("SELECT set_config('lock_timeout', %(lock_timeout)s, true)"))


def detach_partition(n: dict[str, sql.Composable], partition: str) -> Statement[Any]:
    """Take one month out of the events table; its rows stay in the detached table."""
    return scalar(
        sql.SQL("ALTER TABLE {events} DETACH PARTITION {partition}").format(
            partition=sql.Identifier(partition), **n
        )
    )


def count_rows(table: str) -> Statement[int]:
    """How many rows one table holds: a detached month's events."""
    return scalar(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))


def drop_table(table: str) -> Statement[Any]:
    """Drop one table: a detached month of events."""
    return scalar(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def list_apps(n: dict[str, sql.Composable]) -> Statement[str]:
    """Every app with at least one stored session."""
    return scalar(sql.SQL("SELECT DISTINCT app_name FROM {sessions} ORDER BY 1").format(**n))


def export(n: dict[str, sql.Composable]) -> tuple[tuple[str, Statement[str]], ...]:
    """JSON Lines export, one query per kind, each row one line.

    App states, user states, sessions, then events (in session and
    chronological order), each in an app (and a user) if given.
    """
    scope = sql.SQL(
        "(%(app_name)s::text IS NULL OR {t}.app_name = %(app_name)s) "
        "AND (%(user_id)s::text IS NULL OR {t}.user_id = %(user_id)s)"
    )
    return (
        (
            "app_state",
            scalar(
                sql.SQL(
                    """SELECT jsonb_build_object('kind', 'app_state', 'app_name', t.app_name,
                        'state', t.state, 'update_time', t.update_time)::text
                    FROM {app_states} t
                    WHERE (%(app_name)s::text IS NULL OR t.app_name = %(app_name)s)
                    ORDER BY t.app_name"""
                ).format(**n)
            ),
        ),
        (
            "user_state",
            scalar(
                sql.SQL(
                    """SELECT jsonb_build_object('kind', 'user_state', 'app_name', t.app_name,
                        'user_id', t.user_id, 'state', t.state, 'update_time', t.update_time)::text
                    FROM {user_states} t WHERE {scope} ORDER BY t.app_name, t.user_id"""
                ).format(scope=scope.format(t=sql.Identifier("t")), **n)
            ),
        ),
        (
            "session",
            scalar(
                sql.SQL(
                    """SELECT jsonb_build_object('kind', 'session', 'app_name', t.app_name,
                        'user_id', t.user_id, 'id', t.id, 'state', t.state,
                        'create_time', t.create_time, 'update_time', t.update_time)::text
                    FROM {sessions} t WHERE {scope} ORDER BY t.app_name, t.user_id, t.id"""
                ).format(scope=scope.format(t=sql.Identifier("t")), **n)
            ),
        ),
        (
            "event",
            scalar(
                sql.SQL(
                    """SELECT '{{"kind":"event","app_name":' || to_json(e.app_name)::text
                        || ',"user_id":' || to_json(e.user_id)::text
                        || ',"session_id":' || to_json(e.session_id)::text
                        || ',"event":' || {event_json} || '}}'
                    FROM {events} e WHERE {scope}
                    ORDER BY e.app_name, e.user_id, e.session_id, {chronological}"""
                ).format(
                    scope=scope.format(t=sql.Identifier("e")),
                    event_json=event_json(),
                    chronological=CHRONOLOGICAL,
                    **n,
                )
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """What :func:`import_staged` returns: rows taken per kind, and lines staged per kind."""

    app_states: int
    user_states: int
    sessions: int
    events: int
    staged: str

    def result(self) -> ImportResult:
        kinds = ("app_state", "user_state", "session", "event")
        taken = (self.app_states, self.user_states, self.sessions, self.events)
        imported = dict(zip(kinds, (int(n) for n in taken), strict=True))
        staged = (int(n) for n in self.staged.split(","))
        skipped = {
            kind: (0 if kind in ("app_state", "user_state") else total - imported[kind])
            for kind, total in zip(kinds, staged, strict=True)
        }
        return ImportResult(imported=imported, skipped=skipped)


def import_staged(n: dict[str, sql.Composable], *, partitioned: bool) -> Statement[ImportCounts]:
    """Load staged JSON Lines (as :func:`export` writes them).

    State is merged into existing state, existing sessions and events are kept,
    events of sessions that exist neither before nor in the import are skipped.
    """
    created = sql.SQL(
        """COALESCE(
            (SELECT s.create_time FROM {sessions} s
             WHERE s.app_name = st.line ->> 'app_name' AND s.user_id = st.line ->> 'user_id'
               AND s.id = st.line ->> 'session_id'),
            (SELECT n.create_time FROM new_session n
             WHERE n.app_name = st.line ->> 'app_name' AND n.user_id = st.line ->> 'user_id'
               AND n.id = st.line ->> 'session_id'))"""
    ).format(**n)
    # Stamped with no revision (0): a reader holding one of these sessions reads it
    # whole next time, as after any write it cannot account for.
    insert = EventInsert.of(
        sql.SQL("st.line -> 'event'"), sql.SQL("0"), created if partitioned else None
    )
    return Statement(
        sql.SQL(
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
                RETURNING app_name, user_id, id, create_time
            ), new_event AS (
                INSERT INTO {events} (app_name, user_id, session_id, {insert_columns})
                SELECT st.line ->> 'app_name', st.line ->> 'user_id', st.line ->> 'session_id',
                       {insert_values}
                FROM sqlspec_staging st, {insert_record}
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
            SELECT (SELECT count(*) FROM new_app) AS app_states,
                   (SELECT count(*) FROM new_user) AS user_states,
                   (SELECT count(*) FROM new_session) AS sessions,
                   (SELECT count(*) FROM new_event) AS events,
                   (SELECT count(*) FILTER (WHERE line ->> 'kind' = 'app_state')
                    || ',' || count(*) FILTER (WHERE line ->> 'kind' = 'user_state')
                    || ',' || count(*) FILTER (WHERE line ->> 'kind' = 'session')
                    || ',' || count(*) FILTER (WHERE line ->> 'kind' = 'event')
                    FROM sqlspec_staging) AS staged"""
        ).format(
            insert_columns=insert.columns,
            insert_values=insert.values,
            insert_record=insert.record,
            **n,
        ),
        record_row(ImportCounts),
    )


@dataclass(frozen=True, slots=True)
class ImportedEvents:
    """What :func:`import_events` returns; ``revision`` ``None``: no such session."""

    revision: int | None
    stored: int
    upserts: int


def import_events(n: dict[str, sql.Composable], *, partitioned: bool) -> Statement[ImportedEvents]:
    """Store staged events (one event JSON per line) in one session, bumping the revision once.

    Their merged state deltas are applied as one append's would be.
    """
    insert = EventInsert.of(
        sql.SQL("st.line"),
        sql.SQL("target.revision"),
        sql.SQL("target.create_time") if partitioned else None,
    )
    return Statement(
        sql.SQL(
            """WITH target AS ({bump}), inserted AS (
                INSERT INTO {events} (session_id, app_name, user_id, {insert_columns})
                SELECT %(session_id)s, %(app_name)s, %(user_id)s, {insert_values}
                FROM sqlspec_staging st, target, {insert_record} ORDER BY st.seq
                RETURNING 1
            ), {upserts}
            SELECT (SELECT revision FROM target) AS revision,
                (SELECT count(*) FROM inserted) AS stored,
                (SELECT count(*) FROM new_app) + (SELECT count(*) FROM new_user) AS upserts"""
        ).format(
            insert_columns=insert.columns,
            insert_values=insert.values,
            insert_record=insert.record,
            upserts=state_upserts(n, "target"),
            bump=bump_revision(n, checked=False, created=partitioned),
            live=LIVE,
            **n,
        ),
        record_row(ImportedEvents),
    )


class SessionStatements:
    """Every statement of one :class:`TableNames`, built once per store."""

    def __init__(self, tables: TableNames, *, partitioned: bool = False) -> None:
        n: dict[str, sql.Composable] = dict(tables.identifiers())
        self._names = n
        self.create_session = create_session(n)
        self.create_session_without_app = create_session(n, app=False)
        self.delete_session = delete_session(n)
        self.get_user_state = get_user_state(n)
        self.append_event = append_event(n, partitioned=partitioned)
        self.append_event_without_app = append_event(n, partitioned=partitioned, app=False)
        self.append_refused = append_refused(n)
        self.session_revision = session_revision(n)
        self.refresh_session = refresh_session(n)
        self.count_prunable = count_prunable(n)
        self.prune = prune(n)
        self.count_expired = count_expired(n)
        self.list_apps = list_apps(n)
        self.export = export(n)
        self.import_staged = import_staged(n, partitioned=partitioned)
        self.import_events = import_events(n, partitioned=partitioned)
        self.events_partitioned = events_partitioned(tables.events)
        self.prunable_partitions = prunable_partitions(n, tables.events)
        self.lock_month = lock_month(n)
        self.delete_month = delete_month(n)
        self._gets: dict[tuple[bool, bool], Statement[StoredSession]] = {}
        self._lists: dict[tuple[bool, str, bool], Statement[ListedSession]] = {}
        self._event_streams: dict[tuple[bool, bool], Statement[str]] = {}

    def detach_partition(self, partition: str) -> Statement[Any]:
        """The statement that takes month ``partition`` out of the events table."""
        return detach_partition(self._names, partition)

    def get_session(self, *, after: bool, newest: bool) -> Statement[StoredSession]:
        """The load statement for one combination of filters, built on first use."""
        key = (after, newest)
        statement = self._gets.get(key)
        if statement is None:
            statement = self._gets[key] = get_session(self._names, after=after, newest=newest)
        return statement

    def list_sessions(
        self, *, of_user: bool, order_by: str, paged: bool
    ) -> Statement[ListedSession]:
        """The listing statement for one combination of filters, built on first use."""
        key = (of_user, order_by, paged)
        statement = self._lists.get(key)
        if statement is None:
            statement = self._lists[key] = list_sessions(
                self._names, of_user=of_user, order_by=order_by, paged=paged
            )
        return statement

    def iter_events(self, *, after: bool, newest: bool) -> Statement[str]:
        """The event-stream statement for one combination of filters, built on first use."""
        key = (after, newest)
        statement = self._event_streams.get(key)
        if statement is None:
            statement = self._event_streams[key] = iter_events(
                self._names, after=after, newest=newest
            )
        return statement
