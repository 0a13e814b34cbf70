"""How a service's methods meet their caller, for async and sync stores alike.

A service over an async store is async throughout: ADK awaits each method. Its
sync twin, over a sync store, is called both from plain scripts and from ADK's
``Runner``, which awaits: each of its methods blocks and returns its result
where no event loop runs, and inside a running loop starts the blocking work on
the loop's default executor at once and returns an awaitable of the result, so
the loop never blocks. The work runs whether or not it is awaited; an error
nobody retrieves is reported by asyncio, never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["awaitable_method", "loop_aware_method", "new_service"]

S = TypeVar("S")
C = TypeVar("C")
P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def awaitable_method(method: F) -> F:
    """An async service method, left as it is: its caller awaits it.

    It marks the methods whose sync twins :func:`loop_aware_method` wraps.
    """
    return method


def loop_aware_method(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """A blocking service method that returns an awaitable inside a running loop.

    The annotation describes the direct form, the one a sync caller sees.
    """

    @functools.wraps(method)
    def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return method(self, *args, **kwargs)
        context = contextvars.copy_context()
        work = functools.partial(context.run, method, self, *args, **kwargs)
        return loop.run_in_executor(None, work)  # type: ignore[return-value]

    return call


def new_service(cls: type[C], root: type, store: Any, sync_twin: Callable[[], type]) -> C:
    """A new service of class ``cls`` over ``store``.

    Asked of the ``root`` service class with a sync store, it is of the root's
    sync twin instead (``sync_twin()`` imports it: the twin is generated from the
    root's module, so the root may not import it at module level).
    """
    chosen: type = sync_twin() if cls is root and not store.is_async else cls
    service: C = object.__new__(chosen)
    service.store = store  # type: ignore[attr-defined]
    return service
