"""Hypothesis profiles for the robustness suites, chosen by ``HYPOTHESIS_PROFILE``.

- ``ci`` (the default): few examples, derandomized, so a CI run is fast and
  repeatable: the differential file finishes well under a minute.
- ``soak``: many random examples and long sequences, for a long run by hand
  (``HYPOTHESIS_PROFILE=soak pytest tests/test_differential.py``). The stress and
  fault suites read :data:`SOAK` to run longer too.

Importing this module registers and loads the profile. :func:`store_pair` opens
the async and sync stores of a wing that a differential test compares, and
:func:`differential` runs programs on them and on the reference service.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from psycopg import sql

from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig

__all__ = [
    "PROFILE",
    "SOAK",
    "Harness",
    "Play",
    "StorePair",
    "differential",
    "scaled",
    "store_pair",
]

_SUPPRESSED = [
    HealthCheck.too_slow,
    HealthCheck.function_scoped_fixture,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
]

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)
settings.register_profile(
    "soak",
    max_examples=3000,
    deadline=None,
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

#: Whether the long-running ("soak") profile is selected.
SOAK = PROFILE == "soak"


def scaled(ci: float, soak: float) -> float:
    """``ci`` under the default profile, ``soak`` under the soak profile."""
    return soak if SOAK else ci


@dataclass
class StorePair:
    """An async and a sync store on one database, for a differential test to drive."""

    #: Runs the async store's calls from the test's (sync) body.
    runner: asyncio.Runner
    #: An autocommit connection, to empty the tables between examples.
    reset: psycopg.Connection[Any]
    async_store: Any
    sync_store: Any


@contextmanager
def store_pair(
    dsn: str, async_store_class: Any, sync_store_class: Any, **sync_tables: Any
) -> Iterator[StorePair]:
    """Both stores of a wing on ``dsn``, tables created, the sync one on ``sync_tables``."""
    pool = {"conninfo": dsn, "min_size": 1, "max_size": 2}
    with asyncio.Runner() as runner, psycopg.connect(dsn, autocommit=True) as reset:
        async_config = PsycopgAsyncConfig(connection_config=pool)
        sync_config = PsycopgSyncConfig(connection_config=pool)
        try:
            async_store = async_store_class(async_config)
            runner.run(async_store.create_tables())
            sync_store = sync_store_class(sync_config, **sync_tables)
            sync_store.create_tables()
            yield StorePair(runner, reset, async_store, sync_store)
        finally:
            runner.run(async_config.close())
            sync_config.close()


#: ``play(async_service, sync_service, program, outcomes)``: run ``program`` on the
#: reference service and on both services, counting outcomes; returns its steps.
Play = Callable[[Any, Any, list[Any], dict[str, int]], Coroutine[Any, Any, int]]


@dataclass
class Harness:
    """Runs each program from empty tables on a wing's services and its reference."""

    pair: StorePair
    tables: tuple[str, ...]
    async_service: Any
    sync_service: Any
    play: Play
    steps: int = 0
    examples: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def run(self, program: list[Any]) -> None:
        names = sql.SQL(", ").join(sql.Identifier(table) for table in self.tables)
        self.pair.reset.execute(sql.SQL("TRUNCATE {} CASCADE").format(names))
        services = (self.async_service, self.sync_service)
        self.steps += self.pair.runner.run(self.play(*services, program, self.outcomes))
        self.examples += 1


@contextmanager
def differential(
    name: str, pair: StorePair, service_class: Any, tables: tuple[str, ...], play: Play
) -> Iterator[Harness]:
    """A :class:`Harness` over ``service_class`` on both stores; its figures printed after."""
    harness = Harness(
        pair, tables, service_class(pair.async_store), service_class(pair.sync_store), play
    )
    try:
        yield harness
    finally:
        print(f"\n{name}: {harness.examples} programs, {harness.steps} steps x 3 services")
        print("  outcomes:", dict(sorted(harness.outcomes.items())))
