"""The README's main command: the demo conversation, persisted and resumed."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from sqlspec.cli import app
from sqlspec.cli.demo import APP_NAME, SESSION_ID, USER_ID


def test_demo_twice_resumes_the_conversation(dsn: str) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--dsn", dsn, "-m", "I like tea."])
    assert first.exit_code == 0, first.output
    assert f"new conversation {SESSION_ID!r}" in first.output
    assert "Noted: 'I like tea.'. I now know 1 thing(s) about you." in first.output

    second = runner.invoke(app, ["demo", "-m", "I live in Porto."], env={"SQLSPEC_DSN": dsn})
    assert second.exit_code == 0, second.output
    assert "resuming conversation" in second.output
    assert "with 4 stored events" in second.output
    assert "I now know 2 thing(s) about you." in second.output


def test_a_new_conversation_recalls_the_earlier_one_through_memory(dsn: str) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--dsn", dsn])
    assert first.exit_code == 0, first.output
    second = runner.invoke(
        app, ["demo", "--dsn", dsn, "--conversation", "later", "-m", "What is my favourite colour?"]
    )
    assert second.exit_code == 0, second.output
    assert "new conversation 'later'" in second.output
    assert "Earlier you told me: 'My favourite colour is teal.'." in second.output


def test_demo_state_scopes_as_stored(dsn: str) -> None:
    import asyncio

    from sqlspec.cli.demo import run_demo

    result = asyncio.run(run_demo({"conninfo": dsn}, messages=("one", "two"), echo=lambda _: None))
    assert not result.resumed
    assert result.session.state == {
        "notes": ["one", "two"],
        "user:notes_total": 2,
        "app:notes_total": 2,
    }
    assert result.replies[-1] == "Noted: 'two'. I now know 2 thing(s) about you."
    authors = [e.author for e in result.session.events]
    assert authors == ["user", "note_taker", "note_taker", "note_taker"] * 2
    assert (result.session.app_name, result.session.user_id) == (APP_NAME, USER_ID)


def test_console_script_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sqlspec.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout
