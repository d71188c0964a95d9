"""The calls to Kratos under way in this process, capped at ``max_concurrent_checks``."""

from __future__ import annotations

import asyncio
import threading

from . import _diagnose
from .exceptions import KratosUnavailable

__all__: list[str] = []


class _Calls:
    """The calls to Kratos under way in this process, from any client, thread or event loop.

    A call that would make more than its client's ``max_concurrent_checks`` fails at
    once, never waits: with Kratos slow, requests that wait for it hold a worker (a
    thread, a connection) each, until none is left for pages that need no Kratos at all.
    Counted per process, not per client: an app with two clients (a Flask extension and
    a WSGI middleware) has as many threads as one.

    A call on an event loop is counted with its loop: a loop closed under it (closed
    without cancelling its tasks, after the request gave up) never runs the call's end,
    so its calls are no longer counted once the cap is reached.
    """

    def __init__(self) -> None:
        self._busy = 0
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, int] = {}

    def take(self, limit: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Count one more call (of *loop*), when fewer than *limit* are under way.

        Raises:
            KratosUnavailable: *limit* calls are under way already.
        """
        with self._lock:
            if self._busy >= limit:
                for closed in [held for held in self._loops if held.is_closed()]:
                    self._busy -= self._loops.pop(closed)
            if self._busy >= limit:
                raise KratosUnavailable(
                    f"{limit} calls to Kratos are under way already "
                    "(max_concurrent_checks): not waiting for another",
                    cause=_diagnose.BUSY,
                )
            self._busy += 1
            if loop is not None:
                self._loops[loop] = self._loops.get(loop, 0) + 1

    def give(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Count one call fewer (one counted by :meth:`take` ended)."""
        with self._lock:
            if loop is not None:
                held = self._loops.get(loop)
                if held is None:  # no longer counted: its loop was closed under it
                    return
                if held == 1:
                    del self._loops[loop]
                else:
                    self._loops[loop] = held - 1
            self._busy -= 1

    def after_fork(self) -> None:
        """Start afresh in a forked child: the parent's calls never end there."""
        self._lock = threading.Lock()
        self._busy = 0
        self._loops = {}


_CALLS = _Calls()
