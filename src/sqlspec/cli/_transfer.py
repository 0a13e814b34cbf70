"""``export``, ``import`` and ``import-adk``: move sessions, memories and artifacts as JSON Lines.

Both directions stream: an artifact's bytes travel a chunk a line (base64).

Files ending in ``.gz`` are written compressed; compressed input is recognised by
its content. ``-`` is stdout or stdin. Progress bars go to stderr.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, Annotated, Any, cast

import psycopg
import typer
from rich.progress import Progress
from rich.table import Table

from sqlspec.adapters.psycopg._settings import masked_conninfo
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore
from sqlspec.adapters.psycopg.adk.session._import_adk import ADKSource, source_conninfo
from sqlspec.cli._common import (
    AppOption,
    CLIError,
    DsnOption,
    JsonOption,
    ProgressOption,
    ReplicaOption,
    UserOption,
    artifacts_beside,
    emit_json,
    err_console,
    guarded,
    memory_beside,
    open_store,
    out_console,
    partial_file,
    progress_bar,
    read_progress,
    remember_password,
)
from sqlspec.extensions.adk import ImportResult

__all__ = ["export", "import_", "import_adk"]

_KINDS = ("app_state", "user_state", "session", "event")
#: Lines for the memory store; an export has them when the memory table exists.
_MEMORY = "memory"
#: Lines for the artifact store; an export has them when the artifact tables exist.
_ARTIFACT_KINDS = ("artifact_blob", "artifact_chunk", "artifact")
_ARTIFACT = "artifact"
_KIND_NAMES = {
    "app_state": "app states",
    "user_state": "user states",
    "session": "sessions",
    "event": "events",
    _MEMORY: "memories",
    "artifact_blob": "artifact contents",
    "artifact_chunk": "artifact chunks",
    _ARTIFACT: "artifact versions",
}
#: Memory and artifact lines wait in memory up to this size, then on disk, until the
#: sessions are in.
_SPOOL_BYTES = 8 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


def _kind_progress(bar: Progress | None, totals: dict[str, int] | None = None) -> Any:
    """A ``progress(kind, n)`` callback advancing one bar per kind, or ``None``."""
    if bar is None:
        return None
    tasks: dict[str, Any] = {}
    if totals is not None:
        for kind in _KINDS:
            tasks[kind] = bar.add_task(_KIND_NAMES[kind], total=totals.get(kind, 0))

    def advance(kind: str, n: int) -> None:
        if kind not in tasks:
            tasks[kind] = bar.add_task(_KIND_NAMES.get(kind, kind), total=None)
        bar.advance(tasks[kind], n)

    return advance


def _summary(counts: dict[str, int]) -> str:
    kinds = [*_KINDS, *(kind for kind in (_MEMORY, _ARTIFACT) if kind in counts)]
    return ", ".join(f"{counts.get(kind, 0)} {_KIND_NAMES[kind]}" for kind in kinds)


def _exporter(store: PsycopgSyncADKStore, dsn: str | None) -> Callable[..., dict[str, int]]:
    """Export the sessions, then the memories and the artifacts where their tables exist.

    Each wing is read from a snapshot of its own, taken one after the other.
    """
    wings = [
        wing
        for wing in (memory_beside(store, dsn), artifacts_beside(store, dsn))
        if wing.schema_version() is not None
    ]

    def export_jsonl(sink: Any, **options: Any) -> dict[str, int]:
        counts = store.export_jsonl(sink, **options)
        for wing in wings:
            counts |= wing.export_jsonl(sink, **options)
        return counts

    return export_jsonl


@guarded
def export(
    output: Annotated[
        str, typer.Argument(help="File to write (a .gz name compresses it), or - for stdout.")
    ],
    *,
    dsn: DsnOption = None,
    replica: ReplicaOption = None,
    app: AppOption = None,
    user: UserOption = None,
    progress: ProgressOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write app and user state, sessions, events, memories and artifacts as JSON Lines.

    Sessions come from one snapshot, memories and artifacts (where their tables
    exist) each from another, taken right after.
    """
    with open_store(dsn, replica) as store, progress_bar(progress) as bar:
        export_jsonl = _exporter(store, dsn)
        callback = _kind_progress(bar)
        if output == "-":
            counts = export_jsonl(sys.stdout, app_name=app, user_id=user, progress=callback)
            sys.stdout.flush()
        else:
            counts = _export_file(Path(output), export_jsonl, app, user, callback)
    result = {"output": output, "lines": counts}
    if output == "-":
        # stdout holds the data: the summary goes to stderr.
        if json_output:
            err_console().print_json(json.dumps(result))
        else:
            err_console().print(f"Exported {_summary(counts)}.")
    elif json_output:
        emit_json(result)
    else:
        out_console().print(f"Exported {_summary(counts)} to [bold]{output}[/].")


def _export_file(
    path: Path,
    export_jsonl: Callable[..., dict[str, int]],
    app: str | None,
    user: str | None,
    callback: Any,
) -> dict[str, int]:
    """Export into ``path`` through a temporary file, so a failed export leaves nothing."""
    opener: Callable[..., IO[str]] = gzip.open if path.suffix == ".gz" else open
    with (
        partial_file(path) as partial,
        opener(partial, "wt", encoding="utf-8", newline="\n") as sink,
    ):
        return export_jsonl(sink, app_name=app, user_id=user, progress=callback)


def _checked_lines(
    stream: IO[bytes], on_read: Callable[[int], None], set_aside: Mapping[str, IO[bytes]]
) -> Iterator[bytes]:
    """Lines of ``stream``, each checked to be a JSON object with a ``kind``.

    Lines of the kinds ``set_aside`` names are written there, for their own store.
    """
    for number, line in enumerate(stream, start=1):
        on_read(len(line))
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise CLIError(f"line {number} is not JSON: {exc}") from None
        kind = record.get("kind") if isinstance(record, dict) else None
        if isinstance(kind, str) and kind in set_aside:
            set_aside[kind].write(line.rstrip(b"\r\n") + b"\n")
            continue
        if kind not in _KINDS:
            raise CLIError(
                f"line {number} is not a sqlspec export line (an object whose kind is one of "
                f"{', '.join((*_KINDS, *set_aside))})"
            )
        yield line


def _open_input(name: str) -> tuple[IO[bytes], IO[bytes], int | None]:
    """(stream to read lines from, underlying raw stream, size in bytes if known)."""
    if name == "-":
        stdin = sys.stdin.buffer
        return stdin, stdin, None
    raw = Path(name).open("rb")  # noqa: SIM115 - closed by the caller
    size = os.fstat(raw.fileno()).st_size
    if raw.read(2) == _GZIP_MAGIC:
        raw.seek(0)
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), raw, size
    raw.seek(0)
    return raw, raw, size


@guarded
def import_(
    input_: Annotated[
        str,
        typer.Argument(
            metavar="INPUT", help="JSON Lines written by export (gzip or not), or - for stdin."
        ),
    ],
    *,
    dsn: DsnOption = None,
    progress: ProgressOption = None,
    json_output: JsonOption = False,
) -> None:
    """Load JSON Lines written by export, in one transaction; creates the tables if needed.

    State is merged into existing state; sessions and events already stored are kept
    as they are (and counted as skipped), so an import can be run again.
    """
    with (
        open_store(dsn) as store,
        SpooledTemporaryFile(_SPOOL_BYTES) as memory_lines,
        SpooledTemporaryFile(_SPOOL_BYTES) as artifact_lines,
    ):
        store.create_tables()
        set_aside = {_MEMORY: memory_lines, **dict.fromkeys(_ARTIFACT_KINDS, artifact_lines)}
        stream, raw, size = _open_input(input_)
        try:
            with progress_bar(progress) as bar:
                read = read_progress(bar, stream, raw, size)
                result = store.import_jsonl(_checked_lines(stream, read, set_aside))
        finally:
            if input_ != "-":
                stream.close()
                raw.close()
        for kind, lines, wing in (
            (_MEMORY, memory_lines, memory_beside),
            (_ARTIFACT, artifact_lines, artifacts_beside),
        ):
            if lines.tell():
                lines.seek(0)
                target = wing(store, dsn)
                target.create_tables()
                imported, skipped = target.import_jsonl(lines)
                result.imported[kind], result.skipped[kind] = imported, skipped
    _import_report(result, {"input": input_}, json_output)


def _import_report(result: ImportResult, where: dict[str, Any], json_output: bool) -> None:
    if json_output:
        emit_json({**where, "imported": result.imported, "skipped": result.skipped})
        return
    table = Table(title="Imported", title_justify="left")
    table.add_column("kind")
    table.add_column("imported", justify="right")
    table.add_column("already there, kept", justify="right")
    for kind in [*_KINDS, *(k for k in (_MEMORY, _ARTIFACT) if k in result.imported)]:
        skipped = result.skipped.get(kind, 0)
        table.add_row(_KIND_NAMES[kind], str(result.imported.get(kind, 0)), str(skipped))
    out_console().print(table)


@guarded
def import_adk(
    *,
    from_dsn: Annotated[
        str | None,
        typer.Option(
            "--from-dsn",
            help=(
                "The database of ADK's DatabaseSessionService: its SQLAlchemy URL "
                "(postgresql+psycopg://...), a URL or a conninfo; default: the --dsn database."
            ),
            show_default=False,
        ),
    ] = None,
    from_schema: Annotated[
        str | None,
        typer.Option(
            "--from-schema", help="PostgreSQL schema of ADK's tables.", show_default=False
        ),
    ] = None,
    dsn: DsnOption = None,
    app: AppOption = None,
    user: UserOption = None,
    progress: ProgressOption = None,
    json_output: JsonOption = False,
) -> None:
    """Copy sessions, events and state from ADK's DatabaseSessionService tables.

    Reads ADK's sessions, events, app_states and user_states tables (schema v1) from
    one snapshot and loads them in one transaction; creates the sqlspec tables if
    needed. Sessions and events already in sqlspec are kept, so it can be run again.
    """
    if from_dsn:
        remember_password(source_conninfo(from_dsn))
    with open_store(dsn) as store:
        source = from_dsn or store.config.resolve_conninfo()
        store.create_tables()
        adk = ADKSource(source, schema=from_schema, app_name=app, user_id=user)
        try:
            adk.open()
        except psycopg.OperationalError as exc:
            where = masked_conninfo(adk.conninfo)
            raise CLIError(
                f"cannot connect to the ADK database {where}: {str(exc).strip().splitlines()[0]}"
            ) from None
        with adk, progress_bar(progress) as bar:
            totals = adk.counts() if bar is not None else None
            result = store.import_jsonl(adk.lines(progress=_kind_progress(bar, totals)))
    _import_report(result, {"source": adk.describe(), "schema_version": adk.version}, json_output)
