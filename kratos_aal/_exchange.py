"""One exchange with Kratos, bounded by the client's timeout: on a helper thread, or awaited.

httpx's timeout bounds each read, so a body dripped a byte at a time could hold a request
for ever. A blocking exchange runs on a helper thread and the request's thread waits at
most ``timeout`` for it; an awaited one is bounded by ``asyncio.wait_for``. Either way,
what Kratos does cannot hold a request longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from . import _diagnose, _observe
from ._deadline import DEADLINE
from .exceptions import KratosUnavailable

__all__ = ["aexchange", "exchange"]


def _unavailable(error: Exception, url: str) -> KratosUnavailable:
    # The type name only: a transport's message may quote the request.
    kind, words = _diagnose.cause_of(error)
    _diagnose.unreachable(url, kind, words)
    return KratosUnavailable(f"Kratos did not answer ({type(error).__name__})", cause=kind)


def _too_slow(timeout: float, url: str) -> KratosUnavailable:
    _diagnose.unreachable(url, _diagnose.TIMEOUT, f"it did not answer within {timeout:g} s")
    return KratosUnavailable(f"Kratos did not answer within {timeout:g} s", cause=_diagnose.TIMEOUT)


def forget_cookies(http: httpx.Client | httpx.AsyncClient, response: httpx.Response) -> None:
    """Drop from *http*'s jar exactly what *response* set; the client's other cookies stay.

    httpx files every Set-Cookie into the client's jar: a user's refreshed session
    cookie or CSRF cookie would then ride along with whatever else uses an injected client.
    """
    if "set-cookie" not in response.headers:
        return
    for cookie in response.cookies.jar:
        with contextlib.suppress(KeyError):  # already gone
            http.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)


class _Exchanges:
    """Daemon threads that run blocking exchanges, kept for the next one.

    Starting a thread per cache miss costs more CPU than the exchange around it. A job
    goes to an idle thread, or to a new one when none is idle (one that hangs on a slow
    Kratos holds only its own job up); at most ``keep`` idle threads wait for more, each
    for ``linger`` seconds: a burst of misses leaves no threads behind once it is over.
    """

    def __init__(self, keep: int = 8, linger: float = 2.0) -> None:
        self._keep = keep
        self._linger = linger
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run *job* on an idle thread, or on a new one; never waits."""
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
            # Queued under the lock: an idle thread that gives up sees every job it was
            # counted for (see _work).
            self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name="kratos-aal-exchange", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._linger)
            except queue.Empty:
                with self._lock:
                    # Idle threads number _idle plus the jobs queued: none queued, this
                    # one is counted in _idle, and no job waits for it.
                    if self._jobs.empty():
                        self._idle -= 1
                        return
                continue
            job()  # the job catches its own errors
            with self._lock:
                if self._idle >= self._keep:
                    return
                self._idle += 1

    def after_fork(self) -> None:
        """Start afresh in a forked child, which has none of its parent's threads.

        Counted as idle, they would be handed jobs that no thread ever runs.
        """
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0


_EXCHANGES = _Exchanges()


def exchange(
    http: httpx.Client, request: httpx.Request, timeout: float, url: str
) -> httpx.Response:
    """Send *request* on a helper thread; wait for its answer at most *timeout* seconds.

    The helper's reads end by the same deadline (see _deadline), so that it does not
    read on after the request has given up: one thread per dripped answer, unbounded.

    Raises:
        KratosUnavailable: no answer in time, or the exchange failed (*url* is Kratos's).
    """
    deadline = time.monotonic() + timeout
    outcome: list[Any] = []
    done = threading.Event()
    context = contextvars.copy_context()

    def send() -> httpx.Response:
        DEADLINE.set(deadline)
        return _observe.send(http.send, request)

    def run() -> None:
        try:
            outcome.append(context.run(send))
        except Exception as exc:
            outcome.append(exc)
        finally:
            done.set()

    _EXCHANGES.submit(run)
    if not done.wait(timeout):
        raise _too_slow(timeout, url)
    result = outcome[0]
    if isinstance(result, Exception):
        raise _unavailable(result, url) from None
    return result  # type: ignore[no-any-return]


async def aexchange(
    http: httpx.AsyncClient, request: Callable[[], httpx.Request], timeout: float, url: str
) -> httpx.Response:
    """Send ``request()`` and await its answer, the whole exchange bounded by *timeout*.

    Raises:
        KratosUnavailable: no answer in time, or the exchange failed (*url* is Kratos's).
    """
    try:
        return await asyncio.wait_for(_observe.asend(http.send, request()), timeout)
    except asyncio.TimeoutError:
        raise _too_slow(timeout, url) from None
    except Exception as exc:
        raise _unavailable(exc, url) from None
