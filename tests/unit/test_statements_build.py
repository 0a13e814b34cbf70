"""Statements, identifiers, schema DDL, version planning and the pure halves of store calls.

No server: what is checked here is the SQL text the stores send and the
decisions they make from an answer, built by hand.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session

from sqlspec import ImproperConfigurationError, InvalidValueError, SchemaVersionError
from sqlspec.adapters.psycopg.adk._jsonl import CREATE_STAGING, staged_line
from sqlspec.adapters.psycopg.adk._statement import (
    MAX_IDENTIFIER_BYTES,
    Statement,
    derived_name,
    validate_identifier,
)
from sqlspec.adapters.psycopg.adk._values import ID_MAX_LENGTH, TEXT_FIELD_MAX_LENGTH
from sqlspec.adapters.psycopg.adk._versions import (
    SchemaTables,
    VersionStatements,
    pending_versions,
    recorded_version,
)
from sqlspec.adapters.psycopg.adk.session import _encoding
from sqlspec.adapters.psycopg.adk.session._schema import (
    EVENT_COLUMNS,
    PARTITION_SUFFIX_BYTES,
    SCHEMA_VERSION,
    SessionSchema,
    TableNames,
)
from sqlspec.adapters.psycopg.adk.session._statements import (
    LIST_ORDERS,
    AppendRefusal,
    ListedSession,
    SessionRevision,
    SessionStatements,
)
from sqlspec.adapters.psycopg.adk.session._store_base import (
    EventBatch,
    SessionStoreBase,
    append_params,
    appended,
    check_marker_less_session,
    page,
    prune_params,
    refused_append_outcome,
)
from sqlspec.extensions.adk.session import _codec

#: psycopg caches the parsing of a query only up to this many bytes
#: (``psycopg._queries.MAX_CACHED_STATEMENT_LENGTH``).
PSYCOPG_CACHED_QUERY_BYTES = 4096

MIXED_CASE = TableNames(
    sessions="MySessions", events="MyEvents", app_states="MyAppStates", user_states="MyUserStates"
)
LONGEST = TableNames(*(letter * MAX_IDENTIFIER_BYTES for letter in "sexu"))


def session_statements(tables: TableNames) -> dict[str, Statement[Any]]:
    """Every statement the session store runs per call, by name (all listing variants too)."""
    statements = SessionStatements(tables)
    found = {k: v for k, v in vars(statements).items() if isinstance(v, Statement)}
    if len(tables.events) <= MAX_IDENTIFIER_BYTES - PARTITION_SUFFIX_BYTES:
        partitioned = SessionStatements(tables, partitioned=True)
        for name in ("append_event", "import_events", "import_staged"):
            found[f"partitioned.{name}"] = getattr(partitioned, name)
    found.update({f"export.{kind}": st for kind, st in statements.export})
    for of_user, order_by, paged in itertools.product((False, True), LIST_ORDERS, (False, True)):
        found[f"list_sessions({of_user}, {order_by}, {paged})"] = statements.list_sessions(
            of_user=of_user, order_by=order_by, paged=paged
        )
    for after, newest in itertools.product((False, True), repeat=2):
        found[f"iter_events({after}, {newest})"] = statements.iter_events(
            after=after, newest=newest
        )
        found[f"get_session({after}, {newest})"] = statements.get_session(
            after=after, newest=newest
        )
    found["CREATE_STAGING"] = CREATE_STAGING
    return found


def schema_statements(tables: TableNames) -> dict[str, Statement[Any]]:
    """Every DDL and version statement of one table set, by name."""
    schema = SessionSchema(tables)
    found: dict[str, Statement[Any]] = {"objects": schema.objects}
    for version, ddl in schema.migrations.items():
        found.update({f"migrations[{version}][{i}]": st for i, st in enumerate(ddl)})
    if len(tables.events) <= MAX_IDENTIFIER_BYTES - PARTITION_SUFFIX_BYTES:
        partitioned = SessionSchema(tables, partitioned=True)
        for i, st in enumerate(partitioned.migrations[1]):
            found[f"partitioned.migrations[1][{i}]"] = st
    found.update(
        {f"versions.{k}": v for k, v in vars(schema.versions).items() if isinstance(v, Statement)}
    )
    return found


def ddl_text(tables: TableNames | None = None) -> str:
    schema = SessionSchema(tables or TableNames())
    return "\n".join(st.text.decode() for ddl in schema.migrations.values() for st in ddl)


# --------------------------------------------------------------------------- rendering


def test_the_statement_catalogue_finds_every_kind() -> None:
    # The tests below walk these catalogues: they must not come up short.
    statements = session_statements(TableNames())
    assert {
        "create_session",
        "get_session(False, False)",
        "append_event",
        "refresh_session",
        "import_events",
        "prune",
    } <= set(statements)
    assert len(statements) == 19 + 3 + 4 + 8 + 4 + 4 + 1
    schema = schema_statements(TableNames())
    assert {"objects", "migrations[1][0]", "migrations[2][0]", "versions.tables_exist"} <= set(
        schema
    )


@pytest.mark.parametrize(
    "tables", [TableNames(), MIXED_CASE, LONGEST], ids=["default", "mixed_case", "longest"]
)
def test_every_statement_is_rendered_on_one_line(tables: TableNames) -> None:
    everything = {**session_statements(tables), **schema_statements(tables)}
    for name, statement in everything.items():
        assert isinstance(statement.text, bytes), name
        assert b"\n" not in statement.text, name


@pytest.mark.parametrize("tables", [TableNames(), LONGEST], ids=["default", "longest"])
def test_every_session_statement_fits_psycopgs_query_cache(tables: TableNames) -> None:
    for name, statement in session_statements(tables).items():
        assert len(statement.text) <= PSYCOPG_CACHED_QUERY_BYTES, name


def test_mixed_case_table_names_are_always_quoted() -> None:
    everything = {**session_statements(MIXED_CASE), **schema_statements(MIXED_CASE)}
    unquoted = re.compile(rb'(?<![\w"\'])My(Sessions|Events|AppStates|UserStates)(?![\w"\'])')
    for name, statement in everything.items():
        assert not unquoted.search(statement.text), (name, statement.text)
    texts = b" ".join(st.text for st in everything.values())
    for table in MIXED_CASE.all:
        assert f'"{table}"'.encode() in texts
    assert b'CREATE TABLE IF NOT EXISTS "MySessions"' in texts


def test_version_checks_find_a_mixed_case_main_table() -> None:
    # to_regclass() parses its argument as SQL: unquoted, MySessions would be mysessions.
    text = VersionStatements("MySessions").tables_exist.text
    assert b"to_regclass('\"MySessions\"')" in text
    assert b"session_table = 'MySessions'" in VersionStatements("MySessions").read.text


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("name", ["adk_sessions", "_x", "MySessions", "t1", "a" * 63])
def test_plain_identifiers_are_accepted(name: str) -> None:
    assert validate_identifier(name, "session_table") == name


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "a-b", "a b", 'a"b', "x;DROP TABLE y", "sch.tab", "séssions", "a\x00", None, 5],
)
def test_other_identifiers_are_refused(name: Any) -> None:
    with pytest.raises(
        ImproperConfigurationError, match=r"session_table .* not a plain identifier"
    ):
        validate_identifier(name, "session_table")


def test_identifiers_longer_than_63_bytes_are_refused() -> None:
    with pytest.raises(ImproperConfigurationError, match="63-byte limit"):
        validate_identifier("a" * 64, "events_table")


def test_derived_names_are_plain_when_short() -> None:
    assert derived_name("adk_sessions", "app_user") == "idx_adk_sessions_app_user"


def test_derived_names_of_long_tables_are_short_stable_and_distinct() -> None:
    base = "t" * 60
    first = derived_name(base + "_a1", "session_fk")
    second = derived_name(base + "_a2", "session_fk")
    assert len(first.encode()) <= MAX_IDENTIFIER_BYTES
    assert len(second.encode()) <= MAX_IDENTIFIER_BYTES
    assert first != second
    assert first == derived_name(base + "_a1", "session_fk")
    assert validate_identifier(first, "index") == first


def test_the_longest_table_names_still_get_distinct_index_names() -> None:
    schema = SessionSchema(LONGEST)
    assert len(schema.index_names) == 10
    assert all(len(name.encode()) <= MAX_IDENTIFIER_BYTES for name in schema.index_names)
    ddl = ddl_text(LONGEST)
    for name in schema.index_names:
        assert f'CREATE INDEX IF NOT EXISTS "{name}"' in ddl


def test_table_names_must_differ() -> None:
    with pytest.raises(ImproperConfigurationError, match="must differ"):
        TableNames(sessions="same", events="same")
    with pytest.raises(ImproperConfigurationError, match="must differ"):
        SessionStoreBase(
            session_table="s",
            events_table="e",
            app_state_table="shared",
            user_state_table="shared",
            session_ttl=None,
        )


def test_a_bad_table_name_is_refused_under_its_argument_name() -> None:
    with pytest.raises(ImproperConfigurationError, match=r"^user_state_table 'user states'"):
        TableNames(user_states="user states")


# --------------------------------------------------------------------------- DDL


def test_ddl_column_widths_are_the_ones_values_are_checked_against() -> None:
    widths = re.findall(r"(\w+) VARCHAR\((\d+)\)", ddl_text())
    by_column: dict[str, set[int]] = {}
    for column, width in widths:
        by_column.setdefault(column, set()).add(int(width))
    for column in ("id", "session_id", "app_name", "user_id"):
        assert by_column[column] == {ID_MAX_LENGTH}, column
    for column in _encoding._TEXT_FIELDS:
        assert by_column[column] == {TEXT_FIELD_MAX_LENGTH}, column
    assert set(by_column) == {"id", "session_id", "app_name", "user_id", *_encoding._TEXT_FIELDS}


def test_every_event_column_is_declared() -> None:
    events_ddl = next(
        st.text.decode()
        for st in SessionSchema(TableNames()).migrations[1]
        if st.text.startswith(b'CREATE TABLE IF NOT EXISTS "adk_events"')
    )
    for column, _, _ in EVENT_COLUMNS:
        assert re.search(rf"[(,] {column} \w+", events_ddl), column


def test_ddl_is_idempotent() -> None:
    # migrate --repair re-runs every migration over whatever exists; setting a
    # column's default again sets the same default.
    idempotent = re.compile(
        rb'(CREATE (TABLE|INDEX) IF NOT EXISTS|ALTER TABLE "\w+" ADD COLUMN IF NOT EXISTS'
        rb'|ALTER TABLE "\w+" ALTER COLUMN \w+ SET DEFAULT) '
    )
    for ddl in SessionSchema(TableNames()).migrations.values():
        for statement in ddl:
            if statement.text.startswith(b"DO $$"):
                # A block drops only what a condition finds still to be changed.
                assert b"DROP" not in statement.text or b"IF EXISTS (" in statement.text
                continue
            assert idempotent.match(statement.text), statement.text


def test_migrations_run_from_1_to_the_current_version() -> None:
    migrations = SessionSchema(TableNames()).migrations
    assert sorted(migrations) == list(range(1, SCHEMA_VERSION + 1))
    assert all(migrations.values())


# --------------------------------------------------------------------------- versions


def test_pending_versions() -> None:
    assert pending_versions(0, 2) == range(1, 3)
    assert list(pending_versions(1, 2)) == [2]
    assert list(pending_versions(2, 2)) == []


def test_a_schema_newer_than_this_library_is_refused() -> None:
    with pytest.raises(SchemaVersionError, match="version 3, newer than the 2"):
        pending_versions(3, 2)


@pytest.mark.parametrize(
    ("recorded", "schema_table", "main_table", "version"),
    [
        (None, False, False, 0),  # nothing yet
        (None, False, True, 1),  # tables from before versions were recorded
        (None, True, True, 1),
        (2, True, True, 2),
        (1, True, False, 1),  # recorded wins
    ],
)
def test_recorded_version(
    recorded: int | None, schema_table: bool, main_table: bool, version: int
) -> None:
    assert recorded_version(recorded, SchemaTables(schema_table, main_table)) == version


# --------------------------------------------------------------------------- store base

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def store_base(session_ttl: timedelta | None = None) -> SessionStoreBase:
    return SessionStoreBase(
        session_table="adk_sessions",
        events_table="adk_events",
        app_state_table="adk_app_states",
        user_state_table="adk_user_states",
        session_ttl=session_ttl,
    )


def listed(i: int) -> ListedSession:
    return ListedSession(
        id=f"s{i}",
        user_id=f"u{i}",
        session_state=f'{{"n": {i}}}',
        update_time=T0 + timedelta(minutes=i),
        create_time=T0 - timedelta(days=i),
        revision=i,
        app_state='{"theme": "dark"}',
        user_state=None,
    )


@pytest.mark.parametrize("order_by", LIST_ORDERS)
def test_page_with_one_row_more_than_asked_has_a_next_cursor(order_by: str) -> None:
    rows = [listed(i) for i in range(3)]
    result = page("app", rows, 2, order_by)
    assert [s.id for s in result.sessions] == ["s0", "s1"]
    assert result.sessions[1].state == {"n": 1, "app:theme": "dark"}
    assert result.next_cursor is not None
    assert _codec.decode_cursor(result.next_cursor, order_by) == (
        getattr(rows[1], order_by),
        "u1",
        "s1",
    )


@pytest.mark.parametrize(("count", "limit"), [(2, 2), (1, 2), (0, 2), (3, None)])
def test_the_last_page_has_no_cursor(count: int, limit: int | None) -> None:
    result = page("app", [listed(i) for i in range(count)], limit, "update_time")
    assert len(result.sessions) == count
    assert result.next_cursor is None


def test_list_params_ask_one_row_more_and_resume_after_the_cursor() -> None:
    base = store_base()
    cursor = listed(4).cursor("create_time")
    statement, params = base.list_params("app", "u4", 10, cursor, "create_time")
    assert params["limit"] == 11
    assert (params["after_time"], params["after_user"], params["after_id"]) == (
        listed(4).create_time,
        "u4",
        "s4",
    )
    assert statement is base.statements.list_sessions(
        of_user=True, order_by="create_time", paged=True
    )
    statement, params = base.list_params("app", None, None, None, "update_time")
    assert params["limit"] is None
    assert statement is base.statements.list_sessions(
        of_user=False, order_by="update_time", paged=False
    )


@pytest.mark.parametrize(
    ("limit", "order_by"),
    [(0, "update_time"), (True, "update_time"), (1.5, "update_time"), (5, "id")],
)
def test_list_params_refuse_bad_limits_and_orders(limit: Any, order_by: str) -> None:
    with pytest.raises(InvalidValueError):
        store_base().list_params("app", None, limit, None, order_by)


def test_get_params_pick_the_statement_for_the_config() -> None:
    base = store_base()
    statement, params = base.get_params("app", "u", " s1 ", None)
    assert statement is base.statements.get_session(after=False, newest=False)
    assert params == {"app_name": "app", "user_id": "u", "session_id": "s1", "limit": None}
    config = GetSessionConfig(num_recent_events=3, after_timestamp=12.5)
    statement, params = base.get_params("app", "u", "s1", config)
    assert statement is base.statements.get_session(after=True, newest=True)
    assert (params["limit"], params["after"]) == (3, 12.5)


def test_create_params_split_state_and_set_the_expiry() -> None:
    base = store_base(session_ttl=timedelta(hours=1))
    params = base.create_params("app", "u", {"app:a": 1, "user:b": 2, "c": 3}, " s1 ", None)
    assert params["session_id"] == "s1"
    assert (params["app_delta"], params["user_delta"], params["session_state"]) == (
        '{"a":1}',
        '{"b":2}',
        '{"c":3}',
    )
    assert params["expire_time"] - params["now"] == timedelta(hours=1)
    params = base.create_params("app", "u", None, None, timedelta(minutes=5))
    assert params["expire_time"] - params["now"] == timedelta(minutes=5)
    with pytest.raises(InvalidValueError, match="ttl"):
        base.create_params("app", "u", None, None, timedelta(0))
    with pytest.raises(ImproperConfigurationError, match="session_ttl"):
        store_base(session_ttl=timedelta(seconds=-1))


def test_prune_params() -> None:
    params = prune_params(timedelta(days=1), "app", None)
    assert params["app_name"] == "app"
    assert params["user_id"] is None
    age = datetime.now(timezone.utc) - params["idle_since"]
    assert timedelta(days=1) <= age < timedelta(days=1, minutes=1)
    assert prune_params(None, None, None)["idle_since"] is None
    with pytest.raises(InvalidValueError, match="older_than"):
        prune_params(timedelta(seconds=-1), None, None)
    with pytest.raises(InvalidValueError, match="app_name"):
        prune_params(None, "a" * 129, None)


def test_staged_line() -> None:
    assert staged_line(b'  {"kind": "session"}\r\n') == '{"kind": "session"}'
    assert staged_line("\n") is None
    assert staged_line(b"") is None


# --------------------------------------------------------------------------- event batches


def event(event_id: str, timestamp: float, delta: dict[str, Any] | None = None) -> Event:
    return Event(
        id=event_id,
        author="agent",
        invocation_id="inv",
        timestamp=timestamp,
        actions=EventActions(state_delta=delta or {}),
    )


def test_event_batch_merges_deltas_last_value_wins_and_drops_temp_keys() -> None:
    batch = EventBatch()
    lines = [
        batch.add(event("e1", 10.0, {"k": 1, "app:a": "x", "temp:t": 1})),
        batch.add(event("e2", 11.0)),
        batch.add(event("e3", 12.5, {"k": 2, "user:u": 1e16})),
    ]
    assert batch.count == 3
    assert "temp:t" not in lines[0]
    assert _codec.decode_event(lines[2]).id == "e3"
    params = batch.params("app", "u", "s1")
    assert (params["session_delta"], params["app_delta"], params["user_delta"]) == (
        '{"k":2}',
        '{"a":"x"}',
        '{"u":10000000000000000.0}',
    )
    assert params["update_time"] == datetime.fromtimestamp(12.5, timezone.utc)
    assert (params["app_name"], params["user_id"], params["session_id"]) == ("app", "u", "s1")


def test_event_batch_refuses_a_partial_event_and_keeps_nothing_of_it() -> None:
    batch = EventBatch()
    partial = event("p1", 10.0, {"k": 1}).model_copy(update={"partial": True})
    with pytest.raises(InvalidValueError, match="partial"):
        batch.add(partial)
    assert (batch.count, batch.delta, batch.last_timestamp) == (0, {}, None)


def test_event_batch_refuses_an_event_its_columns_cannot_hold() -> None:
    with pytest.raises(InvalidValueError, match=r"event\.id"):
        EventBatch().add(event("e" * 129, 1.0))


# --------------------------------------------------------------------------- appends


def session_at(revision: int | None = 3) -> Session:
    session = Session(id="s1", app_name="app", user_id="u")
    if revision is not None:
        _codec.set_revision(session, revision)
    return session


def refusal(current: int, stored: str | None = None) -> AppendRefusal:
    return AppendRefusal(current_revision=current, stored_event=stored)


def test_a_stored_append_moves_the_session_to_the_new_revision() -> None:
    session, ev = session_at(), event("e1", 1_700_000_000.5)
    params = append_params(session, ev, 3)
    assert appended(session, params, 4) is True
    assert _codec.get_revision(session) == 4
    assert session.last_update_time == 1_700_000_000.5


def test_an_append_to_no_session_is_refused() -> None:
    session, ev = session_at(), event("e1", 1.0)
    with pytest.raises(SessionNotFoundError):
        refused_append_outcome(session, ev, append_params(session, ev, 3), None)


def test_an_append_from_an_old_revision_is_stale() -> None:
    session, ev = session_at(), event("e1", 1.0)
    with pytest.raises(StaleSessionError):
        refused_append_outcome(session, ev, append_params(session, ev, 3), refusal(5))


def test_a_retried_append_whose_answer_was_lost_catches_the_session_up() -> None:
    session, ev = session_at(), event("e1", 1.0)
    params = append_params(session, ev, 3)
    stored = _encoding.encode_event(ev)
    assert refused_append_outcome(session, ev, params, refusal(4, stored)) is True
    assert _codec.get_revision(session) == 4


def test_a_redelivered_event_is_a_no_op_and_another_with_its_id_is_refused() -> None:
    session, ev = session_at(), event("e1", 1.0)
    params = append_params(session, ev, 3)
    stored = _encoding.encode_event(ev)
    assert refused_append_outcome(session, ev, params, refusal(9, stored)) is False
    assert _codec.get_revision(session) == 3
    other = _encoding.encode_event(event("e1", 2.0, {"k": 1}))
    with pytest.raises(AlreadyExistsError):
        refused_append_outcome(session, ev, params, refusal(4, other))


# --------------------------------------------------------------------------- marker-less sessions


def test_a_marker_less_session_of_no_stored_session_is_not_found() -> None:
    with pytest.raises(SessionNotFoundError):
        check_marker_less_session(session_at(None), None)


def test_a_marker_less_session_not_older_than_storage_appends_at_the_stored_revision() -> None:
    session = session_at(None)
    session.last_update_time = T0.timestamp()
    row = SessionRevision(revision=7, update_time=T0, last_event_id="other")
    assert check_marker_less_session(session, row) == 7


def test_a_marker_less_session_older_than_storage_is_current_if_its_last_event_is() -> None:
    session = session_at(None)
    session.last_update_time = T0.timestamp()
    session.events = [event("e0", 1.0), event("e1", 2.0)]
    later = T0 + timedelta(seconds=1)
    assert check_marker_less_session(session, SessionRevision(7, later, "e1")) == 7
    with pytest.raises(StaleSessionError):
        check_marker_less_session(session, SessionRevision(7, later, "e2"))
    session.events = []
    assert check_marker_less_session(session, SessionRevision(7, later, None)) == 7
    with pytest.raises(StaleSessionError):
        check_marker_less_session(session, SessionRevision(7, later, "e1"))
