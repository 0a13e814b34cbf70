"""Primary switchover: a multi-host conninfo over a primary and its streaming standby.

The services are given ``host=a,b port=pa,pb target_session_attrs=read-write``
(:attr:`replication.ReplicatedPair.multi_host_conninfo`), so libpq connects to
whichever server accepts writes. Under the writers of :mod:`test_faults`, the
primary is stopped (immediate, as a crash) and the standby promoted: the same
services keep working within seconds, and with synchronous replication every
event a caller saw acknowledged is on the new primary. The seconds the writers
took to recover, from the promotion and from the stop, are printed with ``-s``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.adk.events.event import Event

import sqlspec
from helpers import figures_report
from replication import ReplicatedPair
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService
from test_faults import (
    APP,
    CONNECTION_ERRORS,
    RECOVERY_BOUND,
    USER,
    Workload,
    closed_cleanly,
    no_leaks,
    server_connections,
    services,
)

pytestmark = pytest.mark.slow

FIGURES: Counter[str] = Counter()
_report = figures_report("switchover", FIGURES)


@pytest.fixture
def sync_pair() -> Iterator[ReplicatedPair]:
    """A primary with a synchronous standby: a commit returns once the standby has it."""
    pair = ReplicatedPair(synchronous=True)
    try:
        yield pair
    finally:
        pair.destroy()


def stored_event_ids(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM adk_events").fetchall()}


@pytest.mark.parametrize("promote_after", [0.0, 8.0])
async def test_switchover_under_load_keeps_every_acknowledged_event(
    sync_pair: ReplicatedPair, promote_after: float, caplog: pytest.LogCaptureFixture
) -> None:
    """The standby is promoted at once, or late (as a failover manager that waits
    to be sure the primary is gone): the writers recover soon after the promotion.

    Promoted 8 s late, psycopg_pool's own next retry would come some 7 s after the
    promotion (it waits 1, 2, 4, 8 s... between attempts): the pools are replaced
    by fresh ones instead, and say so in the log.
    """
    caplog.set_level(logging.WARNING, logger="sqlspec.pool")
    async with services(sync_pair.multi_host_conninfo, "switchover") as pair:
        work = Workload(pair)
        await work.start()
        await asyncio.sleep(1.0)
        stopped = time.monotonic()
        await asyncio.to_thread(sync_pair.primary.stop, "immediate")
        await asyncio.sleep(promote_after)
        await asyncio.to_thread(sync_pair.standby.promote)
        promoted = time.monotonic()
        recovery = await work.wait_recovered(promoted)
        await asyncio.sleep(1.0)
        await work.finish()
        figures = await work.verify()
        case = f"promoted {promote_after:.0f} s after the stop"
        FIGURES[f"recovery ms after the promotion ({case})"] = int(recovery * 1000)
        since_stop = promoted - stopped + recovery
        FIGURES[f"recovery ms after the stop ({case})"] = int(since_stop * 1000)
        FIGURES[f"appends acknowledged ({case})"] = figures["acked"]
        FIGURES[f"failed calls ({case})"] = sum(work.ledger.errors.values())
        new_primary = sync_pair.standby.conninfo
        lost = work.ledger.acked - stored_event_ids(new_primary)
        FIGURES[f"acknowledged events lost ({case})"] = len(lost)
        replaced = [r for r in caplog.records if "stalled" in r.getMessage()]
        FIGURES[f"stalled pools replaced ({case})"] = len(replaced)
        if promote_after:
            assert replaced
        assert not lost
        assert recovery < RECOVERY_BOUND, recovery
        assert work.ledger.hangs == 0
        assert not work.ledger.gave_up
        unexpected = [e for e in work.ledger.raw if not isinstance(e, CONNECTION_ERRORS)]
        assert not unexpected, unexpected[:3]
        on_new_primary = functools.partial(server_connections, new_primary)
        await no_leaks(on_new_primary, "switchover", pair)
        await closed_cleanly(on_new_primary, "switchover", pair)


async def test_a_write_refused_as_read_only_runs_again_on_the_new_primary(
    sync_pair: ReplicatedPair,
) -> None:
    """A fenced switchover: the old primary turns read-only under open pooled
    connections, the standby is promoted; a write meeting the old primary's
    refusal drops that connection and runs on the new primary instead."""
    conninfo = sync_pair.multi_host_conninfo
    pool = {"conninfo": conninfo, "min_size": 3, "max_size": 3}
    async_store = PsycopgAsyncADKStore(PsycopgAsyncConfig(connection_config=pool))
    sync_store = PsycopgSyncADKStore(PsycopgSyncConfig(connection_config=pool))
    try:
        await async_store.create_tables()
        stores: list[tuple[str, Any]] = [
            ("async", SQLSpecSessionService(async_store)),
            ("sync", SQLSpecSessionService(sync_store)),
        ]
        sessions = {
            label: await service.create_session(app_name=APP, user_id=USER, session_id=label)
            for label, service in stores
        }
        with psycopg.connect(sync_pair.primary.conninfo, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            conn.execute("SELECT pg_reload_conf()")
        await asyncio.to_thread(sync_pair.standby.promote)
        for label, service in stores:
            for n in range(4):  # more appends than the pool has connections to the old primary
                event = Event(id=f"{label}-{n}", invocation_id="switch", author="user")
                await service.append_event(sessions[label], event)
        on_new = stored_event_ids(sync_pair.standby.conninfo)
        on_old = stored_event_ids(sync_pair.primary.conninfo)
        assert {f"{label}-{n}" for label, _ in stores for n in range(4)} <= on_new
        assert not on_old
    finally:
        await async_store.close()
        sync_store.close()


async def test_a_server_that_stays_read_only_refuses_with_a_typed_error(
    sync_pair: ReplicatedPair,
) -> None:
    standby_only = {"conninfo": sync_pair.standby.conninfo, "min_size": 1, "max_size": 2}
    reader = PsycopgAsyncADKStore(PsycopgAsyncConfig(connection_config=standby_only))
    writer = PsycopgAsyncADKStore(
        PsycopgAsyncConfig(connection_config={"conninfo": sync_pair.primary.conninfo})
    )
    try:
        await writer.create_tables()
        session = await SQLSpecSessionService(writer).create_session(app_name=APP, user_id=USER)
        await asyncio.to_thread(sync_pair.wait_replayed)
        service = SQLSpecSessionService(reader)
        with pytest.raises(sqlspec.DatabaseUnavailableError, match="read-only"):
            await service.append_event(session, Event(author="user"))
        with pytest.raises(sqlspec.DatabaseUnavailableError, match="read-only"):
            await service.create_session(app_name=APP, user_id=USER)
        listed = await service.list_sessions(app_name=APP, user_id=USER)
        assert [s.id for s in listed.sessions] == [session.id]
    finally:
        await reader.close()
        await writer.close()
