"""A scripted Kratos for the mutation pins: exact answers, counted calls, a frozen clock."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx

from kratos_aal import AsyncKratosClient, KratosClient, KratosConfig

#: A fixed moment (2027-01-15), exact in binary floating point.
T0 = 1_800_000_000.0
PUBLIC = "http://kratos.test:4433"
APP = "http://app.test/billing"


def stamp(seconds: float) -> str:
    """Return *seconds* as RFC 3339 the way Kratos writes it."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def session_json(
    aal: str = "aal1",
    *,
    identity_id: str = "identity-1",
    expires_at: float | None = T0 + 3600,
    completed_at: float = T0 - 10,
) -> dict[str, Any]:
    """Return a whoami body: a password (and TOTP at aal2) completed at *completed_at*."""
    methods = [{"method": "password", "aal": "aal1", "completed_at": stamp(completed_at)}]
    if aal == "aal2":
        methods.append({"method": "totp", "aal": "aal2", "completed_at": stamp(completed_at)})
    body: dict[str, Any] = {
        "id": "session-1",
        "active": True,
        "authenticator_assurance_level": aal,
        "authentication_methods": methods,
        "identity": {"id": identity_id, "state": "active", "traits": {}},
    }
    if expires_at is not None:
        body["expires_at"] = stamp(expires_at)
    return body


def flow_json(*groups: str) -> dict[str, Any]:
    """Return a login flow whose nodes belong to *groups*."""
    return {"id": "flow-1", "ui": {"nodes": [{"group": g, "type": "input"} for g in groups]}}


Handler = Callable[[httpx.Request], httpx.Response]


class Scripted:
    """Kratos as a table of answers by path; every call is counted, the clock is frozen."""

    def __init__(self, **config: Any) -> None:
        self.now = T0
        self.calls: Counter[str] = Counter()
        self.routes: dict[str, Handler] = {}
        self.config = KratosConfig(public_url=PUBLIC, **config)

    def answer(self, path: str, status: int = 200, body: Any = None, **headers: str) -> None:
        """Answer every request to *path* with *status* and the JSON *body*."""
        self.routes[path] = lambda request: httpx.Response(status, json=body, headers=headers)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls[path] += 1
        for prefix, handler in self.routes.items():
            if path.startswith(prefix):
                return handler(request)
        return httpx.Response(404, json={"error": {"id": "not_found"}})

    def client(self, mode: str) -> Client:
        """Return a sync or an async client that talks to this script."""
        transport = httpx.MockTransport(self._handle)
        if mode == "sync":
            sync = KratosClient(
                self.config, http_client=httpx.Client(transport=transport), timer=self.timer
            )
            return Client(sync)
        asynchronous = AsyncKratosClient(
            self.config, http_client=httpx.AsyncClient(transport=transport), timer=self.timer
        )
        return Client(asynchronous)

    def timer(self) -> float:
        return self.now


class Client:
    """One awaitable interface over both clients."""

    def __init__(self, client: KratosClient | AsyncKratosClient) -> None:
        self.client = client

    async def call(self, name: str, *args: Any) -> Any:
        result = getattr(self.client, name)(*args)
        return await result if inspect.isawaitable(result) else result

    async def check(self, *args: Any) -> Any:
        return await self.call("check", *args)
