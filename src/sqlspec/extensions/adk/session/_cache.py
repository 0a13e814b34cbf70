"""The decoded events a session service keeps of the sessions it has read.

Rebuilding ADK ``Event`` objects from JSON is most of what a load costs, and
ADK's ``Runner`` loads the whole session at the start of every turn. So a
service keeps the events of the sessions it has read, and on the next read asks
the store only for the events written since (the store checks that the session
is the same one, and that those events are all that is new). What is kept is
bounded in bytes, least recently read sessions going first. Pure bookkeeping,
shared by the async service and its sync twin (whose calls may come from
several threads, hence the lock).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass

from google.adk.events.event import Event
from google.adk.sessions.base_session_service import GetSessionConfig

from sqlspec.exceptions import ImproperConfigurationError
from sqlspec.extensions.adk.session._codec import get_revision
from sqlspec.extensions.adk.session._types import HeldEvents, SessionUpdate

__all__ = ["DEFAULT_EVENT_CACHE_BYTES", "EventCache", "HeldSession", "event_cost", "select_events"]

#: What a service keeps by default: about 10,000 events of 1 KB of text each.
DEFAULT_EVENT_CACHE_BYTES = 64 * 1024 * 1024


def event_cost(json_bytes: int, count: int) -> int:
    """The memory ``count`` decoded events of ``json_bytes`` of stored JSON are reckoned to take.

    Measured with ``tracemalloc`` on ADK 2.13 events of 250 B to 1.4 KB of JSON:
    about 2.6 bytes per byte of JSON plus 2.7 KB per event; rounded up.
    """
    return 3 * json_bytes + 2_700 * count


@dataclass(frozen=True)
class HeldSession:
    """One session's events as held; ``events`` is never changed once held."""

    incarnation: str | None
    revision: int
    events: list[Event]
    cost: int

    def held_events(self) -> HeldEvents:
        last = self.events[-1].id if self.events else None
        return HeldEvents(incarnation=self.incarnation, revision=self.revision, last_event_id=last)


Key = tuple[str, str, str]


class EventCache:
    """Sessions' decoded events, at most ``max_bytes`` of them (by :func:`event_cost`).

    ``max_bytes`` 0 keeps nothing; ``None`` is :data:`DEFAULT_EVENT_CACHE_BYTES`.
    """

    def __init__(self, max_bytes: int | None) -> None:
        if max_bytes is None:
            max_bytes = DEFAULT_EVENT_CACHE_BYTES
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ImproperConfigurationError(
                f"event_cache_bytes must be an int >= 0 (0 turns the cache off), got {max_bytes!r}"
            )
        self.max_bytes = max_bytes
        self.cost = 0
        self._held: OrderedDict[Key, HeldSession] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def get(self, key: Key) -> HeldSession | None:
        """What is held of a session, now the most recently read."""
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                self._held.move_to_end(key)
            return held

    def update(self, key: Key, base: HeldSession | None, update: SessionUpdate) -> list[Event]:
        """The session's events after ``update``, which was read holding ``base``.

        They are kept for the next read if they fit, unless a read that finished
        meanwhile keeps a later revision of the same session.
        """
        cost = event_cost(update.event_bytes, len(update.events))
        if update.whole or base is None:
            events = update.events
        else:
            events = [*base.events, *update.events]
            cost += base.cost
        revision = get_revision(update.session)
        assert revision is not None  # a store's session carries its revision
        fresh = HeldSession(update.incarnation, revision, events, cost)
        with self._lock:
            current = self._held.pop(key, None)
            if current is not None:
                self.cost -= current.cost
                if (
                    current is not base
                    and current.incarnation == fresh.incarnation
                    and current.revision > fresh.revision
                ):
                    fresh = current
            if fresh.cost <= self.max_bytes:
                self._held[key] = fresh
                self.cost += fresh.cost
            while self.cost > self.max_bytes:
                _, evicted = self._held.popitem(last=False)
                self.cost -= evicted.cost
        return events

    def forget(self, key: Key) -> None:
        """Drop what is held of a session (deleted, or created anew)."""
        with self._lock:
            held = self._held.pop(key, None)
            if held is not None:
                self.cost -= held.cost


def select_events(events: list[Event], config: GetSessionConfig | None) -> list[Event]:
    """A new list of the events ``config`` selects from ``events`` (oldest first), as the
    store's query selects them: at or after ``after_timestamp``, then the newest
    ``num_recent_events``."""
    if config is None:
        return list(events)
    start = 0
    if config.after_timestamp is not None:
        after = float(config.after_timestamp)
        start = bisect_left(events, after, key=lambda event: event.timestamp)
    if config.num_recent_events is not None:
        start = max(start, len(events) - config.num_recent_events)
    return events[start:]
