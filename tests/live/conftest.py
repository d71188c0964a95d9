"""Real servers for the long-lived connection tests: FakeKratos on a loopback port, the apps
under uvicorn (Starlette, FastAPI) or Daphne (Channels) in processes of their own, and
clients that read a WebSocket or an event stream until it ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from kratos_aal.testing import FakeKratos
from kratos_aal.testing._serve import reserve_port, serve
from tests.shared.conftest import SECRET, redis_server  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kratos() -> Iterator[tuple[FakeKratos, str]]:
    sock = reserve_port()
    host, port = sock.getsockname()
    fake = FakeKratos(public_url=f"http://{host}:{port}", whoami_required_aal="aal1")
    with serve(fake, sock=sock) as url:
        yield fake, url


@dataclass
class Instance:
    kind: str
    process: subprocess.Popen[bytes]
    port: int
    folder: str  # the Channels app's database; removed when the instance stops
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"


def _command(kind: str, fd: int) -> list[str]:
    if kind == "channels-uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.live.channels_asgi:application",
            "--fd",
            str(fd),
            "--log-level",
            "warning",
        ]
    if kind == "channels":
        return [
            sys.executable,
            "-m",
            "daphne",
            "--fd",
            str(fd),
            "-v",
            "0",
            "tests.live.channels_asgi:application",
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"tests.live.apps:{kind}_app",
        "--fd",
        str(fd),
        "--log-level",
        "warning",
    ]


def start(kind: str, kratos_url: str, **env: str) -> Instance:
    """Start *kind*'s app in a process of its own; return once it answers."""
    sock = reserve_port()
    folder = tempfile.mkdtemp(prefix="kratos-aal-live-")
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KRATOS_PUBLIC_URL": kratos_url,
        "DJANGO_SETTINGS_MODULE": "tests.live.channels_settings",
        "KRATOS_AAL_LIVE_DB": os.path.join(folder, "db.sqlite3"),
        **env,
    }
    process = subprocess.Popen(
        _command(kind, sock.fileno()), cwd=ROOT, env=environ, pass_fds=[sock.fileno()]
    )
    instance = Instance(kind, process, sock.getsockname()[1], folder)
    sock.close()
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"{kind} exited")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(instance.url + "/public", timeout=2).status_code == 200:
                return instance
        if time.monotonic() > deadline:
            stop(instance)
            raise RuntimeError(f"{kind} did not start")
        time.sleep(0.1)


def stop(instance: Instance) -> None:
    instance.process.terminate()
    try:
        instance.process.wait(10)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        instance.process.wait(10)
    shutil.rmtree(instance.folder, ignore_errors=True)


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    """The instances a test started (stopped after it)."""
    started: list[Instance] = []
    yield started
    for instance in started:
        stop(instance)


class Live:
    """One open WebSocket or event stream, read in a task until it ends."""

    def __init__(self) -> None:
        self.messages = 0
        self.first = asyncio.Event()
        self.ended = asyncio.Event()
        self.ended_at: float | None = None  # wall time
        self.code: int | None = None
        self.reason: str | None = None
        self.event: dict[str, Any] | None = None  # SSE: the kratos-aal event's data
        self.status: int | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def outcome(self) -> str | None:
        if self.event is not None:
            return str(self.event["outcome"])
        if self.reason and self.reason.startswith("kratos-aal: "):
            return self.reason.removeprefix("kratos-aal: ")
        return None

    def closed_for(self, outcome: str) -> bool:
        """Return whether the connection was ended for *outcome*.

        Daphne sends neither 1008 nor a reason of a server's own: there the close is
        code 4008, reason-less.
        """
        if self.code == 4008 and not self.reason:
            return True
        return self.outcome == outcome and (self.event is not None or self.code == 1008)

    def _end(self) -> None:
        self.ended_at = time.time()
        self.ended.set()
        self.first.set()

    async def ws(self, url: str, cookie: str, origin: str | None = None) -> None:
        headers = {"Cookie": cookie}
        if origin is not None:
            headers["Origin"] = origin
        try:
            async with connect(
                url.replace("http://", "ws://"), additional_headers=headers, open_timeout=30
            ) as connection:
                async for _ in connection:
                    self.messages += 1
                    self.first.set()
        except websockets.ConnectionClosed as closed:
            if closed.rcvd is not None:
                self.code, self.reason = closed.rcvd.code, closed.rcvd.reason
        except websockets.InvalidStatus as refused:
            self.status = refused.response.status_code
        finally:
            if self.code is None and self.status is None:
                self.code = -1  # ended without a close frame
            self._end()

    async def sse(self, url: str, cookie: str) -> None:
        headers = {"Cookie": cookie, "Accept": "text/event-stream", "Referer": url}
        try:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(60, read=120)) as http,
                http.stream("GET", url, headers=headers) as response,
            ):
                self.status = response.status_code
                kind = None
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        if kind == "kratos-aal":
                            self.event = json.loads(line.removeprefix("data: "))
                        else:
                            self.messages += 1
                            self.first.set()
                        kind = None
        finally:
            self._end()

    def open(self, url: str, cookie: str) -> Live:
        coroutine = self.sse(url, cookie) if "/sse" in url else self.ws(url, cookie)
        self.task = asyncio.ensure_future(coroutine)
        return self

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Return whether *event* is set within *seconds* (a generous bound, never a speed test)."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


SHARED_SECRET = SECRET
