"""``command_timeout``: a store's statement that gets no answer in time loses its connection.

Cancelling the waiting task would not do: psycopg then asks the server to
cancel and waits for it, which on a silent network path never answers. A
socket shut down fails libpq's wait at once, and the pool drops the connection.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic
from typing import Any

import psycopg
from psycopg import AsyncConnection, Connection

from sqlspec.exceptions import DatabaseUnavailableError

__all__ = ["Deadline", "Watchdog", "call_later", "watchdog"]

#: ``schedule(delay, fn)`` runs ``fn`` in ``delay`` seconds and returns a canceller.
Schedule = Callable[[float, Callable[[], None]], Callable[[], None]]


class Deadline:
    """Shuts a connection's socket down when its statement outlives ``command_timeout``."""

    def __init__(self, conn: Connection[Any] | AsyncConnection[Any], timeout: float) -> None:
        self._fd = conn.pgconn.socket
        self._timeout = timeout
        self._lock = threading.Lock()
        self._done = False
        self.expired = False

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sock = socket.socket(fileno=self._fd)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already disconnected: libpq fails by itself
            finally:
                sock.detach()

    @contextmanager
    def watching(self, schedule: Schedule) -> Iterator[None]:
        """Run the block under the deadline, scheduled by ``schedule``."""
        cancel = schedule(self._timeout, self.expire)
        try:
            yield
        except psycopg.OperationalError as exc:
            if not self.expired:
                raise
            raise DatabaseUnavailableError(
                f"no answer from the server within command_timeout={self._timeout}s; the "
                "call may or may not have been applied, and its connection was closed"
            ) from exc
        finally:
            cancel()
            with self._lock:
                self._done = True


def call_later(delay: float, fn: Callable[[], None]) -> Callable[[], None]:
    """Schedule on the running event loop: async deadlines cost no thread."""
    return asyncio.get_running_loop().call_later(delay, fn).cancel


class Watchdog:
    """One thread that runs every sync deadline when it falls due.

    A timer thread per statement would cost more (about 0.1 ms to start) than
    many statements take.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, fn: Callable[[], None]) -> Callable[[], None]:
        """Run ``fn`` in ``delay`` seconds; return a function that cancels it."""
        with self._cond:
            key = next(self._keys)
            heapq.heappush(self._due, (monotonic() + delay, key, fn))
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(
                    target=self._run, name="sqlspec-deadlines", daemon=True
                )
                self._thread.start()
            elif self._due[0][1] == key:
                self._cond.notify()
        return functools.partial(self._cancel, key)

    def _cancel(self, key: int) -> None:
        with self._cond:
            self._cancelled.add(key)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._due and self._due[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._due)[1])
                if not self._due:
                    self._cond.wait()
                    continue
                wait = self._due[0][0] - monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._due)[2]()


#: Schedules every sync deadline of the process.
watchdog = Watchdog().schedule
