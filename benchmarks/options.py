"""Sizes of a run: the defaults (a full run, ~15 minutes on 2 cores) and ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["SCENARIOS", "Sizes", "quick_sizes"]

#: Scenario names, in run order (``--scenario`` also takes their numbers).
SCENARIOS: tuple[str, ...] = (
    "append",
    "get",
    "recent",
    "list",
    "concurrency",
    "bulk",
    "memory",
    "artifacts",
    "runner",
)


@dataclass(frozen=True)
class Sizes:
    """Everything a run's workload size depends on."""

    #: Untimed calls before each timed series.
    warmup: int = 20
    #: Seconds after which a timed series stops early (once it has 3 samples).
    budget: float = 8.0
    #: Text content per event, in characters.
    text_bytes: int = 1000
    #: 1. Timed sequential appends on one session (growing from empty); then timed
    #: appends on a session already holding ``append_history`` events.
    appends: int = 500
    append_history: int = 100_000
    history_appends: int = 30
    #: 2. Events in the session that get_session loads whole; timed loads.
    history: int = 200
    gets: int = 100
    #: 2. The small and the long session read again and again.
    again_small: int = 20
    again_big: int = 2_000
    #: 3. num_recent_events, and the two session sizes it reads from.
    recent: int = 10
    small_session: int = 1_000
    big_session: int = 100_000
    recent_runs: int = 200
    #: 4. Sessions of the two listed users; timed whole lists; page size and timed pages.
    few_sessions: int = 1_000
    many_sessions: int = 100_000
    list_runs: int = 10
    page_size: int = 100
    page_runs: int = 200
    #: 5. Concurrent tasks (one session each), pool size, appends per task; rounds, each
    #: implementation's in turn (a round is short, and the machine drifts between them).
    tasks: int = 64
    pool_size: int = 10
    appends_per_task: int = 25
    concurrency_rounds: int = 5
    #: 6. Events bulk imported; appends timed to extrapolate the loop; events exported.
    import_events: int = 100_000
    append_sample: int = 300
    export_small: int = 10_000
    export_large: int = 1_000_000
    #: 7. Memory: events per add_events_to_memory call and timed calls; the two table
    #: sizes (memories spread over users of ``memory_per_user`` each), the heavy user's
    #: memories (in the large table); timed searches per row and table state.
    memory_batch: int = 1_000
    memory_batches: int = 20
    memory_small: int = 10_000
    memory_large: int = 1_000_000
    memory_per_user: int = 1_000
    memory_heavy: int = 100_000
    memory_searches: int = 200
    #: 8. Artifacts: the content sizes saved and loaded, and timed calls of each.
    artifact_sizes: tuple[int, ...] = (1_000, 1_000_000, 50_000_000)
    artifact_runs: int = 30
    #: ... and the file ``sqlspec-adk artifacts put``, ``get`` and ``export`` stream, once each.
    artifact_cli: int = 500_000_000
    #: 9. Runner: turns of the conversation, and how many turns the first and last
    #: rows each take.
    runner_turns: int = 150
    runner_window: int = 15

    def with_overrides(self, overrides: dict[str, Any]) -> Sizes:
        """A copy with the given (non-``None``) fields replaced."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown sizes: {sorted(unknown)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def quick_sizes() -> Sizes:
    """Tiny sizes for a smoke run of every scenario, under a minute."""
    return Sizes(
        warmup=2,
        budget=1.0,
        appends=20,
        append_history=2_000,
        history_appends=6,
        history=30,
        gets=10,
        again_big=200,
        small_session=100,
        big_session=2_000,
        recent_runs=20,
        few_sessions=50,
        many_sessions=2_000,
        list_runs=3,
        page_size=20,
        page_runs=10,
        tasks=8,
        pool_size=4,
        appends_per_task=4,
        concurrency_rounds=2,
        import_events=1_000,
        append_sample=20,
        export_small=200,
        export_large=2_000,
        memory_batches=3,
        memory_small=1_000,
        memory_large=10_000,
        memory_per_user=100,
        memory_heavy=5_000,
        memory_searches=20,
        artifact_sizes=(1_000, 1_000_000, 5_000_000),
        artifact_runs=3,
        artifact_cli=5_000_000,
        runner_turns=20,
        runner_window=5,
    )
