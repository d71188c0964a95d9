"""A TCP proxy that breaks connections to Kratos the ways networks and proxies do."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ._serve import reserve_port, url_of

#: What the proxy can do to one request.
FAULTS = ("reset", "stall", "500", "429", "garbage")
_CANNED = {
    "500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    "429": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "garbage": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n<html>\xff\xfe",
}


@dataclass
class FaultProxy:
    """Forward HTTP/1.1 requests to *upstream*; break a share of those under *path*.

    Each request under *path* meets a fault with probability *rate*, chosen from *kinds*:
    ``reset`` (TCP RST), ``stall`` (no answer for *stall* seconds), ``500``, ``429``
    (``Retry-After: 7``) or ``garbage`` (200 with a body that is not JSON). ``log`` maps each
    request's ``Cookie`` header to what happened to it (``"pass"`` or the fault), and
    ``sent_at`` to the ``time.monotonic()`` at which the proxy wrote its answer
    (absent for resets and stalls): a test tells "Kratos answered late" apart from "the
    machine was slow" by when the answer really left, not by a deadline.
    """

    upstream: str
    rate: float = 0.2
    kinds: tuple[str, ...] = FAULTS
    path: bytes = b"/sessions/whoami"
    stall: float = 2.0
    seed: int = 7
    log: dict[str, str] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        host, _, port = self.upstream.removeprefix("http://").partition(":")
        self._target = (host, int(port or 80))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fault = self._choose(head)
                if fault == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if fault == "stall":
                    await asyncio.sleep(self.stall)
                    return
                if fault in _CANNED:
                    self._sent(head)
                    writer.write(_CANNED[fault])
                    await writer.drain()
                    return
                answer = await self._forward(head)
                self._sent(head)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()

    def _sent(self, head: bytes) -> None:
        key = self._key(head)
        if key is not None:
            self.sent_at[key] = time.monotonic()

    @staticmethod
    def _key(head: bytes) -> str | None:
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"cookie:") or line.lower().startswith(b"x-session-token:"):
                return line.split(b":", 1)[1].strip().decode("latin-1")
        return None

    def _choose(self, head: bytes) -> str:
        request_line = head.split(b"\r\n", 1)[0]
        if self.path not in request_line:
            return "pass"
        fault = "pass" if self._random.random() >= self.rate else self._random.choice(self.kinds)
        key = self._key(head)
        if key is not None:
            self.log[key] = fault
        return fault

    async def _forward(self, head: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*self._target)
        try:
            writer.write(head)
            await writer.drain()
            response_head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in response_head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            return response_head + await reader.readexactly(length)
        finally:
            writer.close()


@contextmanager
def fault_proxy(proxy: FaultProxy) -> Iterator[str]:
    """Run *proxy* on a loopback port in a thread; yield its URL."""
    sock = reserve_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: list[asyncio.AbstractServer] = []

    async def start() -> None:
        server.append(await asyncio.start_server(proxy._client, sock=sock))
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    started.wait(10)
    try:
        yield url_of(sock)
    finally:

        async def stop() -> None:
            server[0].close()
            pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.sleep(0.05)  # let the closed transports go
            await server[0].wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
