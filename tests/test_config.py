"""Configs: validation of connection_config, pool lifecycle, reprs without secrets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from helpers import PYTHON, subprocess_env
from sqlspec import ImproperConfigurationError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg._deadline import Watchdog as _Watchdog

SEED_KEYS = {
    "conninfo": "postgresql://user:pass@localhost/db?sslmode=require",
    "host": "localhost",
    "port": 5432,
    "user": "myuser",
    "password": "mypass",
    "dbname": "mydb",
    "min_size": 5,
    "max_size": 20,
    "timeout": 30.0,
    "max_waiting": 0,
    "max_lifetime": 3600.0,
    "max_idle": 600.0,
    "reconnect_timeout": 300.0,
    "num_workers": 3,
    "connect_timeout": 10,
    "application_name": "my_adk_agent",
    "sslmode": "require",
    "autocommit": False,
}


@pytest.mark.parametrize("config_class", [PsycopgAsyncConfig, PsycopgSyncConfig])
def test_every_seed_key_is_accepted(config_class: type) -> None:
    config = config_class(connection_config=SEED_KEYS)
    assert config.settings.pool["max_size"] == 20
    assert config.settings.autocommit is False
    params = psycopg.conninfo.conninfo_to_dict(config.settings.conninfo)
    assert params["application_name"] == "my_adk_agent"
    assert params["host"] == "localhost"


@pytest.mark.parametrize("config_class", [PsycopgAsyncConfig, PsycopgSyncConfig])
def test_unknown_key_names_the_valid_ones(config_class: type) -> None:
    with pytest.raises(ImproperConfigurationError) as info:
        config_class(connection_config={"conninfo": "dbname=x", "max_sise": 3})
    message = str(info.value)
    assert "'max_sise'" in message
    assert "max_size" in message
    assert "conninfo" in message


@pytest.mark.parametrize(
    "bad",
    [
        {"min_size": "5"},
        {"max_size": 2.5},
        {"timeout": "30"},
        {"autocommit": "yes"},
        {"min_size": True},
        {"min_size": 10, "max_size": 5},
        {"max_size": 0},
        {"conninfo": 42},
        {"conninfo": "not a = valid = conninfo"},
        {"command_timeout": 0},
        {"command_timeout": -1.5},
        {"command_timeout": "5"},
        {"command_timeout": True},
    ],
)
def test_mistyped_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ImproperConfigurationError):
        PsycopgAsyncConfig(connection_config=bad)


@pytest.mark.parametrize("value", [None, 5, 0.25])
def test_command_timeout_takes_positive_seconds_or_none(value: float | None) -> None:
    config = PsycopgSyncConfig(connection_config={"conninfo": "dbname=x", "command_timeout": value})
    assert config.settings.command_timeout == value


@pytest.mark.parametrize("config_class", [PsycopgAsyncConfig, PsycopgSyncConfig])
def test_repr_hides_password(config_class: type) -> None:
    for connection_config in (
        {"conninfo": "postgresql://alice:s3cr3t-pw@db.example/app"},
        {"host": "db.example", "user": "alice", "password": "s3cr3t-pw"},
    ):
        config = config_class(connection_config=connection_config)
        assert "s3cr3t-pw" not in repr(config)
        assert "s3cr3t-pw" not in repr(config.settings)
        assert "alice" in repr(config)


def test_sync_pool_opens_on_first_use_and_reopens_after_close(dsn: str) -> None:
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    with config.provide_connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    config.close()
    with config.provide_connection() as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)
    config.close()


async def test_async_pool_opens_on_first_use_and_reopens_after_close(dsn: str) -> None:
    config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    async with config.provide_connection() as conn:
        cur = await conn.execute("SELECT 1")
        assert await cur.fetchone() == (1,)
    await config.close()
    async with config.provide_connection() as conn:
        cur = await conn.execute("SELECT 2")
        assert await cur.fetchone() == (2,)
    await config.close()


def test_async_config_survives_a_new_event_loop(dsn: str) -> None:
    """A config used under one asyncio.run() keeps working under the next one."""
    config = PsycopgAsyncConfig(connection_config={"conninfo": dsn, "min_size": 1})

    async def query() -> object:
        async with config.provide_connection() as conn:
            cur = await conn.execute("SELECT 42")
            return await cur.fetchone()

    assert asyncio.run(query()) == (42,)
    assert asyncio.run(query()) == (42,)
    asyncio.run(config.close())


def test_autocommit_is_restored_for_the_next_borrower(dsn: str) -> None:
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 1})
    with config.provide_connection() as conn:
        assert conn.autocommit is True
        conn.set_autocommit(False)
    with config.provide_connection() as conn:
        assert conn.autocommit is True
    config.close()


def test_create_connection_is_standalone(dsn: str) -> None:
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    conn = config.create_connection()
    try:
        assert conn.execute("SELECT current_database()").fetchone() is not None
    finally:
        conn.close()
    assert config._pool is None  # no pool was opened for it


_LEFT_OPEN = """
import asyncio, sys
from sqlspec.adapters.psycopg import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore

async def main():
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": sys.argv[1], "min_size": 4, "max_size": 20}
    )
    store = PsycopgAsyncADKStore(config)
    await store.create_tables()
    await store.list_sessions(app_name="a")
    # Calls still waiting for the pool as main() returns, while it grows; never closed.
    calls = [asyncio.create_task(store.list_sessions(app_name="a")) for _ in range(30)]
    await asyncio.sleep(0.01)

for _ in range(5):
    asyncio.run(main())
print("returned")
"""


def test_an_async_config_left_open_does_not_keep_asyncio_run_from_returning(dsn: str) -> None:
    result = subprocess.run(
        [PYTHON, "-c", _LEFT_OPEN, dsn],
        check=False,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "returned", result.stderr


def test_sync_deadlines_fire_in_time_order_and_cancelled_ones_never() -> None:
    watchdog = _Watchdog()
    fired: list[str] = []
    watchdog.schedule(0.3, lambda: fired.append("late"))
    watchdog.schedule(0.1, lambda: fired.append("early"))
    cancel = watchdog.schedule(0.2, lambda: fired.append("cancelled"))
    cancel()
    time.sleep(0.5)
    assert fired == ["early", "late"]


async def test_concurrent_first_calls_open_one_pool(dsn: str) -> None:
    name = f"sqlspec-first-{os.getpid()}"
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": dsn, "min_size": 2, "max_size": 2, "application_name": name}
    )
    try:
        pools = await asyncio.gather(*(config.provide_pool() for _ in range(20)))
        assert len({id(pool) for pool in pools}) == 1
        await pools[0].wait()
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
        assert row == (2,)
    finally:
        await config.close()


def test_concurrent_first_calls_open_one_sync_pool(dsn: str) -> None:
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1, "max_size": 2})
    try:
        with ThreadPoolExecutor(8) as threads:
            pools = list(threads.map(lambda _: config.provide_pool(), range(16)))
        assert len({id(pool) for pool in pools}) == 1
    finally:
        config.close()


async def test_a_block_lent_with_prepare_false_prepares_nothing(dsn: str) -> None:
    config = PsycopgAsyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": 1, "prepare_threshold": 0}
    )
    count = "SELECT count(*) FROM pg_prepared_statements"
    try:
        async with config.provide_connection(prepare=False) as conn:
            for _ in range(3):
                await conn.execute("SELECT 1")
            assert await (await conn.execute(count)).fetchone() == (0,)
        # The same connection lent again prepares as the config says.
        async with config.provide_connection() as conn:
            await conn.execute("SELECT 1")
            row = await (await conn.execute(count)).fetchone()
            assert row is not None
            assert row[0] > 0
    finally:
        await config.close()
