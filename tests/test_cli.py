"""Every ``sqlspec-adk`` command through typer's CliRunner: human output, --json, errors."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.genai import types
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from conftest import pool_config
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk.session._schema import SCHEMA_VERSION
from sqlspec.cli import app
from sqlspec.extensions.adk import SQLSpecSessionService

DAY = 86400.0


def service_uri(dsn: str, **params: Any) -> str:
    """``dsn`` (a conninfo) as a ``sqlspec://`` URI, with extra query parameters."""
    return "sqlspec:///?" + urlencode({**conninfo_to_dict(dsn), **params})


@pytest.fixture
def cli() -> Any:
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SQLSPEC_DSN": None})

    def invoke(*args: str, code: int = 0, input: str | None = None) -> Any:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        assert "Traceback" not in result.output
        return result

    return invoke


@pytest.fixture
def store(dsn: str) -> Iterator[PsycopgSyncADKStore]:
    store = PsycopgSyncADKStore(PsycopgSyncConfig(connection_config=pool_config(dsn)))
    yield store
    store.close()


def conversation(t0: float, text: str) -> list[Event]:
    """A user turn, a tool call, its response (with state in every scope), an answer."""
    call = types.FunctionCall(id="c1", name="remember", args={"note": text})
    return [
        Event(
            author="user",
            invocation_id="inv",
            timestamp=t0,
            content=types.Content(role="user", parts=[types.Part(text=text)]),
        ),
        Event(
            author="agent",
            invocation_id="inv",
            timestamp=t0 + 1,
            content=types.Content(role="model", parts=[types.Part(function_call=call)]),
        ),
        Event(
            author="agent",
            invocation_id="inv",
            timestamp=t0 + 2,
            content=types.Content(
                role="user",
                parts=[
                    types.Part(
                        function_response=types.FunctionResponse(
                            id="c1", name="remember", response={"remembered": text}
                        )
                    )
                ],
            ),
            actions=EventActions(
                state_delta={"notes": [text], "user:seen": True, "app:total": 1, "temp:x": 1}
            ),
        ),
        Event(
            author="agent",
            invocation_id="inv",
            timestamp=t0 + 3,
            content=types.Content(role="model", parts=[types.Part(text=f"Noted: {text}")]),
        ),
    ]


#: (app, user, session, idle days)
SESSIONS = [
    ("shop", "alice", "old", 10.0),
    ("shop", "alice", "new", 0.01),
    ("shop", "bob", "b1", 2.0),
    ("blog", "carol", "c1", 0.0),
]


@pytest.fixture
def seeded(store: PsycopgSyncADKStore) -> PsycopgSyncADKStore:
    store.create_tables()
    service: Any = SQLSpecSessionService(store)
    now = time.time()
    for app_name, user, session_id, idle in SESSIONS:
        session = service.create_session(app_name=app_name, user_id=user, session_id=session_id)
        for event in conversation(now - idle * DAY - 10, f"{session_id} note"):
            service.append_event(session, event)
    return store


# ------------------------------------------------------------------ init / migrate


def test_init_creates_then_finds_nothing_to_do(cli: Any, dsn: str, store: Any) -> None:
    first = cli("init", "--dsn", dsn)
    assert f"Created the sqlspec tables at schema version {SCHEMA_VERSION}" in first.stdout
    assert "adk_sessions, adk_events, adk_app_states, adk_user_states" in first.stdout
    assert store.schema_version() == SCHEMA_VERSION
    again = cli("init", "--dsn", dsn)
    assert f"Schema already at version {SCHEMA_VERSION}; nothing to do." in again.stdout
    data = json.loads(cli("init", "--dsn", dsn, "--json").stdout)
    assert data == {
        "from_version": SCHEMA_VERSION,
        "to_version": SCHEMA_VERSION,
        "changed": False,
        "tables": {
            "sessions": "adk_sessions",
            "events": "adk_events",
            "app_states": "adk_app_states",
            "user_states": "adk_user_states",
        },
    }


def test_init_json_on_an_empty_database(cli: Any, dsn: str) -> None:
    data = json.loads(cli("init", "--dsn", dsn, "--json").stdout)
    assert (data["from_version"], data["to_version"], data["changed"]) == (0, SCHEMA_VERSION, True)


def _downgrade_to_version_1(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE adk_sessions DROP COLUMN expire_time")
        conn.execute("UPDATE sqlspec_adk_schema SET version = 1")


def test_migrate_upgrades_version_1_and_check_says_so(cli: Any, dsn: str, seeded: Any) -> None:
    _downgrade_to_version_1(dsn)
    check = cli("migrate", "--dsn", dsn, "--check", code=1)
    assert (
        f"schema is at version 1; version {SCHEMA_VERSION} is available: run `sqlspec-adk migrate`"
    ) in (check.stderr)
    check_json = json.loads(cli("migrate", "--dsn", dsn, "--check", "--json", code=1).stdout)
    assert check_json["from_version"] == 1
    assert check_json["pending"] is True
    done = cli("migrate", "--dsn", dsn)
    assert f"Migrated the schema from version 1 to {SCHEMA_VERSION}." in done.stdout
    assert "up to date" in cli("migrate", "--dsn", dsn, "--check").stdout
    assert seeded.get_session(app_name="shop", user_id="alice", session_id="old") is not None
    _downgrade_to_version_1(dsn)
    data = json.loads(cli("migrate", "--dsn", dsn, "--json").stdout)
    assert (data["from_version"], data["to_version"], data["changed"]) == (1, SCHEMA_VERSION, True)


def test_migrate_check_without_tables(cli: Any, dsn: str) -> None:
    result = cli("migrate", "--dsn", dsn, "--check", code=1)
    assert "error: the sqlspec tables do not exist: run `sqlspec-adk init`" in result.stderr
    assert json.loads(cli("migrate", "--dsn", dsn, "--check", "--json", code=1).stdout)["pending"]


def test_migrate_repair_recreates_a_dropped_index(cli: Any, dsn: str, seeded: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_adk_sessions_update_time")
    doctor = cli("doctor", "--dsn", dsn)
    assert "WARN" in doctor.stdout
    assert "missing: idx_adk_sessions_update_time" in doctor.stdout
    assert "sqlspec-adk migrate --repair" in doctor.stdout
    cli("doctor", "--dsn", dsn, "--strict", code=1)
    repaired = cli("migrate", "--dsn", dsn, "--repair")
    assert "Recreated index idx_adk_sessions_update_time." in repaired.stdout
    assert json.loads(cli("migrate", "--dsn", dsn, "--repair", "--json").stdout)["repaired"] == []
    assert "No problems found." in cli("doctor", "--dsn", dsn, "--strict").stdout


# -------------------------------------------------------------------------- doctor


def test_doctor_on_a_healthy_database(cli: Any, dsn: str, seeded: Any) -> None:
    result = cli("doctor", "--dsn", dsn)
    out = result.stdout
    for line in ("OK    connection", "OK    server", "OK    schema", "OK    tables", "OK    pool"):
        assert line in out
    assert f"schema version {SCHEMA_VERSION}, as this sqlspec writes" in out
    assert "adk_events" in out
    assert "idx_adk_events_session" in out
    assert "No problems found." in out
    data = json.loads(cli("doctor", "--dsn", dsn, "--json").stdout)
    assert data["ok"] is True
    assert data["schema"] == {"version": SCHEMA_VERSION, "expected": SCHEMA_VERSION}
    assert {c["name"]: c["status"] for c in data["checks"]}["indexes"] == "ok"
    tables = {t["name"]: t for t in data["tables"]}
    assert tables["adk_sessions"]["exists"]
    assert tables["adk_sessions"]["rows"] == 4
    assert tables["adk_events"]["total_bytes"] > 0
    assert data["pool"]["max_size"] == 4  # psycopg_pool's default min_size
    assert data["server"]["version"]


def test_doctor_without_tables_says_to_init(cli: Any, dsn: str) -> None:
    result = cli("doctor", "--dsn", dsn, code=1)
    assert "FAIL  schema" in result.stdout
    assert "the sqlspec tables do not exist" in result.stdout
    assert "create them with `sqlspec-adk init`" in result.stdout
    data = json.loads(cli("doctor", "--dsn", dsn, "--json", code=1).stdout)
    assert data["ok"] is False
    assert data["schema"]["version"] is None


def test_doctor_reports_pending_migration_and_expired_sessions(
    cli: Any, dsn: str, seeded: Any
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE adk_sessions SET expire_time = now() - interval '1 hour'")
    result = cli("doctor", "--dsn", dsn)
    assert "4 expired session(s) still stored" in result.stdout
    assert "sqlspec-adk prune" in result.stdout
    _downgrade_to_version_1(dsn)
    data = json.loads(cli("doctor", "--dsn", dsn, "--json", code=1).stdout)
    schema = next(c for c in data["checks"] if c["name"] == "schema")
    assert schema["status"] == "error"
    assert "sqlspec-adk migrate" in schema["advice"]


def test_doctor_pool_too_big_for_the_server(cli: Any, dsn: str, seeded: Any) -> None:
    result = cli("doctor", "--dsn", dsn, "--workers", "100000", code=1)
    assert "FAIL  pool" in result.stdout
    assert "max_size 4 x 100000 process(es) = 400000 connections" in result.stdout
    assert "raise max_connections" in result.stdout


def test_doctor_reads_pool_and_tables_from_a_service_uri(cli: Any, dsn: str) -> None:
    uri = service_uri(dsn, max_size=7, min_size=2, session_table="agent_sessions")
    cli("init", "--dsn", uri)
    data = json.loads(cli("doctor", "--dsn", uri, "--json").stdout)
    assert data["ok"] is True
    assert (data["pool"]["min_size"], data["pool"]["max_size"]) == (2, 7)
    assert next(t["name"] for t in data["tables"]) == "agent_sessions"


def test_doctor_finds_adk_tables_to_import(cli: Any, dsn: str, seeded: Any) -> None:
    make_adk_tables(dsn)
    result = cli("doctor", "--dsn", dsn)
    assert "INFO  adk-tables" in result.stdout
    assert "sqlspec-adk import-adk" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_doctor_on_an_unreachable_server(cli: Any) -> None:
    dsn = f"host=127.0.0.1 port={free_port()} user=u password=sekrit dbname=d"
    result = cli("doctor", "--dsn", dsn, code=1)
    assert "FAIL  connection" in result.stdout
    assert "is the server running" in result.stdout
    assert "sekrit" not in result.output
    data = json.loads(cli("doctor", "--dsn", dsn, "--json", code=1).stdout)
    assert data["ok"] is False
    assert data["checks"][0]["name"] == "connection"


# ------------------------------------------------------------------------ sessions


def test_sessions_list(cli: Any, dsn: str, seeded: Any) -> None:
    out = cli("sessions", "list", "--dsn", dsn).stdout
    rows = [line for line in out.splitlines() if "│" in line and "updated" not in line]
    assert [row.split("│")[5].strip() for row in rows] == ["old", "b1", "new", "c1"]
    assert '{"notes": ["old note"]' in out
    assert "4 session(s)" in out

    data = json.loads(cli("sessions", "list", "--dsn", dsn, "--json").stdout)
    assert [s["session_id"] for s in data] == ["old", "b1", "new", "c1"]
    first = data[0]
    assert (first["app_name"], first["user_id"]) == ("shop", "alice")
    assert first["state"] == {"notes": ["old note"], "user:seen": True, "app:total": 1}
    assert first["updated"].endswith("+00:00")

    def ids(*args: str) -> list[str]:
        listing = cli("sessions", "list", "--dsn", dsn, "--json", *args).stdout
        return [s["session_id"] for s in json.loads(listing)]

    assert ids("--app", "shop") == ["old", "b1", "new"]
    assert ids("--app", "shop", "--user", "alice") == ["old", "new"]
    assert ids("--user", "carol") == ["c1"]
    assert ids("--older-than", "1d") == ["old", "b1"]
    assert ids("--older-than", "3d", "--app", "shop") == ["old"]
    assert ids("--older-than", "12h30m") == ["old", "b1"]
    assert ids("--limit", "2") == ["old", "b1"]
    assert ids("--app", "nope") == []
    limited = cli("sessions", "list", "--dsn", dsn, "--limit", "1").stdout
    assert "more match: raise --limit" in limited
    assert "No sessions match." in cli("sessions", "list", "--dsn", dsn, "--app", "x").stdout


def test_sessions_list_bad_age_is_a_usage_error(cli: Any, dsn: str) -> None:
    result = cli("sessions", "list", "--dsn", dsn, "--older-than", "3 fortnights", code=2)
    assert "is not a duration" in result.output


def test_sessions_show_prints_the_conversation(cli: Any, dsn: str, seeded: Any) -> None:
    out = cli("sessions", "show", "old", "--dsn", dsn, "--app", "shop", "--user", "alice").stdout
    assert "Session old  app shop  user alice" in out
    assert "user   " in out
    assert "old note" in out
    assert '-> remember(note="old note")' in out
    assert '<- remember: {"remembered": "old note"}' in out
    assert 'state: notes = ["old note"] · user:seen = true · app:total = 1' in out
    assert "Noted: old note" in out
    assert "4 event(s)" in out
    last = cli(
        "sessions", "show", "old", "--dsn", dsn, "--app", "shop", "--user", "alice", "--last", "1"
    ).stdout
    assert "1 event(s)" in last
    assert "-> remember" not in last


def test_sessions_show_json_has_the_stored_events(cli: Any, dsn: str, seeded: Any) -> None:
    result = cli("sessions", "show", "b1", "--dsn", dsn, "--app", "shop", "--user", "bob", "--json")
    data = json.loads(result.stdout)
    stored = seeded.get_session(app_name="shop", user_id="bob", session_id="b1")
    assert data["state"] == stored.state
    assert [Event.model_validate(e) for e in data["events"]] == stored.events
    assert data["last_update_time"] == stored.last_update_time


def test_sessions_show_missing(cli: Any, dsn: str, seeded: Any) -> None:
    result = cli("sessions", "show", "zz", "--dsn", dsn, "--app", "shop", "--user", "bob", code=1)
    assert result.stderr.strip() == "error: no session 'zz' for app 'shop' and user 'bob'"


def test_sessions_delete_by_id(cli: Any, dsn: str, seeded: Any) -> None:
    args = ("--dsn", dsn, "--app", "shop", "--user", "alice")
    dry = cli("sessions", "delete", "old", *args, "--dry-run")
    assert "Would delete session old." in dry.stdout
    assert seeded.get_session(app_name="shop", user_id="alice", session_id="old") is not None
    assert "Deleted session old." in cli("sessions", "delete", "old", *args).stdout
    assert seeded.get_session(app_name="shop", user_id="alice", session_id="old") is None
    data = json.loads(cli("sessions", "delete", "new", "gone", *args, "--json", code=1).stdout)
    assert data["deleted"] == ["new"]
    assert data["missing"] == ["gone"]
    missing = cli("sessions", "delete", "old", *args, code=1)
    assert "no session 'old' for app 'shop' and user 'alice'" in missing.stderr
    needs = cli("sessions", "delete", "b1", "--dsn", dsn, "--app", "shop", code=1)
    assert "deleting by id needs --app and --user" in needs.stderr


def test_sessions_delete_by_age(cli: Any, dsn: str, seeded: Any) -> None:
    assert (
        "name session ids, or --older-than"
        in cli("sessions", "delete", "--dsn", dsn, code=1).stderr
    )
    dry = cli("sessions", "delete", "--dsn", dsn, "--older-than", "1d", "--dry-run")
    assert "Would delete 2 session(s) and 8 event(s)" in dry.stdout
    refused = cli("sessions", "delete", "--dsn", dsn, "--older-than", "1d", input="n\n", code=1)
    assert "Delete 2 session(s) of every app with 8 event(s)?" in refused.output
    assert "nothing deleted" in refused.stderr
    no_yes = cli("sessions", "delete", "--dsn", dsn, "--older-than", "1d", "--json", code=1)
    assert "refusing to delete without --yes" in no_yes.stderr
    done = cli(
        "sessions", "delete", "--dsn", dsn, "--older-than", "1d", "--app", "shop", input="y\n"
    )
    assert "Deleted 2 session(s) and 8 event(s) of app shop (idle more than 1d, or expired)." in (
        done.stdout
    )
    data = json.loads(
        cli("sessions", "delete", "--dsn", dsn, "--older-than", "0s", "--yes", "--json").stdout
    )
    assert (data["sessions"], data["events"], data["dry_run"]) == (2, 8, False)
    assert seeded.list_sessions(app_name="shop").sessions == []


# --------------------------------------------------------------------------- prune


def test_prune(cli: Any, dsn: str, seeded: Any) -> None:
    dry = cli("prune", "--dsn", dsn, "--older-than", "1d", "--dry-run")
    assert "Would delete 2 session(s) and 8 event(s) (idle more than 1d, or expired)." in (
        dry.stdout
    )
    data = json.loads(
        cli("prune", "--dsn", dsn, "--older-than", "5d", "--app", "shop", "--json").stdout
    )
    assert data == {
        "dry_run": False,
        "older_than_seconds": 5 * DAY,
        "app_name": "shop",
        "user_id": None,
        "sessions": 1,
        "events": 4,
    }
    assert "Deleted 0 session(s) and 0 event(s) (expired)." in cli("prune", "--dsn", dsn).stdout
    assert "Deleted 1 session(s)" in cli("prune", "--dsn", dsn, "--older-than", "1d").stdout
    remaining = [s.id for s in seeded.list_sessions(app_name="shop").sessions]
    assert remaining == ["new"]


# ------------------------------------------------------------------ export / import


def copy_uri(dsn: str) -> str:
    """The same database, other tables: an import target beside the source."""
    return service_uri(
        dsn,
        session_table="copy_sessions",
        events_table="copy_events",
        app_state_table="copy_app_states",
        user_state_table="copy_user_states",
    )


def copy_store(dsn: str) -> PsycopgSyncADKStore:
    return PsycopgSyncADKStore(
        PsycopgSyncConfig(connection_config=pool_config(dsn)),
        session_table="copy_sessions",
        events_table="copy_events",
        app_state_table="copy_app_states",
        user_state_table="copy_user_states",
    )


def assert_same_sessions(source: PsycopgSyncADKStore, target: PsycopgSyncADKStore) -> None:
    for app_name, user, session_id, _ in SESSIONS:
        a = source.get_session(app_name=app_name, user_id=user, session_id=session_id)
        b = target.get_session(app_name=app_name, user_id=user, session_id=session_id)
        assert a is not None
        assert b is not None
        assert (a.state, a.events, a.last_update_time) == (b.state, b.events, b.last_update_time)


@pytest.mark.parametrize("name", ["dump.jsonl", "dump.jsonl.gz"])
def test_export_to_a_file_and_import_it(
    cli: Any, dsn: str, seeded: Any, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    exported = cli("export", str(path), "--dsn", dsn)
    assert f"Exported 2 app states, 3 user states, 4 sessions, 16 events to {path}." in (
        exported.stdout
    )
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    else:
        lines = path.read_text().splitlines()
    assert len(lines) == 25
    assert not list(tmp_path.glob("*.partial"))

    imported = cli("import", str(path), "--dsn", copy_uri(dsn))
    assert "sessions    │        4 │                   0" in imported.stdout
    target = copy_store(dsn)
    try:
        assert_same_sessions(seeded, target)
    finally:
        target.close()
    again = json.loads(cli("import", str(path), "--dsn", copy_uri(dsn), "--json").stdout)
    assert again["imported"]["session"] == 0
    assert again["skipped"]["event"] == 16


def test_export_json_summary_and_filters(cli: Any, dsn: str, seeded: Any, tmp_path: Path) -> None:
    path = tmp_path / "shop.jsonl"
    data = json.loads(cli("export", str(path), "--dsn", dsn, "--app", "shop", "--json").stdout)
    assert data == {
        "output": str(path),
        "lines": {"app_state": 1, "user_state": 2, "session": 3, "event": 12},
    }
    alice = cli("export", "-", "--dsn", dsn, "--app", "shop", "--user", "alice").stdout
    kinds = [json.loads(line)["kind"] for line in alice.splitlines()]
    assert kinds.count("session") == 2
    assert kinds.count("event") == 8


def test_export_to_stdout_and_import_from_stdin(cli: Any, dsn: str, seeded: Any) -> None:
    result = cli("export", "-", "--dsn", dsn)
    lines = result.stdout.splitlines()
    assert len(lines) == 25
    assert all(json.loads(line)["kind"] for line in lines)
    assert "Exported 2 app states, 3 user states, 4 sessions, 16 events." in result.stderr
    summary = cli("export", "-", "--dsn", dsn, "--json")
    assert json.loads(summary.stderr)["lines"]["event"] == 16
    imported = json.loads(
        cli("import", "-", "--dsn", copy_uri(dsn), "--json", input=result.stdout).stdout
    )
    assert imported["input"] == "-"
    assert imported["imported"] == {"app_state": 2, "user_state": 3, "session": 4, "event": 16}
    target = copy_store(dsn)
    try:
        assert_same_sessions(seeded, target)
    finally:
        target.close()


def test_import_refuses_bad_lines_and_keeps_nothing(cli: Any, dsn: str, seeded: Any) -> None:
    good = cli("export", "-", "--dsn", dsn).stdout
    bad = cli("import", "-", "--dsn", copy_uri(dsn), input=good + "{oops\n", code=1)
    assert bad.stderr.startswith("error: line 26 is not JSON")
    assert len(bad.stderr.strip().splitlines()) == 1
    wrong = cli("import", "-", "--dsn", copy_uri(dsn), input='{"kind": "cat"}\n', code=1)
    assert "line 1 is not a sqlspec export line" in wrong.stderr
    target = copy_store(dsn)
    try:
        assert target.list_sessions(app_name="shop").sessions == []
    finally:
        target.close()


def test_import_missing_file(cli: Any, dsn: str, tmp_path: Path) -> None:
    result = cli("import", str(tmp_path / "nope.jsonl"), "--dsn", dsn, code=1)
    assert result.stderr.strip() == f"error: No such file or directory: {tmp_path / 'nope.jsonl'}"


def test_progress_bars_on_request(cli: Any, dsn: str, seeded: Any, tmp_path: Path) -> None:
    path = tmp_path / "dump.jsonl.gz"
    cli("export", str(path), "--dsn", dsn, "--progress")
    result = cli("import", str(path), "--dsn", copy_uri(dsn), "--progress")
    assert "reading" in result.stderr
    make_adk_tables(dsn)
    adk = cli("import-adk", "--dsn", dsn, "--progress")
    assert "sessions" in adk.stderr


# ---------------------------------------------------------------------- import-adk


def make_adk_tables(dsn: str) -> None:
    """ADK DatabaseSessionService's v1 tables, as it creates them on PostgreSQL, with data."""
    event = Event(
        id="e1",
        author="user",
        invocation_id="i1",
        timestamp=1_700_000_000.123456,
        content=types.Content(role="user", parts=[types.Part(text="hello from ADK")]),
        actions=EventActions(state_delta={"k": 2}),
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE adk_internal_metadata (key VARCHAR(128) PRIMARY KEY, value VARCHAR(256));
            INSERT INTO adk_internal_metadata VALUES ('schema_version', '1');
            CREATE TABLE sessions (app_name VARCHAR(128), user_id VARCHAR(128), id VARCHAR(128),
                state JSONB, create_time TIMESTAMP, update_time TIMESTAMP,
                PRIMARY KEY (app_name, user_id, id));
            CREATE TABLE events (id VARCHAR(128), app_name VARCHAR(128), user_id VARCHAR(128),
                session_id VARCHAR(128), invocation_id VARCHAR(256), "timestamp" TIMESTAMP,
                event_data JSONB, PRIMARY KEY (id, app_name, user_id, session_id));
            CREATE TABLE app_states (app_name VARCHAR(128) PRIMARY KEY, state JSONB,
                update_time TIMESTAMP);
            CREATE TABLE user_states (app_name VARCHAR(128), user_id VARCHAR(128), state JSONB,
                update_time TIMESTAMP, PRIMARY KEY (app_name, user_id));
            INSERT INTO app_states VALUES ('legacy', '{"a": 1}', '2023-11-14 22:13:20');
            INSERT INTO user_states VALUES ('legacy', 'dave', '{"u": 1}', '2023-11-14 22:13:20');
            INSERT INTO sessions VALUES ('legacy', 'dave', 'd1', '{"k": 2}',
                '2023-11-14 22:13:19', '2023-11-14 22:13:20.123456');
            """
        )
        conn.execute(
            "INSERT INTO events VALUES ('e1', 'legacy', 'dave', 'd1', 'i1', "
            "'2023-11-14 22:13:20.123456', %s)",
            (psycopg.types.json.Jsonb(event.model_dump(mode="json", exclude_none=True)),),
        )


def test_import_adk(cli: Any, dsn: str, store: PsycopgSyncADKStore) -> None:
    make_adk_tables(dsn)
    out = cli("import-adk", "--dsn", dsn).stdout
    assert "sessions    │        1 │                   0" in out
    assert "events      │        1 │                   0" in out
    session = store.get_session(app_name="legacy", user_id="dave", session_id="d1")
    assert session is not None
    assert session.state == {"k": 2, "app:a": 1, "user:u": 1}
    assert [e.content.parts[0].text for e in session.events if e.content and e.content.parts] == [
        "hello from ADK"
    ]
    assert session.last_update_time == 1_700_000_000.123456
    data = json.loads(cli("import-adk", "--dsn", dsn, "--from-dsn", dsn, "--json").stdout)
    assert data["schema_version"] == "1"
    assert data["imported"]["session"] == 0
    assert data["skipped"]["event"] == 1


def test_import_adk_without_adk_tables(cli: Any, dsn: str) -> None:
    result = cli("import-adk", "--dsn", dsn, code=1)
    assert "no ADK DatabaseSessionService tables (sessions, events)" in result.stderr


def test_import_adk_refuses_the_pickle_schema(cli: Any, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE sessions (id text)")
        conn.execute("CREATE TABLE events (id text, actions bytea)")
    result = cli("import-adk", "--dsn", dsn, code=1)
    assert "legacy v0 schema" in result.stderr
    assert "adk migrate session" in result.stderr


def test_import_adk_unreachable_source(cli: Any, dsn: str) -> None:
    source = f"postgresql+psycopg://u:sekrit@127.0.0.1:{free_port()}/adk"
    result = cli("import-adk", "--dsn", dsn, "--from-dsn", source, code=1)
    assert "cannot connect to the ADK database" in result.stderr
    assert "sekrit" not in result.output


# ---------------------------------------------------------------------------- demo


def test_demo_human_and_json(cli: Any, dsn: str) -> None:
    data = json.loads(cli("demo", "--dsn", dsn, "-m", "I like tea.", "--json").stdout)
    assert data["resumed"] is False
    assert data["replies"] == ["Noted: 'I like tea.'. I now know 1 thing(s) about you."]
    assert data["session"]["events"] == 4
    assert data["session"]["state"]["notes"] == ["I like tea."]
    human = cli("demo", "--dsn", dsn, "-m", "I live in Porto.").stdout
    assert "resuming conversation 'demo_session' with 4 stored events" in human
    assert "agent > Noted: 'I live in Porto.'. I now know 2 thing(s) about you." in human


# ---------------------------------------------------------------- errors everywhere


COMMANDS = [
    ["init"],
    ["migrate"],
    ["sessions", "list"],
    ["sessions", "show", "s", "--app", "a", "--user", "u"],
    ["sessions", "delete", "s", "--app", "a", "--user", "u"],
    ["prune", "--older-than", "30d"],
    ["export", "-"],
    ["import", "-"],
    ["import-adk"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_unreachable_server_is_one_line_and_exit_1(cli: Any, command: list[str]) -> None:
    dsn = f"postgresql://u:sekrit@127.0.0.1:{free_port()}/d?connect_timeout=3"
    result = cli(*command, "--dsn", dsn, code=1, input="")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot connect to "), result.stderr
    assert "sekrit" not in result.output


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c[0] not in ("init", "import", "import-adk", "demo")]
)
def test_missing_tables_say_to_init(cli: Any, dsn: str, command: list[str]) -> None:
    if command[0] == "migrate":
        command = ["migrate", "--check"]
    result = cli(*command, "--dsn", dsn, code=1)
    assert "sqlspec-adk init" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_dsn_and_bad_uri_parameters(cli: Any, dsn: str) -> None:
    bad = cli("sessions", "list", "--dsn", "not a conninfo", code=1)
    assert bad.stderr.startswith("error: --dsn is not a valid conninfo or URL")
    uri = cli("sessions", "list", "--dsn", service_uri(dsn, max_size="many"), code=1)
    assert uri.stderr.strip() == "error: max_size must be int, got 'many'"


def test_dsn_from_the_environment(dsn: str, seeded: Any) -> None:
    runner = CliRunner(env={"COLUMNS": "200", "SQLSPEC_DSN": dsn})
    result = runner.invoke(app, ["sessions", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 4
