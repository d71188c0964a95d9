"""App instances for the real-Redis tests: each a middleware with its own client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from kratos_aal import AsyncKratosClient, KratosClient, KratosConfig
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware
from kratos_aal.testing import FakeKratos

from .conftest import SECRET

RULES = {"/private*": "aal1"}


def shared_config(fake: FakeKratos, cache_url: str, **overrides: Any) -> KratosConfig:
    values: dict[str, Any] = {
        "cache_url": cache_url,
        "cache_key_secret": SECRET,
        # Long enough that only a logout message can end a local copy within a test.
        "local_cache_ttl": 60,
        "cache_ttl": 60,
        **overrides,
    }
    config: KratosConfig = fake.config(**values)
    return config


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _wsgi_ok(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class Instance:
    """One app instance: the Starlette middleware (async) or the WSGI one (sync)."""

    def __init__(self, fake: FakeKratos, config: KratosConfig, mode: str) -> None:
        self.mode = mode
        self.client: KratosClient | AsyncKratosClient
        if mode == "async":
            self.client = AsyncKratosClient(
                config, http_client=httpx.AsyncClient(transport=fake.transport())
            )
            app: Any = KratosAALMiddleware(_ok, client=self.client, rules=RULES)
            self._async_http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://app.test"
            )
        else:
            self.client = KratosClient(config, http_client=httpx.Client(transport=fake.transport()))
            wsgi = KratosAALWSGIMiddleware(_wsgi_ok, client=self.client, rules=RULES)
            self._sync_http = httpx.Client(
                transport=httpx.WSGITransport(app=wsgi), base_url="http://app.test"
            )

    async def get(self, cookie_header: str, path: str = "/private") -> int:
        """Return the status of a browser's GET of *path* with *cookie_header*."""
        headers = {"Cookie": cookie_header, "Accept": "text/html"}
        if self.mode == "async":
            return (await self._async_http.get(path, headers=headers)).status_code
        response = await asyncio.to_thread(self._sync_http.get, path, headers=headers)
        return response.status_code

    async def close(self) -> None:
        if isinstance(self.client, AsyncKratosClient):
            await self.client.aclose()
            await self.client._injected.aclose()  # type: ignore[union-attr]
            await self._async_http.aclose()
        else:
            self.client.close()
            self.client._http.close()
            self._sync_http.close()


async def wait_until(condition: Callable[[], Any], limit: float = 5.0) -> float:
    """Poll *condition* (maybe async) until true; return the seconds it took."""
    start = time.monotonic()
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        assert time.monotonic() - start < limit, "the condition never came true"
        await asyncio.sleep(0.002)
