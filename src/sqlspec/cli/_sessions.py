"""``sessions list|show|delete`` and ``prune``: look at stored sessions, remove old ones."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import typer
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from rich.table import Table

from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.cli._common import (
    AppOption,
    CLIError,
    DsnOption,
    JsonOption,
    ReplicaOption,
    UserOption,
    duration,
    emit_json,
    err_console,
    format_age,
    format_time,
    guarded,
    iso_time,
    open_store,
    out_console,
)
from sqlspec.cli._conversation import print_conversation, print_session_header, session_summary

__all__ = ["prune", "sessions_app"]

sessions_app = typer.Typer(
    help="List, show and delete stored sessions.", no_args_is_help=True, add_completion=False
)

OlderThanOption = Annotated[
    timedelta | None,
    typer.Option(
        "--older-than",
        parser=duration,
        metavar="AGE",
        help="Only sessions idle longer than AGE: 30d, 12h, 90m, 2w, 1d12h.",
        show_default=False,
    ),
]
_PAGE = 200


def _describe_age(older_than: timedelta | None) -> str:
    if older_than is None:
        return "expired"
    seconds = int(older_than.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"idle more than {seconds // size}{unit}, or expired"
    return f"idle more than {seconds}s, or expired"


def session_json(session: Session, events: bool = False) -> dict[str, Any]:
    """A session as ``--json`` prints it."""
    data: dict[str, Any] = {
        "app_name": session.app_name,
        "user_id": session.user_id,
        "session_id": session.id,
        "updated": iso_time(session.last_update_time),
        "last_update_time": session.last_update_time,
        "state": session.state,
    }
    if events:
        data["events"] = [e.model_dump(mode="json", exclude_none=True) for e in session.events]
    return data


def _app_sessions(
    store: PsycopgSyncADKStore, app: str, user: str | None, before: float | None
) -> Iterator[Session]:
    """An app's sessions, oldest update first, a page at a time, up to ``before``."""
    cursor: str | None = None
    while True:
        page = store.list_sessions(app_name=app, user_id=user, limit=_PAGE, cursor=cursor)
        for session in page.sessions:
            if before is not None and session.last_update_time >= before:
                return
            yield session
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def iter_sessions(
    store: PsycopgSyncADKStore,
    app: str | None,
    user: str | None,
    older_than: timedelta | None,
) -> Iterator[Session]:
    """Sessions matching the filters, oldest update first, across apps when none is given."""
    before = None
    if older_than is not None:
        before = (datetime.now(timezone.utc) - older_than).timestamp()
    apps = [app] if app is not None else store.list_apps()
    streams = [_app_sessions(store, name, user, before) for name in apps]
    return heapq.merge(*streams, key=lambda s: (s.last_update_time, s.app_name, s.id))


@sessions_app.command("list")
@guarded
def list_(
    *,
    dsn: DsnOption = None,
    replica: ReplicaOption = None,
    app: AppOption = None,
    user: UserOption = None,
    older_than: OlderThanOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Show at most this many; 0 for all.")
    ] = 50,
    json_output: JsonOption = False,
) -> None:
    """List sessions, least recently updated first, with their state."""
    with open_store(dsn, replica) as store:
        sessions: list[Session] = []
        more = False
        for session in iter_sessions(store, app, user, older_than):
            if limit and len(sessions) == limit:
                more = True
                break
            sessions.append(session)
    if json_output:
        emit_json([session_json(s) for s in sessions])
        return
    console = out_console()
    if not sessions:
        console.print("No sessions match.")
        return
    table = Table()
    table.add_column("updated (UTC)", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True)
    table.add_column("app", overflow="fold", min_width=6)
    table.add_column("user", overflow="fold", min_width=6)
    table.add_column("session", overflow="fold", style="cyan", min_width=8)
    table.add_column("state", overflow="fold")
    for s in sessions:
        table.add_row(
            format_time(s.last_update_time),
            format_age(s.last_update_time),
            s.app_name,
            s.user_id,
            s.id,
            session_summary(s),
        )
    console.print(table)
    note = f"{len(sessions)} session(s)"
    if more:
        note += f"; more match: raise --limit (now {limit}) or use --limit 0"
    console.print(note, style="dim")


@sessions_app.command("show")
@guarded
def show(
    *,
    session_id: Annotated[str, typer.Argument(help="The session id.")],
    app: Annotated[str, typer.Option("--app", help="Its app.")],
    user: Annotated[str, typer.Option("--user", help="Its user.")],
    dsn: DsnOption = None,
    last: Annotated[
        int | None,
        typer.Option("--last", min=0, help="Only the last N events.", show_default=False),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Do not shorten long values.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Print a session: its state, then the conversation, event by event."""
    with open_store(dsn) as store:
        header = store.get_session(
            app_name=app,
            user_id=user,
            session_id=session_id,
            config=GetSessionConfig(num_recent_events=0),
        )
        if header is None:
            raise CLIError(f"no session {session_id!r} for app {app!r} and user {user!r}")
        config = None if last is None else GetSessionConfig(num_recent_events=last)
        events = store.iter_events(app_name=app, user_id=user, session_id=session_id, config=config)
        if json_output:
            header.events = list(events)
            emit_json(session_json(header, events=True))
            return
        console = out_console()
        print_session_header(console, header)
        count = print_conversation(console, events, full=full)
        console.print(f"{count} event(s)", style="dim")


def _confirm(question: str, yes: bool, json_output: bool) -> None:
    if yes:
        return
    if json_output:
        raise CLIError("refusing to delete without --yes when printing JSON")
    if not typer.confirm(question, default=False, err=True):
        raise CLIError("nothing deleted", exit_code=1)


@sessions_app.command("delete")
@guarded
def delete(
    *,
    session_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Session ids to delete (with --app and --user).", show_default=False),
    ] = None,
    dsn: DsnOption = None,
    app: AppOption = None,
    user: UserOption = None,
    older_than: OlderThanOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before deleting by age.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete sessions (and their events): by id, or every one idle longer than --older-than.

    By age, expired sessions matching --app/--user go too; it asks first unless --yes.
    """
    with open_store(dsn) as store:
        if session_ids:
            if app is None or user is None:
                raise CLIError("deleting by id needs --app and --user")
            _delete_ids(
                store, session_ids, app=app, user=user, dry_run=dry_run, json_output=json_output
            )
            return
        if older_than is None:
            raise CLIError(
                "name session ids, or --older-than AGE to delete by age "
                "(--older-than 0s matches every session)"
            )
        sessions, events = store.prune(
            older_than=older_than, app_name=app, user_id=user, dry_run=True
        )
        if not dry_run and sessions:
            scope = f" of app {app!r}" if app else " of every app"
            scope += f" and user {user!r}" if user else ""
            _confirm(
                f"Delete {sessions} session(s){scope} with {events} event(s)?", yes, json_output
            )
            sessions, events = store.prune(older_than=older_than, app_name=app, user_id=user)
    _prune_report(
        sessions,
        events,
        older_than=older_than,
        app=app,
        user=user,
        dry_run=dry_run,
        json_output=json_output,
    )


def _delete_ids(
    store: PsycopgSyncADKStore,
    session_ids: list[str],
    *,
    app: str,
    user: str,
    dry_run: bool,
    json_output: bool,
) -> None:
    deleted: list[str] = []
    missing: list[str] = []
    for session_id in session_ids:
        if dry_run:
            found = store.get_session(
                app_name=app,
                user_id=user,
                session_id=session_id,
                config=GetSessionConfig(num_recent_events=0),
            )
            existed = found is not None
        else:
            existed = store.delete_session(app_name=app, user_id=user, session_id=session_id)
        (deleted if existed else missing).append(session_id)
    if json_output:
        emit_json(
            {
                "dry_run": dry_run,
                "app_name": app,
                "user_id": user,
                "deleted": deleted,
                "missing": missing,
            }
        )
    else:
        console = out_console()
        verb = "Would delete" if dry_run else "Deleted"
        for session_id in deleted:
            console.print(f"{verb} session [cyan]{session_id}[/].")
    if missing:
        names = ", ".join(repr(m) for m in missing)
        message = f"no session {names} for app {app!r} and user {user!r}"
        if json_output:
            err_console().print(f"[bold red]error:[/] {message}")
            raise typer.Exit(1)
        raise CLIError(message)


def _prune_report(
    sessions: int,
    events: int,
    *,
    older_than: timedelta | None,
    app: str | None,
    user: str | None,
    dry_run: bool,
    json_output: bool,
) -> None:
    if json_output:
        emit_json(
            {
                "dry_run": dry_run,
                "older_than_seconds": None if older_than is None else older_than.total_seconds(),
                "app_name": app,
                "user_id": user,
                "sessions": sessions,
                "events": events,
            }
        )
        return
    verb = "Would delete" if dry_run else "Deleted"
    scope = f" of app {app}" if app else ""
    scope += f", user {user}" if user else ""
    out_console().print(
        f"{verb} [bold]{sessions}[/] session(s) and [bold]{events}[/] event(s){scope} "
        f"({_describe_age(older_than)})."
    )


@guarded
def prune(
    *,
    dsn: DsnOption = None,
    older_than: OlderThanOption = None,
    app: AppOption = None,
    user: UserOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete expired sessions, and those idle longer than --older-than, with their events.

    Meant for cron: it does not ask. Without --older-than only expired sessions go.
    """
    with open_store(dsn) as store:
        console = err_console()
        with console.status("pruning...") if console.is_terminal else nullcontext():
            sessions, events = store.prune(
                older_than=older_than, app_name=app, user_id=user, dry_run=dry_run
            )
    _prune_report(
        sessions,
        events,
        older_than=older_than,
        app=app,
        user=user,
        dry_run=dry_run,
        json_output=json_output,
    )
