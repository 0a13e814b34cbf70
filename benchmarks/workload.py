"""The workload every implementation gets: events, their state deltas, session names."""

from __future__ import annotations

import functools
import random
import time
from typing import Any

from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.genai import types

__all__ = ["APP", "DeltaMix", "make_event", "make_events", "session_state"]

#: The app every benchmark session belongs to.
APP = "bench-app"

_WORDS = [
    "session",
    "state",
    "event",
    "agent",
    "model",
    "tool",
    "call",
    "result",
    "user",
    "turn",
    "context",
    "memory",
    "window",
    "token",
    "stream",
    "reply",
    "query",
    "plan",
    "step",
    "search",
    "answer",
    "cite",
    "source",
    "quote",
    "table",
    "index",
    "row",
    "commit",
    "latency",
    "pool",
    "cursor",
    "batch",
    "page",
    "order",
    "time",
    "value",
    "update",
    "merge",
    "scope",
]
#: Distinct texts per length; events cycle through them (building one is not free).
_VARIANTS = 101


@functools.lru_cache(maxsize=4 * _VARIANTS)
def _variant(seed: int, length: int) -> str:
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:length]


def _text(i: int, length: int) -> str:
    """``length`` characters of word-like text for event ``i`` (not a run of one
    character, which would compress and flatter every store alike)."""
    return _variant(i % _VARIANTS, length)


class DeltaMix:
    """Which state keys an event's delta touches.

    Every event sets a plain (session) key; ``user_every`` / ``app_every`` say how
    often it also sets a ``user:`` / ``app:`` key (1: every event, 0: never).
    """

    def __init__(self, user_every: int = 1, app_every: int = 1) -> None:
        self.user_every = user_every
        self.app_every = app_every

    def delta(self, i: int) -> dict[str, Any]:
        delta: dict[str, Any] = {"turn": i, "last_author": "model" if i % 2 else "user"}
        if self.user_every and i % self.user_every == 0:
            delta["user:last_turn"] = i
        if self.app_every and i % self.app_every == 0:
            delta["app:events_seen"] = i
        return delta

    def describe(self) -> str:
        def every(n: int) -> str:
            return "never" if n == 0 else "every event" if n == 1 else f"1 event in {n}"

        return f"plain every event, user: {every(self.user_every)}, app: {every(self.app_every)}"


ALL_SCOPES = DeltaMix(1, 1)


def make_event(
    i: int, *, text_bytes: int = 1000, mix: DeltaMix = ALL_SCOPES, invocation: str = "inv"
) -> Event:
    """Event ``i`` of a conversation: ~``text_bytes`` of text content and a state delta."""
    role = "model" if i % 2 else "user"
    return Event(
        invocation_id=f"{invocation}-{i // 2}",
        author=role if role == "user" else "bench_agent",
        content=types.Content(role=role, parts=[types.Part(text=_text(i, text_bytes))]),
        actions=EventActions(state_delta=mix.delta(i)),
        timestamp=time.time(),
    )


def make_events(
    n: int, *, text_bytes: int = 1000, mix: DeltaMix = ALL_SCOPES, invocation: str = "inv"
) -> list[Event]:
    """``n`` fresh events (appending mutates events, so each implementation gets its own)."""
    return [make_event(i, text_bytes=text_bytes, mix=mix, invocation=invocation) for i in range(n)]


def session_state(i: int) -> dict[str, Any]:
    """The initial state of a benchmark session (plain, ``user:`` and ``app:`` keys)."""
    return {
        "topic": f"conversation {i}",
        "preferences": {"language": "en", "verbosity": i % 3},
        "user:name": "bench user",
        "app:deployment": "bench",
    }
