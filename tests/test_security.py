"""Security: isolation between users, injection, no code from the database, no leaked
passwords, and a least-privilege database role.

- user B can neither read, list, append to nor delete user A's sessions, whatever
  id B spells (wildcards, case, blanks, invisible characters included);
- injection strings through every public parameter never execute: every statement
  the stores send is checked to carry caller values only as parameters, and a
  canary table and the catalogue are unchanged afterwards;
- nothing read from the database is unpickled or evaluated: rows crafted by hand
  (a pickle in ``actions``, ``__reduce__``/``py/object`` shapes in JSON) stay data;
- passwords in conninfos never show in errors (their whole chain and traceback),
  logs, reprs, or the ``sqlspec-adk demo`` output, against a throwaway server that
  really checks passwords (``scram-sha-256``);
- the service works under a role that may only SELECT/INSERT/UPDATE/DELETE the
  store's tables, created by a privileged role.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import pickle
import re
import secrets
import subprocess
import sys
import time
import traceback
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.genai import types
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

import sqlspec
from proxy import ThrowawayServer
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

APP = "sec-app"
ALICE = "alice"
TABLES = ("adk_sessions", "adk_events", "adk_app_states", "adk_user_states")
STORE_KINDS: list[tuple[Any, Any]] = [
    (PsycopgAsyncConfig, PsycopgAsyncADKStore),
    (PsycopgSyncConfig, PsycopgSyncADKStore),
]


def text_event(text: str, **delta: Any) -> Event:
    return Event(
        author="user",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta),
    )


# ------------------------------------------------------------------ isolation

#: Ids user B might use to reach alice's data: none may match hers.
LOOKALIKES = ["bob", "%", "_lice", "a%", "ALICE", "alice ", " alice", "alice\u200b", "alic", ".*"]


@pytest.mark.parametrize("intruder", LOOKALIKES, ids=repr)
async def test_another_user_cannot_read_list_append_or_delete(
    db_service: Any, intruder: str
) -> None:
    mine = await db_service.create_session(
        app_name=APP, user_id=ALICE, session_id="shared-id", state={"secret": 1, "user:pin": 1234}
    )
    await db_service.append_event(mine, text_event("private", k="v"))
    before = await db_service.get_session(app_name=APP, user_id=ALICE, session_id="shared-id")

    # Read and list.
    assert (
        await db_service.get_session(app_name=APP, user_id=intruder, session_id="shared-id") is None
    )
    for sid in ("%", "shared%", "_hared-id", "SHARED-ID"):
        assert await db_service.get_session(app_name=APP, user_id=ALICE, session_id=sid) is None
    listed = await db_service.list_sessions(app_name=APP, user_id=intruder)
    assert listed.sessions == []
    assert await db_service.get_user_state(app_name=APP, user_id=intruder) == {}
    # Append: through a session object naming the intruder, or alice's object re-labelled.
    for forged in (
        Session(id="shared-id", app_name=APP, user_id=intruder),
        before.model_copy(update={"user_id": intruder}),
    ):
        with pytest.raises(SessionNotFoundError):
            await db_service.append_event(forged, text_event("forged", secret=0, **{"user:pin": 0}))
    # Delete.
    await db_service.delete_session(app_name=APP, user_id=intruder, session_id="shared-id")
    # The intruder's own session with the same id is separate, state and all.
    theirs = await db_service.create_session(
        app_name=APP, user_id=intruder, session_id="shared-id", state={"user:pin": 0}
    )
    await db_service.append_event(theirs, text_event("theirs", secret=0))

    after = await db_service.get_session(app_name=APP, user_id=ALICE, session_id="shared-id")
    assert after == before
    assert await db_service.get_user_state(app_name=APP, user_id=ALICE) == {"pin": 1234}
    alice_list = await db_service.list_sessions(app_name=APP, user_id=ALICE)
    assert [(s.user_id, s.id) for s in alice_list.sessions] == [(ALICE, "shared-id")]


async def test_apps_are_isolated_too(db_service: Any) -> None:
    await db_service.create_session(
        app_name=APP, user_id=ALICE, session_id="s", state={"app:key": "a"}
    )
    for other in ("sec-app2", "SEC-APP", "sec-%", "sec_app"):
        assert await db_service.get_session(app_name=other, user_id=ALICE, session_id="s") is None
        assert (await db_service.list_sessions(app_name=other)).sessions == []
        created = await db_service.create_session(app_name=other, user_id=ALICE, session_id="s")
        assert "app:key" not in created.state


# ------------------------------------------------------------------ injection

INJECTIONS = [
    "'; DROP TABLE canary; --",
    '"; DROP TABLE canary; --',
    "x') OR 1=1; DELETE FROM adk_sessions; --",
    "$$; DROP TABLE canary; $$",
    "%s; DROP TABLE canary",
    "%(app_name)s",
    "{sessions}",
    "\\'; DROP TABLE canary; --",
    "1; SELECT pg_sleep(10)",
    "'||(SELECT pg_sleep(10))||'",
    "{a,b}",
    "a->>'b'",
    "#>'{a}'",
    "E'\\x27'",
    "U&'\\0027'",
]


class StatementLog:
    """Every statement the stores send, as (query text, parameters)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def record(self, cur: Any, query: Any, params: Any) -> None:
        if isinstance(query, (sql.Composable,)):
            text = query.as_string(cur.connection)
        elif isinstance(query, bytes):
            text = query.decode()
        else:
            text = str(query)
        self.sent.append((text, params))


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> StatementLog:
    log = StatementLog()
    sync_execute = psycopg.Cursor.execute
    async_execute = psycopg.AsyncCursor.execute

    def traced(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        log.record(self, query, params)
        return sync_execute(self, query, params, **kwargs)

    async def traced_async(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        log.record(self, query, params)
        return await async_execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", traced)
    monkeypatch.setattr(psycopg.AsyncCursor, "execute", traced_async)
    return log


def catalogue(dsn: str) -> tuple[list[Any], Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        canary = conn.execute("SELECT x FROM canary").fetchall()
    return tables, canary


async def test_injection_through_every_parameter_never_executes(
    db_service: Any, dsn: str, statements: StatementLog
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE canary (x int)")
        conn.execute("INSERT INTO canary VALUES (42)")
    before = catalogue(dsn)
    started = time.monotonic()
    for payload in INJECTIONS:
        ids = {"app_name": payload, "user_id": payload}
        state = {payload: payload, f"app:{payload}": payload, f"user:{payload}": [payload]}
        session = await db_service.create_session(**ids, session_id=payload, state=state)
        event = Event(
            id=payload,
            invocation_id=payload,
            author=payload,
            branch=payload,
            error_code=payload,
            error_message=payload,
            custom_metadata={payload: payload},
            content=types.Content(role="user", parts=[types.Part(text=payload)]),
            actions=EventActions(state_delta={payload: {payload: payload}}),
        )
        await db_service.append_event(session, event)
        await db_service.append_event(session, event)  # an identical retry, matched by id
        got = await db_service.get_session(
            **ids, session_id=payload, config=GetSessionConfig(num_recent_events=5)
        )
        assert got is not None
        assert got.events == [event]
        assert got.state[payload] == {payload: payload}
        assert got.state[f"app:{payload}"] == payload
        assert (await db_service.list_sessions(app_name=payload)).sessions[0].id == payload.strip()
        assert await db_service.get_user_state(**ids) == {payload: [payload]}
        await db_service.delete_session(**ids, session_id=payload)
        assert await db_service.get_session(**ids, session_id=payload) is None
    assert time.monotonic() - started < 10, "an injected pg_sleep ran"
    assert catalogue(dsn) == before
    # Caller values only ever travelled as parameters, never in the statement text.
    assert statements.sent, "no statement was traced"
    executable = [p for p in INJECTIONS if re.search(r"DROP|DELETE|pg_sleep|OR 1=1", p)]
    for text, _params in statements.sent:
        for payload in executable:
            assert payload not in text, (payload, text[:200])


# ----------------------------------------------------- nothing is deserialized


class Detonator:
    """A pickle that, if ever unpickled, leaves a file behind."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).touch, ())


def test_the_library_source_has_no_deserializer_that_runs_code() -> None:
    src = Path(sqlspec.__file__).resolve().parent
    pattern = re.compile(
        r"\bimport (pickle|marshal|shelve|dill|cloudpickle|jsonpickle)\b|\bpickle\.loads?\b|"
        r"(?<![\w.])eval\(|(?<![\w.])exec\(|yaml\.load\(|yaml\.unsafe_load"
    )
    offenders = [
        f"{path.relative_to(src)}:{n}: {line.strip()}"
        for path in src.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("protocol", [0, 2, 5])
async def test_a_pickle_planted_in_actions_is_never_unpickled(
    db_service: Any, dsn: str, tmp_path: Path, protocol: int
) -> None:
    flag = tmp_path / "unpickled"
    session = await db_service.create_session(app_name=APP, user_id=ALICE, session_id="s")
    await db_service.append_event(session, text_event("hello", k=1))
    payload = pickle.dumps(Detonator(str(flag)), protocol=protocol)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE adk_events SET actions = %s", (payload,))
    outcome = "read"
    try:
        got = await db_service.get_session(app_name=APP, user_id=ALICE, session_id="s")
        assert got is not None
    except Exception as exc:  # a corrupted row may be refused, but never executed
        outcome = type(exc).__name__
    assert not flag.exists(), "the planted pickle was executed"
    print(f"pickle protocol {protocol} in actions: {outcome}")


async def test_a_hand_corrupted_event_row_is_a_typed_error(db_service: Any, dsn: str) -> None:
    session = await db_service.create_session(app_name=APP, user_id=ALICE, session_id="s")
    await db_service.append_event(session, text_event("hello"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE adk_events SET actions = convert_to(%s, 'UTF8')",
            (pickle.dumps({"k": 1}, protocol=0).decode(),),
        )
    with pytest.raises(sqlspec.SQLSpecError):
        await db_service.get_session(app_name=APP, user_id=ALICE, session_id="s")


async def test_code_shaped_json_stays_data(db_service: Any, dsn: str, tmp_path: Path) -> None:
    flag = tmp_path / "evaluated"
    shapes: dict[str, Any] = {
        "py/object": "os.system",
        "py/reduce": [{"py/function": "pathlib.Path.touch"}, {"py/tuple": [str(flag)]}],
        "__reduce__": ["posix.system", [f"touch {flag}"]],
        "__class__": "subprocess.Popen",
        "!!python/object/apply:os.system": [f"touch {flag}"],
        "pickle": base64.b64encode(pickle.dumps(Detonator(str(flag)))).decode(),
        "expr": f"__import__('os').system('touch {flag}')",
    }
    session = await db_service.create_session(app_name=APP, user_id=ALICE, session_id="s")
    await db_service.append_event(session, text_event("hello"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        jsonb = Jsonb(shapes)
        conn.execute("UPDATE adk_sessions SET state = %s", (jsonb,))
        conn.execute(
            "INSERT INTO adk_user_states (app_name, user_id, state) VALUES (%s, %s, %s) "
            "ON CONFLICT (app_name, user_id) DO UPDATE SET state = EXCLUDED.state",
            (APP, ALICE, jsonb),
        )
        conn.execute(
            "UPDATE adk_events SET custom_metadata = %s, actions = convert_to(%s, 'UTF8')",
            (jsonb, json.dumps({"state_delta": shapes})),
        )
    got = await db_service.get_session(app_name=APP, user_id=ALICE, session_id="s")
    assert got is not None
    assert {k: v for k, v in got.state.items() if not k.startswith("user:")} == shapes
    assert got.events[0].custom_metadata == shapes
    assert got.events[0].actions.state_delta == shapes
    assert await db_service.get_user_state(app_name=APP, user_id=ALICE) == shapes
    assert not flag.exists()


# ------------------------------------------------------------------ passwords


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[ThrowawayServer, str, str]]:
    """A throwaway server that checks passwords over TCP, a role on it, and its password."""
    server = ThrowawayServer()
    role = "sec_app_user"
    right = "Right-" + secrets.token_hex(8)
    try:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(right)
                )
            )
            conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role)))
        server.write_hba(
            [
                "local all all trust",
                "host all postgres 127.0.0.1/32 trust",
                "host all all 127.0.0.1/32 scram-sha-256",
            ]
        )
        yield server, role, right
    finally:
        server.destroy()


async def failure_of(awaitable: Any) -> BaseException:
    """The exception ``awaitable`` raises; fail the test if it succeeds."""
    try:
        await awaitable
    except Exception as exc:
        return exc
    raise AssertionError("the call succeeded")


async def connect_directly(config: Any) -> None:
    conn = config.create_connection()
    if asyncio.iscoroutine(conn):
        conn = await conn
    conn.close()


def secret_forms(password: str) -> list[str]:
    return [password, urllib.parse.quote(password, safe=""), password[2:-2]]


def leaked(password: str, *texts: str) -> list[str]:
    return [text[:300] for text in texts for form in secret_forms(password) if form in text]


def exception_texts(exc: BaseException) -> list[str]:
    texts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), *map(str, current.args)]
        current = current.__cause__ or current.__context__
    texts.append("".join(traceback.format_exception(exc)))
    return texts


@pytest.mark.parametrize("form", ["url", "key"])
async def test_wrong_password_never_shows_in_errors_logs_or_reprs(
    password_server: tuple[ThrowawayServer, str, str],
    caplog: pytest.LogCaptureFixture,
    form: str,
) -> None:
    server, role, _ = password_server
    wrong = "Wr0ng-S3cret-" + secrets.token_hex(6)
    if form == "url":
        quoted = urllib.parse.quote(wrong, safe="")
        settings: dict[str, Any] = {
            "conninfo": f"postgresql://{role}:{quoted}@127.0.0.1:{server.port}/postgres"
        }
    else:
        settings = {
            "conninfo": server.conninfo_for(user=role, dbname="postgres"),
            "password": wrong,
        }
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for config_class, store_class in STORE_KINDS:
        config = config_class(connection_config={**settings, "min_size": 1, "timeout": 2.0})
        store = store_class(config)
        service = SQLSpecSessionService(store)
        texts += [
            repr(config),
            repr(config.settings),
            repr(store),
            repr(service),
            str(config.__dict__.get("settings")),
        ]
        texts += exception_texts(
            await failure_of(service.get_session(app_name=APP, user_id=ALICE, session_id="s"))
        )
        texts += exception_texts(await failure_of(connect_directly(config)))
        await service.close()
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert not leaked(wrong, *texts)
    assert any("password authentication failed" in t for t in texts)


async def test_wrong_password_fails_fast_with_the_cause(
    password_server: tuple[ThrowawayServer, str, str],
) -> None:
    server, role, _ = password_server
    config = PsycopgAsyncConfig(
        connection_config={
            "conninfo": server.conninfo_for(user=role, dbname="postgres", password="nope"),
            "min_size": 1,
            "timeout": 10.0,
        }
    )
    service = SQLSpecSessionService(PsycopgAsyncADKStore(config))
    started = time.monotonic()
    try:
        with pytest.raises(sqlspec.SQLSpecError, match="password authentication failed"):
            await service.get_session(app_name=APP, user_id=ALICE, session_id="s")
        assert time.monotonic() - started < 5
    finally:
        await service.close()


def run_cli(args: list[str], env_extra: dict[str, str] | None = None, timeout: float = 120) -> str:
    src = str(Path(sqlspec.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SQLSPEC_"))}
    env.update(PYTHONPATH=src, COLUMNS="500", TERM="dumb", NO_COLOR="1", **(env_extra or {}))
    done = subprocess.run(
        [sys.executable, "-m", "sqlspec.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return f"exit={done.returncode}\n{done.stdout}\n{done.stderr}"


def test_cli_output_never_shows_the_password(
    password_server: tuple[ThrowawayServer, str, str],
) -> None:
    server, role, right = password_server
    wrong = "Wr0ng-Cli-" + secrets.token_hex(6)
    good_url = (
        f"postgresql://{role}:{urllib.parse.quote(right, safe='')}@127.0.0.1:{server.port}/postgres"
    )
    bad_url = (
        f"postgresql://{role}:{urllib.parse.quote(wrong, safe='')}@127.0.0.1:{server.port}/postgres"
    )
    ok = run_cli(["demo", "--dsn", good_url, "-m", "hello"])
    assert ok.startswith("exit=0"), ok[-2000:]
    assert not leaked(right, ok)
    failed = run_cli(["demo", "--dsn", bad_url, "-m", "hello"])
    assert not failed.startswith("exit=0"), failed[-2000:]
    assert not leaked(wrong, failed), failed[-2000:]
    failed_env = run_cli(["demo", "-m", "hello"], env_extra={"SQLSPEC_DSN": bad_url})
    assert not leaked(wrong, failed_env), failed_env[-2000:]


# ------------------------------------------------------------ least privilege


@pytest.fixture
def restricted_role(dsn: str) -> Iterator[str]:
    """A login role that may only read and write rows of the store's four tables."""
    role = f"sqlspec_dml_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    try:
        yield role
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_service_works_under_a_dml_only_role(dsn: str, restricted_role: str) -> None:
    admin = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    await PsycopgAsyncADKStore(admin).create_tables()
    await admin.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.Identifier(table), sql.Identifier(restricted_role)
                )
            )
    as_app = make_conninfo(dsn, user=restricted_role)
    with psycopg.connect(as_app, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (restricted_role,)
        for forbidden in (
            "DROP TABLE adk_events",
            "CREATE TABLE x (i int)",
            "TRUNCATE adk_sessions",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
    for config_class, store_class in STORE_KINDS:
        config = config_class(connection_config={"conninfo": as_app, "min_size": 1})
        service: Any = SQLSpecSessionService(store_class(config))
        user = f"u-{config_class.__name__}"
        session = await service.create_session(
            app_name=APP, user_id=user, state={"k": 1, "app:a": 1, "user:u": 1}
        )
        await service.append_event(session, text_event("one", k=2, **{"app:a": 2, "user:u": 2}))
        await service.append_event(session, text_event("one"))
        got = await service.get_session(app_name=APP, user_id=user, session_id=session.id)
        assert got is not None
        assert got.state == {"k": 2, "app:a": 2, "user:u": 2}
        assert len(got.events) == 2
        assert len((await service.list_sessions(app_name=APP, user_id=user)).sessions) == 1
        assert await service.get_user_state(app_name=APP, user_id=user) == {"u": 2}
        await service.delete_session(app_name=APP, user_id=user, session_id=session.id)
        assert await service.get_session(app_name=APP, user_id=user, session_id=session.id) is None
        await service.close()


async def test_create_tables_under_a_dml_only_role_is_a_no_op_when_current(
    dsn: str, restricted_role: str
) -> None:
    admin = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    await PsycopgAsyncADKStore(admin).create_tables()
    await admin.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in (*TABLES, "sqlspec_adk_schema"):
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.Identifier(table), sql.Identifier(restricted_role)
                )
            )
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": make_conninfo(dsn, user=restricted_role), "min_size": 1}
    )
    try:
        await PsycopgAsyncADKStore(config).create_tables()
    finally:
        await config.close()
