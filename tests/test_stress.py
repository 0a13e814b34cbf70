"""Concurrency stress: several processes, many tasks and threads, the same sessions.

Each trial starts worker processes (``python -c`` children importing this module);
each process runs writer tasks over the async store and writer threads over the
sync service, all on the same few sessions of two users of one app. A writer
loads a session (or keeps using the one it loaded earlier, which is how stale
writers happen), appends an event whose delta writes session, ``user:`` and
``app:`` keys, and records what the call did. Now and then it also re-sends its
own last event unchanged (a retry: a no-op), re-uses another writer's event id
with other content, or races every other writer to create the same new session.

Every call must either commit, be a no-op retry, or raise ``StaleSessionError``
or ``AlreadyExistsError``; anything else is an anomaly. Afterwards, per session,
the committed appends hold revisions 1..N exactly once (no two writers won from
one revision), the stored events are exactly the committed ones, and the stored
state is the committed deltas applied in revision order; per user and per app,
each writer's counter is its last committed one and the shared keys hold a
committed value (never one from a refused call); each contested create has
exactly one winner, and only its state was applied.

The run's figures (trials, calls, commits, stale, conflicts, anomalies) are
printed; ``HYPOTHESIS_PROFILE=soak`` runs more and longer trials.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.session import Session

import sqlspec
from _hypothesis import scaled
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

USERS = ("alice", "bob")
SESSIONS_PER_USER = 3
PROCESSES = 3
TASKS_PER_PROCESS = 6
THREADS_PER_PROCESS = 3

Record = dict[str, Any]


def session_keys() -> list[tuple[str, str]]:
    return [(user, f"s{i}") for user in USERS for i in range(SESSIONS_PER_USER)]


def marker(session: Session) -> int:
    value = getattr(session, "_storage_update_marker", None)
    assert value is not None
    return int(value)


# ------------------------------------------------------------------- workers


class Writer:
    """One writer's loop; the same code drives async tasks and sync threads."""

    def __init__(self, wid: str, app: str, seed: int, deadline: float, contests: int) -> None:
        self.wid = wid
        self.app = app
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.contests = contests
        self.records: list[Record] = []
        self.loaded: dict[tuple[str, str], Session] = {}
        self.last_committed: dict[tuple[str, str], Event] = {}
        self.k = 0

    def next_event(self, key: tuple[str, str]) -> tuple[Event, str]:
        self.k += 1
        tag = f"{self.wid}-{self.k}"
        delta = {
            "last": tag,
            f"w_{self.wid}": self.k,
            "user:last": tag,
            f"user:w_{self.wid}": self.k,
            "app:last": tag,
            f"app:w_{self.wid}": self.k,
            "temp:scratch": tag,
        }
        event = Event(
            id=f"ev-{tag}",
            invocation_id=f"inv-{tag}",
            author=self.wid,
            actions=EventActions(state_delta=delta),
        )
        return event, tag

    def choose(self) -> str:
        roll = self.rng.random()
        if roll < 0.04 and self.k < 10_000:
            return "contest"
        if roll < 0.10:
            return "retry"
        if roll < 0.14:
            return "conflict"
        return "append"

    def record(self, **fields: Any) -> None:
        self.records.append({"writer": self.wid, **fields})


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, StaleSessionError):
        return "stale"
    if isinstance(exc, AlreadyExistsError):
        return "exists"
    return f"ANOMALY {type(exc).__module__}.{type(exc).__qualname__}: {str(exc)[:200]}"


async def async_writer(service: Any, writer: Writer) -> None:
    keys = session_keys()
    contest = 0
    while time.monotonic() < writer.deadline:
        action = writer.choose()
        key = writer.rng.choice(keys)
        user, sid = key
        try:
            if action == "contest" and contest < writer.contests:
                cid = f"contest-{contest}"
                contest += 1
                tag = f"{writer.wid}-{cid}"
                try:
                    await service.create_session(
                        app_name=writer.app,
                        user_id=user,
                        session_id=cid,
                        state={"creator": tag, f"user:creator_{cid}": tag},
                    )
                    writer.record(kind="create", user=user, sid=cid, tag=tag, outcome="committed")
                except Exception as exc:
                    writer.record(
                        kind="create", user=user, sid=cid, tag=tag, outcome=outcome_of(exc)
                    )
                continue
            session = writer.loaded.get(key)
            if session is None or writer.rng.random() < 0.5:
                session = await service.get_session(
                    app_name=writer.app, user_id=user, session_id=sid
                )
                assert session is not None
                writer.loaded[key] = session
            if action == "retry" and key in writer.last_committed:
                event = writer.last_committed[key]
                try:
                    await service.append_event(session, event)
                    writer.record(kind="retry", user=user, sid=sid, event=event.id, outcome="noop")
                except Exception as exc:
                    writer.record(
                        kind="retry", user=user, sid=sid, event=event.id, outcome=outcome_of(exc)
                    )
                continue
            if action == "conflict" and session.events:
                taken = writer.rng.choice(session.events).id
                event = Event(id=taken, author=writer.wid, invocation_id="conflicting")
                try:
                    await service.append_event(session, event)
                    writer.record(
                        kind="conflict",
                        user=user,
                        sid=sid,
                        event=taken,
                        outcome="ANOMALY conflict stored",
                    )
                except Exception as exc:
                    writer.record(
                        kind="conflict", user=user, sid=sid, event=taken, outcome=outcome_of(exc)
                    )
                continue
            event, tag = writer.next_event(key)
            sent = event.actions.state_delta.copy()
            try:
                await service.append_event(session, event)
            except Exception as exc:
                outcome, revision = outcome_of(exc), None
                writer.loaded.pop(key, None)
            else:
                outcome, revision = "committed", marker(session)
                writer.last_committed[key] = event
            writer.record(
                kind="append",
                user=user,
                sid=sid,
                event=event.id,
                tag=tag,
                delta=sent,
                revision=revision,
                outcome=outcome,
            )
        except Exception as exc:  # a load that failed, say
            writer.record(kind="other", user=user, sid=sid, outcome=outcome_of(exc))


def sync_writer(service: Any, writer: Writer) -> None:
    """The same loop over the sync service, called where no event loop runs (blocking)."""

    class Direct:
        """Makes the blocking service awaitable-compatible for ``async_writer``."""

        def __getattr__(self, name: str) -> Any:
            method = getattr(service, name)

            async def call(*args: Any, **kwargs: Any) -> Any:
                return method(*args, **kwargs)

            return call

    # The wrapper never suspends, so the coroutine runs to its end in one step,
    # and the service sees plain blocking calls from a thread where no loop runs.
    coro = async_writer(Direct(), writer)
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("the sync writer suspended")


async def process_main(dsn: str, app: str, proc: int, seconds: float, seed: int) -> list[Record]:
    deadline = time.monotonic() + seconds
    contests = 3
    async_config = PsycopgAsyncConfig(
        connection_config={"conninfo": dsn, "min_size": 2, "max_size": TASKS_PER_PROCESS}
    )
    sync_config = PsycopgSyncConfig(
        connection_config={"conninfo": dsn, "min_size": 1, "max_size": THREADS_PER_PROCESS}
    )
    async_service = SQLSpecSessionService(PsycopgAsyncADKStore(async_config))
    sync_service = SQLSpecSessionService(PsycopgSyncADKStore(sync_config))
    writers = [
        Writer(f"p{proc}a{i}", app, seed * 1000 + i, deadline, contests)
        for i in range(TASKS_PER_PROCESS)
    ]
    threaded = [
        Writer(f"p{proc}t{i}", app, seed * 1000 + 500 + i, deadline, contests)
        for i in range(THREADS_PER_PROCESS)
    ]
    threads = [threading.Thread(target=sync_writer, args=(sync_service, w)) for w in threaded]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(async_writer(async_service, w) for w in writers))
    for thread in threads:
        thread.join(timeout=seconds + 60)
        assert not thread.is_alive(), "a writer thread hangs"
    await async_config.close()
    sync_config.close()
    return [r for w in (*writers, *threaded) for r in w.records]


def worker_entry(args_json: str) -> None:
    """Child process entry point: run one process's writers, print their records as JSON."""
    args = json.loads(args_json)
    records = asyncio.run(
        process_main(args["dsn"], args["app"], args["proc"], args["seconds"], args["seed"])
    )
    sys.stdout.write(json.dumps(records))


# ---------------------------------------------------------------- the parent


def child_env() -> dict[str, str]:
    src = str(Path(sqlspec.__file__).resolve().parents[1])
    tests = str(Path(__file__).resolve().parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, tests, env.get("PYTHONPATH", "")) if p)
    return env


def run_trial(dsn: str, app: str, seconds: float, seed: int) -> list[Record]:
    """Create the sessions, run the worker processes at once, collect their records."""
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    store = PsycopgSyncADKStore(config)
    store.create_tables()
    for user, sid in session_keys():
        store.create_session(app_name=app, user_id=user, session_id=sid, state={"initial": sid})
    config.close()
    children = []
    for proc in range(PROCESSES):
        args = json.dumps(
            {"dsn": dsn, "app": app, "proc": proc, "seconds": seconds, "seed": seed + proc}
        )
        code = f"import test_stress; test_stress.worker_entry({args!r})"
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=child_env(),
                text=True,
            )
        )
    records: list[Record] = []
    for child in children:
        out, err = child.communicate(timeout=seconds + 120)
        assert child.returncode == 0, err[-3000:]
        records.extend(json.loads(out))
    return records


def check_trial(dsn: str, app: str, records: list[Record]) -> tuple[Counter[str], list[str]]:
    """Check every invariant of one trial; return outcome counts and the anomalies found."""
    anomalies = [
        f"{r['writer']}: {r['outcome']}" for r in records if r["outcome"].startswith("ANOMALY")
    ]
    outcomes: Counter[str] = Counter(f"{r['kind']}:{r['outcome']}" for r in records)
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    service: Any = SQLSpecSessionService(PsycopgSyncADKStore(config))
    try:
        appends = [r for r in records if r["kind"] == "append"]
        committed = [r for r in appends if r["outcome"] == "committed"]
        refused_tags = {r["tag"] for r in appends if r["outcome"] != "committed"}
        for user, sid in session_keys():
            mine = sorted(
                (r for r in committed if (r["user"], r["sid"]) == (user, sid)),
                key=lambda r: r["revision"],
            )
            revisions = [r["revision"] for r in mine]
            if revisions != list(range(1, len(mine) + 1)):
                anomalies.append(f"{user}/{sid}: committed revisions {revisions[:20]}... not 1..N")
            stored = service.get_session(app_name=app, user_id=user, session_id=sid)
            stored_ids = [e.id for e in stored.events]
            if sorted(stored_ids) != sorted(r["event"] for r in mine):
                anomalies.append(
                    f"{user}/{sid}: stored events differ from committed ones: "
                    f"lost {sorted({r['event'] for r in mine} - set(stored_ids))[:5]}, "
                    f"extra {sorted(set(stored_ids) - {r['event'] for r in mine})[:5]}"
                )
            if len(stored_ids) != len(set(stored_ids)):
                anomalies.append(f"{user}/{sid}: an event is stored twice")
            expected: dict[str, Any] = {"initial": sid}
            for r in mine:
                expected.update(
                    {
                        k: v
                        for k, v in r["delta"].items()
                        if not k.startswith(("app:", "user:", "temp:"))
                    }
                )
            session_state = {
                k: v for k, v in stored.state.items() if not k.startswith(("app:", "user:"))
            }
            if session_state != expected:
                anomalies.append(
                    f"{user}/{sid}: state {session_state} != deltas applied {expected}"
                )
        scopes: list[tuple[str, tuple[str | None, ...]]] = [("user", USERS), ("app", (None,))]
        for scope, users in scopes:
            for who in users:
                mine = [r for r in committed if scope == "app" or r["user"] == who]
                if scope == "user":
                    state = service.get_user_state(app_name=app, user_id=who)
                else:
                    any_session = service.get_session(
                        app_name=app, user_id=USERS[0], session_id="s0"
                    )
                    state = {
                        k.removeprefix("app:"): v
                        for k, v in any_session.state.items()
                        if k.startswith("app:")
                    }
                last_k: dict[str, int] = {}
                for r in mine:
                    last_k[r["writer"]] = max(
                        last_k.get(r["writer"], 0), r["delta"][f"{scope}:w_{r['writer']}"]
                    )
                for writer, k in last_k.items():
                    if state.get(f"w_{writer}") != k:
                        seen = state.get(f"w_{writer}")
                        anomalies.append(f"{scope} {who}: w_{writer}={seen} != last committed {k}")
                if mine:
                    if state.get("last") in refused_tags:
                        anomalies.append(f"{scope} {who}: 'last' holds a refused call's value")
                    if state.get("last") not in {r["tag"] for r in mine}:
                        anomalies.append(
                            f"{scope} {who}: 'last'={state.get('last')} was never committed"
                        )
        creates = [r for r in records if r["kind"] == "create"]
        for cid in sorted({r["sid"] for r in creates}):
            for user in USERS:
                attempts = [r for r in creates if (r["sid"], r["user"]) == (cid, user)]
                if not attempts:
                    continue
                winners = [r for r in attempts if r["outcome"] == "committed"]
                if len(winners) != 1:
                    anomalies.append(f"create {user}/{cid}: {len(winners)} winners")
                    continue
                stored = service.get_session(app_name=app, user_id=user, session_id=cid)
                if stored.state.get("creator") != winners[0]["tag"]:
                    anomalies.append(f"create {user}/{cid}: state of a loser applied")
                if stored.state.get(f"user:creator_{cid}") != winners[0]["tag"]:
                    anomalies.append(f"create {user}/{cid}: user state of a loser applied")
    finally:
        config.close()
    return outcomes, anomalies


@pytest.mark.slow
def test_processes_tasks_and_threads_on_the_same_sessions(dsn: str) -> None:
    trials = int(scaled(2, 20))
    seconds = scaled(4.0, 30.0)
    totals: Counter[str] = Counter()
    all_anomalies: list[str] = []
    started = time.monotonic()
    for trial in range(trials):
        app = f"stress-{trial}"
        records = run_trial(dsn, app, seconds, seed=trial * 100)
        outcomes, anomalies = check_trial(dsn, app, records)
        totals.update(outcomes)
        totals["calls"] += len(records)
        all_anomalies.extend(f"trial {trial}: {a}" for a in anomalies)
    print(
        f"\nstress: {trials} trials x {PROCESSES} processes x "
        f"({TASKS_PER_PROCESS} tasks + {THREADS_PER_PROCESS} threads), "
        f"{time.monotonic() - started:.1f} s; {dict(sorted(totals.items()))}; "
        f"anomalies: {len(all_anomalies)}"
    )
    for anomaly in all_anomalies[:20]:
        print("  ANOMALY", anomaly)
    assert totals["append:committed"] > 0
    assert totals["append:stale"] > 0, "no writer ever went stale: the test did not contend"
    assert not all_anomalies, all_anomalies[:20]
