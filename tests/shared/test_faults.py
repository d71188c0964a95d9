"""Redis fails under load: stopped, paused (SIGSTOP) then resumed, or answering garbage.

Two instances check a mix of live and revoked sessions without pause while the fault
comes and goes. Whatever Redis does: no revoked session is ever allowed, no check raises
(a 500), none is UNAVAILABLE (Kratos is fine, so Redis alone must never cause a 503), and
afterwards the shared tier is used again without a restart.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from kratos_aal import AsyncKratosClient, Credentials, KratosClient, Outcome, _store
from kratos_aal.testing import FakeKratos

from .conftest import RedisServer
from .instances import shared_config, wait_until
from .proxy import RedisProxy

Client = KratosClient | AsyncKratosClient
WORKERS = 8
#: Requests a load makes at least, fault or not.
MINIMUM = 200


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three times Redis's own timeout: the fault still outlasts several back-offs.
    monkeypatch.setattr(_store, "BACKOFF", 0.3)


@pytest.fixture
def fake() -> FakeKratos:
    return FakeKratos(whoami_required_aal="aal1")


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[RedisProxy]:
    with RedisProxy(redis_server.port) as made:
        yield made


@pytest.fixture(params=["sync", "async"])
async def clients(
    request: pytest.FixtureRequest, fake: FakeKratos, proxy: RedisProxy
) -> AsyncIterator[list[Client]]:
    # A short local tier, so that the load reads the shared one all the time.
    config = shared_config(fake, proxy.url, local_cache_ttl=0.05)
    made: list[Client] = []
    for _ in range(2):
        if request.param == "sync":
            made.append(KratosClient(config, http_client=httpx.Client(transport=fake.transport())))
        else:
            made.append(
                AsyncKratosClient(config, http_client=httpx.AsyncClient(transport=fake.transport()))
            )
    yield made
    for client in made:
        if isinstance(client, AsyncKratosClient):
            await client.aclose()
            await client._injected.aclose()  # type: ignore[union-attr]
        else:
            client.close()
            client._http.close()


class Load:
    """Workers checking random sessions on random instances until stopped."""

    def __init__(self, clients: list[Client], fake: FakeKratos) -> None:
        self.clients = clients
        self.live = [Credentials(cookie=fake.session("aal1").cookie) for _ in range(20)]
        self.revoked = []
        for _ in range(20):
            session = fake.session("aal1")
            fake.revoke(session)
            self.revoked.append(Credentials(cookie=session.cookie))
        self.results: Counter[tuple[str, str]] = Counter()
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self._random = random.Random(3)

    def _pick(self) -> tuple[str, Credentials, Client]:
        kind = self._random.choice(("live", "revoked"))
        pool = self.live if kind == "live" else self.revoked
        return kind, self._random.choice(pool), self._random.choice(self.clients)

    def _record(self, kind: str, outcome: Outcome) -> None:
        self.results[kind, outcome.value] += 1

    def run_sync(self) -> None:
        while not self.stop.is_set():
            kind, credentials, client = self._pick()
            try:
                decision = client.check(credentials, "aal1")
                assert not isinstance(decision, Awaitable)
                self._record(kind, decision.outcome)
            except BaseException as error:
                self.errors.append(error)

    async def run_async(self) -> None:
        while not self.stop.is_set():
            kind, credentials, client = self._pick()
            try:
                result = client.check(credentials, "aal1")
                assert isinstance(result, Awaitable)
                self._record(kind, (await result).outcome)
            except BaseException as error:
                self.errors.append(error)
            await asyncio.sleep(0)

    async def _enough(self) -> None:
        # However slow the machine, the verdict rests on as many requests.
        await wait_until(lambda: sum(self.results.values()) + len(self.errors) >= MINIMUM, 60)

    async def during(self, fault: Callable[[], Awaitable[None]]) -> None:
        """Run the load, apply *fault* in the middle of it, then stop (after MINIMUM)."""
        if isinstance(self.clients[0], KratosClient):
            threads = [threading.Thread(target=self.run_sync) for _ in range(WORKERS)]
            for thread in threads:
                thread.start()
            try:
                await fault()
                await self._enough()
            finally:
                self.stop.set()
                for thread in threads:
                    thread.join(10)
        else:
            tasks = [asyncio.create_task(self.run_async()) for _ in range(WORKERS)]
            try:
                await fault()
                await self._enough()
            finally:
                self.stop.set()
                await asyncio.gather(*tasks)

    def assert_safe(self) -> None:
        assert self.errors == [], self.errors[:3]
        assert self.results["revoked", "allow"] == 0, self.results
        outcomes = {outcome for _, outcome in self.results}
        assert outcomes <= {"allow", "login"}, self.results  # never "unavailable"
        assert self.results["live", "allow"] > MINIMUM // 4, self.results
        assert self.results["live", "login"] == 0, self.results


async def check(client: Client, credentials: Credentials) -> Outcome:
    result = client.check(credentials, "aal1")
    return (await result if isinstance(result, Awaitable) else result).outcome


async def assert_shared_again(clients: list[Client], fake: FakeKratos) -> None:
    """Wait until a session one instance looked up costs the other no whoami call."""

    async def shared() -> bool:
        credentials = Credentials(cookie=fake.session("aal1").cookie)
        assert await check(clients[0], credentials) is Outcome.ALLOW
        before = fake.calls["/sessions/whoami"]
        assert await check(clients[1], credentials) is Outcome.ALLOW
        return fake.calls["/sessions/whoami"] == before

    await wait_until(shared, limit=10)


async def test_redis_stopped_and_started_again(
    clients: list[Client], fake: FakeKratos, redis_server: RedisServer
) -> None:
    load = Load(clients, fake)

    async def fault() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(redis_server.stop)
        await asyncio.sleep(4 * _store.BACKOFF)
        await asyncio.to_thread(redis_server.start)
        await asyncio.sleep(0.3)

    await load.during(fault)
    load.assert_safe()
    await assert_shared_again(clients, fake)


async def test_redis_paused_and_resumed(
    clients: list[Client], fake: FakeKratos, redis_server: RedisServer
) -> None:
    load = Load(clients, fake)

    async def fault() -> None:
        await asyncio.sleep(0.3)
        redis_server.pause()
        try:
            await asyncio.sleep(4 * _store.BACKOFF)
        finally:
            redis_server.resume()
        await asyncio.sleep(0.3)

    await load.during(fault)
    load.assert_safe()
    await assert_shared_again(clients, fake)


async def test_redis_answering_garbage(
    clients: list[Client], fake: FakeKratos, proxy: RedisProxy
) -> None:
    load = Load(clients, fake)

    async def fault() -> None:
        await asyncio.sleep(0.3)
        proxy.switch(garbage=True)
        await asyncio.sleep(4 * _store.BACKOFF)
        proxy.switch(garbage=False)
        await asyncio.sleep(0.3)

    await load.during(fault)
    load.assert_safe()
    assert proxy.replies > 0  # the garbage was really served
    await assert_shared_again(clients, fake)


async def test_garbage_from_the_start_is_never_an_allow(
    clients: list[Client], fake: FakeKratos, proxy: RedisProxy, monkeypatch: Any
) -> None:
    # No back-off: every request meets the garbage.
    monkeypatch.setattr(_store, "BACKOFF", 0.0)
    proxy.switch(garbage=True)
    load = Load(clients, fake)

    async def fault() -> None:
        await asyncio.sleep(1.0)

    await load.during(fault)
    load.assert_safe()
    assert proxy.replies > 0  # (how many depends on how busy the machine is)
