"""``python -m benchmarks.live``: 10,000 open WebSockets over 100 sessions (SPEC §5c).

In process: the Starlette app and ``KratosAALMiddleware`` run each connection as a server
would (a task per connection, the ASGI messages through queues); FakeKratos answers over
an ``httpx`` transport and counts whoami calls. Reports, as measured:

- whoami calls per ``cache_ttl`` while every connection is open (target: about 100);
- memory per open connection (tracemalloc; all of it, and the watch's own share);
- time from a logout (``invalidate()``) to the last close of that session's connections,
  and from the logout of every session to the last of the 10,000 closes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from kratos_aal import AsyncKratosClient, Credentials
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.testing import FakeKratos


async def idle(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:  # a feed that is quiet: the connection costs only its watch
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


class Socket:
    """One connection as a server runs it: a task, and queues for its messages."""

    def __init__(self, app: Any, cookie: str) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.accepted = asyncio.Event()
        self.closed = asyncio.Event()
        self.code: int | None = None
        scope = {
            "type": "websocket",
            "path": "/live",
            "raw_path": b"/live",
            "root_path": "",
            "scheme": "ws",
            "query_string": b"",
            "headers": [(b"host", b"app.test"), (b"cookie", cookie.encode())],
            "server": ("app.test", 80),
            "subprotocols": [],
        }
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.ensure_future(app(scope, self.inbox.get, self.send))

    async def opened(self) -> None:
        """Wait until the connection is accepted or refused."""
        accepted = asyncio.ensure_future(self.accepted.wait())
        closed = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait((accepted, closed), return_when=asyncio.FIRST_COMPLETED)
        accepted.cancel()
        closed.cancel()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            self.accepted.set()
        elif message["type"] == "websocket.close":
            self.code = message.get("code")
            self.closed.set()


async def run(connections: int, sessions: int, ttl: float, rounds: int) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    # Every session's page lapses at once here (all were cached together), so the
    # handshakes still under way then ask Kratos for all of them at the same moment: the
    # default cap of 64 calls at once would refuse the rest as busy (503), as it should
    # on a server. The cap is raised to the sessions so that what is measured is the watch.
    config = fake.config(cache_ttl=ttl, max_concurrent_checks=max(64, 2 * sessions))
    client = AsyncKratosClient(config, http_client=httpx.AsyncClient(transport=fake.transport()))
    app = Starlette(
        routes=[WebSocketRoute("/live", idle)],
        middleware=[Middleware(KratosAALMiddleware, client=client, rules={"/live": "aal1"})],
    )
    owners = [fake.session("aal1") for _ in range(sessions)]
    for owner in owners:  # signed in a while ago: their pages are cached already
        await client.check(Credentials(cookie=owner.cookie_header.partition("=")[2]), "aal1")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    sockets = [Socket(app, owners[i % sessions].cookie_header) for i in range(connections)]
    await asyncio.gather(*(s.opened() for s in sockets))
    refused = sum(s.closed.is_set() for s in sockets)
    assert not refused, f"{refused} refused at the handshake"
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    watch = sum(
        stat.size_diff
        for stat in after.compare_to(before, "filename")
        if any(part in str(stat.traceback) for part in ("_live.py", "_asgi_live.py"))
    )
    print(f"open: {connections} WebSockets over {sessions} sessions (cache_ttl {ttl:g} s)")
    print(
        f"memory per open connection: {total / connections / 1024:.1f} KiB in all "
        f"(task, queue, scope, Starlette's WebSocket), of which the watch "
        f"{watch / connections:.0f} B"
    )
    start = fake.calls["/sessions/whoami"]
    began = time.monotonic()
    await asyncio.sleep(ttl * rounds)
    spent = time.monotonic() - began
    calls = fake.calls["/sessions/whoami"] - start
    print(
        f"whoami calls per cache_ttl while open: {calls / (spent / ttl):.0f} "
        f"(target about {sessions}; {calls} in {spent:.1f} s)"
    )
    assert not any(s.closed.is_set() for s in sockets)

    one = owners[0]
    fake.revoke(one)
    began = time.monotonic()
    client.invalidate(Credentials(cookie=one.cookie_header.partition("=")[2]))
    mine = sockets[0::sessions]
    await asyncio.gather(*(s.closed.wait() for s in mine))
    print(
        f"logout to the last close of its {len(mine)} connections: "
        f"{(time.monotonic() - began) * 1000:.1f} ms"
    )
    for owner in owners[1:]:
        fake.revoke(owner)
    began = time.monotonic()
    for owner in owners[1:]:
        client.invalidate(Credentials(cookie=owner.cookie_header.partition("=")[2]))
    await asyncio.gather(*(s.closed.wait() for s in sockets))
    print(
        f"logout of every session to the last of {connections} closes: "
        f"{(time.monotonic() - began) * 1000:.1f} ms"
    )
    assert {s.code for s in sockets} == {1008}
    await asyncio.gather(*(s.task for s in sockets))
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.connections, args.sessions, args.ttl, args.rounds))


if __name__ == "__main__":
    main()
