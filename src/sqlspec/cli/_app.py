"""``sqlspec-adk``: run the demo and operate the session and memory stores from a terminal.

Every command takes the server from ``--dsn`` or ``$SQLSPEC_DSN``; with neither,
it uses the embedded PostgreSQL. ``--json`` prints JSON for scripts; errors end a
command with one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from sqlspec.cli import _artifacts, _doctor, _memory, _schema, _sessions, _transfer
from sqlspec.cli._common import (
    DsnOption,
    JsonOption,
    check_connection,
    connection_config,
    emit_json,
    guarded,
    iso_time,
)

__all__ = ["DsnOption", "app", "connection_config", "main"]

app = typer.Typer(
    name="sqlspec-adk",
    help="ADK sessions and memory on PostgreSQL: demo and administration.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def root() -> None:
    """ADK sessions and memory on PostgreSQL: demo and administration."""


@app.command()
@guarded
def demo(
    *,
    dsn: DsnOption = None,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="A user message; repeat for several."),
    ] = None,
    conversation: Annotated[
        str,
        typer.Option(
            "--conversation",
            help="The conversation to resume, or start: a new one recalls the others.",
        ),
    ] = "demo_session",
    json_output: JsonOption = False,
) -> None:
    """Talk to an offline ADK agent whose conversation is stored in PostgreSQL.

    Run it twice: the second run resumes the conversation the first one stored. Run
    it with another --conversation: the agent recalls, from memory, what you told it.
    """
    from sqlspec.cli.demo import DEFAULT_MESSAGES, run_demo

    messages = tuple(message) if message else DEFAULT_MESSAGES
    check_connection(dsn)
    echo = (lambda _: None) if json_output else typer.echo
    result = asyncio.run(
        run_demo(connection_config(dsn), messages=messages, echo=echo, conversation=conversation)
    )
    if json_output:
        session = result.session
        emit_json(
            {
                "resumed": result.resumed,
                "replies": result.replies,
                "session": {
                    "app_name": session.app_name,
                    "user_id": session.user_id,
                    "session_id": session.id,
                    "updated": iso_time(session.last_update_time),
                    "state": session.state,
                    "events": len(session.events),
                },
            }
        )


app.command("init")(_schema.init)
app.command("migrate")(_schema.migrate)
app.command("doctor")(_doctor.doctor)
app.add_typer(_sessions.sessions_app, name="sessions")
app.add_typer(_memory.memory_app, name="memory")
app.add_typer(_artifacts.artifacts_app, name="artifacts")
app.command("prune")(_sessions.prune)
app.command("export")(_transfer.export)
app.command("import")(_transfer.import_)
app.command("import-adk")(_transfer.import_adk)


def main() -> None:
    """Console-script entry point."""
    app()
