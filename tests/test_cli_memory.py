"""``sqlspec-adk memory``: create the table, add, search and delete memories from a terminal."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from helpers import service_uri
from proxy import free_port
from sqlspec.cli import app


@pytest.fixture
def cli() -> Any:
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SQLSPEC_DSN": None})

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        assert "Traceback" not in result.output
        return result

    return invoke


WHO = ("--app", "shop", "--user", "alice")


def test_init_add_search_delete(cli: Any, dsn: str) -> None:
    assert "Created the memory table adk_memories" in cli("memory", "init", "--dsn", dsn).stdout
    assert "Checked the memory table" in cli("memory", "init", "--dsn", dsn).stdout
    added = cli("memory", "add", "She booked a flight to Lisbon", *WHO, "--id", "m1", "--dsn", dsn)
    assert "Remembered m1" in added.stdout
    again = cli("memory", "add", "anything", *WHO, "--id", "m1", "--dsn", dsn, "--json")
    assert json.loads(again.stdout) == {"id": "m1", "added": False}
    found = cli("memory", "search", "booking flights", *WHO, "--dsn", dsn)
    assert "She booked a flight to Lisbon" in found.stdout
    data = json.loads(cli("memory", "search", "Lisbon", *WHO, "--dsn", dsn, "--json").stdout)
    assert [(m["id"], m["content"]["parts"][0]["text"]) for m in data] == [
        ("m1", "She booked a flight to Lisbon")
    ]
    other_user = cli("memory", "search", "Lisbon", "--app", "shop", "--user", "bob", "--dsn", dsn)
    assert "No memory matches." in other_user.stdout
    assert "Deleted m1." in cli("memory", "delete", "m1", *WHO, "--dsn", dsn).stdout
    cli("memory", "delete", "m1", *WHO, "--dsn", dsn, code=1)
    assert json.loads(cli("memory", "search", "Lisbon", *WHO, "--dsn", dsn, "--json").stdout) == []


def test_prune_forgets_memories_older_than_the_limit(cli: Any, dsn: str) -> None:
    cli("memory", "init", "--dsn", dsn)
    cli("memory", "add", "a fresh memory of tulips", *WHO, "--dsn", dsn)
    dry = json.loads(
        cli("memory", "prune", "--older-than", "1d", "--dry-run", "--json", "--dsn", dsn).stdout
    )
    assert dry == {"memories": 0, "dry_run": True}
    assert (
        "Would delete 1 memory(ies)."
        in cli("memory", "prune", "--older-than", "0s", "--dry-run", "--dsn", dsn).stdout
    )
    assert (
        "Deleted 1 memory(ies)."
        in cli("memory", "prune", "--older-than", "0s", "--dsn", dsn).stdout
    )
    assert "No memory matches." in cli("memory", "search", "tulips", *WHO, "--dsn", dsn).stdout


def test_a_missing_table_says_how_to_create_it(cli: Any, dsn: str) -> None:
    for command in (["search", "x"], ["delete", "m1"]):
        result = cli("memory", *command, *WHO, "--dsn", dsn, code=1)
        assert result.stderr.strip() == (
            "error: the memory table does not exist: create it with `sqlspec-adk memory init`"
        )


def test_the_service_uri_names_the_table(cli: Any, dsn: str) -> None:
    uri = service_uri(dsn, memory_table="agent_memories", text_search_config="simple")
    assert "agent_memories" in cli("memory", "init", "--dsn", uri).stdout
    cli("memory", "add", "réservations confirmées", *WHO, "--dsn", uri)
    assert "réservations" in cli("memory", "search", "réservations", *WHO, "--dsn", uri).stdout


def test_an_unreachable_server_is_one_line(cli: Any) -> None:
    dsn = f"postgresql://u:sekrit@127.0.0.1:{free_port()}/d?connect_timeout=3"
    result = cli("memory", "search", "x", *WHO, "--dsn", dsn, code=1)
    assert result.stderr.startswith("error: cannot connect to ")
    assert "sekrit" not in result.output


def test_doctor_reports_the_memory_table_and_pgvector(cli: Any, dsn: str) -> None:
    cli("init", "--dsn", dsn)
    before = json.loads(cli("doctor", "--dsn", dsn, "--json").stdout)
    checks = {c["name"]: c for c in before["checks"]}
    assert checks["memory"]["status"] == "info"
    assert "sqlspec-adk memory init" in checks["memory"]["advice"]
    assert checks["pgvector"]["status"] in ("ok", "info")
    cli("memory", "init", "--dsn", dsn)
    cli("memory", "add", "one thing to remember", *WHO, "--dsn", dsn)
    after = json.loads(cli("doctor", "--dsn", dsn, "--json").stdout)
    checks = {c["name"]: c for c in after["checks"]}
    assert checks["memory"] == {
        "name": "memory",
        "status": "ok",
        "detail": "adk_memories: 1 memories, search index valid",
        "advice": None,
    }
    assert "adk_memories" in {t["name"] for t in after["tables"]}
    assert after["ok"] is True


def test_export_and_import_carry_memories(cli: Any, dsn: str, tmp_path: Any) -> None:
    cli("init", "--dsn", dsn)
    cli("memory", "init", "--dsn", dsn)
    cli("memory", "add", "the boat is called Marlin", *WHO, "--id", "m1", "--dsn", dsn)
    cli("memory", "add", "the spare oar is in the shed", *WHO, "--id", "m2", "--dsn", dsn)
    cli("memory", "delete", "m2", *WHO, "--dsn", dsn)
    path = tmp_path / "all.jsonl"
    exported = cli("export", str(path), "--dsn", dsn)
    assert "0 events, 2 memories" in exported.stdout
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE adk_memories")
        conn.execute("DELETE FROM sqlspec_adk_schema WHERE session_table = 'adk_memories'")
    data = json.loads(cli("import", str(path), "--dsn", dsn, "--json").stdout)
    assert (data["imported"]["memory"], data["skipped"]["memory"]) == (2, 0)
    assert "Marlin" in cli("memory", "search", "boat", *WHO, "--dsn", dsn).stdout
    # The deleted memory came back as its key: it stays deleted, and cannot be added again.
    assert "No memory matches." in cli("memory", "search", "oar", *WHO, "--dsn", dsn).stdout
    again = cli("memory", "add", "oar", *WHO, "--id", "m2", "--dsn", dsn, "--json")
    assert json.loads(again.stdout)["added"] is False
    rerun = json.loads(cli("import", str(path), "--dsn", dsn, "--json").stdout)
    assert (rerun["imported"]["memory"], rerun["skipped"]["memory"]) == (0, 2)


def test_an_export_without_a_memory_table_has_no_memory_lines(cli: Any, dsn: str) -> None:
    cli("init", "--dsn", dsn)
    result = cli("export", "-", "--dsn", dsn)
    assert result.stdout == ""
    assert "memories" not in result.stderr


def test_memory_init_recreates_a_dropped_search_index(cli: Any, dsn: str) -> None:
    cli("memory", "init", "--dsn", dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_adk_memories_user_search")
    cli("init", "--dsn", dsn)
    doctor = {
        c["name"]: c for c in json.loads(cli("doctor", "--dsn", dsn, "--json").stdout)["checks"]
    }
    assert doctor["memory"]["status"] == "warning"
    assert "sqlspec-adk memory init" in doctor["memory"]["advice"]
    cli("memory", "init", "--dsn", dsn)
    doctor = {
        c["name"]: c for c in json.loads(cli("doctor", "--dsn", dsn, "--json").stdout)["checks"]
    }
    assert doctor["memory"]["status"] == "ok"


def test_import_skips_memory_lines_that_could_not_be_read_back(
    cli: Any, dsn: str, tmp_path: Any
) -> None:
    lines = [
        {"kind": "memory", "app_name": "shop", "user_id": "alice", "id": "no-content"},
        {"kind": "memory", "app_name": "shop", "user_id": "alice", "content": {"parts": []}},
        {
            "kind": "memory",
            "app_name": "shop",
            "user_id": "alice",
            "id": "fine",
            "text": "a kettle",
            "custom_metadata": None,
            "content": {"parts": [{"text": "a kettle"}], "role": "user"},
        },
    ]
    path = tmp_path / "memories.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    data = json.loads(cli("import", str(path), "--dsn", dsn, "--json").stdout)
    assert (data["imported"]["memory"], data["skipped"]["memory"]) == (1, 2)
    found = json.loads(cli("memory", "search", "kettle", *WHO, "--dsn", dsn, "--json").stdout)
    assert [(m["id"], m["custom_metadata"]) for m in found] == [("fine", {})]
