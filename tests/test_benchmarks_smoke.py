"""Smoke test of the benchmark suite: ``python -m benchmarks --quick`` with tiny sizes.

One run (a module fixture, against this test run's server) checks that every
scenario runs and that the report has a row for every implementation. It
measures nothing worth reading; ``python -m benchmarks`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

OURS = (
    "sqlspec async · service",
    "sqlspec sync · store",
    "sqlspec sync · service (thread)",
    "raw psycopg · async (floor)",
    "raw psycopg · sync (floor)",
)
ADK_PEERS = ("ADK DatabaseSessionService · asyncpg", "ADK DatabaseSessionService · psycopg")

TINY = {
    "--warmup": 1,
    "--budget": 0.2,
    "--appends": 5,
    "--history": 5,
    "--gets": 3,
    "--again-small": 5,
    "--again-big": 20,
    "--small-session": 20,
    "--big-session": 50,
    "--recent-runs": 3,
    "--few-sessions": 10,
    "--many-sessions": 30,
    "--list-runs": 2,
    "--page-size": 5,
    "--page-runs": 3,
    "--tasks": 4,
    "--pool-size": 2,
    "--appends-per-task": 2,
    "--import-events": 50,
    "--append-sample": 5,
    "--export-small": 20,
    "--export-large": 60,
    "--memory-batch": 200,
    "--memory-batches": 2,
    "--memory-small": 200,
    "--memory-large": 1000,
    "--memory-per-user": 20,
    "--memory-heavy": 500,
    "--memory-searches": 3,
    "--runner-turns": 4,
    "--runner-window": 2,
}


@pytest.fixture(scope="module")
def quick_run(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the benchmark command once; its JSON report and its printed table.

    ``server_dsn`` is the server behind the ``dsn`` fixture; the benchmark makes
    (and drops) a scratch database of its own there, so it leaves ``dsn`` alone.
    """
    out = tmp_path_factory.mktemp("bench") / "report.json"
    args = [sys.executable, "-m", "benchmarks", "--quick", "--dsn", server_dsn]
    for option, value in TINY.items():
        args += [option, str(value)]
    args += ["--json", str(out)]
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    report["stdout"] = proc.stdout
    return report


def _implementations(report: dict[str, Any]) -> set[str]:
    return {row["impl"] for row in report["results"] if row["median_ms"] is not None}


@pytest.mark.slow
def test_every_scenario_runs_without_errors(quick_run: dict[str, Any]) -> None:
    assert quick_run["errors"] == []
    scenarios = {row["scenario"] for row in quick_run["results"]}
    assert scenarios == {
        "1 append",
        "2 get whole",
        "3 get recent",
        "4 list",
        "5 concurrency",
        "6 bulk",
        "7 memory",
        "8 artifacts",
        "9 runner",
    }
    assert "targets" in quick_run["stdout"]


@pytest.mark.slow
def test_the_table_has_a_row_for_each_of_our_implementations(quick_run: dict[str, Any]) -> None:
    measured = _implementations(quick_run)
    assert set(OURS) <= measured
    for label in OURS:
        assert label in quick_run["stdout"]


@pytest.mark.slow
def test_the_table_has_the_adk_peer_rows(quick_run: dict[str, Any]) -> None:
    for module in ("sqlalchemy", "asyncpg", "greenlet"):
        pytest.importorskip(module)
    measured = _implementations(quick_run)
    assert set(ADK_PEERS) <= measured
    for label in ADK_PEERS:
        assert label in quick_run["stdout"]


@pytest.mark.slow
def test_the_memory_scenario_has_its_rows(quick_run: dict[str, Any]) -> None:
    rows = [row for row in quick_run["results"] if row["scenario"] == "7 memory"]
    measured = {row["impl"] for row in rows if row["median_ms"] is not None}
    assert "sqlspec async · memory service (text)" in measured
    assert any(impl.startswith("ADK InMemoryMemoryService") for impl in measured)
    # The hybrid rows run where the server has pgvector, and say why not elsewhere.
    hybrid = "sqlspec async · memory service (hybrid)" in measured
    assert hybrid or any("hybrid rows skipped" in note for note in quick_run["notes"])
    searches = [row for row in rows if row["operation"].startswith("search_memory")]
    assert any("fresh table" in row["operation"] for row in searches)
    assert any("VACUUM (ANALYZE)" in row["operation"] for row in searches)
    assert any(row["name"].startswith("memory search") for row in quick_run["targets"])


@pytest.mark.slow
def test_the_artifacts_scenario_compares_save_and_load_with_adks_services(
    quick_run: dict[str, Any],
) -> None:
    rows = [row for row in quick_run["results"] if row["scenario"] == "8 artifacts"]
    calls = {row["operation"] for row in rows if not row["operation"].startswith("CLI")}
    assert calls == {f"{op} {size}" for op in ("save", "load") for size in ("1 KB", "1 MB", "5 MB")}
    for operation in calls:
        measured = {
            row["impl"] for row in rows if row["operation"] == operation and row["median_ms"]
        }
        assert measured == {
            "sqlspec async · artifact service",
            "ADK FileArtifactService (local disk)",
            "ADK InMemoryArtifactService (in-process dict, no database)",
        }
    commands = [row for row in rows if row["operation"].startswith("CLI")]
    assert [row["operation"] for row in commands] == [
        "CLI put 5 MB",
        "CLI get 5 MB",
        "CLI export 5 MB",
    ]
    assert all(row["extra"].startswith("peak RSS ") for row in commands)
    assert all(row["extra"].endswith(" MB/s") for row in rows)


def test_the_prune_benchmark_prunes_both_copies_alike(server_dsn: str) -> None:
    args = [sys.executable, "-m", "benchmarks.prune_partitions", "--dsn", server_dsn]
    args += ["--events", "2000", "--per-session", "20"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    deleted = "deleted 100 sessions, 2,000 events; 10,000 events left"
    assert "by rows     : prune" in proc.stdout
    assert "by partition: prune" in proc.stdout
    assert proc.stdout.count(deleted) == 2, proc.stdout


@pytest.mark.slow
def test_the_runner_scenario_times_the_store_over_the_first_and_last_turns(
    quick_run: dict[str, Any],
) -> None:
    rows = [row for row in quick_run["results"] if row["scenario"] == "9 runner"]
    assert {row["operation"] for row in rows} == {
        "store per turn, turns 1-2",
        "store per turn, turns 3-4",
    }
    measured = {row["impl"] for row in rows if row["median_ms"] is not None}
    assert {
        "sqlspec async · service",
        "sqlspec sync · service (thread)",
        "raw psycopg · async (floor)",
        "ADK InMemorySessionService (in-process, deep-copies the session)",
    } <= measured
    assert all(row["n"] == 2 for row in rows)
    growth = [row for row in rows if "growth" in row["metrics"]]
    assert len(growth) == len(measured)
    assert any(row["name"].startswith("Runner: store per turn") for row in quick_run["targets"])
