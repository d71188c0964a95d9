"""Long-lived connections under real servers keep their route's guarantee (SPEC §5c).

For each of WebSocket (Starlette, FastAPI, Channels under Daphne) and event stream
(Starlette, FastAPI), under uvicorn: a logout on another instance closes the connection
through the shared cache's message (cache_url, two processes and a real redis-server),
and by the next check without it; a lapsed ``max_age`` closes it; Kratos going down
closes nothing before the session's last known state lapses. Deadlines are generous
bounds that tell the paths apart (a check that came with the logout message, not with a
TTL ten times longer), never a measure of speed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from kratos_aal.testing import FakeKratos, Fault

from .conftest import SHARED_SECRET, Instance, Live, start, wait_for

pytestmark = pytest.mark.timeout(180)

KINDS = [
    pytest.param("starlette", "ws", id="starlette-ws"),
    pytest.param("fastapi", "ws", id="fastapi-ws"),
    pytest.param("channels", "ws", id="channels-ws"),
    pytest.param("channels-uvicorn", "ws", id="channels-uvicorn-ws"),
    pytest.param("starlette", "sse", id="starlette-sse"),
    pytest.param("fastapi", "sse", id="fastapi-sse"),
]
#: A TTL no test waits for: a close before it came from something else.
LONG_TTL = "120"


async def _open(instance: Instance, kind: str, path: str, cookie: str) -> Live:
    live = Live().open(f"{instance.url}/live/{kind}{path}", cookie)
    assert await wait_for(live.first, 60), "no message"
    assert not live.ended.is_set(), (live.code, live.reason, live.status)
    return live


@pytest.mark.parametrize(("framework", "kind"), KINDS)
async def test_a_logout_on_another_instance_closes_it_through_the_shared_cache(
    kratos: tuple[FakeKratos, str],
    redis_server: Any,
    instances: list[Instance],
    framework: str,
    kind: str,
) -> None:
    fake, url = kratos
    env = {
        "KRATOS_AAL_CACHE_URL": redis_server.url,
        "KRATOS_AAL_CACHE_KEY_SECRET": SHARED_SECRET,
        "KRATOS_AAL_CACHE_TTL": LONG_TTL,
        "KRATOS_AAL_LOCAL_CACHE_TTL": LONG_TTL,
    }
    here = start(framework, url, **env)
    instances.append(here)
    there = start("starlette", url, **env)  # another instance, where the user logs out
    instances.append(there)
    session = fake.session("aal1")
    live = await _open(here, kind, "", session.cookie_header)
    fake.revoke(session)  # Kratos ends it...
    # ...and the app's logout view, on the other instance, invalidates it.
    started = time.monotonic()
    async with httpx.AsyncClient() as http:
        reply = await http.get(there.url + "/logout", headers={"Cookie": session.cookie_header})
    assert reply.status_code == 200
    assert await wait_for(live.ended, 30), "still open after the logout message"
    took = time.monotonic() - started
    assert live.closed_for("login"), (live.code, live.reason, live.event)
    if kind == "sse":
        assert live.event is not None and "/self-service/login/browser" in str(
            live.event["redirect_browser_to"]
        )
    print(f"{framework}-{kind}: closed {took:.3f} s after the logout on another instance")


@pytest.mark.parametrize(("framework", "kind"), KINDS)
async def test_a_logout_elsewhere_closes_it_by_the_next_check_without_a_shared_cache(
    kratos: tuple[FakeKratos, str], instances: list[Instance], framework: str, kind: str
) -> None:
    fake, url = kratos
    here = start(framework, url, KRATOS_AAL_CACHE_TTL="2")
    instances.append(here)
    session = fake.session("aal1")
    live = await _open(here, kind, "", session.cookie_header)
    fake.revoke(session)  # a logout this instance hears nothing of
    assert await wait_for(live.ended, 60), "still open after cache_ttl"
    assert live.closed_for("login"), (live.code, live.reason, live.event)


@pytest.mark.parametrize(("framework", "kind"), KINDS)
async def test_a_lapsed_max_age_closes_it(
    kratos: tuple[FakeKratos, str], instances: list[Instance], framework: str, kind: str
) -> None:
    fake, url = kratos
    here = start(framework, url, KRATOS_AAL_CACHE_TTL=LONG_TTL, LIVE_MAX_AGE="4")
    instances.append(here)
    session = fake.session("aal1")
    signed_in = time.time()
    live = await _open(here, kind, "-fresh", session.cookie_header)
    assert await wait_for(live.ended, 60), "still open after max_age"
    assert live.closed_for("reauthenticate"), (live.code, live.reason, live.event)
    assert live.ended_at is not None and live.ended_at >= signed_in + 4 - 0.5
    if kind == "sse":
        assert live.event is not None and "refresh=true" in str(live.event["redirect_browser_to"])


@pytest.mark.parametrize(("framework", "kind"), KINDS)
async def test_kratos_down_closes_nothing_before_the_session_lapses(
    kratos: tuple[FakeKratos, str], instances: list[Instance], framework: str, kind: str
) -> None:
    fake, url = kratos
    here = start(framework, url, KRATOS_AAL_CACHE_TTL="1")
    instances.append(here)
    session = fake.session("aal1", expires_in=8)
    expires = time.time() + 8
    live = await _open(here, kind, "", session.cookie_header)
    fake.fail(Fault("status", status=503, times=None))
    down = fake.calls["/sessions/whoami"]
    # Checks keep failing (a few cache_ttl go by): the connection stays open...
    deadline = time.monotonic() + 30
    while fake.calls["/sessions/whoami"] < down + 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if time.time() < expires:
        assert fake.calls["/sessions/whoami"] >= down + 2
        assert not live.ended.is_set(), (live.code, live.reason, live.event)
    # ...until expires_at, the last thing Kratos said: then it closes, as a 503 would.
    assert await wait_for(live.ended, 60), "still open after expires_at"
    assert live.ended_at is not None and live.ended_at >= expires - 0.05
    assert live.closed_for("unavailable"), (live.code, live.reason, live.event)
    fake.heal()


@pytest.mark.parametrize("framework", ["starlette", "fastapi", "channels", "channels-uvicorn"])
async def test_a_cross_site_websocket_handshake_is_still_refused(
    kratos: tuple[FakeKratos, str], instances: list[Instance], framework: str
) -> None:
    fake, url = kratos
    here = start(framework, url)
    instances.append(here)
    session = fake.session("aal1")
    live = Live()
    await live.ws(f"{here.url}/live/ws", session.cookie_header, origin="https://evil.example")
    assert live.messages == 0
    # Refused at the handshake: a 403 (close before accept), never a message.
    assert live.status == 403 or live.code == 1008, (live.status, live.code, live.reason)
