"""Blocking exchanges with Kratos that end at their deadline, whatever Kratos sends.

httpx's timeouts bound each read and each write, not an exchange: a Kratos (or a proxy in
front of it) that drips its answer a byte at a time keeps a blocking exchange reading for
as long as it likes. The request that waits for it gives up after ``timeout`` (and answers
503), but the thread that reads would go on, one per such request and without bound.

So the sockets of our own HTTP client are read and written through a network backend
that caps every operation's timeout at what is left until the exchange's deadline (a
context variable that the exchange sets): past it, the read fails, httpcore closes the
connection, and the thread is free again when the request that started it gives up.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["DEADLINE", "bound_by_deadline"]

#: The monotonic time at which the running exchange gives up; ``None``: no deadline.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "kratos_aal_deadline", default=None
)


def _left(timeout: float | None, too_late: type[httpcore.TimeoutException]) -> float | None:
    """Return *timeout* capped at the time left until the deadline; raise *too_late* past it."""
    deadline = DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise too_late("the exchange with Kratos ran out of time")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A network stream whose every read and write ends by the deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(
            ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
        )
        return _Stream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """Connect as *backend* does, and hand out streams that end by the deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(
            self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def bound_by_deadline(http: httpx.Client) -> httpx.Client:
    """Make every connection *http* opens (directly or through a proxy) end by the deadline.

    Returns *http*. httpx offers no public way to choose httpcore's network backend, so
    this reaches into the connection pools it made; a transport that has no such pool
    (another library's) is left as it is.
    """
    transports = [http._transport, *http._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
    return http
