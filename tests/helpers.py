"""Shared test helpers: a scripted offline model, a state-writing tool, a round-trip counter,
and the figures the robustness suites report.

Nothing here talks to a network service other than the test's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools.tool_context import ToolContext
from google.genai import types
from psycopg import AsyncConnection, Connection, pq, sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field

import sqlspec
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig

# --------------------------------------------------------------------------- model


def _text_of(content: types.Content | None) -> str:
    return "".join(p.text or "" for p in (content.parts or [])) if content else ""


class ScriptedLlm(BaseLlm):
    """An offline model: asks for ``remember(value=...)``, then answers with text.

    The value it asks to remember is the last word of the latest user text, so a
    turn saying "remember blue" stores ``blue``. After the tool's response it
    answers ``"stored <value>"``. Every request it receives is kept in
    :attr:`requests` (its contents), so a test can see the history the runner handed it.
    """

    model: str = "scripted-offline"
    requests: list[list[types.Content]] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        contents = list(llm_request.contents or [])
        self.requests.append([c.model_copy(deep=True) for c in contents])
        last = contents[-1] if contents else None
        parts = (last.parts or []) if last else []
        responses = [p.function_response for p in parts if p.function_response is not None]
        if responses:
            value = (responses[-1].response or {}).get("stored", "?")
            yield LlmResponse(
                content=types.Content(role="model", parts=[types.Part(text=f"stored {value}")]),
                turn_complete=True,
            )
            return
        user_texts = [_text_of(c) for c in contents if c.role == "user" and _text_of(c)]
        value = user_texts[-1].split()[-1] if user_texts else "nothing"
        yield LlmResponse(
            content=types.Content(
                role="model",
                parts=[
                    types.Part(
                        function_call=types.FunctionCall(name="remember", args={"value": value})
                    )
                ],
            )
        )


def remember(value: str, tool_context: ToolContext) -> dict[str, Any]:
    """Remember a value in every state scope.

    Args:
        value: what to remember.
    """
    state = tool_context.state
    state["app:color"] = value
    state["user:color"] = value
    state["temp:color"] = value
    state["color"] = value
    state["turns"] = int(state.get("turns", 0)) + 1
    return {"stored": value}


def event_texts(events: list[Any]) -> list[str]:
    """Each event's text (function calls and responses as ``call:``/``response:`` tags)."""
    return content_texts([event.content for event in events])


def content_texts(contents: list[types.Content | None]) -> list[str]:
    """The texts of contents, function calls and responses as ``call:``/``response:`` tags."""
    out = []
    for content in contents:
        parts = content.parts if content else []
        for part in parts or []:
            if part.text:
                out.append(part.text)
            elif part.function_call:
                out.append(f"call:{part.function_call.name}")
            elif part.function_response:
                out.append(f"response:{part.function_response.name}")
    return out


# ---------------------------------------------------------------- subprocesses


def subprocess_env() -> dict[str, str]:
    """The environment for a child Python that imports this checkout's ``sqlspec``."""
    src = str(Path(sqlspec.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


PYTHON = sys.executable


# ------------------------------------------------------------ round-trip counter

TRACE_FLAGS = pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE


#: Client messages after which the client may wait for the server; a burst ending
#: otherwise (Parse, Bind, Execute in a pipeline) asked for nothing yet.
_AWAITED = frozenset({"Sync", "Flush", "Query", "CopyDone", "CopyFail", "FunctionCall"})


def count_round_trips(trace: str) -> int:
    """Round trips in a libpq trace: each time the client waits for the server.

    A burst of frontend (F) messages ending in one the server must answer (Sync,
    Flush, Query...) followed by backend (B) messages is one round trip; a
    trailing frontend message nobody answers (Terminate) is none. Backend
    messages read before the client's burst ended with such a message (a large
    result arriving while a pipeline is still being sent) did not make it wait,
    nor does a Flush sent while a Sync is still unanswered (the Sync already
    asked for everything): they belong to the round trip already counted.
    """
    trips = 0
    previous = last_sent = ""
    unanswered_syncs = 0
    for line in trace.splitlines():
        fields = line.split("\t")
        direction = fields[0][:1]
        if direction not in ("F", "B"):
            continue
        message = fields[2].strip() if len(fields) > 2 else ""
        if direction == "F":
            if message == "Flush" and unanswered_syncs:
                continue  # asks for nothing the unanswered Sync did not
            if message in ("Sync", "Query"):
                unanswered_syncs += 1
            last_sent = message
        else:
            if previous == "F" and last_sent in _AWAITED:
                trips += 1
            if message == "ReadyForQuery":
                unanswered_syncs = max(0, unanswered_syncs - 1)
        previous = direction
    return trips


def trace_bursts(trace: str) -> str:
    """A trace condensed to its bursts, e.g. ``F[Parse,Sync] B[ParseComplete,ReadyForQuery]``."""
    bursts: list[tuple[str, list[str]]] = []
    for line in trace.splitlines():
        fields = line.split("\t")
        if fields[0] not in ("F", "B") or len(fields) < 3:
            continue
        if not bursts or bursts[-1][0] != fields[0]:
            bursts.append((fields[0], []))
        bursts[-1][1].append(fields[2].strip())
    return " ".join(f"{d}[{','.join(names)}]" for d, names in bursts)


class _Trace:
    """libpq tracing of one connection into a temporary file, until :meth:`read`."""

    def __init__(self, pgconn: Any) -> None:
        self.pgconn = pgconn
        fd, self.path = tempfile.mkstemp(prefix="sqlspec-trace-")
        os.close(fd)
        # O_APPEND: libpq's stdio stream and our reads never disagree on the offset.
        self.file = open(self.path, "a")  # noqa: SIM115 - closed in read()
        pgconn.trace(self.file.fileno())
        pgconn.set_trace_flags(TRACE_FLAGS)

    def read(self) -> str:
        """Stop tracing (which flushes libpq's stream) and return what was traced."""
        self.pgconn.untrace()
        self.file.close()
        try:
            return Path(self.path).read_text()
        finally:
            os.unlink(self.path)


class RoundTripCounter:
    """Counts the round trips a store makes through a config's pool.

    It wraps the config's ``provide_connection`` so every connection the store
    borrows is traced by libpq from the moment it is lent until :meth:`take`,
    which waits for the pool to take its connections back (psycopg_pool resets
    a returned connection in a background worker, and that reset could talk to
    the server too), stops tracing and returns the round trips seen.
    """

    def __init__(self, config: PsycopgSyncConfig | PsycopgAsyncConfig) -> None:
        self.config = config
        self._traces: dict[int, _Trace] = {}
        self.last_trace = ""
        if isinstance(config, PsycopgAsyncConfig):
            original_async = config.provide_connection

            @asynccontextmanager
            async def traced_async() -> AsyncIterator[AsyncConnection[Any]]:
                async with original_async() as conn:
                    self._attach(conn)
                    yield conn

            setattr(config, "provide_connection", traced_async)  # noqa: B010
        else:
            original_sync = config.provide_connection

            @contextmanager
            def traced_sync() -> Iterator[Connection[Any]]:
                with original_sync() as conn:
                    self._attach(conn)
                    yield conn

            setattr(config, "provide_connection", traced_sync)  # noqa: B010

    def _attach(self, conn: Connection[Any] | AsyncConnection[Any]) -> None:
        if id(conn) not in self._traces:
            self._traces[id(conn)] = _Trace(conn.pgconn)

    def _pool_stats(self) -> dict[str, int]:
        pool = self.config._pool
        assert pool is not None, "the pool is not open"
        return pool.get_stats()

    def _settled(self) -> bool:
        stats = self._pool_stats()
        return stats["pool_available"] == stats["pool_size"]

    def take_sync(self) -> int:
        """Wait for the pool to settle, stop tracing, return the round trips counted."""
        deadline = time.monotonic() + 5
        while not self._settled():
            assert time.monotonic() < deadline, f"pool never settled: {self._pool_stats()}"
            time.sleep(0.005)
        return self._collect()

    async def take(self) -> int:
        """As :meth:`take_sync`, without blocking the event loop."""
        deadline = time.monotonic() + 5
        while not self._settled():
            assert time.monotonic() < deadline, f"pool never settled: {self._pool_stats()}"
            await asyncio.sleep(0.005)
        return self._collect()

    def _collect(self) -> int:
        traces, self._traces = self._traces, {}
        texts = [t.read() for t in traces.values()]
        self.last_trace = "\n----\n".join(texts)
        return sum(count_round_trips(text) for text in texts)


# ------------------------------------------------------------------- figures


def figures_report(title: str, figures: Counter[str], *, total: bool = False) -> Any:
    """A module fixture that prints ``figures`` once the module's tests have run (``-s``).

    ``total`` puts their sum first (for counts of inputs by outcome).
    """

    @pytest.fixture(scope="module", autouse=True)
    def _report() -> Iterator[None]:
        yield
        prefix = f"{sum(figures.values())} " if total else ""
        print(f"\n{title}: {prefix}{dict(sorted(figures.items()))}")

    return _report


def service_uri(dsn: str, scheme: str = "sqlspec", **params: Any) -> str:
    """``dsn`` (a conninfo) as a service URI, with extra query parameters."""
    return f"{scheme}:///?" + urlencode({**conninfo_to_dict(dsn), **params})


#: ``%(name)s`` placeholders (and ``%%``), as psycopg turns them into ``$n``.
_PLACEHOLDER = re.compile(rb"%\((\w+)\)s|%%")


def numbered(text: bytes) -> tuple[bytes, list[str]]:
    """``text`` with psycopg's named placeholders as the server's ``$1``, ``$2``...

    Also returns the parameter names in ``$n`` order, to pass values to ``EXECUTE``.
    """
    numbers: dict[bytes, int] = {}

    def number(match: re.Match[bytes]) -> bytes:
        if match.group(1) is None:
            return b"%"
        return b"$%d" % numbers.setdefault(match.group(1), len(numbers) + 1)

    return _PLACEHOLDER.sub(number, text), [name.decode() for name in numbers]


def explained(conn: Connection[Any], statement: Any, params: Any, *, generic: bool) -> Any:
    """The executed plan (``EXPLAIN (ANALYZE, FORMAT JSON)``'s top node) of a store's
    ``Statement``, with its ``planner`` settings as the store runs it; ``generic``: as
    PostgreSQL may plan it once prepared, for any parameters. ``conn`` must be in a
    transaction, which the caller rolls back."""
    if statement.planner:
        conn.execute(statement.planner)
    if not generic:
        row = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + statement.text, params).fetchone()
    else:
        prepared, names = numbered(statement.text)
        # The simple protocol: extended would take the $n for its own parameters.
        result = conn.pgconn.exec_(b"PREPARE planned AS " + prepared)
        assert result.status == pq.ExecStatus.COMMAND_OK, result.error_message
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        values = sql.SQL(", ").join(sql.Literal(params[name]) for name in names)
        explain = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE planned({})")
        row = conn.execute(explain.format(values)).fetchone()
        conn.execute("DEALLOCATE planned")
    assert row is not None
    return row[0][0]["Plan"]
