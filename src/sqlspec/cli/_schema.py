"""``init`` and ``migrate``: create the schema, or bring it to this version of sqlspec."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk.session._schema import SCHEMA_VERSION
from sqlspec.cli._common import (
    CLIError,
    DsnOption,
    JsonOption,
    emit_json,
    guarded,
    open_store,
    out_console,
)

__all__ = ["init", "migrate", "repair"]


def _tables(store: PsycopgSyncADKStore) -> dict[str, str]:
    t = store.tables
    return {
        "sessions": t.sessions,
        "events": t.events,
        "app_states": t.app_states,
        "user_states": t.user_states,
    }


def repair(store: PsycopgSyncADKStore) -> list[str]:
    """Re-run every schema migration (all idempotent); return the objects recreated."""
    missing_before = store.missing_objects()
    store.migrate(repair=True)
    missing_after = set(store.missing_objects())
    return [name for name in missing_before if name not in missing_after]


def _report(
    json_output: bool, store: PsycopgSyncADKStore, before: int, after: int, extra: dict[str, Any]
) -> None:
    if json_output:
        emit_json(
            {
                "from_version": before,
                "to_version": after,
                "changed": before != after,
                "tables": _tables(store),
                **extra,
            }
        )
        return
    console = out_console()
    if before == 0:
        console.print(
            f"[green]Created[/] the sqlspec tables at schema version [bold]{after}[/]: "
            + ", ".join(_tables(store).values())
        )
    elif before != after:
        console.print(f"[green]Migrated[/] the schema from version {before} to [bold]{after}[/].")
    else:
        console.print(f"Schema already at version [bold]{after}[/]; nothing to do.")
    for name in extra.get("repaired", []):
        console.print(f"[green]Recreated[/] {name}.")


@guarded
def init(dsn: DsnOption = None, json_output: JsonOption = False) -> None:
    """Create the tables and indexes (an existing schema is brought up to date).

    Safe to run again, and from several processes at once.
    """
    with open_store(dsn) as store:
        before, after = store.migrate()
        _report(json_output, store, before, after, {})


@guarded
def migrate(
    *,
    dsn: DsnOption = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Change nothing; exit 1 if the schema is not at this version."
        ),
    ] = False,
    repair_: Annotated[
        bool,
        typer.Option(
            "--repair", help="Also recreate dropped tables and indexes of earlier versions."
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Upgrade the schema in place to this version of sqlspec; print from/to versions."""
    with open_store(dsn) as store:
        if check:
            current = store.schema_version() or 0
            if json_output:
                emit_json(
                    {
                        "from_version": current,
                        "to_version": SCHEMA_VERSION,
                        "pending": current != SCHEMA_VERSION,
                        "tables": _tables(store),
                    }
                )
            elif current == SCHEMA_VERSION:
                out_console().print(f"Schema at version [bold]{current}[/]: up to date.")
            if current == SCHEMA_VERSION:
                return
            if current > SCHEMA_VERSION:
                message = (
                    f"the schema is at version {current}, newer than the {SCHEMA_VERSION} this "
                    "sqlspec knows: upgrade sqlspec"
                )
            elif current == 0:
                message = "the sqlspec tables do not exist: run `sqlspec-adk init`"
            else:
                message = (
                    f"the schema is at version {current}; version {SCHEMA_VERSION} is available: "
                    "run `sqlspec-adk migrate`"
                )
            if json_output:
                raise typer.Exit(1)
            raise CLIError(message)
        before, after = store.migrate()
        extra: dict[str, Any] = {}
        if repair_:
            extra["repaired"] = repair(store)
        _report(json_output, store, before, after, extra)
