"""Logout at once across instances (SPEC §5a): a real redis-server carries the tombstone.

After ``invalidate()`` on one instance, no instance allows the credential from a cache
until Kratos has been asked afresh: neither from a whoami that was under way on another
instance (whose logout message may come late), nor from a request in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from kratos_aal import AsyncKratosClient, Credentials, Outcome
from kratos_aal._cache import HOLD_TTL
from kratos_aal._core import session_key
from kratos_aal.testing import FakeKratos

from ..test_bounded_calls import Gate, check, check_held, gated_client
from .conftest import RedisServer
from .instances import shared_config

WHOAMI = "/sessions/whoami"
Make = Callable[..., Any]


@pytest.fixture
def fake() -> FakeKratos:
    return FakeKratos(whoami_required_aal="aal1")


@pytest.fixture(params=["sync", "async"])
async def make(
    request: pytest.FixtureRequest, fake: FakeKratos, redis_server: RedisServer
) -> AsyncIterator[Make]:
    made: list[Any] = []

    def instance(*, deaf: bool = False) -> Any:
        gate = Gate(fake)
        config = shared_config(fake, redis_server.url)
        client = gated_client(fake, request.param, gate, **_fields(config))
        if deaf:  # its logout messages come late (or never): only the tombstone tells
            client._shared.store.listen = None
        client.gate = gate
        made.append(client)
        return client

    yield instance
    for client in made:
        if isinstance(client, AsyncKratosClient):
            await client.aclose()
            assert client._injected is not None
            await client._injected.aclose()
        else:
            client.close()
            client._http.close()


def _fields(config: Any) -> dict[str, Any]:
    keys = ("cache_url", "cache_key_secret", "local_cache_ttl", "cache_ttl")
    return {key: getattr(config, key) for key in keys}


def entries(redis_server: RedisServer) -> list[Any]:
    reader = redis_server.client()
    try:
        return list(reader.keys("kratos-aal:s:*"))
    finally:
        reader.close()


async def test_a_whoami_under_way_on_another_instance_caches_nothing(
    make: Make, fake: FakeKratos, redis_server: RedisServer
) -> None:
    one, two = make(), make(deaf=True)
    session = fake.session("aal1")
    credentials = Credentials(cookie=session.cookie)
    held = await check_held(two, credentials, two.gate)
    one.invalidate(credentials)  # the logout, on the other instance
    fake.revoke(session)
    two.gate.release()
    assert (await held).outcome is Outcome.ALLOW  # the request under way may use it
    assert entries(redis_server) == []  # nothing shared ...
    assert len(two._cache) == 0  # ... nor kept
    assert await check(one, credentials) is Outcome.LOGIN
    assert await check(two, credentials) is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 3


async def test_a_request_in_between_on_another_instance_caches_nothing(
    make: Make, fake: FakeKratos, redis_server: RedisServer
) -> None:
    one, two = make(), make(deaf=True)
    session = fake.session("aal1")
    credentials = Credentials(cookie=session.cookie)
    one.invalidate(credentials)  # logout_url(): the browser is on its way to Kratos
    assert await check(two, credentials) is Outcome.ALLOW  # another tab, first
    assert entries(redis_server) == []  # kept on two for that request's checks, not shared
    fake.revoke(session)  # the browser reaches Kratos's logout
    fake.clock.advance(HOLD_TTL)
    assert await check(one, credentials) is Outcome.LOGIN
    assert await check(two, credentials) is Outcome.LOGIN


async def test_an_entry_beside_a_tombstone_is_never_read(
    make: Make, fake: FakeKratos, redis_server: RedisServer
) -> None:
    # A whoami under way that saw no tombstone yet may still write its entry after the
    # logout deleted it: every reader ignores an entry beside a tombstone.
    one, two = make(), make(deaf=True)
    session = fake.session("aal1")
    credentials = Credentials(cookie=session.cookie)
    assert await check(one, credentials) is Outcome.ALLOW
    (entry,) = entries(redis_server)
    writer = redis_server.client()
    value = writer.get(entry)
    assert isinstance(value, bytes)
    one.invalidate(credentials)
    writer.set(entry, value, px=60_000)  # the late write
    writer.close()
    fake.revoke(session)
    assert await check(two, credentials) is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_flood_of_bogus_cookies_does_not_make_an_instance_deaf_to_a_logout(
    mode: str, fake: FakeKratos, redis_server: RedisServer
) -> None:
    # Every lookup maps its shared name to the local key, so that a logout message drops
    # the local copy. Bogus cookies (no session: nothing to drop) must not push a live
    # session's mapping out while its local copy, read on every request, stays.
    config = shared_config(fake, redis_server.url, cache_maxsize=20)
    make_client = fake.client if mode == "sync" else fake.async_client
    one, two = (make_client(**_fields(config), cache_maxsize=20) for _ in range(2))
    try:
        victim = Credentials(cookie=fake.session("aal1").cookie)
        assert await check(two, victim) is Outcome.ALLOW
        for n in range(60):
            assert await check(two, Credentials(cookie=f"bogus-{n}")) is Outcome.LOGIN
            assert await check(two, victim) is Outcome.ALLOW  # a hit: the copy stays
        calls = fake.calls[WHOAMI]
        sentinel = Credentials(cookie=fake.session("aal1").cookie)
        assert await check(two, sentinel) is Outcome.ALLOW
        one.invalidate(victim)
        one.invalidate(sentinel)  # heard after the victim's: the channel keeps order
        for _ in range(500):
            if two._entries.get(session_key(sentinel)) is None:
                break
            await asyncio.sleep(0.01)
        assert two._entries.get(session_key(victim)) is None
        assert await check(two, victim) is Outcome.ALLOW  # asked afresh, not from the copy
        assert fake.calls[WHOAMI] == calls + 2
    finally:
        for client in (one, two):
            if isinstance(client, AsyncKratosClient):
                await client.aclose()
            else:
                client.close()
