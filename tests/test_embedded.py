"""The zero-set-up server: an embedded PostgreSQL when no server is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg._embedded import embedded_data_dir

PG_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE")


@pytest.fixture
def no_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PG_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("SQLSPEC_EMBEDDED_PGDATA", raising=False)


def test_data_dir_for_root_and_for_users(
    no_server_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert embedded_data_dir() == Path("/var/lib/sqlspec/embedded-postgres")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert embedded_data_dir() == tmp_path / "sqlspec" / "embedded-postgres"
    monkeypatch.setenv("SQLSPEC_EMBEDDED_PGDATA", str(tmp_path / "elsewhere"))
    assert embedded_data_dir() == tmp_path / "elsewhere"


def test_config_without_server_uses_embedded(no_server_env: None) -> None:
    config = PsycopgSyncConfig(connection_config={"min_size": 1, "application_name": "emb"})
    assert not config.settings.names_a_server
    with config.provide_connection() as conn:
        row = conn.execute("SHOW data_directory").fetchone()
        name = conn.execute("SHOW application_name").fetchone()
    config.close()
    assert row is not None
    assert Path(row[0]) == embedded_data_dir()
    assert name == ("emb",)


def test_named_server_is_not_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PG_ENV:
        monkeypatch.delenv(var, raising=False)
    assert PsycopgSyncConfig(connection_config={"host": "db"}).settings.names_a_server
    assert PsycopgSyncConfig(connection_config={"conninfo": "dbname=x"}).settings.names_a_server
    monkeypatch.setenv("PGHOST", "db")
    assert PsycopgSyncConfig().settings.names_a_server


def _modes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mode for p in paths if p.exists()}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="root only")
def test_root_start_opens_no_private_directory(no_server_env: None) -> None:
    """Started as root, the server must not open up the home directory or other private ones."""
    data_dir = embedded_data_dir()
    watched = [Path.home(), *data_dir.parents]
    before = _modes(watched)
    script = (
        "from sqlspec.adapters.psycopg._embedded import embedded_conninfo; "
        "import psycopg; psycopg.connect(embedded_conninfo()).close()"
    )
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    assert _modes(watched) == before
    assert not (Path.home().stat().st_mode & 0o005)  # home stays closed to others
