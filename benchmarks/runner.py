"""Scenario 9, runner: a conversation through ADK's ``Runner``, and the store's share of a turn.

A scripted model (no network) makes every turn four events: the user's message,
a call of the ``remember`` tool, the tool's answer (which changes session, user
and app state) and a text reply. ``Runner`` loads the session at the start of
every turn and appends each event, so whatever a load costs per event of the
history shows as a turn that grows dearer. The store's share of a turn is the
time spent inside the service's ``get_session`` and ``append_event``, not the
whole turn (the runner and the agent rebuild the model's prompt from the
history too, which no store can help). The raw floor runs the conversation too
(:class:`FloorSessions`): what the machine adds to the same calls as the
runner's work around them grows. Turns are run interleaved, turn *n* on
every service before turn *n + 1* on any, so noise lands on all of them alike.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.adk.agents.llm_agent import LlmAgent
from google.adk.events.event import Event
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.in_memory_session_service import InMemorySessionService
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from google.adk.tools.tool_context import ToolContext
from google.genai import types

from benchmarks.impls import RawAsync, SQLSpecAsyncService
from benchmarks.measure import Result, percentile
from benchmarks.workload import APP
from sqlspec.extensions.adk import SQLSpecSessionService

if TYPE_CHECKING:
    from benchmarks.scenarios import Context

__all__ = ["RUNNER_FAMILIES", "RUNNER_IMPLEMENTATIONS", "S9", "scenario_runner"]

S9 = "9 runner"

IN_MEMORY = "ADK InMemorySessionService (in-process, deep-copies the session)"
UNCACHED = "sqlspec async · service, event_cache_bytes=0"

#: The ``--impl`` keys of the implementations this scenario drives through a Runner
#: (their labels are the other scenarios'), and the one it adds.
RUNNER_KEYS = ("sqlspec-async", "sqlspec-sync-service", "adk-asyncpg", "adk-psycopg")
RUNNER_IMPLEMENTATIONS: dict[str, tuple[str, str]] = {
    "adk-in-memory-sessions": (IN_MEMORY, "reference"),
}
RUNNER_FAMILIES: dict[str, str] = {**dict(RUNNER_IMPLEMENTATIONS.values()), UNCACHED: "sqlspec"}

USER = "runner-user"
#: The reply's text: a short paragraph, as a model's answer might be.
REPLY = (
    "Stored {value}. I will keep it in the session, with your other preferences, "
    "and use it from the next turn on; tell me if it changes."
)


class ScriptedModel(BaseLlm):
    """An offline model: calls ``remember`` with the user's last word, then replies."""

    model: str = "scripted-benchmark"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        last = llm_request.contents[-1] if llm_request.contents else None
        parts = (last.parts or []) if last else []
        answers = [p.function_response for p in parts if p.function_response is not None]
        if answers:
            value = (answers[-1].response or {}).get("stored", "?")
            reply = types.Part(text=REPLY.format(value=value))
            yield LlmResponse(content=types.Content(role="model", parts=[reply]))
            return
        text = next((p.text for p in parts if p.text), "") or "nothing"
        call = types.FunctionCall(name="remember", args={"value": text.split()[-1]})
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(function_call=call)])
        )


def remember(value: str, tool_context: ToolContext) -> dict[str, Any]:
    """Remember a value in the session, user and app state, and count the turns.

    Args:
        value: what to remember.
    """
    state = tool_context.state
    state["color"] = value
    state["user:color"] = value
    state["app:last_color"] = value
    state["turns"] = int(state.get("turns", 0)) + 1
    return {"stored": value}


class TimedSessions(BaseSessionService):
    """A session service that adds the time its ``get_session``/``append_event`` take to
    :attr:`spent` (the loads' alone also to :attr:`loading`); everything is done by the
    service it wraps."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spent = 0.0
        self.loading = 0.0

    async def create_session(self, **kwargs: Any) -> Session:
        session: Session = await self.inner.create_session(**kwargs)
        return session

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        started = time.perf_counter()
        try:
            session: Session | None = await self.inner.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=config
            )
            return session
        finally:
            took = time.perf_counter() - started
            self.spent += took
            self.loading += took

    async def append_event(self, session: Session, event: Event) -> Event:
        started = time.perf_counter()
        try:
            stored: Event = await self.inner.append_event(session, event)
            return stored
        finally:
            self.spent += time.perf_counter() - started

    async def list_sessions(self, **kwargs: Any) -> ListSessionsResponse:
        listed: ListSessionsResponse = await self.inner.list_sessions(**kwargs)
        return listed

    async def delete_session(self, **kwargs: Any) -> None:
        await self.inner.delete_session(**kwargs)


class FloorSessions:
    """The floor of a store that keeps a session's events in process, as ours does.

    Its ``get_session`` is the raw floor's read of the session row alone (no
    events), handed the events this object holds; its ``append_event`` is the raw
    floor's append. No decoding, no checks beyond the revision: what a turn's
    store calls cost at the least. Its growth across the conversation is what
    the machine adds, as the Runner's own work per turn grows around the calls.
    """

    def __init__(self, raw: RawAsync) -> None:
        self.raw = raw
        self.held: dict[str, list[Event]] = {}

    async def create_session(
        self, *, app_name: str, user_id: str, state: dict[str, Any], session_id: str
    ) -> Session:
        session: Session = await self.raw.create_session(app_name, user_id, session_id, state)
        self.held[session.id] = []
        return session

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        session: Session | None = await self.raw.get_session(app_name, user_id, session_id, 0)
        if session is not None:
            session.events = list(self.held[session_id])
        return session

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        await self.raw.append_event(session, event)
        for key, value in (event.actions.state_delta if event.actions else {}).items():
            if not key.startswith(State.TEMP_PREFIX):
                session.state[key] = value
        self.held[session.id].append(event)
        return event


@dataclass
class _Conversation:
    """One implementation's conversation: its runner, its session, each turn's store time."""

    label: str
    timed: TimedSessions
    runner: Runner
    session_id: str
    store_times: list[float] = field(default_factory=list)
    turn_times: list[float] = field(default_factory=list)
    load_times: list[float] = field(default_factory=list)

    async def turn(self, number: int) -> None:
        message = types.Content(role="user", parts=[types.Part(text=f"turn {number}: c{number}")])
        spent_before, loading_before = self.timed.spent, self.timed.loading
        started = time.perf_counter()
        async for _ in self.runner.run_async(
            user_id=USER, session_id=self.session_id, new_message=message
        ):
            pass
        self.turn_times.append(time.perf_counter() - started)
        self.store_times.append(self.timed.spent - spent_before)
        self.load_times.append(self.timed.loading - loading_before)


async def _open(label: str, service: Any, session_id: str) -> _Conversation:
    timed = TimedSessions(service)
    session = await timed.create_session(
        app_name=APP, user_id=USER, session_id=session_id, state={"topic": "colors"}
    )
    agent = LlmAgent(name="assistant", model=ScriptedModel(), tools=[remember])
    runner = Runner(app_name=APP, agent=agent, session_service=timed)
    return _Conversation(label, timed, runner, session.id)


def _services(ctx: Context) -> list[tuple[str, Any]]:
    """The chosen services, by label: the library's and ADK's, the library's async
    service with its event cache off (the same store), the raw floor's (as
    :class:`FloorSessions`), then the in-memory one."""
    chosen = [
        (impl.label, getattr(impl, "service", None))
        for impl in ctx.impls
        if impl.key in RUNNER_KEYS
    ]
    services = [(label, service) for label, service in chosen if service is not None]
    ours = next((impl for impl in ctx.impls if isinstance(impl, SQLSpecAsyncService)), None)
    if ours is not None:
        services.append((UNCACHED, SQLSpecSessionService(ours.store, event_cache_bytes=0)))
    raw = next((impl for impl in ctx.impls if isinstance(impl, RawAsync)), None)
    if raw is not None:
        services.append((raw.label, FloorSessions(raw)))
    if ctx.selected is None or "adk-in-memory-sessions" in ctx.selected:
        services.append((IN_MEMORY, InMemorySessionService()))
    return services


async def scenario_runner(ctx: Context) -> None:
    s = ctx.sizes
    window = min(s.runner_window, s.runner_turns)
    warmup_turns = min(s.warmup, 10)
    conversations: list[_Conversation] = []
    for number, (label, service) in enumerate(_services(ctx)):

        async def open_one(label: str = label, service: Any = service, n: int = number) -> None:
            # A few untimed turns on a session of their own first: the pool's
            # connections, prepared statements and imports are not the first turns' cost.
            warmup = await _open(label, service, f"runner-warmup-{n}")
            for turn in range(warmup_turns):
                await warmup.turn(turn + 1)
            await warmup.runner.close()
            conversations.append(await _open(label, service, f"runner-{n}"))

        await ctx.guard(S9, "open a Runner", label, open_one)
    failed: set[str] = set()
    for turn in range(s.runner_turns):
        if turn % 10 == 0:
            ctx.status(f"{S9} · turn {turn + 1} of {s.runner_turns}")
        shift = turn % max(len(conversations), 1)
        for conversation in conversations[shift:] + conversations[:shift]:
            if conversation.label in failed:
                continue
            try:
                await conversation.turn(turn + 1)
            except Exception as exc:
                failed.add(conversation.label)
                ctx.fail(S9, f"turn {turn + 1}", conversation.label, exc)
    for conversation in conversations:
        await conversation.runner.close()
        if conversation.label in failed:
            continue
        _report(ctx, conversation, s.runner_turns, window)


def _report(ctx: Context, conversation: _Conversation, turns: int, window: int) -> None:
    """Two rows: the store's time per turn over the first and the last ``window`` turns.

    Each notes the load's median (the rest is the turn's four appends) and the
    store's share of the whole turn; the last row also how many times the first
    row's median it is (``growth``, what the target reads).
    """
    c = conversation
    rows = (
        (f"store per turn, turns 1-{window}", slice(0, window)),
        (f"store per turn, turns {turns - window + 1}-{turns}", slice(turns - window, turns)),
    )
    for operation, turns_of in rows:
        samples = c.store_times[turns_of]
        result = Result(S9, operation, c.label, samples)
        load = percentile(c.load_times[turns_of], 0.5) * 1000
        share = sum(samples) / sum(c.turn_times[turns_of])
        result.extra = f"get_session {load:.2f} ms; {share:.0%} of the turn"
        ctx.results.append(result)
    growth = percentile(c.store_times[-window:], 0.5) / percentile(c.store_times[:window], 0.5)
    ctx.results[-1].metrics["growth"] = growth
    ctx.results[-1].extra += f"; {growth:.2f}x turns 1-{window}"
