"""Serve an ASGI app (FakeKratos, an example app) with uvicorn on a real loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


def reserve_port(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """Bind a listening socket now, so a URL with its port can be known before serving."""
    # IPPROTO_TCP named explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # whose proto says TCP, and with Nagle on, every keep-alive answer waits ~40 ms for
    # the peer's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()  # a taken port must not leave an open socket behind
        raise
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port free right now on *host*, for a server another process will bind."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def url_of(sock: socket.socket) -> str:
    """Return ``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@contextmanager
def serve(
    app: Any, *, sock: socket.socket | None = None, log_level: str = "warning", **options: Any
) -> Iterator[str]:
    """Run *app* with uvicorn in a background thread; yield its base URL; stop it after.

    *options* go to ``uvicorn.Config`` (e.g. ``proxy_headers=True``). An app that sets
    ``canonical_header_names`` (FakeKratos and its admin app) runs on h11, which sends
    header names as written; otherwise uvicorn picks as it does for your app.
    """
    import uvicorn

    sock = sock or reserve_port()

    async def asgi3(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    # ASGI 3 said outright, through a plain coroutine function: uvicorn would otherwise
    # probe the app (calling it with no arguments, to spot a factory), which goes wrong
    # when a wrapper (a profiler, a mutation tool) hides the signature of its __call__.
    options.setdefault("interface", "asgi3")
    if getattr(app, "canonical_header_names", False):
        options.setdefault("http", "h11")  # httptools lower-cases response header names
    config = uvicorn.Config(asgi3, log_level=log_level, lifespan="auto", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@contextmanager
def serve_wsgi(app: Any, *, sock: socket.socket | None = None) -> Iterator[str]:
    """Run a WSGI *app* (Flask, ...) with the standard library's server in a thread."""
    sock = sock or reserve_port()
    server = _ThreadingWSGIServer(sock.getsockname()[:2], _QuietHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    host, port = sock.getsockname()[:2]
    server.server_address, server.server_name, server.server_port = (host, port), host, port
    server.setup_environ()
    server.set_app(app)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield url_of(sock)
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
