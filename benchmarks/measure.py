"""Timing: samples, medians and p95s, and the rows the report is built from.

Implementations are timed interleaved: each round runs a short chunk of calls
on every implementation in turn (the order rotating), so a burst of noise on a
shared machine (a checkpoint, autovacuum, another process) lands on all of them
alike instead of on whichever ran at that moment.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = [
    "Budget",
    "Result",
    "Series",
    "percentile",
    "run_measured",
    "time_interleaved",
]


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, linearly interpolated."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Result:
    """One row of the report: an operation of a scenario, measured on one implementation.

    ``samples`` are seconds per call. ``throughput`` (operations per second) is set
    where a scenario measures it instead of, or besides, latency. ``extra`` is a short
    free-form note shown in the table (sizes, RSS, timeouts...).
    """

    scenario: str
    operation: str
    impl: str
    samples: list[float] = field(default_factory=list)
    throughput: float | None = None
    extra: str = ""
    error: str | None = None
    #: Values the targets read (e.g. ``{"timeouts": 0, "peak_rss_mb": 210.5}``).
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 0.95)

    def to_json(self) -> dict[str, Any]:
        def ms(value: float) -> float | None:
            return None if math.isnan(value) else round(value * 1000, 4)

        return {
            "scenario": self.scenario,
            "operation": self.operation,
            "impl": self.impl,
            "n": self.n,
            "median_ms": ms(self.median),
            "p95_ms": ms(self.p95),
            "throughput": self.throughput,
            "extra": self.extra,
            "error": self.error,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class Budget:
    """How many calls to time per implementation.

    ``runs`` calls after ``warmup`` untimed ones, ``chunk`` calls per turn; the
    series stops early once every implementation has ``min_runs`` samples and the
    whole series has taken ``seconds`` per implementation.
    """

    runs: int
    warmup: int
    seconds: float = 8.0
    min_runs: int = 3
    chunk: int = 10


@dataclass
class Series:
    """One implementation's part of an interleaved series.

    ``fn(i)`` makes call number ``i`` (warm-up calls first): it returns an
    awaitable when ``is_async``, else it is called in a worker thread where no
    event loop runs, as in a plain script, so no thread hop is timed.
    """

    key: Hashable
    is_async: bool
    fn: Callable[[int], Any]
    #: Run (untimed) at the start of each turn, e.g. to reload a session shared with others.
    prepare: Callable[[], Any] | None = None
    samples: list[float] = field(default_factory=list)
    error: BaseException | None = None
    next_call: int = 0


def _run_sync(
    fn: Callable[[int], Any],
    start: int,
    count: int,
    timed: bool,
    prepare: Callable[[], Any] | None,
) -> list[float]:
    if prepare is not None:
        prepare()
    samples: list[float] = []
    for i in range(start, start + count):
        t0 = time.perf_counter()
        fn(i)
        if timed:
            samples.append(time.perf_counter() - t0)
    return samples


async def _run_async(
    fn: Callable[[int], Awaitable[Any]],
    start: int,
    count: int,
    timed: bool,
    prepare: Callable[[], Awaitable[Any]] | None,
) -> list[float]:
    if prepare is not None:
        await prepare()
    samples: list[float] = []
    for i in range(start, start + count):
        t0 = time.perf_counter()
        await fn(i)
        if timed:
            samples.append(time.perf_counter() - t0)
    return samples


async def _turn(series: Series, count: int, timed: bool) -> None:
    if series.error is not None or count <= 0:
        return
    start = series.next_call
    series.next_call += count
    try:
        if series.is_async:
            samples = await _run_async(series.fn, start, count, timed, series.prepare)
        else:
            samples = await asyncio.to_thread(
                _run_sync, series.fn, start, count, timed, series.prepare
            )
    except Exception as exc:
        series.error = exc
        return
    series.samples.extend(samples)


async def time_interleaved(entries: list[Series], budget: Budget) -> list[Series]:
    """Time every entry's calls, interleaved in chunks; an entry that raises stops alone."""
    for entry in entries:
        await _turn(entry, budget.warmup, timed=False)
    gc.collect()
    started = time.perf_counter()
    round_no = 0
    while True:
        live = [e for e in entries if e.error is None and len(e.samples) < budget.runs]
        if not live:
            break
        enough = all(len(e.samples) >= budget.min_runs for e in live)
        if enough and time.perf_counter() - started > budget.seconds * len(entries):
            break
        shift = round_no % len(live)
        for entry in live[shift:] + live[:shift]:
            await _turn(entry, min(budget.chunk, budget.runs - len(entry.samples)), timed=True)
        round_no += 1
    return entries


def run_measured(
    module: str, args: list[str], stdout: IO[bytes] | int, stderr: IO[bytes] | int
) -> tuple[int, float, int]:
    """Run ``python -m module args`` in a child: its exit status, seconds and peak RSS in bytes.

    The peak is the child's own, read by ``benchmarks.peak`` as it exits.
    """
    with tempfile.TemporaryDirectory(prefix="bench-peak-") as folder:
        peak_file = os.path.join(folder, "peak")
        command = [sys.executable, "-m", "benchmarks.peak", peak_file, module, *args]
        start = time.perf_counter()
        # From the checkout's root, where ``benchmarks`` is found, whatever the caller's cwd.
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        status = subprocess.run(
            command, stdout=stdout, stderr=stderr, cwd=root, check=False
        ).returncode
        seconds = time.perf_counter() - start
        with open(peak_file) as peak:
            return status, seconds, int(peak.read())
