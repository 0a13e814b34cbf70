"""What every ``sqlspec-adk`` command shares: options, the store, output, errors, progress.

Commands use the sync store. ``--dsn`` takes a conninfo, a ``postgresql://`` URL,
or a session-service URI (``sqlspec+postgresql://...?session_table=...``, the one
given to ``adk --session_service_uri``), whose table names and pool settings then
apply too. Errors end a command with one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn, ParamSpec, TypeVar

import psycopg
import psycopg_pool
import typer
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg._settings import masked_conninfo
from sqlspec.adapters.psycopg.adk import (
    PsycopgSyncADKArtifactStore,
    PsycopgSyncADKMemoryStore,
    PsycopgSyncADKStore,
)
from sqlspec.exceptions import ImproperConfigurationError, MissingTablesError, SQLSpecError
from sqlspec.registry import (
    ARTIFACT_OPTIONS,
    MEMORY_OPTIONS,
    SESSION_OPTIONS,
    ServiceURI,
    is_service_uri,
    parse_duration,
    parse_service_uri,
)

__all__ = [
    "AppOption",
    "CLIError",
    "DsnOption",
    "JsonOption",
    "ProgressOption",
    "ReplicaOption",
    "RequiredAppOption",
    "RequiredUserOption",
    "Target",
    "UserOption",
    "artifacts_beside",
    "check_connection",
    "connection_config",
    "duration",
    "emit_json",
    "err_console",
    "fail",
    "format_age",
    "format_bytes",
    "format_time",
    "guarded",
    "iso_time",
    "memory_beside",
    "open_artifact_store",
    "open_memory_store",
    "open_store",
    "out_console",
    "partial_file",
    "progress_bar",
    "read_progress",
    "remember_password",
    "resolve_target",
    "tables_needed",
]

P = ParamSpec("P")
R = TypeVar("R")

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar="SQLSPEC_DSN",
        help=(
            "PostgreSQL conninfo or URL, or a sqlspec+postgresql:// service URI; "
            "default: the embedded server."
        ),
        show_default=False,
    ),
]
ReplicaOption = Annotated[
    str | None,
    typer.Option(
        "--replica-dsn",
        envvar="SQLSPEC_REPLICA_DSN",
        help=(
            "A read replica (conninfo or URL) to read from instead of --dsn's server, "
            "which it may lag; tables still come from a --dsn service URI."
        ),
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")
]
AppOption = Annotated[str | None, typer.Option("--app", help="Only this app.", show_default=False)]
UserOption = Annotated[
    str | None, typer.Option("--user", help="Only this user.", show_default=False)
]
RequiredAppOption = Annotated[str, typer.Option("--app", help="The app.")]
RequiredUserOption = Annotated[str, typer.Option("--user", help="The user.")]
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show a progress bar on stderr; default: when stderr is a terminal.",
        show_default=False,
    ),
]

#: Pool of a command: one connection, a second for the rare overlap.
_CLI_POOL = {"min_size": 1, "max_size": 2}
_CLI_CONNECT_TIMEOUT = 10

#: Typer's own signals and errors, left for Typer to handle (its vendored click, or click).
_PASS_THROUGH: tuple[type[BaseException], ...] = (
    typer.Exit,
    typer.Abort,
    getattr(typer, "TyperException", typer.BadParameter),
)

#: Passwords of the targets this process resolved: scrubbed from every error message.
_secrets: set[str] = set()


class CLIError(Exception):
    """An error a command reports as one line, with an exit status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def connection_config(dsn: str | None) -> dict[str, Any]:
    """The ``connection_config`` for a ``--dsn`` value (empty: the embedded server)."""
    return {"conninfo": dsn} if dsn else {}


def duration(value: str) -> timedelta:
    """Typer parser for ``--older-than``: ``30d``, ``12h``, ``90m``, ``2w``, ``1d12h``."""
    try:
        return parse_duration(value)
    except ImproperConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from None


@dataclass(frozen=True)
class Target(ServiceURI):
    """The database a command works on, as ``--dsn`` names it."""

    def describe(self) -> str:
        """Where the command connects, password hidden."""
        return masked_conninfo(self.conninfo) if self.conninfo else "the embedded PostgreSQL"


def remember_password(conninfo: str) -> None:
    """Keep a conninfo's password out of every error message this process prints."""
    try:
        password = conninfo_to_dict(conninfo).get("password")
    except psycopg.Error:
        return
    if password:
        _secrets.add(str(password))


def resolve_target(dsn: str | None) -> Target:
    """Read ``--dsn``: a conninfo or URL, or a session-service URI with tables and pool."""
    if dsn and is_service_uri(dsn):
        parsed = parse_service_uri(dsn)
        target = Target(
            dict(parsed.connection_config),
            dict(parsed.store_options),
            replica_config=parsed.replica_config,
        )
    else:
        target = Target(connection_config(dsn))
    for conninfo in (target.conninfo, (target.replica_config or {}).get("conninfo")):
        if conninfo:
            remember_password(conninfo)
    return target


def _cli_connection_config(target: Target, option: str = "--dsn") -> dict[str, Any]:
    """The target's settings with a small pool and a bounded connect time."""
    config = {**target.connection_config, **_CLI_POOL}
    given: dict[str, Any] = {}
    if target.conninfo:
        try:
            given = conninfo_to_dict(target.conninfo)
        except psycopg.Error as exc:
            raise CLIError(f"{option} is not a valid conninfo or URL: {_one_line(exc)}") from None
    if "connect_timeout" not in given and "connect_timeout" not in config:
        config["connect_timeout"] = _CLI_CONNECT_TIMEOUT
    if "application_name" not in given and "application_name" not in config:
        config["application_name"] = "sqlspec-adk"
    return config


StoreT = TypeVar("StoreT")


@contextmanager
def _opened(
    dsn: str | None,
    build: Callable[[PsycopgSyncConfig, Target], StoreT],
    replica: str | None = None,
) -> Iterator[StoreT]:
    """A store on ``--dsn`` built by ``build``, its pool closed at the end.

    With ``replica`` (``--replica-dsn``, given to commands that only read) the
    store reads from that server alone, so a listing adds no load to the
    primary and works while it is down; its tables are still ``--dsn``'s. A
    service URI's ``?replica=`` serves the reads that tolerate lag, as in code.
    Connects once before returning, so a server that cannot be reached fails at
    once with libpq's reason instead of after the pool's timeout.
    """
    target = resolve_target(dsn)
    server, option = (resolve_target(replica), "--replica-dsn") if replica else (target, "--dsn")
    replica_config = None
    if server.replica_config is not None:  # a service URI's ?replica=
        replica_config = _cli_connection_config(Target(dict(server.replica_config)), option)
    config = PsycopgSyncConfig(
        connection_config=_cli_connection_config(server, option), replica_config=replica_config
    )
    store = build(config, target)
    _probe(config, server)
    try:
        yield store
    finally:
        config.close()


def open_store(
    dsn: str | None, replica: str | None = None
) -> AbstractContextManager[PsycopgSyncADKStore]:
    """The sync session store on ``--dsn`` (tables and pool from a service URI)."""
    return _opened(
        dsn, lambda config, t: PsycopgSyncADKStore(config, **t.options_of(SESSION_OPTIONS)), replica
    )


def open_memory_store(
    dsn: str | None, replica: str | None = None
) -> AbstractContextManager[PsycopgSyncADKMemoryStore]:
    """The sync memory store on ``--dsn`` (table and text search from a service URI)."""
    return _opened(
        dsn,
        lambda config, t: PsycopgSyncADKMemoryStore(config, **t.options_of(MEMORY_OPTIONS)),
        replica,
    )


def open_artifact_store(
    dsn: str | None, replica: str | None = None
) -> AbstractContextManager[PsycopgSyncADKArtifactStore]:
    """The sync artifact store on ``--dsn`` (tables and size limit from a service URI)."""
    return _opened(
        dsn,
        lambda config, t: PsycopgSyncADKArtifactStore(config, **t.options_of(ARTIFACT_OPTIONS)),
        replica,
    )


def artifacts_beside(store: PsycopgSyncADKStore, dsn: str | None) -> PsycopgSyncADKArtifactStore:
    """The artifact store beside a session store: its pool, the tables ``--dsn``'s URI names."""
    return PsycopgSyncADKArtifactStore(
        store.config, **resolve_target(dsn).options_of(ARTIFACT_OPTIONS)
    )


def memory_beside(store: PsycopgSyncADKStore, dsn: str | None) -> PsycopgSyncADKMemoryStore:
    """The memory store beside a session store: its pool, the table ``--dsn``'s URI names."""
    return PsycopgSyncADKMemoryStore(store.config, **resolve_target(dsn).options_of(MEMORY_OPTIONS))


def _probe(config: PsycopgSyncConfig, target: Target) -> None:
    try:
        conn = config.create_connection()
    except psycopg.OperationalError as exc:
        raise CLIError(f"cannot connect to {target.describe()}: {_one_line(exc)}") from None
    conn.close()


def check_connection(dsn: str | None) -> None:
    """Connect once to ``--dsn`` (starting the embedded server if none): fail fast and clearly."""
    target = resolve_target(dsn)
    _probe(PsycopgSyncConfig(connection_config=_cli_connection_config(target)), target)


def out_console() -> Console:
    """Human output (stdout); colours only where the terminal takes them."""
    return Console(highlight=False)


def err_console() -> Console:
    """Messages and progress bars (stderr)."""
    return Console(stderr=True, highlight=False)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def _scrub(message: str) -> str:
    for secret in _secrets:
        message = message.replace(secret, "***")
    return message


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (libpq's come on several)."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _scrub("; ".join(lines))


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """End the command: ``error: message`` on stderr, exit status ``exit_code``."""
    console = err_console()
    console.print(f"[bold red]error:[/] {escape(_scrub(message))}", soft_wrap=True)
    raise typer.Exit(exit_code)


def _message(exc: BaseException) -> tuple[str, int]:
    """The one line and exit status an exception ends a command with."""
    if isinstance(exc, CLIError):
        return exc.message, exc.exit_code
    if isinstance(exc, MissingTablesError):
        message = (
            f"the sqlspec tables are missing ({_one_line(exc).split(';')[0]}); "
            "create them with `sqlspec-adk init`"
        )
    elif isinstance(exc, SQLSpecError):
        message = _one_line(exc)
    elif isinstance(exc, psycopg_pool.PoolTimeout):
        message = f"no database connection could be had in time: {_one_line(exc)}"
    elif isinstance(exc, psycopg.OperationalError):
        message = f"database connection failed: {_one_line(exc)}"
    elif isinstance(exc, psycopg.Error):
        message = f"database error: {_one_line(exc)}"
    elif isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        message = f"{exc.strerror or _one_line(exc)}{where}"
    elif isinstance(exc, ValueError):  # ADK's errors (session not found, ...) are ValueErrors
        message = _one_line(exc)
    else:
        message = (
            f"unexpected {type(exc).__name__}: {_one_line(exc)} "
            "(set SQLSPEC_DEBUG=1 to see the traceback)"
        )
    return message, 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command so that any error ends it with one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            # The reader went away (`export - | head`): stop quietly, as pipes expect.
            _silence_stdout()
            raise typer.Exit(141) from None
        except Exception as exc:
            if os.environ.get("SQLSPEC_DEBUG"):
                raise
            message, code = _message(exc)
            fail(message, code)

    return wrapper


def format_time(timestamp: float | datetime) -> str:
    """``2026-11-25 02:58:44`` in UTC."""
    if isinstance(timestamp, datetime):
        moment = timestamp.astimezone(timezone.utc)
    else:
        moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def iso_time(timestamp: float) -> str:
    """ISO 8601 in UTC, microseconds kept."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def format_age(timestamp: float, now: float | None = None) -> str:
    """How long ago: ``45s``, ``12m``, ``3h``, ``5d``."""
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    seconds = max(0.0, now - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def format_bytes(size: int | None) -> str:
    """``8.0 kB``, ``1.2 MB``; ``-`` for unknown."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns


@contextmanager
def progress_bar(enabled: bool | None) -> Iterator[Progress | None]:
    """A rich progress display on stderr, or ``None`` when not wanted.

    ``enabled`` ``None`` means: when stderr is a terminal.
    """
    console = err_console()
    if enabled is None:
        enabled = console.is_terminal
    if not enabled:
        yield None
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        yield progress


def stdin_is_terminal() -> bool:
    """Whether a person may be typing on stdin."""
    return sys.stdin.isatty()


def read_progress(
    bar: Progress | None, stream: IO[bytes], raw: IO[bytes], size: int | None
) -> Callable[[int], None]:
    """Advance a bar by the bytes read (by the position in the file, if compressed)."""
    if bar is None:
        return lambda _n: None
    task = bar.add_task("reading", total=size)
    if stream is raw:

        def advance(n: int) -> None:
            bar.advance(task, n)

        return advance

    def seek_position(_n: int) -> None:
        bar.update(task, completed=raw.tell())

    return seek_position


@contextmanager
def partial_file(path: Path) -> Iterator[Path]:
    """Write ``path`` through ``path.partial``, renamed at the end: a failure leaves nothing."""
    partial = path.with_name(path.name + ".partial")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextmanager
def tables_needed(message: str) -> Iterator[None]:
    """Turn a missing table into ``message``: which tables, and what creates them."""
    try:
        yield
    except MissingTablesError:
        raise CLIError(message) from None
