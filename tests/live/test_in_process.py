"""Long-lived connections under uvicorn in this process: Starlette, FastAPI and Channels.

The subprocess tests (test_servers.py) prove the behaviour across instances; these run
the same adapters where the test can reach the client, to pin each close's details.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path
from fastapi import Depends, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect

from kratos_aal import Credentials
from kratos_aal.integrations.channels import KratosAuthMiddleware, require_aal, require_aal2
from kratos_aal.integrations.fastapi import RequireAAL
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.integrations.starlette import require_aal as endpoint_aal
from kratos_aal.testing import FakeKratos, Fault
from kratos_aal.testing._serve import serve

from . import apps
from .conftest import Live, wait_for

pytestmark = pytest.mark.timeout(60)


def credentials_of(session: Any) -> Credentials:
    return Credentials(cookie=session.cookie_header.partition("=")[2])


def starlette_app(fake: FakeKratos, client: Any) -> Starlette:
    @endpoint_aal("aal1")
    async def decorated(websocket: Any) -> None:
        await apps.counter(websocket)

    return Starlette(
        routes=[
            WebSocketRoute("/live/ws", apps.counter),
            WebSocketRoute("/open/ws", decorated),
            Route("/live/sse", apps.sse),
        ],
        middleware=[Middleware(KratosAALMiddleware, client=client, rules={"/live/*": "aal1"})],
    )


async def _logout_closes(fake: FakeKratos, client: Any, url: str) -> Live:
    session = fake.session("aal1")
    live = Live().open(url, session.cookie_header)
    assert await wait_for(live.first, 30)
    fake.revoke(session)
    client.invalidate(credentials_of(session))
    assert await wait_for(live.ended, 30)
    return live


@pytest.mark.parametrize("where", ["/live/ws", "/open/ws", "/live/sse"])
def test_starlette_closes_on_a_logout(where: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    client = fake.async_client()
    with serve(starlette_app(fake, client)) as base:
        live = asyncio.run(_logout_closes(fake, client, base + where))
    assert live.outcome == "login"
    if "sse" in where:
        assert live.event is not None and live.event["redirect_browser_to"].endswith(
            "return_to=" + (base + where).replace(":", "%3A").replace("/", "%2F")
        )
    else:
        assert live.code == 1008


def test_an_event_stream_ends_with_retry_after_when_kratos_stays_down() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    client = fake.async_client(cache_ttl=0.5)

    async def run(base: str) -> Live:
        session = fake.session("aal1", expires_in=2)
        live = Live().open(base + "/live/sse", session.cookie_header)
        assert await wait_for(live.first, 30)
        fake.fail(Fault("status", status=503, retry_after=7, times=None))
        assert await wait_for(live.ended, 30)
        return live

    with serve(starlette_app(fake, client)) as base:
        live = asyncio.run(run(base))
    assert live.event == {"outcome": "unavailable", "redirect_browser_to": None, "retry_after": 5}


async def guarded_counter(websocket: WebSocket) -> None:
    # Typed WebSocket: FastAPI hands the connection in. Untyped (Any), it would take
    # ``websocket`` for a query parameter and refuse every handshake, whatever the session.
    with contextlib.suppress(WebSocketDisconnect, OSError):  # the control's client left
        await apps.counter(websocket)


def test_fastapi_refuses_a_websocket_handshake_the_dependency_denies() -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    app = FastAPI(middleware=[Middleware(KratosAALMiddleware, client=fake.async_client())])
    app.add_api_websocket_route("/ws", guarded_counter, dependencies=[Depends(RequireAAL("aal2"))])

    async def run(base: str) -> tuple[Live, Live, Live]:
        # The control: a session the dependency allows is let in, and messages flow.
        allowed = Live().open(base + "/ws", fake.session("aal2").cookie_header)
        assert await wait_for(allowed.first, 30), (allowed.status, allowed.code)
        assert not allowed.ended.is_set(), (allowed.status, allowed.code, allowed.reason)
        await allowed.close()
        low = Live()
        await low.ws(base + "/ws", fake.session("aal1").cookie_header)
        cross = Live()
        await cross.ws(
            base + "/ws", fake.session("aal2").cookie_header, origin="https://evil.example"
        )
        return allowed, low, cross

    with serve(app) as base:
        allowed, low, cross = asyncio.run(run(base))
    assert allowed.messages >= 1
    assert low.messages == 0 and (low.status == 403 or low.code == 1008)
    assert cross.messages == 0 and (cross.status == 403 or cross.code == 1008)


class Counter(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()
        self.ticker = asyncio.ensure_future(self.tick())

    async def tick(self) -> None:
        number = 0
        while True:
            try:
                await self.send(text_data=str(number))
            except (OSError, RuntimeError):  # ended (by kratos-aal, or the client left)
                return
            number += 1
            await asyncio.sleep(0.1)

    async def disconnect(self, code: int) -> None:
        self.ticker.cancel()


class Who(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()
        session = self.scope.get("kratos_session")
        user = self.scope.get("user")
        await self.send(text_data=f"{session.id if session else None} {type(user).__name__}")
        await self.close()


async def plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    await Counter.as_asgi()(scope, receive, send)


def channels_app() -> Any:
    return KratosAuthMiddleware(
        URLRouter(
            [
                path("live/ws", require_aal("aal1")(Counter).as_asgi()),
                path("live/fn", require_aal("aal1")(plain_asgi)),
                path("live/aal2", require_aal2()(Counter).as_asgi()),
                path("live/who", Who.as_asgi()),
            ]
        )
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["/live/ws", "/live/fn"])
def test_channels_closes_on_a_logout(fake_kratos: FakeKratos, where: str) -> None:
    from kratos_aal.integrations.django import conf

    client = conf.clients()[1]
    with serve(channels_app()) as base:
        live = asyncio.run(_logout_closes(fake_kratos, client, base + where))
    assert (live.code, live.outcome) == (1008, "login")


@pytest.mark.django_db(transaction=True)
def test_channels_scope_refusals_and_outage(fake_kratos: FakeKratos) -> None:
    async def run(base: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        session = fake_kratos.session("aal1")
        async with ws_connect(
            base.replace("http", "ws") + "/live/who",
            additional_headers={"Cookie": session.cookie_header},
        ) as who:
            found["who"] = await who.recv()
        found["session"] = session.id
        for name, cookie, origin in [
            ("nobody", "a=b", None),
            ("aal1", session.cookie_header, None),
            ("cross", session.cookie_header, "https://evil.example"),
        ]:
            live = Live()
            await live.ws(base + ("/live/aal2" if name == "aal1" else "/live/ws"), cookie, origin)
            found[name] = live
        fake_kratos.fail(Fault("status", status=503, times=None))
        down = Live()
        await down.ws(base + "/live/ws", fake_kratos.session("aal1").cookie_header)
        found["down"] = down
        return found

    with serve(channels_app()) as base:
        found = asyncio.run(run(base))
    # CREATE_USERS: the identity's linked user is made on first sight.
    assert found["who"] == f"{found['session']} User"
    for name in ("nobody", "aal1", "cross", "down"):
        live = found[name]
        assert live.messages == 0, name
        assert live.status == 403 or live.code == 1008, (name, live.status, live.code)


async def _who(base: str, cookie: str, origin: str | None = None) -> str:
    headers = {"Cookie": cookie}
    if origin is not None:
        headers["Origin"] = origin
    async with ws_connect(
        base.replace("http", "ws") + "/live/who", additional_headers=headers
    ) as who:
        return str(await who.recv())


@pytest.mark.django_db(transaction=True)
def test_channels_kratos_auth_middleware_alone_checks_no_origin(fake_kratos: FakeKratos) -> None:
    # As docs/long-lived.md says: a consumer that reads only scope["user"] under
    # KratosAuthMiddleware alone is let in from another site with the cookie.
    session = fake_kratos.session("aal1")
    with serve(channels_app()) as base:
        who = asyncio.run(_who(base, session.cookie_header, origin="https://evil.example"))
    assert who == f"{session.id} User"


@pytest.mark.django_db(transaction=True)
def test_channels_allowed_hosts_origin_validator_refuses_a_cross_site_handshake(
    fake_kratos: FakeKratos, settings: Any
) -> None:
    # The combination docs/long-lived.md recommends: Channels' AllowedHostsOriginValidator
    # around KratosAuthMiddleware.
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    app = AllowedHostsOriginValidator(channels_app())
    session = fake_kratos.session("aal1")

    async def run(base: str) -> tuple[str, Live, int]:
        same = await _who(base, session.cookie_header, origin=base)  # the control
        calls = fake_kratos.calls["/sessions/whoami"]
        cross = Live()
        await cross.ws(base + "/live/who", session.cookie_header, origin="https://evil.example")
        return same, cross, fake_kratos.calls["/sessions/whoami"] - calls

    with serve(app) as base:
        same, cross, asked = asyncio.run(run(base))
    assert same == f"{session.id} User"
    assert cross.messages == 0
    assert cross.status == 403, (cross.status, cross.code, cross.reason)  # refused, not accepted
    assert asked == 0  # refused before the session was even looked up


def _deactivate(identity_id: str) -> None:
    from django.db import connections

    from kratos_aal.integrations.django.models import KratosIdentityLink

    try:
        link = KratosIdentityLink.objects.select_related("user").get(identity_id=identity_id)
        link.user.is_active = False
        link.user.save(update_fields=["is_active"])
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_channels_a_user_deactivated_while_connected_is_refused_at_the_next_handshake_only(
    fake_kratos: FakeKratos,
) -> None:
    # Documented (docs/long-lived.md): is_active is read at the handshake; the watch
    # re-checks the Kratos session only, so an open require_aal socket stays open.
    from kratos_aal._live import watcher_for
    from kratos_aal.integrations.django import conf

    client = conf.clients()[1]
    session = fake_kratos.session("aal1")

    async def run(base: str) -> tuple[str, str, Live]:
        before = await _who(base, session.cookie_header)
        live = Live().open(base + "/live/ws", session.cookie_header)
        assert await wait_for(live.first, 30)
        await asyncio.to_thread(_deactivate, session.identity.id)
        # A check of the open socket, through Kratos (nothing cached), allows it again.
        calls = fake_kratos.calls["/sessions/whoami"]
        client.clear_cache()
        watcher_for(client).poke(None)
        for _ in range(600):
            if fake_kratos.calls["/sessions/whoami"] > calls:
                break
            await asyncio.sleep(0.05)
        assert fake_kratos.calls["/sessions/whoami"] > calls, "the socket was not checked"
        seen = live.messages
        for _ in range(600):
            if live.messages >= seen + 3 or live.ended.is_set():
                break
            await asyncio.sleep(0.05)
        assert not live.ended.is_set(), (live.code, live.reason)
        assert live.messages >= seen + 3
        after = await _who(base, session.cookie_header)
        await live.close()
        return before, after, live

    with serve(channels_app()) as base:
        before, after, _live = asyncio.run(run(base))
    assert before == f"{session.id} User"
    assert after == f"{session.id} AnonymousUser"  # the next handshake sees it
