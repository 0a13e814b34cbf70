"""``sqlspec-adk``: run the demo and operate a session store from a terminal.

Every command takes the server from ``--dsn`` or ``$SQLSPEC_DSN``; with neither,
it uses the embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="sqlspec-adk",
    help="ADK session storage on PostgreSQL: demo and administration.",
    no_args_is_help=True,
    add_completion=False,
)

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar="SQLSPEC_DSN",
        help="PostgreSQL conninfo or URL; default: the embedded server.",
        show_default=False,
    ),
]


@app.callback()
def root() -> None:
    """ADK session storage on PostgreSQL: demo and administration."""


def connection_config(dsn: str | None) -> dict[str, Any]:
    """The ``connection_config`` for a ``--dsn`` value (empty: the embedded server)."""
    return {"conninfo": dsn} if dsn else {}


@app.command()
def demo(
    dsn: DsnOption = None,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="A user message; repeat for several."),
    ] = None,
) -> None:
    """Talk to an offline ADK agent whose conversation is stored in PostgreSQL.

    Run it twice: the second run resumes the conversation the first one stored.
    """
    from sqlspec.cli.demo import DEFAULT_MESSAGES, run_demo

    messages = tuple(message) if message else DEFAULT_MESSAGES
    asyncio.run(run_demo(connection_config(dsn), messages=messages, echo=typer.echo))


def main() -> None:
    """Console-script entry point."""
    app()
