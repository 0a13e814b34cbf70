"""Faults under continuous load: killed backends, a server restart, a dropping proxy.

A workload of writers (over the async store and over the sync store, through the
service, which is never re-created) appends events to their own sessions while
the test injects faults:

- ``pg_terminate_backend`` of every backend of the test database, repeatedly;
- a restart (fast, then immediate) of a throwaway server of the test's own
  (:class:`proxy.ThrowawayServer`), so the machine's server is never touched;
- a TCP proxy (:class:`proxy.Proxy`) that drops every connection, stalls them,
  or refuses new ones for a while.

A writer retries a failed append with the same event (same id) until it is
acknowledged, as a careful caller would. Afterwards:

- the service works again within seconds of the fault ending;
- no event any caller saw succeed is lost, none is stored twice, none appears
  that was never sent; the state matches the stored events;
- nothing leaks: the pool settles (``get_stats()``) and the server holds no
  more connections for the pool than ``max_size``, none after ``close()``
  (through PgBouncer, which keeps its server connections for the next client,
  the connections counted are PgBouncer's clients).

A failed call raises ``sqlspec.DatabaseUnavailableError``; which errors were
raised, and how often, is recorded (printed with ``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from google.adk.errors import StaleSessionError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.session import Session

import sqlspec
from _hypothesis import scaled
from helpers import figures_report
from pgbouncer import PgBouncer
from proxy import Proxy, ThrowawayServer
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKStore, PsycopgSyncADKStore
from sqlspec.extensions.adk import SQLSpecSessionService

APP = "faults-app"
USER = "faults-user"
MAX_SIZE = 3
#: No single call may take longer than this: a longer one counts as a hang.
CALL_BOUND = 20.0
#: After a fault ends, every writer must have an append acknowledged within this.
RECOVERY_BOUND = 15.0
#: How long a writer keeps retrying one event before giving up on it.
RETRY_WINDOW = 30.0

#: What a call may raise when the server or the path to it fails (the workload
#: never has ``max_size`` calls in flight on one pool, so never PoolExhaustedError).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (sqlspec.DatabaseUnavailableError,)

FIGURES: Counter[str] = Counter()
_report = figures_report("faults", FIGURES)


def pool_config(conninfo: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "conninfo": conninfo,
        "min_size": 1,
        "max_size": MAX_SIZE,
        "timeout": 2.0,
        "reconnect_timeout": 60.0,
        "application_name": name,
        **extra,
    }


@contextlib.asynccontextmanager
async def services(conninfo: str, name: str, **extra: Any) -> AsyncIterator[list[tuple[str, Any]]]:
    """A service over the async store and one over the sync store, tables created."""
    async_config = PsycopgAsyncConfig(
        connection_config=pool_config(conninfo, f"{name}-async", **extra)
    )
    async_store = PsycopgAsyncADKStore(async_config)
    await async_store.create_tables()
    sync_config = PsycopgSyncConfig(
        connection_config=pool_config(conninfo, f"{name}-sync", **extra)
    )
    sync_store = PsycopgSyncADKStore(sync_config)
    await asyncio.to_thread(sync_store.create_tables)
    pair = [
        ("async", SQLSpecSessionService(async_store)),
        ("sync", SQLSpecSessionService(sync_store)),
    ]
    try:
        yield pair
    finally:
        await async_config.close()
        await asyncio.to_thread(sync_config.close)


async def failure_of(awaitable: Awaitable[Any]) -> BaseException:
    """The exception ``awaitable`` raises; fail the test if it succeeds."""
    try:
        await awaitable
    except Exception as exc:
        return exc
    raise AssertionError("the call succeeded")


def error_name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


# ------------------------------------------------------------------ workload


@dataclass
class Ledger:
    """What the writers attempted, what callers saw acknowledged, what failed how."""

    attempted: dict[str, Event] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    gave_up: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    raw: list[BaseException] = field(default_factory=list)
    calls: int = 0
    hangs: int = 0
    #: Per writer, the monotonic times of its acknowledged appends.
    acks: dict[str, list[float]] = field(default_factory=dict)

    def failed(self, exc: BaseException) -> None:
        name = error_name(exc)
        self.errors[name] += 1
        self.samples.setdefault(name, str(exc).splitlines()[0][:160] if str(exc) else "")
        self.raw.append(exc)


class Workload:
    """Writers appending to their own sessions, retrying each event until acknowledged."""

    def __init__(self, services: list[tuple[str, Any]], writers_per_service: int = 2) -> None:
        self.services = services
        self.writers_per_service = writers_per_service
        self.ledger = Ledger()
        self.sessions: dict[str, tuple[Any, str]] = {}
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _call(self, awaitable: Awaitable[Any]) -> Any:
        self.ledger.calls += 1
        started = time.monotonic()
        try:
            return await asyncio.wait_for(awaitable, CALL_BOUND)
        except asyncio.TimeoutError:
            # sqlspec.PoolExhaustedError is a TimeoutError too: only the bound is a hang.
            if time.monotonic() - started >= CALL_BOUND:
                self.ledger.hangs += 1
            raise

    async def _until_ok(self, make: Callable[[], Awaitable[Any]]) -> Any:
        deadline = time.monotonic() + RETRY_WINDOW
        while True:
            try:
                return await self._call(make())
            except StaleSessionError:
                raise
            except Exception as exc:
                self.ledger.failed(exc)
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def start(self) -> None:
        for label, service in self.services:
            for i in range(self.writers_per_service):
                sid = f"{label}-w{i}"
                await self._until_ok(
                    functools.partial(
                        service.create_session, app_name=APP, user_id=USER, session_id=sid
                    )
                )
                self.sessions[sid] = (service, label)
                self.ledger.acks[sid] = []
                self._tasks.append(asyncio.create_task(self._writer(service, sid)))

    async def _load(self, service: Any, sid: str) -> Session:
        session: Session | None = await self._until_ok(
            lambda: service.get_session(app_name=APP, user_id=USER, session_id=sid)
        )
        assert session is not None
        return session

    async def _writer(self, service: Any, sid: str) -> None:
        session = await self._load(service, sid)
        seq = 0
        while not self.stop.is_set():
            event = Event(
                id=f"{sid}-e{seq}",
                invocation_id=f"inv-{seq}",
                author="user",
                actions=EventActions(state_delta={"n": seq, f"user:{sid}": seq, f"app:{sid}": seq}),
            )
            self.ledger.attempted[event.id] = event
            deadline = time.monotonic() + RETRY_WINDOW
            while True:
                try:
                    # The same event, through the same session object, as a retry would.
                    await self._call(service.append_event(session, event))
                except StaleSessionError:
                    # A retried append that found its event already stored leaves the
                    # session object behind storage: reload, then retry through it.
                    session = await self._load(service, sid)
                    continue
                except Exception as exc:
                    self.ledger.failed(exc)
                    if time.monotonic() > deadline:
                        self.ledger.gave_up.add(event.id)
                        break
                    await asyncio.sleep(0.05)
                    continue
                self.ledger.acked.add(event.id)
                self.ledger.acks[sid].append(time.monotonic())
                break
            if session.events[-1:] != [event]:
                session = await self._load(service, sid)
            seq += 1
            await asyncio.sleep(0.005)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), CALL_BOUND + RETRY_WINDOW)

    async def wait_recovered(self, moment: float) -> float:
        """Wait (at most ``RECOVERY_BOUND``) until every writer had an append
        acknowledged after ``moment``; return the seconds that took."""
        deadline = moment + RECOVERY_BOUND
        while time.monotonic() < deadline:
            if all(any(t >= moment for t in times) for times in self.ledger.acks.values()):
                break
            await asyncio.sleep(0.1)
        return self.recovery_after(moment)

    def recovery_after(self, moment: float) -> float:
        """Seconds from ``moment`` until every writer had an append acknowledged."""
        worst = 0.0
        for sid, times in self.ledger.acks.items():
            later = [t for t in times if t >= moment]
            assert later, f"writer {sid} never recovered after the fault"
            worst = max(worst, later[0] - moment)
        return worst

    async def kept_every_promise(
        self, fault: str, recovery: float, connections: Connections, prefix: str
    ) -> None:
        """Stop the writers, then check what a run under ``fault`` must hold; record figures.

        Recovery came in time, no call hung or gave up, every error was a typed
        connection error, the stored sessions match the ledger, and no connection
        leaked, neither while open nor after ``close()``.
        """
        await self.finish()
        FIGURES[f"max recovery ms ({fault})"] = max(
            FIGURES[f"max recovery ms ({fault})"], int(recovery * 1000)
        )
        figures = await self.verify()
        assert recovery < RECOVERY_BOUND, recovery
        assert self.ledger.hangs == 0
        assert not self.ledger.gave_up
        assert figures["acked"] > 0
        unexpected = [e for e in self.ledger.raw if not isinstance(e, CONNECTION_ERRORS)]
        assert not unexpected, unexpected[:3]
        await no_leaks(connections, prefix, self.services)
        await closed_cleanly(connections, prefix, self.services)

    async def verify(self) -> dict[str, int]:
        """The stored sessions hold exactly what the ledger allows; return figures."""
        ledger = self.ledger
        stored_total = 0
        for sid, (service, _) in self.sessions.items():
            session = await self._load(service, sid)
            ids = [e.id for e in session.events]
            assert len(ids) == len(set(ids)), f"{sid}: an event is stored twice"
            mine = {i for i in ledger.attempted if i.startswith(f"{sid}-e")}
            acked = {i for i in ledger.acked if i.startswith(f"{sid}-e")}
            assert acked <= set(ids), f"{sid}: acknowledged events lost: {sorted(acked - set(ids))}"
            assert set(ids) <= mine, f"{sid}: events never sent: {sorted(set(ids) - mine)}"
            for stored in session.events:
                assert stored == ledger.attempted[stored.id]
            if set(ids) == acked:  # every event retried to success: all there, in order
                assert ids == [f"{sid}-e{n}" for n in range(len(ids))], f"{sid}: out of order"
            if ids:
                last = max(int(i.rsplit("-e", 1)[1]) for i in ids)
                assert session.state["n"] == last
                assert session.state[f"user:{sid}"] == last
                assert session.state[f"app:{sid}"] == last
            stored_total += len(ids)
        FIGURES["appends acknowledged"] += len(ledger.acked)
        FIGURES["calls"] += ledger.calls
        FIGURES["failed calls"] += sum(ledger.errors.values())
        FIGURES["hangs"] += ledger.hangs
        for name, n in ledger.errors.items():
            FIGURES[f"error {name}"] += n
        return {"stored": stored_total, "acked": len(ledger.acked)}


async def settle(services: list[tuple[str, Any]]) -> None:
    """Every pool has all its connections back and nobody waiting."""
    for _, service in services:
        config = service.store.config
        deadline = time.monotonic() + 15
        while True:
            if isinstance(config, PsycopgAsyncConfig):
                stats = (await config.provide_pool()).get_stats()
            else:
                stats = config.provide_pool().get_stats()
            if stats["requests_waiting"] == 0 and stats["pool_available"] == stats["pool_size"]:
                assert stats["pool_size"] <= MAX_SIZE, stats
                break
            assert time.monotonic() < deadline, f"pool never settled: {stats}"
            await asyncio.sleep(0.05)


def server_connections(admin_conninfo: str, prefix: str) -> int:
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"{prefix}%",),
        ).fetchone()
    assert row is not None
    value: int = row[0]
    return value


#: How many connections the pools whose application_name starts with the prefix hold.
Connections = Callable[[str], int]


@pytest.fixture
def connections(dsn: str, pgbouncer: PgBouncer | None) -> Connections:
    """The test database's server connections, or, through PgBouncer, PgBouncer's clients."""
    if pgbouncer is None:
        return functools.partial(server_connections, dsn)
    return pgbouncer.clients


async def no_leaks(connections: Connections, prefix: str, services: list[tuple[str, Any]]) -> None:
    await settle(services)
    deadline = time.monotonic() + 15
    while (n := connections(prefix)) > MAX_SIZE * len(services):
        assert time.monotonic() < deadline, f"{n} server connections for {prefix!r}"
        await asyncio.sleep(0.1)


async def closed_cleanly(
    connections: Connections, prefix: str, services: list[tuple[str, Any]]
) -> None:
    for _, service in services:
        await service.store.config.close() if isinstance(
            service.store.config, PsycopgAsyncConfig
        ) else await asyncio.to_thread(service.store.config.close)
    deadline = time.monotonic() + 15
    while (n := connections(prefix)) > 0:
        assert time.monotonic() < deadline, f"{n} server connections left after close()"
        await asyncio.sleep(0.1)


# ------------------------------------------------------------- terminations


def terminate_all(dsn: str) -> int:
    """``pg_terminate_backend`` every other backend of the test database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


async def test_terminating_every_backend_under_load(dsn: str, connections: Connections) -> None:
    rounds = int(scaled(6, 60))
    async with services(dsn, "faults-kill") as pair:
        work = Workload(pair)
        await work.start()
        await asyncio.sleep(0.5)
        killed = 0
        for _ in range(rounds):
            killed += await asyncio.to_thread(terminate_all, dsn)
            await asyncio.sleep(0.4)
        FIGURES["backends terminated"] += killed
        FIGURES["termination rounds"] += rounds
        recovery = await work.wait_recovered(time.monotonic())
        await asyncio.sleep(1.0)
        assert killed > 0
        await work.kept_every_promise("kill", recovery, connections, "faults-kill")


# ------------------------------------------------------------------ restart


@pytest.fixture(scope="module")
def throwaway() -> Iterator[ThrowawayServer]:
    server = ThrowawayServer()
    try:
        yield server
    finally:
        server.destroy()


@dataclass
class Reached:
    """How the tests reach the throwaway server, and count the connections held to it."""

    conninfo: str
    connections: Connections


@pytest.fixture(scope="module")
def reached(throwaway: ThrowawayServer, pgbouncer: PgBouncer | None) -> Iterator[Reached]:
    """The throwaway server, itself or through a PgBouncer of its own in the run's pool mode."""
    if pgbouncer is None:
        yield Reached(throwaway.conninfo, functools.partial(server_connections, throwaway.conninfo))
        return
    bouncer = PgBouncer(throwaway.conninfo, pgbouncer.pool_mode)
    try:
        yield Reached(bouncer.conninfo(throwaway.conninfo), bouncer.clients)
    finally:
        bouncer.stop()


async def test_server_restart_under_load(throwaway: ThrowawayServer, reached: Reached) -> None:
    restarts = [("fast", 1.0), ("immediate", 0.5)] * int(scaled(1, 5))
    async with services(reached.conninfo, "faults-restart") as pair:
        work = Workload(pair)
        await work.start()
        await asyncio.sleep(0.5)
        recoveries = []
        for mode, down_for in restarts:
            await asyncio.to_thread(throwaway.restart, mode, down_for)
            back = time.monotonic()
            FIGURES[f"server restarts ({mode})"] += 1
            recoveries.append(await work.wait_recovered(back))
            await asyncio.sleep(0.5)
        await work.kept_every_promise(
            "restart",
            max(recoveries),
            reached.connections,
            "faults-restart",
        )


# -------------------------------------------------------------------- proxy


@pytest.fixture
def proxy(dsn: str) -> Iterator[Proxy]:
    with Proxy(dsn) as p:
        yield p


async def test_proxy_drops_stalls_and_partitions_under_load(
    proxy: Proxy, connections: Connections
) -> None:
    cycles = int(scaled(1, 10))
    async with services(proxy.conninfo, "faults-proxy") as pair:
        work = Workload(pair)
        await work.start()
        await asyncio.sleep(0.5)
        for _ in range(cycles):
            for _ in range(3):  # connections reset under the callers' feet
                proxy.drop_all()
                FIGURES["proxy drops"] += 1
                await asyncio.sleep(0.3)
            proxy.stall()  # a network path that goes quiet, then comes back
            await asyncio.sleep(1.0)
            proxy.resume()
            FIGURES["proxy stalls"] += 1
            await asyncio.sleep(0.3)
            proxy.stall()  # ... or goes quiet, then resets
            await asyncio.sleep(0.5)
            proxy.drop_all()
            proxy.resume()
            FIGURES["proxy stall-then-drop"] += 1
            proxy.refuse(True)  # a partition: new connections fail for a while
            proxy.drop_all()
            await asyncio.sleep(1.0)
            proxy.refuse(False)
            FIGURES["proxy partitions"] += 1
        recovery = await work.wait_recovered(time.monotonic())
        await asyncio.sleep(1.0)
        await work.kept_every_promise("proxy", recovery, connections, "faults-proxy")


async def test_a_stalled_connection_completes_when_the_path_comes_back(
    dsn: str, proxy: Proxy
) -> None:
    async with services(proxy.conninfo, "faults-stall") as pair:
        for _, service in pair:
            session = await service.create_session(app_name=APP, user_id=USER)
            proxy.stall()
            pending = asyncio.ensure_future(service.append_event(session, Event(author="user")))
            await asyncio.sleep(1.0)
            assert not pending.done()
            proxy.resume()
            await asyncio.wait_for(pending, CALL_BOUND)
            got = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
            assert got is not None
            assert len(got.events) == 1
            FIGURES["proxy stalls"] += 1


# ------------------------------------------------------ ambiguous failures


async def committed_then_dropped(
    dsn: str, proxy: Proxy, service: Any, session: Session, event: Event
) -> BaseException:
    """Append ``event`` so that it commits but its caller sees the connection die."""
    proxy.hold_responses()
    pending = asyncio.ensure_future(service.append_event(session, event))
    deadline = time.monotonic() + CALL_BOUND
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not conn.execute("SELECT 1 FROM adk_events WHERE id = %s", (event.id,)).fetchone():
            assert time.monotonic() < deadline, "the append never reached the server"
            await asyncio.sleep(0.02)
    proxy.drop_all()
    proxy.resume()
    FIGURES["ambiguous failures made"] += 1
    try:
        await asyncio.wait_for(pending, CALL_BOUND)
    except Exception as exc:
        return exc
    raise AssertionError("the append saw its connection dropped, yet did not fail")


async def retry_append(service: Any, session: Session, event: Event) -> None:
    """Append ``event`` again until acknowledged, as a careful caller would.

    The pool's other connections went down with the proxy's; one may still look
    alive for a moment, so a retry can fail too, but not every one.
    """
    for attempt in range(MAX_SIZE + 2):
        try:
            await service.append_event(session, event)
            return
        except CONNECTION_ERRORS as exc:
            FIGURES[f"error {error_name(exc)}"] += 1
            assert attempt < MAX_SIZE + 1, "the retries never reached the server"


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_append_retried_after_an_ambiguous_failure_is_stored_once(
    dsn: str, proxy: Proxy, kind: str
) -> None:
    async with services(proxy.conninfo, f"faults-ambiguous-{kind}") as pair:
        service = dict(pair)[kind]
        session = await service.create_session(app_name=APP, user_id=USER)
        event = Event(author="user", actions=EventActions(state_delta={"k": 1, "user:u": 1}))
        error = await committed_then_dropped(dsn, proxy, service, session, event)
        FIGURES[f"error {error_name(error)}"] += 1
        assert isinstance(error, sqlspec.DatabaseUnavailableError), repr(error)
        assert "may or may not have been applied" in str(error)
        # The caller cannot know the append committed, so it retries the same event.
        await retry_append(service, session, event)
        stored = await service.get_session(app_name=APP, user_id=USER, session_id=session.id)
        assert stored is not None
        assert [e.id for e in stored.events] == [event.id]
        assert stored.state == {"k": 1, "user:u": 1}
        await settle(pair)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_session_object_is_current_after_a_retry_that_found_its_event(
    dsn: str, proxy: Proxy, kind: str
) -> None:
    async with services(proxy.conninfo, f"faults-ambiguous2-{kind}") as pair:
        service = dict(pair)[kind]
        session = await service.create_session(app_name=APP, user_id=USER)
        event = Event(author="user", actions=EventActions(state_delta={"k": 1}))
        await committed_then_dropped(dsn, proxy, service, session, event)
        await retry_append(service, session, event)
        assert [e.id for e in session.events] == [event.id]
        assert session.state == {"k": 1}
        await service.append_event(session, Event(author="user"))  # not stale


# ------------------------------------------------- typed errors, fast recovery


async def test_a_down_server_is_a_typed_error_naming_the_cause(
    throwaway: ThrowawayServer, reached: Reached, pgbouncer: PgBouncer | None
) -> None:
    """Said by the server's refusal; through PgBouncer, typed only.

    PgBouncer keeps the client's connection and fails the statement once its
    query_wait_timeout passes, then closes the connection: psycopg's pipeline mode
    reports that close, not PgBouncer's message.
    """
    async with services(reached.conninfo, "faults-down") as pair:
        for label, service in pair:
            await service.create_session(app_name=APP, user_id=USER, session_id=label)
        await asyncio.to_thread(throwaway.stop, "fast")
        try:
            for label, service in pair:
                error = await failure_of(
                    asyncio.wait_for(
                        service.get_session(app_name=APP, user_id=USER, session_id=label),
                        CALL_BOUND,
                    )
                )
                FIGURES[f"error {error_name(error)}"] += 1
                assert isinstance(error, sqlspec.SQLSpecError), repr(error)
                if pgbouncer is None:
                    assert "refused" in str(error) or "shut" in str(error)
        finally:
            await asyncio.to_thread(throwaway.start)


async def test_reads_right_after_terminating_idle_connections_succeed(dsn: str) -> None:
    async with services(dsn, "faults-idle") as pair:
        for label, service in pair:
            await service.create_session(app_name=APP, user_id=USER, session_id=label)
        await settle(pair)
        await asyncio.to_thread(terminate_all, dsn)
        for label, service in pair:
            for _ in range(MAX_SIZE + 1):
                got = await service.get_session(app_name=APP, user_id=USER, session_id=label)
                assert got is not None


async def test_configs_lend_only_connections_the_server_has_not_closed(dsn: str) -> None:
    settings = pool_config(dsn, "faults-lend", min_size=MAX_SIZE)
    async_config = PsycopgAsyncConfig(connection_config=settings)
    sync_config = PsycopgSyncConfig(connection_config=settings)
    try:
        await (await async_config.provide_pool()).wait()
        await asyncio.to_thread(lambda: sync_config.provide_pool().wait())
        await asyncio.to_thread(terminate_all, dsn)
        await asyncio.sleep(0.2)  # the server's goodbyes reach the pooled sockets
        for _ in range(MAX_SIZE + 1):
            async with async_config.provide_connection() as conn:
                await conn.execute("SELECT 1")
            with sync_config.provide_connection() as sync_conn:
                sync_conn.execute("SELECT 1")
    finally:
        await async_config.close()
        sync_config.close()


async def test_a_call_on_a_silent_connection_fails_within_command_timeout(
    proxy: Proxy,
) -> None:
    async with services(proxy.conninfo, "faults-silent", command_timeout=1.0) as pair:
        for label, service in pair:
            session = await service.create_session(app_name=APP, user_id=USER, session_id=label)
            for call in (
                functools.partial(
                    service.get_session, app_name=APP, user_id=USER, session_id=label
                ),
                functools.partial(service.append_event, session, Event(author="user")),
            ):
                proxy.stall()
                started = time.monotonic()
                error = await failure_of(asyncio.wait_for(call(), CALL_BOUND))
                elapsed = time.monotonic() - started
                proxy.drop_all()
                proxy.resume()
                FIGURES[f"error {error_name(error)}"] += 1
                assert isinstance(error, sqlspec.DatabaseUnavailableError), repr(error)
                assert "command_timeout=1.0s" in str(error)
                assert 1.0 <= elapsed < 3.0, elapsed
                # Once the path is back, the same call succeeds on the same service.
                await asyncio.wait_for(call(), CALL_BOUND)
        await settle(pair)
