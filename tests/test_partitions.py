"""Events partitioned by month of their session's creation, and prune dropping whole months.

Past months are made as the store makes them when they are current, then filled
through ``import_jsonl``, which keeps a session's creation and update times.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from google.adk.events.event import Event
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from conftest import pool_config
from sqlspec import ImproperConfigurationError
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.cli import app
from sqlspec.registry import parse_service_uri

WEEK = timedelta(days=7)


@pytest.fixture
def store(sync_config: PsycopgSyncConfig) -> PsycopgSyncADKStore:
    store = PsycopgSyncADKStore(sync_config, partitioned_events=True)
    store.create_tables()
    return store


def month(months_ago: int) -> datetime:
    """The first instant of a month, in UTC, ``months_ago`` before the current one."""
    now = datetime.now(timezone.utc)
    index = now.year * 12 + now.month - 1 - months_ago
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def partition(months_ago: int) -> str:
    return f"adk_events_p{month(months_ago):%Y%m}"


def make_month(dsn: str, months_ago: int) -> None:
    """The month's partition, as the store made it while that month was current."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL(
                "CREATE TABLE {} PARTITION OF adk_events FOR VALUES FROM ({}) TO ({})"
            ).format(
                psycopg.sql.Identifier(partition(months_ago)),
                psycopg.sql.Literal(month(months_ago)),
                psycopg.sql.Literal(month(months_ago - 1)),
            )
        )


def old_session(
    store: PsycopgSyncADKStore,
    session_id: str,
    created: datetime,
    *,
    events: int,
    updated: datetime | None = None,
    app_name: str = "a",
) -> None:
    """A session created at ``created`` with ``events`` events, last updated ``updated``."""
    lines = [
        json.dumps(
            {
                "kind": "session",
                "app_name": app_name,
                "user_id": "u",
                "id": session_id,
                "state": {},
                "create_time": created.isoformat(),
                "update_time": (updated or created + timedelta(hours=1)).isoformat(),
            }
        )
    ]
    for i in range(events):
        event = Event(author="user", invocation_id=f"{session_id}-{i}")
        event.timestamp = created.timestamp() + i
        lines.append(
            json.dumps(
                {
                    "kind": "event",
                    "app_name": app_name,
                    "user_id": "u",
                    "session_id": session_id,
                    "event": json.loads(event.model_dump_json(exclude_none=True)),
                }
            )
        )
    result = store.import_jsonl(lines)
    assert result.imported["event"] == events


def partitions_of(dsn: str, session_id: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM adk_events WHERE session_id = %s",
            (session_id,),
        ).fetchall()
    return {name for (name,) in rows}


def exists(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_events_go_to_their_sessions_month(dsn: str, store: PsycopgSyncADKStore) -> None:
    for ahead in range(3):
        assert exists(dsn, partition(-ahead))
    assert exists(dsn, "adk_events_default")
    session = store.create_session(app_name="a", user_id="u", session_id="now")
    store.append_event(session, Event(author="user"))
    store.append_event(session, Event(author="agent"))
    assert partitions_of(dsn, "now") == {partition(0)}
    make_month(dsn, 2)
    old_session(store, "two", month(2) + timedelta(days=3), events=2)
    assert partitions_of(dsn, "two") == {partition(2)}
    old_session(store, "five", month(5) + timedelta(days=3), events=1)
    assert partitions_of(dsn, "five") == {"adk_events_default"}
    loaded = store.get_session(app_name="a", user_id="u", session_id="two")
    assert loaded is not None
    assert [e.invocation_id for e in loaded.events] == ["two-0", "two-1"]


def test_prune_drops_whole_months_with_the_answer_rows_would_give(
    dsn: str, store: PsycopgSyncADKStore
) -> None:
    make_month(dsn, 2)
    make_month(dsn, 1)
    old_session(store, "m2a", month(2) + timedelta(days=1), events=3)
    old_session(store, "m2b", month(2) + timedelta(days=9), events=2)
    old_session(store, "m1a", month(1) + timedelta(days=1), events=1)
    live = datetime.now(timezone.utc)
    old_session(store, "m1b", month(1) + timedelta(days=2), events=4, updated=live)
    old_session(store, "m7", month(7) + timedelta(days=2), events=2)
    session = store.create_session(app_name="a", user_id="u", session_id="now")
    store.append_event(session, Event(author="user"))
    assert store.prune(older_than=WEEK, dry_run=True) == (4, 8)
    assert store.prune(older_than=WEEK) == (4, 8)
    assert not exists(dsn, partition(2))
    assert exists(dsn, partition(1))
    for gone in ("m2a", "m2b", "m1a", "m7"):
        assert store.get_session(app_name="a", user_id="u", session_id=gone) is None
    kept = store.get_session(app_name="a", user_id="u", session_id="m1b")
    assert kept is not None
    assert len(kept.events) == 4
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM adk_events").fetchone() == (5,)
    assert store.prune(older_than=WEEK) == (0, 0)


def test_prune_without_a_cutoff_drops_only_months_of_expired_sessions(
    dsn: str, store: PsycopgSyncADKStore
) -> None:
    make_month(dsn, 2)
    old_session(store, "idle", month(2) + timedelta(days=1), events=2)
    assert store.prune() == (0, 0)
    assert exists(dsn, partition(2))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE adk_sessions SET expire_time = now() - interval '1 day'")
    assert store.prune() == (1, 2)
    assert not exists(dsn, partition(2))


def test_prune_behind_a_long_reader_deletes_the_month_by_rows(
    dsn: str, store: PsycopgSyncADKStore
) -> None:
    make_month(dsn, 2)
    old_session(store, "s", month(2) + timedelta(days=1), events=3)
    with psycopg.connect(dsn) as reader:  # an export, say: a transaction reading events
        reader.execute("SELECT count(*) FROM adk_events")
        assert store.prune(older_than=WEEK) == (1, 3)
    assert exists(dsn, partition(2))
    assert store.get_session(app_name="a", user_id="u", session_id="s") is None


def test_prune_of_one_app_deletes_rows_and_keeps_the_month(
    dsn: str, store: PsycopgSyncADKStore
) -> None:
    make_month(dsn, 2)
    old_session(store, "s", month(2) + timedelta(days=1), events=2, app_name="a")
    old_session(store, "s", month(2) + timedelta(days=1), events=3, app_name="b")
    assert store.prune(older_than=WEEK, app_name="a") == (1, 2)
    assert exists(dsn, partition(2))
    assert store.get_session(app_name="b", user_id="u", session_id="s") is not None


def test_cli_prune_drops_months_of_a_partitioned_table(
    dsn: str, store: PsycopgSyncADKStore
) -> None:
    make_month(dsn, 3)
    old_session(store, "s", month(3) + timedelta(days=1), events=2)
    result = CliRunner(env={"NO_COLOR": "1", "SQLSPEC_DSN": None}).invoke(
        app, ["prune", "--dsn", dsn, "--older-than", "7d"]
    )
    assert result.exit_code == 0, result.output
    assert "Deleted 1 session(s) and 2 event(s)" in result.stdout
    assert not exists(dsn, partition(3))


def test_a_service_uri_asks_for_partitioned_events(dsn: str) -> None:
    uri = "sqlspec:///?" + urlencode({**conninfo_to_dict(dsn), "partitioned_events": "true"})
    assert parse_service_uri(uri).store_options == {"partitioned_events": True}
    runner = CliRunner(env={"NO_COLOR": "1", "SQLSPEC_DSN": None})
    for command in ("init", "migrate"):
        result = runner.invoke(app, [command, "--dsn", uri])
        assert result.exit_code == 0, result.output
    assert exists(dsn, "adk_events_default")
    with pytest.raises(ImproperConfigurationError, match="true or false"):
        parse_service_uri("sqlspec://h/db?partitioned_events=maybe")


@pytest.fixture
def other_config(dsn: str) -> Iterator[PsycopgSyncConfig]:
    config = PsycopgSyncConfig(connection_config=pool_config(dsn))
    yield config
    config.close()


@pytest.mark.parametrize("first", [False, True], ids=["plain-first", "partitioned-first"])
def test_store_and_table_must_agree_on_partitioning(
    sync_config: PsycopgSyncConfig, other_config: PsycopgSyncConfig, first: bool
) -> None:
    PsycopgSyncADKStore(sync_config, partitioned_events=first).create_tables()
    other = PsycopgSyncADKStore(other_config, partitioned_events=not first)
    with pytest.raises(ImproperConfigurationError, match=r"docs/scale-out\.md"):
        other.migrate()


def test_partitioned_events_leave_room_for_the_month_in_names(
    sync_config: PsycopgSyncConfig,
) -> None:
    longest: dict[str, Any] = {"events_table": "e" * 55, "partitioned_events": True}
    PsycopgSyncADKStore(sync_config, **longest)
    with pytest.raises(ImproperConfigurationError, match="too long for partitioned events"):
        PsycopgSyncADKStore(sync_config, events_table="e" * 56, partitioned_events=True)
