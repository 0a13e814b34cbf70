"""``memory init|search|add|prune|delete``: look at and tend what agents remember."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Annotated, Any

import typer
from google.adk.memory.memory_entry import MemoryEntry
from google.genai import types
from rich.table import Table

from sqlspec.cli._common import (
    AppOption,
    DsnOption,
    JsonOption,
    ReplicaOption,
    RequiredAppOption,
    RequiredUserOption,
    UserOption,
    duration,
    emit_json,
    guarded,
    open_memory_store,
    out_console,
    tables_needed,
)
from sqlspec.extensions.adk.memory._codec import memory_records

__all__ = ["memory_app"]

memory_app = typer.Typer(
    help="Create, search, add to and delete from the memory table.",
    no_args_is_help=True,
    add_completion=False,
)


def memory_json(memory: MemoryEntry) -> dict[str, Any]:
    """A memory as ``--json`` prints it."""
    return memory.model_dump(mode="json", exclude_none=True)


def _tables_needed() -> AbstractContextManager[None]:
    return tables_needed(
        "the memory table does not exist: create it with `sqlspec-adk memory init`"
    )


def _text(memory: MemoryEntry) -> str:
    return " ".join(part.text for part in memory.content.parts or () if part.text)


@memory_app.command("init")
@guarded
def init(dsn: DsnOption = None, json_output: JsonOption = False) -> None:
    """Create the memory table and its index, or bring them up to date and recreate what is gone."""
    with open_memory_store(dsn) as store:
        before = store.schema_version() or 0
        # Every step again (all idempotent): a dropped index comes back too.
        store.migrate(repair=True)
        store.create_tables()
        after = store.schema_version()
    if json_output:
        emit_json({"from_version": before, "to_version": after, "table": store.memory_table})
        return
    verb = "Created" if before == 0 else "Checked"
    out_console().print(f"{verb} the memory table {store.memory_table} (schema version {after}).")


@memory_app.command("search")
@guarded
def search(
    *,
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    app: RequiredAppOption,
    user: RequiredUserOption,
    dsn: DsnOption = None,
    replica: ReplicaOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 10,
    json_output: JsonOption = False,
) -> None:
    """A user's memories that best match QUERY, best first (full-text search)."""
    with _tables_needed(), open_memory_store(dsn, replica) as store:
        found = store.search(app_name=app, user_id=user, query=query, limit=limit)
    if json_output:
        emit_json([memory_json(m) for m in found])
        return
    console = out_console()
    if not found:
        console.print("No memory matches.")
        return
    table = Table()
    table.add_column("time", no_wrap=True)
    table.add_column("author", overflow="fold")
    table.add_column("memory", overflow="fold", style="cyan")
    table.add_column("text", overflow="fold")
    for memory in found:
        table.add_row(memory.timestamp or "", memory.author or "", memory.id or "", _text(memory))
    console.print(table)


@memory_app.command("add")
@guarded
def add(
    *,
    text: Annotated[str, typer.Argument(help="What to remember.")],
    app: RequiredAppOption,
    user: RequiredUserOption,
    dsn: DsnOption = None,
    memory_id: Annotated[
        str | None,
        typer.Option("--id", help="The memory's id (default: a new one).", show_default=False),
    ] = None,
    author: Annotated[
        str | None, typer.Option("--author", help="Who said it.", show_default=False)
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Remember TEXT for a user; an id already stored (or deleted) is left as it is."""
    entry = MemoryEntry(
        id=memory_id,
        author=author,
        content=types.Content(role="user", parts=[types.Part(text=text)]),
    )
    (record,) = memory_records([entry], None)
    with open_memory_store(dsn) as store:
        store.create_tables()
        added = store.add(app_name=app, user_id=user, records=[record])
    if json_output:
        emit_json({"id": record.id, "added": bool(added)})
        return
    said = "Remembered" if added else "Already stored (or deleted) for this user:"
    out_console().print(f"{said} {record.id}")


@memory_app.command("prune")
@guarded
def prune(
    *,
    older_than: Annotated[
        timedelta,
        typer.Option(
            "--older-than",
            parser=duration,
            metavar="AGE",
            help="Forget memories older than AGE (by their event's time): 90d, 12h, 2w.",
        ),
    ],
    app: AppOption = None,
    user: UserOption = None,
    dsn: DsnOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete memories older than AGE, in every app and user or only those given."""
    with _tables_needed(), open_memory_store(dsn) as store:
        count = store.prune(older_than=older_than, app_name=app, user_id=user, dry_run=dry_run)
    if json_output:
        emit_json({"memories": count, "dry_run": dry_run})
        return
    verb = "Would delete" if dry_run else "Deleted"
    out_console().print(f"{verb} {count} memory(ies).")


@memory_app.command("delete")
@guarded
def delete(
    *,
    memory_id: Annotated[str, typer.Argument(help="The memory's id.")],
    app: RequiredAppOption,
    user: RequiredUserOption,
    dsn: DsnOption = None,
    json_output: JsonOption = False,
) -> None:
    """Forget a memory for good: adding its session again does not bring it back."""
    with _tables_needed(), open_memory_store(dsn) as store:
        deleted = store.delete(app_name=app, user_id=user, memory_id=memory_id)
    if json_output:
        emit_json({"id": memory_id, "deleted": deleted})
        return
    if not deleted:
        out_console().print(f"No memory {memory_id!r} for app {app!r} and user {user!r}.")
        raise typer.Exit(1)
    out_console().print(f"Deleted {memory_id}.")
