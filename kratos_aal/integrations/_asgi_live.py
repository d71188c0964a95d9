"""ASGI glue of long-lived connections (SPEC §5c): end a WebSocket or an event stream.

Framework-free ASGI, for the Starlette middleware and the Channels one. A :class:`Guard`
belongs to one connection: it watches the connection's session for each requirement that
allowed it (the route's rule, a decorator, a dependency) and, when a check no longer
allows, stops the app (the task that runs it is cancelled) and ends the connection
itself: a WebSocket with close code 1008 and a reason naming the outcome, an event stream
with one ``event: kratos-aal`` (the outcome and ``redirect_browser_to``) and the end of
the body. Nothing is sent by two tasks at once: the app has stopped when the guard sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .. import _live, _observe
from .._client import AsyncKratosClient
from .._credentials import Credentials
from .._decision import Decision, Requirement
from .._models import Session
from .._web import WebRequest

__all__ = ["GUARD_KEY", "Guard", "close_reason", "event_stream", "sse_event"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

#: The scope key of a connection's guard, or (for HTTP) of the requirements that allowed
#: the request: the one that did, or a list of them, made a guard only if the response is an
#: event stream.
GUARD_KEY = "kratos_aal.live"
EVENT = "kratos-aal"
#: The close code where a server refuses to send 1008 (Daphne): "policy violation" in the
#: range of codes left to applications.
DAPHNE_CODE = 4008
_EVENT_STREAM = b"text/event-stream"


def close_reason(decision: Decision) -> str:
    """Return a WebSocket close reason naming *decision*'s outcome (well under 123 bytes)."""
    return f"kratos-aal: {decision.outcome.value}"


def sse_event(decision: Decision, redirect_browser_to: str | None) -> bytes:
    """Return the one event that ends a stream: ``event: kratos-aal`` and its JSON data."""
    data: dict[str, Any] = {
        "outcome": decision.outcome.value,
        "redirect_browser_to": redirect_browser_to,
    }
    if decision.retry_after is not None:
        data["retry_after"] = decision.retry_after
    return f"event: {EVENT}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def event_stream(message: Message) -> bool:
    """Return whether an ``http.response.start`` *message* starts an event stream."""
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type" and value.lower().find(_EVENT_STREAM) >= 0:
            return True
    return False


class Guard:
    """Watch one connection and end it when its session no longer allows it.

    Args:
        client: The client whose cache (and shared tier) the checks go through.
        scope: The connection's scope.
        send: The server's ``send``.
        task: The task that runs the app (cancelled to stop it).
        credentials: The connection's credentials.
        framework: The name audits record.
        build: Makes the audit's request from *scope*.
        session_of: Returns the session attached to *scope* (after an allow).
    """

    __slots__ = (
        "build",
        "cancelled",
        "client",
        "connections",
        "credentials",
        "done",
        "framework",
        "return_to",
        "running",
        "scope",
        "send",
        "session_of",
        "started",
        "task",
        "verdict",
    )

    def __init__(
        self,
        client: AsyncKratosClient,
        scope: Scope,
        send: Send,
        task: asyncio.Task[Any] | None,
        credentials: Credentials,
        framework: str,
        build: Callable[[Scope], WebRequest],
        session_of: Callable[[Scope], Session | None],
        return_to: Callable[[], str | None] | None = None,
    ) -> None:
        self.client = client
        self.scope = scope
        self.send = send
        self.task = task
        self.credentials = credentials
        self.framework = framework
        self.build = build
        self.session_of = session_of
        self.return_to = return_to
        self.connections: list[_live.Connection] = []
        self.verdict: tuple[Decision, str | None] | None = None
        self.running = True  # the app runs (a cancel reaches it)
        self.cancelled = False
        self.started = scope["type"] == "http"  # an event stream has started its answer
        self.done = False  # the app ended the connection itself

    def append(self, requirement: Requirement) -> None:
        """Watch the connection for *requirement* too (a rule, decorator or dependency allowed)."""
        if self.verdict is not None or self.done:
            return
        watcher = _live.watcher_for(self.client)
        self.connections.append(
            watcher.watch(
                self.credentials,
                requirement,
                self.session_of(self.scope),
                self._close,
                self.return_to,
            )
        )

    async def relay(self, message: Message) -> None:
        """Send the app's *message*, noting how far the connection got."""
        if self.verdict is not None:
            # The app runs on after its stop (it caught the cancellation): nothing more of it.
            raise OSError("kratos-aal ended this connection")
        kind = message["type"]
        if kind == "websocket.accept":
            self.started = True
        elif kind == "websocket.close" or (
            kind == "http.response.body" and not message.get("more_body", False)
        ):
            self.done = True
        await self.send(message)

    def _close(self, decision: Decision, target: str | None) -> None:
        # On the connection's loop, from the watcher's check.
        if self.verdict is not None or self.done:
            return
        self.verdict = (decision, target)
        _observe.decided(decision, self.framework, self.scope, self.build)
        if self.running and self.task is not None and not self.task.done():
            self.cancelled = True
            self.task.cancel()

    def stopped(self, error: BaseException) -> bool:
        """Return whether *error*, raised by the app, is the guard's doing (then swallow it)."""
        if self.verdict is None:
            return False
        if isinstance(error, asyncio.CancelledError) and self.cancelled:
            self._uncancel()
        return True

    def _uncancel(self) -> None:
        # Python 3.11+ counts cancellations: the one swallowed is taken back, so that the
        # task's own timeouts (asyncio.timeout) work on.
        task: Any = self.task
        if self.cancelled and hasattr(task, "uncancel") and task.cancelling():
            task.uncancel()
        self.cancelled = False

    async def end(self) -> None:
        """Unwatch; end the connection when the guard stopped it (after the app)."""
        self.running = False
        watcher = _live.watcher_for(self.client) if self.connections else None
        for connection in self.connections:
            if watcher is not None and not connection.closed:
                watcher.unwatch(connection)
        self.connections.clear()
        if self.cancelled:  # the cancel came after the app had returned
            self._uncancel()
        if self.verdict is None or self.done:
            return
        self.done = True
        decision, target = self.verdict
        if self.scope["type"] == "websocket":
            message: Message = {
                "type": "websocket.close",
                "code": 1008,
                "reason": close_reason(decision),
            }
        else:
            message = {
                "type": "http.response.body",
                "body": sse_event(decision, target),
                "more_body": False,
            }
        try:
            await self.send(message)
        except Exception:
            if message["type"] != "websocket.close":
                return  # the client went away first: nothing left to end
            # Daphne (autobahn) sends no 1008 of a server's own, nor any reason: the code
            # applications may use, 4008, says the same there.
            with contextlib.suppress(Exception):  # or the client went away first
                await self.send({"type": "websocket.close", "code": DAPHNE_CODE})
