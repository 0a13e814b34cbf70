"""``python -m benchmarks``: the command line, and the run that ties everything together."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from benchmarks.artifacts import ARTIFACT_IMPLEMENTATIONS, scenario_artifacts
from benchmarks.database import DSN_ENV, resolve_server, scratch_database
from benchmarks.impls import IMPLEMENTATIONS, build_impls
from benchmarks.memory import MEMORY_IMPLEMENTATIONS, scenario_memory
from benchmarks.options import SCENARIOS, Sizes, quick_sizes
from benchmarks.report import Report, render
from benchmarks.runner import RUNNER_IMPLEMENTATIONS, scenario_runner
from benchmarks.scenarios import SCENARIO_FUNCTIONS, Context
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore

__all__ = ["app", "main", "run_benchmarks"]

#: What runs each scenario, by name.
RUNNERS = {
    **SCENARIO_FUNCTIONS,
    "memory": scenario_memory,
    "artifacts": scenario_artifacts,
    "runner": scenario_runner,
}

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode="rich")


_DEFAULT, _QUICK = Sizes(), quick_sizes()


def _h(text: str, field: str) -> str:
    """Help for a size option: what it sets, its default and its --quick value."""
    default, quick = getattr(_DEFAULT, field), getattr(_QUICK, field)
    return f"{text.rstrip('.')} (default {default:,}; --quick {quick:,})"


def _scenario_names(values: list[str] | None) -> list[str]:
    if not values:
        return list(SCENARIOS)
    chosen: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name.isdigit() and 1 <= int(name) <= len(SCENARIOS):
                name = SCENARIOS[int(name) - 1]
            if name not in SCENARIOS:
                raise typer.BadParameter(f"unknown scenario {part!r}; choose from {SCENARIOS}")
            if name not in chosen:
                chosen.append(name)
    return [name for name in SCENARIOS if name in chosen]


async def run_benchmarks(
    *,
    server: str,
    sizes: Sizes,
    scenarios: list[str],
    impl_keys: set[str] | None,
    status: Any,
    verbose: bool = False,
) -> Report:
    """Run ``scenarios`` in a scratch database on ``server``; return the report."""
    started = time.perf_counter()
    with scratch_database(server) as dsn:
        # The library's tables first: the raw floor reads their column types.
        reader = PsycopgSyncADKStore(
            PsycopgSyncConfig({"conninfo": dsn, "min_size": 1, "max_size": 2})
        )
        await asyncio.to_thread(reader.create_tables)
        impls, notes = build_impls(dsn, sizes.pool_size, impl_keys)
        opened = []
        for impl in impls:
            status(f"opening {impl.label}")
            try:
                await impl.open()
            except Exception as exc:
                notes.append(f"{impl.label} skipped: could not open: {type(exc).__name__}: {exc}")
                continue
            opened.append(impl)
        admin = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        ctx = Context(
            dsn=dsn,
            sizes=sizes,
            impls=opened,
            admin=admin,
            reader=reader,
            status=status,
            verbose=verbose,
            selected=impl_keys,
            notes=notes,
        )
        try:
            for name in scenarios:
                await _between_scenarios(ctx)
                await RUNNERS[name](ctx)
        finally:
            for impl in opened:
                try:
                    await impl.close()
                except Exception as exc:
                    notes.append(f"{impl.label}: close failed: {exc}")
            await asyncio.to_thread(reader.close)
            cur = await admin.execute("SHOW server_version")
            row = await cur.fetchone()
            version = str(row[0]) if row else "?"
            await admin.close()
    return Report(
        results=ctx.results,
        notes=ctx.notes,
        meta={
            "server": version,
            "python": platform.python_version(),
            "sizes": sizes.__dict__,
            "scenarios": scenarios,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


async def _between_scenarios(ctx: Context) -> None:
    """Start each scenario alike: idle connections given back, the last one's WAL flushed."""
    for impl in ctx.impls:
        try:
            await impl.release()
        except Exception as exc:
            ctx.notes.append(f"{impl.label}: could not release its pool: {exc}")
    with contextlib.suppress(psycopg.Error):
        await ctx.admin.execute("CHECKPOINT")


@app.command()
def bench(
    *,
    dsn: Annotated[
        str | None,
        typer.Option(
            help=f"PostgreSQL server (conninfo or URL); default ${DSN_ENV}, else the embedded "
            "server. A scratch database is created on it and dropped at the end."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="Tiny sizes for a smoke run (under a minute).")
    ] = False,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only these scenarios (repeat, or comma-separate): "
            f"{', '.join(SCENARIOS)}, or their numbers 1-{len(SCENARIOS)}."
        ),
    ] = None,
    impl: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only these implementations: "
            + ", ".join(cls.key for cls in IMPLEMENTATIONS)
            + "; in the memory scenario: "
            + ", ".join(MEMORY_IMPLEMENTATIONS)
            + "; in the artifacts scenario: "
            + ", ".join(ARTIFACT_IMPLEMENTATIONS)
            + "; in the runner scenario, besides the services: "
            + ", ".join(RUNNER_IMPLEMENTATIONS)
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON to this file.")
    ] = None,
    runner_turns: Annotated[
        int | None, typer.Option(help=_h("9: turns of the Runner conversation.", "runner_turns"))
    ] = None,
    runner_window: Annotated[
        int | None,
        typer.Option(help=_h("9: turns in the first and the last row.", "runner_window")),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Print tracebacks of failed rows.")] = False,
    warmup: Annotated[
        int | None, typer.Option(help=_h("Untimed calls before each series.", "warmup"))
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(
            help=_h("Seconds per implementation after which a timed series stops early.", "budget")
        ),
    ] = None,
    text_bytes: Annotated[
        int | None, typer.Option(help=_h("Text content per event.", "text_bytes"))
    ] = None,
    appends: Annotated[int | None, typer.Option(help=_h("1: timed appends.", "appends"))] = None,
    append_history: Annotated[
        int | None,
        typer.Option(
            help=_h("1: events already in the long session appended to.", "append_history")
        ),
    ] = None,
    history_appends: Annotated[
        int | None,
        typer.Option(help=_h("1: timed appends to the long session.", "history_appends")),
    ] = None,
    history: Annotated[
        int | None, typer.Option(help=_h("2: events in the loaded session.", "history"))
    ] = None,
    gets: Annotated[int | None, typer.Option(help=_h("2: timed loads.", "gets"))] = None,
    again_small: Annotated[
        int | None,
        typer.Option(help=_h("2: events of the small session read again.", "again_small")),
    ] = None,
    again_big: Annotated[
        int | None, typer.Option(help=_h("2: events of the long session read again.", "again_big"))
    ] = None,
    recent: Annotated[int | None, typer.Option(help=_h("3: num_recent_events.", "recent"))] = None,
    small_session: Annotated[
        int | None, typer.Option(help=_h("3: events in the small session.", "small_session"))
    ] = None,
    big_session: Annotated[
        int | None, typer.Option(help=_h("3: events in the big session.", "big_session"))
    ] = None,
    recent_runs: Annotated[
        int | None, typer.Option(help=_h("3: timed loads per size.", "recent_runs"))
    ] = None,
    few_sessions: Annotated[
        int | None, typer.Option(help=_h("4: sessions of the small lister.", "few_sessions"))
    ] = None,
    many_sessions: Annotated[
        int | None, typer.Option(help=_h("4: sessions of the big lister.", "many_sessions"))
    ] = None,
    list_runs: Annotated[
        int | None, typer.Option(help=_h("4: timed whole lists.", "list_runs"))
    ] = None,
    page_size: Annotated[
        int | None, typer.Option(help=_h("4: sessions per page.", "page_size"))
    ] = None,
    page_runs: Annotated[int | None, typer.Option(help=_h("4: timed pages.", "page_runs"))] = None,
    tasks: Annotated[int | None, typer.Option(help=_h("5: concurrent tasks.", "tasks"))] = None,
    pool_size: Annotated[
        int | None, typer.Option(help=_h("Pool size of every implementation.", "pool_size"))
    ] = None,
    appends_per_task: Annotated[
        int | None, typer.Option(help=_h("5: appends per task.", "appends_per_task"))
    ] = None,
    concurrency_rounds: Annotated[
        int | None,
        typer.Option(help=_h("5: rounds, every implementation's in turn.", "concurrency_rounds")),
    ] = None,
    import_events: Annotated[
        int | None, typer.Option(help=_h("6: events bulk imported.", "import_events"))
    ] = None,
    append_sample: Annotated[
        int | None,
        typer.Option(help=_h("6: appends timed to extrapolate the loop.", "append_sample")),
    ] = None,
    export_small: Annotated[
        int | None, typer.Option(help=_h("6: events of the small export.", "export_small"))
    ] = None,
    export_large: Annotated[
        int | None, typer.Option(help=_h("6: events of the large export.", "export_large"))
    ] = None,
    memory_batch: Annotated[
        int | None,
        typer.Option(help=_h("7: events per add_events_to_memory call.", "memory_batch")),
    ] = None,
    memory_batches: Annotated[
        int | None, typer.Option(help=_h("7: timed add_events_to_memory calls.", "memory_batches"))
    ] = None,
    memory_small: Annotated[
        int | None, typer.Option(help=_h("7: memories of the small table.", "memory_small"))
    ] = None,
    memory_large: Annotated[
        int | None, typer.Option(help=_h("7: memories of the large table.", "memory_large"))
    ] = None,
    memory_per_user: Annotated[
        int | None,
        typer.Option(help=_h("7: memories per user in both tables.", "memory_per_user")),
    ] = None,
    memory_heavy: Annotated[
        int | None,
        typer.Option(help=_h("7: memories of the heavy user (large table).", "memory_heavy")),
    ] = None,
    memory_searches: Annotated[
        int | None,
        typer.Option(help=_h("7: timed searches per row and table state.", "memory_searches")),
    ] = None,
    artifact_runs: Annotated[
        int | None,
        typer.Option(help=_h("8: timed saves and loads per content size.", "artifact_runs")),
    ] = None,
    artifact_cli: Annotated[
        int | None,
        typer.Option(
            help=_h("8: bytes the command line's put, get and export stream.", "artifact_cli")
        ),
    ] = None,
) -> None:
    """Benchmark the sqlspec ADK stores against ADK's DatabaseSessionService and a raw floor.

    Prints median and p95 per operation and implementation, with ratios to the
    raw psycopg floor and to ADK, then the targets.
    """
    overrides = {
        k: v
        for k, v in locals().items()
        if k not in {"dsn", "quick", "scenario", "impl", "json_out", "verbose"}
    }
    sizes = (quick_sizes() if quick else Sizes()).with_overrides(overrides)
    names = _scenario_names(scenario)
    keys = (
        {cls.key for cls in IMPLEMENTATIONS}
        | set(MEMORY_IMPLEMENTATIONS)
        | set(ARTIFACT_IMPLEMENTATIONS)
        | set(RUNNER_IMPLEMENTATIONS)
    )
    chosen = set(impl or [])
    if chosen - keys:
        raise typer.BadParameter(
            f"unknown implementation(s) {sorted(chosen - keys)}; choose from {sorted(keys)}"
        )

    out = Console()
    err = Console(stderr=True)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("google_adk").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    server, origin = resolve_server(dsn)
    err.print(f"server: {origin}; scenarios: {', '.join(names)}")
    load_before = _busy_warning(err)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def status(message: str) -> None:
            progress.update(task, description=message)
            if not err.is_terminal:
                err.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")

        report = asyncio.run(
            run_benchmarks(
                server=server,
                sizes=sizes,
                scenarios=names,
                impl_keys=chosen or None,
                status=status,
                verbose=verbose,
            )
        )
    report.meta["server_origin"] = origin
    report.meta["load_average"] = {"before": load_before, "after": _busy_warning(err)}
    if not out.is_terminal:
        out = Console(width=200)
    render(report, out)
    out.print(f"run took {report.meta['seconds']} s")
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_json(), indent=2, default=str))


def _busy_warning(err: Console) -> float | None:
    """The 1-minute load average, with a warning when other work competes for the CPUs."""
    if not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load > 0.5 * cpus:
        err.print(
            f"[yellow]warning:[/yellow] load average {load:.1f} on {cpus} CPUs: other work "
            "shares this machine, absolute timings will be noisy (ratios less so: "
            "implementations are timed interleaved)"
        )
    return round(load, 2)


def main() -> None:
    app()
