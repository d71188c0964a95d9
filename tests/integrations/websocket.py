"""Open a WebSocket on an ASGI app as a server does: in the calling thread, no TestClient.

Starlette 0.40's TestClient (the lowest version allowed) once hung in its portal's
teardown under a busy CI run (test_cross_origin.py, on Python 3.10); a hang here is a
failure after 30 s instead.
"""

from __future__ import annotations

import asyncio
from typing import Any


def websocket(app: Any, path: str, headers: dict[str, str] | None = None) -> str:
    """Open *path* on *app* with *headers*; return the first text sent, or ``"code reason"``.

    The client sends the handshake, then goes away (``websocket.disconnect``).
    """
    return asyncio.run(asyncio.wait_for(_session(app, path, headers or {}), 30))


async def _session(app: Any, path: str, headers: dict[str, str]) -> str:
    incoming: list[dict[str, Any]] = [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)  # a third receive is an IndexError: nothing more comes

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "ws",
        "query_string": b"",
        "http_version": "1.1",
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
        "subprotocols": [],
        "headers": [
            (b"host", b"testserver"),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ],
    }
    await app(scope, receive, send)
    for message in sent:
        if message["type"] == "websocket.send":
            return str(message["text"])
        if message["type"] == "websocket.close":
            return f"{message.get('code', 1000)} {message.get('reason', '')}"
    raise AssertionError(f"neither text nor a close: {sent}")
