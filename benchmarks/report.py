"""The report: one table of medians, p95s and ratios, then the targets."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from benchmarks.artifacts import ARTIFACT_FAMILIES
from benchmarks.impls import IMPLEMENTATIONS
from benchmarks.measure import Result
from benchmarks.memory import HYBRID, MEMORY_FAMILIES, S7, TEXT
from benchmarks.runner import IN_MEMORY, RUNNER_FAMILIES, S9

__all__ = ["Report", "Target", "evaluate_targets", "render"]

_FAMILY = (
    {cls.label: cls.family for cls in IMPLEMENTATIONS}
    | MEMORY_FAMILIES
    | ARTIFACT_FAMILIES
    | RUNNER_FAMILIES
)
_ASYNC = {cls.label: cls.is_async for cls in IMPLEMENTATIONS}
_FLOOR_ASYNC = "raw psycopg · async (floor)"
_FLOOR_SYNC = "raw psycopg · sync (floor)"


@dataclass
class Report:
    results: list[Result]
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "notes": self.notes,
            "results": [r.to_json() for r in self.results],
            "targets": [t.to_json() for t in evaluate_targets(self.results)],
            "errors": [
                f"{r.scenario} · {r.operation} · {r.impl}: {r.error}"
                for r in self.results
                if r.error
            ],
        }


def _fmt_time(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def _fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def _same_op(results: Iterable[Result], scenario: str, operation: str) -> list[Result]:
    return [
        r for r in results if r.scenario == scenario and r.operation == operation and not r.error
    ]


def _cost(result: Result) -> float:
    """What a ratio compares: time per operation (from throughput where one was measured)."""
    if result.throughput:
        return 1 / result.throughput
    return result.median


def ratios(result: Result, results: list[Result]) -> tuple[float | None, float | None]:
    """(x floor, ADK ÷) of one row: its cost over the floor's, the fastest ADK's over its."""
    if result.error or result.n == 0:
        return None, None
    peers = _same_op(results, result.scenario, result.operation)
    family = _FAMILY.get(result.impl)
    floor_label = _FLOOR_ASYNC if _ASYNC.get(result.impl, True) else _FLOOR_SYNC
    floor = next((r for r in peers if r.impl == floor_label), None)
    x_floor = None
    if floor is not None and family in ("sqlspec", "adk") and _cost(floor) > 0:
        x_floor = _cost(result) / _cost(floor)
    adk = [r for r in peers if _FAMILY.get(r.impl) == "adk"]
    adk_div = None
    if adk and family in ("sqlspec", "raw") and _cost(result) > 0:
        adk_div = min(_cost(r) for r in adk) / _cost(result)
    return x_floor, adk_div


def render(report: Report, console: Console) -> None:
    table = Table(
        title="sqlspec ADK stores vs ADK DatabaseSessionService vs the raw psycopg floor",
        caption=(
            "x floor: this row's time over the raw floor's of the same mode (1.00x = floor). "
            "ADK ÷: the fastest ADK DatabaseSessionService's time over this row's "
            "(5x = five times faster than ADK; in 7 memory, ADK's InMemoryMemoryService, "
            "in-process; in 8 artifacts, ADK's FileArtifactService). "
            "Throughput rows compare time per append (per memory)."
        ),
        show_lines=False,
        expand=False,
    )
    table.add_column("scenario", style="bold")
    table.add_column("operation")
    table.add_column("implementation")
    table.add_column("n", justify="right")
    table.add_column("median", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("x floor", justify="right")
    table.add_column("ADK ÷", justify="right")
    table.add_column("notes")
    last: tuple[str, str] | None = None
    for result in report.results:
        key = (result.scenario, result.operation)
        if last is not None and key[0] != last[0]:
            table.add_section()
        scenario = result.scenario if last is None or key[0] != last[0] else ""
        operation = result.operation if key != last else ""
        last = key
        if result.error:
            table.add_row(
                scenario, operation, result.impl, "", "", "", "", "", Text(result.error, "red")
            )
            continue
        x_floor, adk_div = ratios(result, report.results)
        style = "green" if _FAMILY.get(result.impl) == "sqlspec" else None
        table.add_row(
            scenario,
            operation,
            Text(result.impl, style or ""),
            str(result.n),
            _fmt_time(result.median),
            _fmt_time(result.p95) if result.n > 1 else "",
            _fmt_ratio(x_floor),
            _fmt_ratio(adk_div),
            result.extra,
        )
    console.print(table)
    targets = evaluate_targets(report.results)
    if targets:
        t = Table(title="targets")
        t.add_column("target")
        t.add_column("measured")
        t.add_column("verdict")
        for target in targets:
            colour = {"PASS": "green", "FAIL": "red"}.get(target.verdict, "yellow")
            t.add_row(target.name, target.measured, Text(target.verdict, colour))
        console.print(t)
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


# --- targets -------------------------------------------------------------------------------

OURS_ASYNC = "sqlspec async · service"
OURS_SYNC = "sqlspec sync · store"
OURS_ASYNC_STORE = "sqlspec async · store"
OURS_SYNC_SERVICE = "sqlspec sync · service (thread)"


@dataclass
class Target:
    name: str
    measured: str
    verdict: str  # PASS, FAIL or N/A

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "measured": self.measured, "verdict": self.verdict}


def _rows(results: list[Result], scenario: str, impl: str, contains: str = "") -> list[Result]:
    return [
        r
        for r in results
        if r.scenario == scenario and r.impl == impl and contains in r.operation and not r.error
    ]


def _judge(name: str, value: float | None, ok: bool, unit: str = "x") -> Target:
    if value is None or math.isnan(value):
        return Target(name, "not measured", "N/A")
    if unit == "MB":
        measured = f"{value:+.1f} MB"
    elif unit:
        measured = f"{value:.2f}{unit}"
    else:
        measured = f"{value:g}"
    return Target(name, measured, "PASS" if ok else "FAIL")


def _ratio_of(results: list[Result], scenario: str, impl: str, which: int) -> float | None:
    rows = _rows(results, scenario, impl)
    return ratios(rows[0], results)[which] if rows else None


def _floor_ratio(results: list[Result], scenario: str, impl: str, contains: str) -> float | None:
    """The first matching row's time over the raw floor's."""
    rows = _rows(results, scenario, impl, contains)
    return ratios(rows[0], results)[0] if rows else None


def _size_ratio(results: list[Result], scenario: str, impl: str, contains: str) -> float | None:
    """Median of the last (biggest) matching row over the first (smallest)."""
    rows = _rows(results, scenario, impl, contains)
    return rows[-1].median / rows[0].median if len(rows) >= 2 else None


def evaluate_targets(results: list[Result]) -> list[Target]:
    """The project's performance targets, judged on this run's rows."""
    out: list[Target] = []
    for impl in (OURS_ASYNC, OURS_SYNC):
        for scenario, operation, what in (
            ("1 append", "append_event (", "append"),
            ("1 append", "create_session", "create_session"),
            ("4 list", "whole list of 1,000", "list of 1,000 sessions"),
        ):
            value = _floor_ratio(results, scenario, impl, operation)
            name = f"{what} within 1.3x of the raw floor ({impl})"
            out.append(_judge(name, value, (value or 99) <= 1.3))
    value = _ratio_of(results, "1 append", OURS_ASYNC, 1)
    out.append(_judge("append >= 5x faster than ADK (async service)", value, (value or 0) >= 5))
    value = _ratio_of(results, "2 get whole", OURS_ASYNC, 1)
    out.append(_judge("get_session of 200 events >= 3x faster than ADK", value, (value or 0) >= 3))
    for impl in (OURS_ASYNC, OURS_SYNC_SERVICE):
        value = _size_ratio(results, "2 get whole", impl, "again")
        name = f"get_session again: 2,000 events within 1.5x of 20 ({impl})"
        out.append(_judge(name, value, (value or 99) <= 1.5))
    for impl in (OURS_ASYNC, OURS_SYNC):
        value = _size_ratio(results, "3 get recent", impl, "")
        name = f"recent-10 on 100k within 1.2x of 1k ({impl})"
        out.append(_judge(name, value, (value or 0) <= 1.2))
    for impl in (OURS_ASYNC, OURS_SYNC):
        value = _size_ratio(results, "4 list", impl, "first page")
        name = f"page of 100 from 100k within 1.2x of 1k ({impl})"
        out.append(_judge(name, value, (value or 0) <= 1.2))
    rows = [
        r
        for r in _rows(results, "5 concurrency", OURS_ASYNC, "pool of")
        if "1 in 10" in r.operation
    ]
    timeouts = rows[0].metrics.get("timeouts") if rows else None
    speedup = rows[0].metrics.get("speedup") if rows else None
    out.append(_judge("concurrent tasks: no pool timeouts", timeouts, timeouts == 0, unit=""))
    out.append(_judge("concurrent tasks: throughput >= 3x one task", speedup, (speedup or 0) >= 3))
    per_append = ratios(rows[0], results)[0] if rows else None
    share = 1 / per_append if per_append else None
    name = "concurrent tasks: throughput >= 0.75x the raw floor's (app: 1 in 10)"
    out.append(_judge(name, share, (share or 0) >= 0.75))
    for impl in (OURS_ASYNC_STORE, OURS_SYNC):
        rows = _rows(results, "6 bulk", impl, "bulk import")
        value = rows[0].metrics.get("speedup") if rows else None
        name = f"bulk import >= 10x faster than the append loop ({impl})"
        out.append(_judge(name, value, (value or 0) >= 10))
    growth = [r for r in results if "rss_growth_mb" in r.metrics and r.impl.startswith("sqlspec")]
    for r in growth:
        value = r.metrics["rss_growth_mb"]
        name = f"export peak RSS growth < 50 MB ({r.operation.split(',')[0]})"
        out.append(_judge(name, value, value < 50, unit="MB"))
    if not growth:
        out.append(_judge("export peak RSS growth < 50 MB", None, False))
    out += _memory_targets(results)
    out += _runner_targets(results)
    return out


def _short(n: float) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % size == 0:
            return f"{int(n) // size}{unit}"
    return f"{int(n):,}"


def _memory_targets(results: list[Result]) -> list[Target]:
    """Memory search on the large table within 3x of the small one, per mode and table state."""
    out: list[Target] = []
    for impl, mode in ((TEXT, "text"), (HYBRID, "hybrid")):
        for phase, state in ((0.0, "fresh"), (1.0, "analyzed")):
            rows = [
                r
                for r in _rows(results, S7, impl)
                if r.n and "memory_table" in r.metrics and r.metrics.get("memory_phase") == phase
            ]
            rows.sort(key=lambda r: r.metrics["memory_table"])
            small, large = (rows[0], rows[-1]) if len(rows) >= 2 else (None, None)
            sizes = "1M vs 10k"
            value = None
            if small is not None and large is not None:
                sizes = f"{_short(large.metrics['memory_table'])} vs "
                sizes += _short(small.metrics["memory_table"])
                value = large.median / small.median
            name = f"memory search, {sizes} memories: within 3x ({mode}, {state})"
            out.append(_judge(name, value, (value or 99) <= 3))
    return out


def _runner_targets(results: list[Result]) -> list[Target]:
    """The store's share of a Runner turn: flat across the conversation, below in-memory's."""
    out: list[Target] = []
    in_memory = [r for r in _rows(results, S9, IN_MEMORY) if "growth" in r.metrics]
    for impl in (OURS_ASYNC, OURS_SYNC_SERVICE):
        last = [r for r in _rows(results, S9, impl) if "growth" in r.metrics]
        growth = last[0].metrics["growth"] if last else None
        name = f"Runner: store per turn, last turns within 1.3x of the first ({impl})"
        out.append(_judge(name, growth, (growth or 99) <= 1.3))
        value = in_memory[0].median / last[0].median if last and in_memory else None
        name = f"Runner: in-memory's store time per turn over ours, last turns, > 1x ({impl})"
        out.append(_judge(name, value, (value or 0) > 1))
    return out
