"""``artifacts list|get|put|delete|prune``: the files agents saved, to and from files or pipes.

Ids and scopes are checked as ADK checks them. ``put`` and ``get`` stream:
a file goes to the database and comes back a chunk at a time, so a command
holds a megabyte or two of it whatever its size; the progress bar (on stderr)
follows the file being read or written.
"""

from __future__ import annotations

import json
import mimetypes
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from google.adk.artifacts import artifact_util
from google.adk.artifacts.artifact_util import (
    _MAX_ARTIFACT_REFERENCE_DEPTH,
    _is_rewind_tombstone,
)
from rich.table import Table

from sqlspec.adapters.psycopg.adk import PsycopgSyncADKArtifactStore
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
from sqlspec.extensions.adk.artifact._codec import ArtifactKey, check_scope, referenced

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


@contextmanager
def _content(
    store: PsycopgSyncADKArtifactStore, key: ArtifactKey
) -> Iterator[tuple[int | None, Iterator[bytes]] | None]:
    """A version's size (if known) and content chunk by chunk; ``None`` if there is none such.

    ``artifact://`` references are followed as the service follows them; text
    is its UTF-8 bytes. A tombstone (the empty part a rewind saves) is no version.
    """
    depth = _MAX_ARTIFACT_REFERENCE_DEPTH
    while True:
        with store.open_version(**key.ids()) as found:
            if found is None:
                yield None
                return
            part, size, chunks = found
            target = referenced(part, key, depth)
            if target is None:
                if part.inline_data is None and part.text is None:
                    uri = part.file_data.file_uri if part.file_data is not None else None
                    raise CLIError(f"this version holds no content, only a reference to {uri!r}")
                first = next(chunks, None)
                if first is None and _is_rewind_tombstone(part):
                    yield None
                else:
                    rest = chain(() if first is None else (first,), chunks)
                    yield size, rest
                return
        key, depth = target, depth - 1


def _write(
    content: tuple[int | None, Iterator[bytes]], target: IO[bytes], progress: bool | None
) -> None:
    """Write the chunks to ``target``, the bar following."""
    size, chunks = content
    with progress_bar(progress) as bar:
        task = bar.add_task("writing", total=size) if bar is not None else None
        for chunk in chunks:
            target.write(chunk)
            if bar is not None and task is not None:
                bar.advance(task, len(chunk))
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
    for value, name in ((app, "app_name"), (user, "user_id"), (session, "session_id")):
        if value is not None:
            artifact_util.validate_path_segment(value, name)
    with tables_needed(_NO_TABLES), open_artifact_store(dsn, replica) as store:
        files = store.scope_versions(app_name=app, user_id=user, session_id=session)
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
    """Write an artifact's content (bytes, or text as UTF-8) to a file or stdout, streaming."""
    key = ArtifactKey(app, user, session, filename, version)
    with (
        tables_needed(_NO_TABLES),
        open_artifact_store(dsn) as store,
        _content(store, key) as found,
    ):
        if found is None:
            which = "" if version is None else f" version {version}"
            raise CLIError(f"no artifact {filename!r}{which} for app {app!r} and user {user!r}")
        if output == "-":
            _write(found, sys.stdout.buffer, progress)
            return
        with partial_file(Path(output)) as partial, open(partial, "wb") as target:
            _write(found, target, progress)


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
    """Store SOURCE as the artifact's next version (0 for a new one), streaming."""
    custom_metadata = _metadata(metadata)
    mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    scope = check_scope(app, user, filename, session, saving=True)
    with open_artifact_store(dsn) as store, _opened(source) as file, progress_bar(progress) as bar:
        size = _regular_file_size(file)
        if size is not None:
            # Refused by its size before anything is read or sent.
            store.check_size(size)
        store.create_tables()
        read = _Counted(file, read_progress(bar, file, file, size))
        saved = store.save_stream(
            app_name=app,
            user_id=user,
            session_id=scope,
            filename=filename,
            content=read,
            mime_type=mime,
            custom_metadata=custom_metadata,
        )
    if json_output:
        emit_json({"filename": filename, "version": saved, "bytes": read.total, "mime_type": mime})
        return
    out_console().print(f"Saved {filename} version {saved} ({format_bytes(read.total)}, {mime}).")


class _Counted:
    """``file``'s blocks, the bar following; ``total`` counts the bytes read."""

    def __init__(self, file: IO[bytes], advance: Callable[[int], None]) -> None:
        self.file, self.advance, self.total = file, advance, 0

    def __iter__(self) -> Iterator[bytes]:
        while block := self.file.read(_BLOCK):
            self.total += len(block)
            self.advance(len(block))
            yield block


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


@artifacts_app.command("prune")
@guarded
def prune(*, dsn: DsnOption = None, json_output: JsonOption = False) -> None:
    """Delete stored contents no version holds (two deletes at once can leave one)."""
    with tables_needed(_NO_TABLES), open_artifact_store(dsn) as store:
        pruned = store.prune_blobs()
    if json_output:
        emit_json({"contents": pruned.blobs, "bytes": pruned.bytes})
        return
    out_console().print(f"Deleted {pruned.blobs} content(s), {format_bytes(pruned.bytes)}.")
