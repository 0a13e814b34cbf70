"""Scenario 8, artifacts: save and load latency and MB/s of the artifact service.

``SQLSpecArtifactService`` over ``PsycopgAsyncADKArtifactStore`` against ADK's
``FileArtifactService`` (a folder on this machine's disk) and
``InMemoryArtifactService`` (a dict in this process: nothing leaves memory, so
only a reference point). Each size is saved and loaded as ``inline_data`` bytes:
every save's content differs from the one before (its first 8 bytes count the
calls), so the store's content deduplication never hides the write; every load
reads the latest version of a file saved once before the series.

Then the command line streams one big file (500 MB by default) through
``sqlspec-adk artifacts put``, ``get`` and ``export``, each in a child process:
its time and peak resident memory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from google.adk.artifacts.base_artifact_service import BaseArtifactService
from google.adk.artifacts.file_artifact_service import FileArtifactService
from google.adk.artifacts.in_memory_artifact_service import InMemoryArtifactService
from google.genai import types
from psycopg.conninfo import conninfo_to_dict

from benchmarks.measure import Result, Series, run_measured, time_interleaved
from benchmarks.workload import APP
from sqlspec.adapters.psycopg import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKArtifactStore
from sqlspec.extensions.adk import SQLSpecArtifactService

if TYPE_CHECKING:
    from benchmarks.scenarios import Context

__all__ = ["ARTIFACT_FAMILIES", "ARTIFACT_IMPLEMENTATIONS", "S8", "scenario_artifacts"]

S8 = "8 artifacts"

SQLSPEC = "sqlspec async · artifact service"
FILE = "ADK FileArtifactService (local disk)"
IN_MEMORY = "ADK InMemoryArtifactService (in-process dict, no database)"
CLI = "sqlspec-adk (command line, streaming)"

#: ``--impl`` key -> (label, family) of the artifact scenario's implementations.
ARTIFACT_IMPLEMENTATIONS: dict[str, tuple[str, str]] = {
    "sqlspec-artifacts": (SQLSPEC, "sqlspec"),
    "adk-file-artifacts": (FILE, "adk"),
    # Not "adk": the ratio column compares with the durable peer, FileArtifactService.
    "adk-in-memory-artifacts": (IN_MEMORY, "reference"),
}
#: Every label the scenario's rows carry, and its family (for the report's ratios).
ARTIFACT_FAMILIES: dict[str, str] = {**dict(ARTIFACT_IMPLEMENTATIONS.values()), CLI: "sqlspec"}

USER = "artifact-user"
SESSION = "artifact-session"
MIME = "application/octet-stream"


def _label(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size // scale} {unit}"
    return f"{size} B"


@dataclass
class _Opened:
    services: dict[str, BaseArtifactService]
    config: PsycopgAsyncConfig | None
    folder: str | None

    async def close(self) -> None:
        if self.config is not None:
            await self.config.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


async def _open(ctx: Context, opened: _Opened) -> None:
    """Open the chosen services into ``opened`` (closed by the caller, even if this fails)."""
    chosen = {
        label
        for key, (label, _) in ARTIFACT_IMPLEMENTATIONS.items()
        if ctx.selected is None or key in ctx.selected
    }
    if SQLSPEC in chosen:
        opened.config = PsycopgAsyncConfig({"conninfo": ctx.dsn, "min_size": 1, "max_size": 2})
        store = PsycopgAsyncADKArtifactStore(
            opened.config, max_artifact_bytes=max(ctx.sizes.artifact_sizes)
        )
        await store.create_tables()
        opened.services[SQLSPEC] = SQLSpecArtifactService(store)
    if FILE in chosen:
        opened.folder = tempfile.mkdtemp(prefix="bench-artifacts-")
        opened.services[FILE] = FileArtifactService(opened.folder)
    if IN_MEMORY in chosen:
        opened.services[IN_MEMORY] = InMemoryArtifactService()


def _saver(service: BaseArtifactService, size: int) -> Series:
    """Saves of ``size`` bytes, each turn's distinct from every other's.

    Each turn's part is built, and the versions before it deleted, untimed (in
    ``prepare``): the copy of the content is not timed, and no service holds
    more than a turn's versions of it.
    """
    filename = f"save-{size}"
    ids: dict[str, Any] = {"app_name": APP, "user_id": USER, "session_id": SESSION}
    content = bytearray(os.urandom(size))
    turn = types.Part()
    turns = 0

    async def prepare() -> None:
        nonlocal turn, turns
        await service.delete_artifact(filename=filename, **ids)
        content[:8] = turns.to_bytes(8, "big")[: min(8, size)]
        turns += 1
        turn = types.Part(inline_data=types.Blob(data=bytes(content), mime_type=MIME))

    async def save(_i: int) -> None:
        await service.save_artifact(filename=filename, artifact=turn, **ids)

    return Series(None, True, save, prepare=prepare)


async def _loader(service: BaseArtifactService, size: int) -> Callable[[int], Awaitable[Any]]:
    """Load call ``i``: the latest version of a file of ``size`` bytes saved before."""
    filename = f"load-{size}"
    part = types.Part(inline_data=types.Blob(data=os.urandom(size), mime_type=MIME))
    await service.save_artifact(
        app_name=APP, user_id=USER, session_id=SESSION, filename=filename, artifact=part
    )

    async def load(_i: int) -> None:
        loaded = await service.load_artifact(
            app_name=APP, user_id=USER, session_id=SESSION, filename=filename
        )
        assert loaded is not None
        assert loaded.inline_data is not None
        assert len(loaded.inline_data.data or b"") == size

    return load


async def scenario_artifacts(ctx: Context) -> None:
    opened = _Opened({}, None, None)
    try:
        await _open(ctx, opened)
        if not opened.services:
            ctx.notes.append(f"{S8}: skipped: no artifact implementation among --impl")
            return
        for size in ctx.sizes.artifact_sizes:
            for operation in ("save", "load"):
                name = f"{operation} {_label(size)}"
                ctx.status(f"{S8} · {name}")
                series = []
                for label, service in opened.services.items():
                    if operation == "save":
                        entry = _saver(service, size)
                    else:
                        entry = Series(None, True, await _loader(service, size))
                    entry.key = label
                    series.append(entry)
                runs = ctx.sizes.artifact_runs
                warmup = min(ctx.sizes.warmup, max(1, runs // 5))
                # One call per turn: each save's part is prepared untimed, just before it.
                budget = ctx.budget(runs, warmup=warmup, chunk=1)
                await time_interleaved(series, budget)
                _record(ctx, name, size, series)
        if SQLSPEC in opened.services:
            _command_line(ctx, ctx.sizes.artifact_cli)
    finally:
        await opened.close()


def _command_line(ctx: Context, size: int) -> None:
    """``sqlspec-adk artifacts put``, ``get``, then ``export`` of a ``size``-byte file, timed."""
    uri = "sqlspec+postgresql:///?" + urlencode(
        {**conninfo_to_dict(ctx.dsn), "max_artifact_bytes": max(size, 1 << 20)}
    )
    where = ["--app", APP, "--user", USER, "--dsn", uri]
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-cli-") as folder:
        source, back, dump = (os.path.join(folder, name) for name in ("in", "out", "dump.jsonl"))
        with open(source, "wb") as file:
            block = os.urandom(1 << 20)
            for start in range(0, size, len(block)):
                file.write(block[: size - start])
        steps = {
            "init": ["init", "--dsn", uri],
            f"CLI put {_label(size)}": ["artifacts", "put", "user:cli", source, *where],
            f"CLI get {_label(size)}": ["artifacts", "get", "user:cli", "-o", back, *where],
            f"CLI export {_label(size)}": ["export", dump, "--dsn", uri],
        }
        for operation, args in steps.items():
            ctx.status(f"{S8} · {operation}")
            with open(os.path.join(folder, "err"), "w+b") as err:
                status, seconds, peak = run_measured("sqlspec.cli", args, subprocess.DEVNULL, err)
                err.seek(0)
                if status != 0:
                    message = err.read().decode(errors="replace").strip()
                    ctx.fail(S8, operation, CLI, RuntimeError(message))
                    return
            if operation == "init":
                continue
            result = Result(S8, operation, CLI, [seconds])
            result.extra = f"peak RSS {peak / 1e6:,.0f} MB, {size / seconds / 1e6:,.0f} MB/s"
            result.metrics = {"artifact_bytes": float(size), "peak_rss_mb": peak / 1e6}
            ctx.results.append(result)


def _record(ctx: Context, operation: str, size: int, series: list[Series]) -> None:
    for entry in series:
        label = str(entry.key)
        if entry.error is not None:
            ctx.fail(S8, operation, label, entry.error)
            continue
        result = Result(S8, operation, label, entry.samples)
        result.extra = f"{size / result.median / 1e6:,.0f} MB/s"
        result.metrics = {"artifact_bytes": float(size)}
        ctx.results.append(result)
