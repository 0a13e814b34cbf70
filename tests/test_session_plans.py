"""Every hot session statement is served by an index, in its order, without statistics.

A new deployment, or a server whose autovacuum has not caught up, has never
analyzed its tables: plans must not depend on statistics. Each statement runs
under ``EXPLAIN (ANALYZE, FORMAT JSON)`` on never-analyzed tables holding a
5,000-event session (writes in a transaction rolled back): no table is scanned
whole, nothing is sorted but the events returned, and the events read are the
events returned. A session or an event is found by its key through the primary
key alone, however many sessions or events there are. The same holds with events
partitioned by month: each partition is read through its own copy of the indexes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
from psycopg import sql

from conftest import pool_config
from helpers import explained
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk._statement import Statement, scalar
from sqlspec.adapters.psycopg.adk.session._store_base import append_params
from sqlspec.extensions.adk.session._codec import get_revision
from sqlspec.extensions.adk.session._types import HeldEvents

EVENTS = 5_000
USER_SESSIONS = 3_000
T0 = 1_700_000_000.0


def said(i: int) -> Event:
    return Event(
        author="user",
        invocation_id="inv",
        timestamp=T0 + i * 0.5,
        content=types.Content(role="user", parts=[types.Part(text=f"message {i}")]),
    )


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "partitioned"])
def loaded(
    request: pytest.FixtureRequest, server_dsn: str
) -> Iterator[tuple[str, PsycopgSyncADKStore]]:
    """Tables, never analyzed, with 30 small sessions, 3,000 more of one user, and one of
    5,000 events."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS plans CASCADE")
        conn.execute("CREATE SCHEMA plans")
    dsn = psycopg.conninfo.make_conninfo(server_dsn, options="-c search_path=plans")
    config = PsycopgSyncConfig(connection_config=pool_config(dsn))
    store = PsycopgSyncADKStore(config, partitioned_events=request.param)
    store.create_tables()
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Statistics stay missing however long the run takes; a partitioned table's are its
        # partitions'.
        tables = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'plans' AND c.relkind = 'r'"
        ).fetchall()
        assert len(tables) >= len(store.tables.all)
        for (table,) in tables:
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    for i in range(30):
        store.create_session(app_name="app", user_id=f"u{i % 3}", session_id=f"s{i}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A user of many sessions, as an app that runs every session as one user has.
        conn.execute(
            "INSERT INTO adk_sessions (app_name, user_id, id) "
            "SELECT 'app', 'u0', 'many' || i FROM generate_series(1, %s) i",
            (USER_SESSIONS,),
        )
    store.create_session(app_name="app", user_id="u0", session_id="big")
    store.import_events(
        app_name="app", user_id="u0", session_id="big", events=[said(i) for i in range(EVENTS)]
    )
    yield dsn, store
    config.close()
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA plans CASCADE")


@pytest.fixture(params=[False, True], ids=["custom-plan", "generic-plan"])
def generic(request: pytest.FixtureRequest) -> bool:
    """Whether to plan a statement as run once, or as once prepared: psycopg prepares a
    statement after a few runs, and PostgreSQL may then plan it once for any parameters."""
    return bool(request.param)


def plan_of(
    dsn: str,
    statement: Statement[Any],
    params: Any,
    generic: bool,
    before: Callable[[psycopg.Connection[Any]], object] | None = None,
) -> list[dict[str, Any]]:
    """The nodes of the statement's executed plan, after ``before`` ran in the same
    transaction (anything either wrote is rolled back); ``generic`` as once prepared."""
    with psycopg.connect(dsn) as conn:
        analyzed = conn.execute(
            "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'plans' "
            "AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"
        ).fetchone()
        assert analyzed == (0,), "the tables must never have been analyzed"
        if before is not None:
            before(conn)
        plan = explained(conn, statement, params, generic=generic)
        conn.rollback()
    nodes: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return nodes


def assert_served_by_indexes(
    nodes: list[dict[str, Any]], events_returned: int, reads_per_event: int = 1
) -> None:
    for node in nodes:
        assert node["Node Type"] != "Seq Scan", node
        # Putting the newest N back in chronological order sorts N rows: never more.
        if node["Node Type"] in ("Sort", "Incremental Sort"):
            assert node["Actual Rows"] <= max(events_returned, 1), node
    # The events table, or its partitions.
    event_scans = [n for n in nodes if n.get("Relation Name", "").startswith("adk_events")]
    assert event_scans or events_returned == 0, nodes
    # Rows read: those a scan returned and those it read only to drop them.
    read = sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
        for n in event_scans
    )
    assert read <= reads_per_event * events_returned + 1, (read, event_scans)


GETS = [
    pytest.param(None, EVENTS, id="whole"),
    pytest.param(GetSessionConfig(num_recent_events=10), 10, id="recent-10"),
    pytest.param(GetSessionConfig(num_recent_events=0), 0, id="recent-0"),
    pytest.param(GetSessionConfig(after_timestamp=T0 + 2_400), 200, id="after"),
    pytest.param(
        GetSessionConfig(after_timestamp=T0 + 10, num_recent_events=10), 10, id="after-recent-10"
    ),
]


@pytest.mark.parametrize(("config", "returned"), GETS)
def test_get_session_reads_only_the_events_it_returns(
    loaded: tuple[str, PsycopgSyncADKStore],
    config: GetSessionConfig | None,
    returned: int,
    generic: bool,
) -> None:
    dsn, store = loaded
    statement, params = store.get_params("app", "u0", "big", config)
    assert_served_by_indexes(plan_of(dsn, statement, params, generic), returned)
    session = store.get_session(app_name="app", user_id="u0", session_id="big", config=config)
    assert session is not None
    assert len(session.events) == returned


def test_append_finds_the_session_and_its_revision_through_indexes(
    loaded: tuple[str, PsycopgSyncADKStore], generic: bool
) -> None:
    dsn, store = loaded
    session = store.get_session(
        app_name="app", user_id="u0", session_id="big", config=GetSessionConfig(num_recent_events=0)
    )
    assert session is not None
    params = append_params(session, said(EVENTS), revision=1)
    assert_served_by_indexes(plan_of(dsn, store.statements.append_event, params, generic), 0)
    without_app = store.statements.append_event_without_app
    assert_served_by_indexes(plan_of(dsn, without_app, params, generic), 0)
    revision = {"app_name": "app", "user_id": "u0", "session_id": "big"}
    assert_served_by_indexes(plan_of(dsn, store.statements.session_revision, revision, generic), 1)


@pytest.mark.parametrize("order_by", ["update_time", "create_time"])
@pytest.mark.parametrize("user", ["u1", None], ids=["of-a-user", "of-the-app"])
@pytest.mark.parametrize("paged", [False, True], ids=["first-page", "next-page"])
def test_listing_walks_an_index_in_its_order(
    loaded: tuple[str, PsycopgSyncADKStore],
    order_by: str,
    user: str | None,
    paged: bool,
    generic: bool,
) -> None:
    dsn, store = loaded
    page = store.list_sessions(app_name="app", user_id=user, limit=3, order_by=order_by)
    cursor = page.next_cursor if paged else None
    statement, params = store.list_params("app", user, 3, cursor, order_by)
    nodes = plan_of(dsn, statement, params, generic)
    assert_served_by_indexes(nodes, 0)
    sessions = [n for n in nodes if n.get("Relation Name") == "adk_sessions"]
    # The page, and one to say more follow: rows read, whether returned or dropped.
    read = sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in sessions)
    assert read <= 4


def test_create_list_delete_and_user_state_read_no_table_whole(
    loaded: tuple[str, PsycopgSyncADKStore], generic: bool
) -> None:
    dsn, store = loaded
    create = store.create_params("app", "u0", {"k": 1, "app:a": 1, "user:u": 1}, "new", None)
    assert_served_by_indexes(plan_of(dsn, store.statements.create_session, create, generic), 0)
    create = store.create_params("app", "u0", {"k": 1, "user:u": 1}, "new", None)
    without_app = store.statements.create_session_without_app
    assert_served_by_indexes(plan_of(dsn, without_app, create, generic), 0)
    statement, params = store.list_params("app", "u1", None, None, "update_time")
    assert_served_by_indexes(plan_of(dsn, statement, params, generic), 0)
    key = {"app_name": "app", "user_id": "u0", "session_id": "s3"}
    assert_served_by_indexes(plan_of(dsn, store.statements.delete_session, key, generic), 0)
    user = {"app_name": "app", "user_id": "u0"}
    assert_served_by_indexes(plan_of(dsn, store.statements.get_user_state, user, generic), 0)


def test_refresh_reads_only_the_events_past_the_revision_held(
    loaded: tuple[str, PsycopgSyncADKStore], generic: bool
) -> None:
    dsn, store = loaded
    whole = store.refresh_session(app_name="app", user_id="u0", session_id="big", held=None)
    assert whole is not None
    assert whole.whole
    assert len(whole.events) == EVENTS
    revision = get_revision(whole.session)
    assert revision is not None
    up_to_date = HeldEvents(whole.incarnation, revision, whole.events[-1].id)
    before_the_import = HeldEvents(whole.incarnation, 0, None)
    another_session = HeldEvents(str(uuid.uuid4()), revision, whole.events[-1].id)
    cases: list[tuple[HeldEvents | None, int, int]] = [
        (None, EVENTS, 1),
        (another_session, EVENTS, 1),
        (up_to_date, 0, 3),
        # New events are read three times: their keys, to judge them, passed over on the
        # way back to the last event held, then their rows.
        (before_the_import, EVENTS, 3),
    ]
    for held, returned, reads_per_event in cases:
        params = store.refresh_params("app", "u0", "big", held)
        nodes = plan_of(dsn, store.statements.refresh_session, params, generic)
        assert_served_by_indexes(nodes, returned, reads_per_event)
        update = store.refresh_session(app_name="app", user_id="u0", session_id="big", held=held)
        assert update is not None
        assert len(update.events) == returned


def test_refresh_after_a_few_appends_reads_only_those(
    loaded: tuple[str, PsycopgSyncADKStore], generic: bool
) -> None:
    """The common warm read: a reader holding every event but the few appended since.

    The new events are found through the revision index, and the last event held
    walking the order index back past them: nothing else of the 5,000-event history
    is read.
    """
    dsn, store = loaded
    whole = store.refresh_session(app_name="app", user_id="u0", session_id="big", held=None)
    assert whole is not None
    revision = get_revision(whole.session)
    assert revision is not None
    held = HeldEvents(whole.incarnation, revision, whole.events[-1].id)

    def append_four(conn: psycopg.Connection[Any]) -> None:
        for i in range(4):
            event = said(EVENTS + i)
            params = append_params(whole.session, event, revision + i)
            row = conn.execute(store.statements.append_event.text, params).fetchone()
            assert row is not None
            assert row[0] == revision + i + 1

    params = store.refresh_params("app", "u0", "big", held)
    nodes = plan_of(dsn, store.statements.refresh_session, params, generic, before=append_four)
    assert_served_by_indexes(nodes, 4, reads_per_event=3)


def test_a_session_is_found_by_its_key_through_the_primary_key(
    loaded: tuple[str, PsycopgSyncADKStore], generic: bool
) -> None:
    """Without statistics every index on (app_name, user_id) looks as cheap for a key as
    the primary key, and the planner would take the one made last: a listing index, in
    which a lookup walks all of the user's entries (here 3,000). The listing indexes
    compare ``app_name`` bytewise, so no lookup by key can use them."""
    dsn, store = loaded
    session = store.get_session(
        app_name="app", user_id="u0", session_id="big", config=GetSessionConfig(num_recent_events=0)
    )
    assert session is not None
    revision = get_revision(session)
    assert revision is not None
    key = {"app_name": "app", "user_id": "u0", "session_id": "big"}
    # The check PostgreSQL runs for the foreign key of every event written.
    foreign_key_check = scalar(
        sql.SQL(
            "SELECT 1 FROM ONLY adk_sessions x WHERE app_name = %(app_name)s "
            "AND user_id = %(user_id)s AND id = %(session_id)s FOR KEY SHARE OF x"
        )
    )
    held = HeldEvents(None, revision, None)
    lookups: list[tuple[Statement[Any], Any]] = [
        store.get_params("app", "u0", "big", None),
        store.get_params("app", "u0", "big", GetSessionConfig(num_recent_events=10)),
        (store.statements.refresh_session, store.refresh_params("app", "u0", "big", held)),
        (store.statements.append_event, append_params(session, said(EVENTS), revision)),
        (store.statements.append_event, append_params(session, said(EVENTS), revision - 1)),
        (store.statements.append_refused, append_params(session, said(EVENTS), revision - 1)),
        (store.statements.session_revision, key),
        (store.statements.delete_session, key),
        (foreign_key_check, key),
    ]
    listing = {name for name, table in store.schema.index_names.items() if table == "adk_sessions"}
    for statement, params in lookups:
        nodes = plan_of(dsn, statement, params, generic)
        used = {n["Index Name"] for n in nodes if "Index Name" in n}
        assert "adk_sessions_pkey" in used, (statement, used)
        assert not used & listing, (statement, used)


def test_a_stale_append_finds_the_stored_event_by_its_key(
    loaded: tuple[str, PsycopgSyncADKStore], generic: bool
) -> None:
    """An append that wrote nothing (another writer went first, or this one is delivered
    again) learns whether the event is stored by a lookup by key, which reads that one
    event, however long the session."""
    dsn, store = loaded
    whole = store.get_session(app_name="app", user_id="u0", session_id="big")
    assert whole is not None
    revision = get_revision(whole)
    assert revision is not None
    delivered_again = whole.events[EVENTS // 2]
    params = append_params(whole, delivered_again, revision - 1)
    assert_served_by_indexes(plan_of(dsn, store.statements.append_refused, params, generic), 1)
    never_stored = append_params(whole, said(EVENTS), revision - 1)
    assert_served_by_indexes(
        plan_of(dsn, store.statements.append_refused, never_stored, generic), 0
    )
