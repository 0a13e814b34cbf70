"""``artifacts list|get|put|delete``: the files agents saved, to and from files or pipes.

Calls go through the artifact service, so ids and scopes are checked as ADK
checks them. A save sends the whole file in one statement and a load reads the
whole version, so a command holds the artifact in memory once; the progress bar
(on stderr) follows the file being read or written.
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from google.genai import types
from rich.table import Table

from sqlspec.cli._common import (
    CLIError,
    DsnOption,
    JsonOption,
    ProgressOption,
    ReplicaOption,
    RequiredAppOption,
    RequiredUserOption,
    emit_json,
    format_bytes,
    format_time,
    guarded,
    open_artifact_store,
    out_console,
    partial_file,
    progress_bar,
    read_progress,
    tables_needed,
)
from sqlspec.extensions.adk import SQLSpecArtifactService, SyncSQLSpecArtifactService
from sqlspec.extensions.adk.artifact._codec import check_scope

__all__ = ["artifacts_app"]

artifacts_app = typer.Typer(
    help="List, read, write and delete the artifacts (files) agents saved.",
    no_args_is_help=True,
    add_completion=False,
)

#: Bytes read or written per step of the progress bar.
_BLOCK = 1 << 20

SessionOption = Annotated[
    str | None,
    typer.Option(
        "--session",
        help="The session (needed unless the filename starts with user:).",
        show_default=False,
    ),
]
FilenameArgument = Annotated[str, typer.Argument(help="The artifact's filename.")]

_NO_TABLES = (
    "no artifact has been stored here: the artifact tables do not exist "
    "(`sqlspec-adk artifacts put` creates them)"
)


@contextmanager
def _service(dsn: str | None, replica: str | None = None) -> Iterator[SyncSQLSpecArtifactService]:
    """The artifact service on ``--dsn`` (reading ``replica``, if given); missing tables said."""
    with tables_needed(_NO_TABLES), open_artifact_store(dsn, replica) as store:
        yield SQLSpecArtifactService(store)


def _content(part: types.Part) -> bytes:
    """What ``get`` writes of a version: its bytes, or its text as UTF-8."""
    if part.inline_data is not None:
        return part.inline_data.data or b""
    if part.text is not None:
        return part.text.encode("utf-8", "surrogatepass")
    uri = part.file_data.file_uri if part.file_data is not None else None
    raise CLIError(f"this version holds no content, only a reference to {uri!r}")


def _regular_file_size(file: IO[bytes]) -> int | None:
    """The size of a regular file; ``None`` for a pipe, a terminal or a stream."""
    try:
        status = os.fstat(file.fileno())
    except (OSError, ValueError):  # no file descriptor (io.UnsupportedOperation is both)
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


@contextmanager
def _opened(source: str) -> Iterator[IO[bytes]]:
    """``source`` open for reading: stdin for ``-``, else the file (closed after)."""
    if source == "-":
        yield sys.stdin.buffer
        return
    with open(source, "rb") as file:
        yield file


def _read(source: str, progress: bool | None, limit: int) -> bytes:
    """The whole of ``source`` (a path, or ``-`` for stdin), read block by block.

    Refused as soon as it is known to exceed ``limit`` bytes (the store's
    ``max_artifact_bytes``): a regular file by its size, before it is read; a
    pipe once more than ``limit`` bytes have come.
    """
    too_big = CLIError(
        f"{'stdin' if source == '-' else source} is larger than {limit} bytes, "
        "the artifact store's max_artifact_bytes; nothing was written"
    )
    with _opened(source) as file, progress_bar(progress) as bar:
        size = _regular_file_size(file)
        if size is not None and size > limit:
            raise too_big
        advance = read_progress(bar, file, file, size)
        buffer = io.BytesIO()
        while block := file.read(min(_BLOCK, limit + 1 - buffer.tell())):
            buffer.write(block)
            advance(len(block))
            if buffer.tell() > limit:
                raise too_big
        return buffer.getvalue()


def _write(data: bytes, target: IO[bytes], progress: bool | None) -> None:
    """Write ``data`` to ``target`` block by block, the bar following."""
    with progress_bar(progress) as bar:
        task = bar.add_task("writing", total=len(data)) if bar is not None else None
        view = memoryview(data)
        for start in range(0, len(data), _BLOCK):
            block = view[start : start + _BLOCK]
            target.write(block)
            if bar is not None and task is not None:
                bar.advance(task, len(block))
        target.flush()


@artifacts_app.command("list")
@guarded
def list_(
    *,
    app: RequiredAppOption,
    user: RequiredUserOption,
    session: SessionOption = None,
    dsn: DsnOption = None,
    replica: ReplicaOption = None,
    json_output: JsonOption = False,
) -> None:
    """The user's artifacts (and the session's, with --session), each with its versions."""
    with _service(dsn, replica) as service:
        ids: dict[str, Any] = {"app_name": app, "user_id": user, "session_id": session}
        files = {
            key: service.list_artifact_versions(filename=key, **ids)
            for key in service.list_artifact_keys(**ids)
        }
    if json_output:
        emit_json(
            [
                {
                    "filename": key,
                    "versions": [v.model_dump(mode="json", exclude_none=True) for v in versions],
                }
                for key, versions in files.items()
            ]
        )
        return
    console = out_console()
    if not files:
        console.print("No artifacts.")
        return
    table = Table()
    table.add_column("filename", overflow="fold", style="cyan")
    table.add_column("versions", justify="right")
    table.add_column("latest", justify="right")
    table.add_column("mime type", no_wrap=True)
    table.add_column("saved", no_wrap=True)
    for key, versions in files.items():
        latest = versions[-1]
        table.add_row(
            key,
            str(len(versions)),
            str(latest.version),
            latest.mime_type or "",
            format_time(latest.create_time),
        )
    console.print(table)


@artifacts_app.command("get")
@guarded
def get(
    *,
    filename: FilenameArgument,
    app: RequiredAppOption,
    user: RequiredUserOption,
    session: SessionOption = None,
    version: Annotated[
        int | None,
        typer.Option(
            "--version", min=0, help="This version (default: the latest).", show_default=False
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Write to this file; - is stdout.")
    ] = "-",
    dsn: DsnOption = None,
    progress: ProgressOption = None,
) -> None:
    """Write an artifact's content (bytes, or text as UTF-8) to a file or stdout."""
    with _service(dsn) as service:
        part = service.load_artifact(
            app_name=app, user_id=user, session_id=session, filename=filename, version=version
        )
    if part is None:
        which = "" if version is None else f" version {version}"
        raise CLIError(f"no artifact {filename!r}{which} for app {app!r} and user {user!r}")
    data = _content(part)
    if output == "-":
        _write(data, sys.stdout.buffer, progress)
        return
    with partial_file(Path(output)) as partial, open(partial, "wb") as target:
        _write(data, target, progress)


@artifacts_app.command("put")
@guarded
def put(
    *,
    filename: FilenameArgument,
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="The file to store; - is stdin.")],
    app: RequiredAppOption,
    user: RequiredUserOption,
    session: SessionOption = None,
    mime_type: Annotated[
        str | None,
        typer.Option(
            "--mime-type",
            help="Default: guessed from the filename, else application/octet-stream.",
            show_default=False,
        ),
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option("--metadata", help="custom_metadata as a JSON object.", show_default=False),
    ] = None,
    dsn: DsnOption = None,
    progress: ProgressOption = None,
    json_output: JsonOption = False,
) -> None:
    """Store SOURCE as the artifact's next version (0 for a new one)."""
    custom_metadata = _metadata(metadata)
    mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    with open_artifact_store(dsn) as store:
        data = _read(source, progress, store.max_artifact_bytes)
        part = types.Part(inline_data=types.Blob(data=data, mime_type=mime))
        store.create_tables()
        saved = SQLSpecArtifactService(store).save_artifact(
            app_name=app,
            user_id=user,
            session_id=session,
            filename=filename,
            artifact=part,
            custom_metadata=custom_metadata,
        )
    if json_output:
        emit_json({"filename": filename, "version": saved, "bytes": len(data), "mime_type": mime})
        return
    out_console().print(f"Saved {filename} version {saved} ({format_bytes(len(data))}, {mime}).")


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--metadata") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("a JSON object is needed", param_hint="--metadata")
    return value


@artifacts_app.command("delete")
@guarded
def delete(
    *,
    filename: FilenameArgument,
    app: RequiredAppOption,
    user: RequiredUserOption,
    session: SessionOption = None,
    dsn: DsnOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete every version of an artifact (and content no other version holds)."""
    # The store, not the service: its delete says how many versions went, in the one call.
    scope = check_scope(app, user, filename, session)
    with tables_needed(_NO_TABLES), open_artifact_store(dsn) as store:
        versions = store.delete(app_name=app, user_id=user, session_id=scope, filename=filename)
    if json_output:
        emit_json({"filename": filename, "versions": versions})
        return
    if not versions:
        out_console().print(f"No artifact {filename!r} for app {app!r} and user {user!r}.")
        raise typer.Exit(1)
    out_console().print(f"Deleted {filename} ({versions} version(s)).")
