"""Prune a month of events by rows and by partition: ``python -m benchmarks.prune_partitions``.

Two copies of the same data, in a scratch database: a past month of ``--events``
events in idle sessions of ``--per-session`` events each, and a current month of
live sessions that prune must keep. One copy has plain events, the other events
partitioned by month; ``store.prune(older_than=7 days)`` is timed on each, and
both must answer the same counts. Rows are cloned server-side
(``INSERT ... SELECT generate_series``); each copy is vacuumed and analyzed and a
``CHECKPOINT`` taken before its prune, so the timings are of the prune alone.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

from benchmarks.database import resolve_server, scratch_database
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKStore

#: Live sessions (and their events each) of the current month, which prune keeps.
LIVE_SESSIONS = 1_000
LIVE_EVENTS = 10

_SESSIONS = """INSERT INTO adk_sessions (app_name, user_id, id, create_time, update_time)
SELECT 'bench', 'u' || (i %% 1000), %(prefix)s || i, %(created)s, %(updated)s
FROM generate_series(1, %(sessions)s) AS i"""

_EVENTS = """INSERT INTO adk_events (app_name, user_id, session_id, id, author, "timestamp",
    content {partition_column})
SELECT 'bench', 'u' || (s %% 1000), %(prefix)s || s, 'e' || e, 'user',
    %(created)s + make_interval(secs => e),
    '{{"role": "user", "parts": [{{"text": "a message of about sixty bytes, give or take"}}]}}'
    {partition_value}
FROM generate_series(1, %(sessions)s) AS s, generate_series(1, %(per_session)s) AS e"""


def month_start(months_ago: int) -> datetime:
    """The first instant of a UTC month, ``months_ago`` before the current one."""
    now = datetime.now(timezone.utc)
    index = now.year * 12 + now.month - 1 - months_ago
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def load(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    partitioned: bool,
    sessions: int,
    per_session: int,
    created: datetime,
    updated: datetime,
    prefix: str,
) -> None:
    """``sessions`` sessions created at ``created`` with ``per_session`` events each."""
    params = {
        "created": created,
        "updated": updated,
        "sessions": sessions,
        "per_session": per_session,
        "prefix": prefix,
    }
    conn.execute(sql.SQL(_SESSIONS), params)
    events = sql.SQL(_EVENTS).format(
        partition_column=sql.SQL(", session_create_time" if partitioned else ""),
        partition_value=sql.SQL(", %(created)s" if partitioned else ""),
    )
    conn.execute(events, params)


def run_copy(server: str, *, partitioned: bool, events: int, per_session: int) -> None:
    """Load one copy, prune it, print how long the prune took and what it deleted."""
    kind = "partition" if partitioned else "rows"
    with scratch_database(server) as dsn:
        config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
        try:
            store = PsycopgSyncADKStore(config, partitioned_events=partitioned)
            store.create_tables()
            old = month_start(2)
            started = time.perf_counter()
            with psycopg.connect(dsn, autocommit=True) as conn:
                if partitioned:  # as the store made it while that month was current
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE {} PARTITION OF adk_events FOR VALUES FROM ({}) TO ({})"
                        ).format(
                            sql.Identifier(f"adk_events_p{old:%Y%m}"),
                            sql.Literal(old),
                            sql.Literal(month_start(1)),
                        )
                    )
                load(
                    conn,
                    partitioned=partitioned,
                    sessions=events // per_session,
                    per_session=per_session,
                    created=old + timedelta(days=1),
                    updated=old + timedelta(days=2),
                    prefix="old",
                )
                now = datetime.now(timezone.utc)
                load(
                    conn,
                    partitioned=partitioned,
                    sessions=LIVE_SESSIONS,
                    per_session=LIVE_EVENTS,
                    created=now - timedelta(minutes=5),
                    updated=now,
                    prefix="live",
                )
                conn.execute("VACUUM (ANALYZE)")
                conn.execute("CHECKPOINT")
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            sessions, deleted = store.prune(older_than=timedelta(days=7))
            took = time.perf_counter() - started
            with psycopg.connect(dsn) as conn:
                left = conn.execute("SELECT count(*) FROM adk_events").fetchone()
        finally:
            config.close()
    remaining = left[0] if left else None
    print(
        f"by {kind:9}: prune {took:8.2f} s  deleted {sessions:,} sessions, {deleted:,} events; "
        f"{remaining:,} events left (load {loaded:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", help="the server (default: $SQLSPEC_DSN, else embedded)")
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the month")
    parser.add_argument("--per-session", type=int, default=100, help="events per session")
    parser.add_argument(
        "--only", choices=["rows", "partition"], help="run one copy only (default: both)"
    )
    args = parser.parse_args()
    server, source = resolve_server(args.dsn)
    print(f"server: {source}; a month of {args.events:,} events, {args.per_session} per session")
    for partitioned in (False, True):
        if args.only in (None, "partition" if partitioned else "rows"):
            run_copy(
                server, partitioned=partitioned, events=args.events, per_session=args.per_session
            )


if __name__ == "__main__":
    main()
