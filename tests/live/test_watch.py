"""The watcher of long-lived connections, in process: what a check costs and what it closes.

A fake clock drives the client and FakeKratos, and ``poke`` runs the checks that the
timers would run later: nothing here sleeps for a TTL.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

import httpx
import pytest

from kratos_aal import AsyncKratosClient, Credentials, KratosClient, Requirement
from kratos_aal._core import session_key
from kratos_aal._decision import Decision, Outcome
from kratos_aal._live import MIN_PERIOD, Watcher, lapse_of, watcher_for
from kratos_aal.testing import FakeKratos, Fault
from kratos_aal.testing._clock import FakeClock

TTL = 30.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeKratos:
    return FakeKratos(whoami_required_aal="aal1", clock=clock)


@pytest.fixture
def client(fake: FakeKratos, clock: FakeClock) -> AsyncKratosClient:
    return AsyncKratosClient(
        fake.config(cache_ttl=TTL),
        http_client=httpx.AsyncClient(transport=fake.transport()),
        timer=clock,
    )


def credentials_of(session: Any) -> Credentials:
    return Credentials(cookie=session.cookie_header.partition("=")[2])


class Closes:
    """Records what each connection was closed for."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, Outcome, str | None]] = []

    def on(self, number: int) -> Any:
        def close(decision: Decision, target: str | None) -> None:
            self.seen.append((number, decision.outcome, target))

        return close


async def settle(watcher: Watcher) -> None:
    """Let every check that a poke started run to its end."""
    for _ in range(200):
        await asyncio.sleep(0)
        groups = list(watcher._groups.values())
        if all(g.task is None or g.task.done() for g in groups):
            await asyncio.sleep(0)
            if all(g.task is None or g.task.done() for g in groups):
                return
    raise AssertionError("checks still running")


async def watch_many(
    client: AsyncKratosClient, fake: FakeKratos, sessions: int, per_session: int, closes: Closes
) -> tuple[Watcher, list[Any], list[Any]]:
    watcher = watcher_for(client)
    owners = [fake.session("aal1") for _ in range(sessions)]
    connections = []
    for index, owner in enumerate(owners):
        credentials = credentials_of(owner)
        decision = await client.check(credentials, "aal1")
        assert decision.allowed
        for number in range(per_session):
            connections.append(
                watcher.watch(
                    credentials,
                    Requirement("aal1"),
                    decision.session,
                    closes.on(index * per_session + number),
                )
            )
    return watcher, owners, connections


async def test_many_connections_cost_one_whoami_per_session_per_ttl(
    client: AsyncKratosClient, fake: FakeKratos, clock: FakeClock
) -> None:
    closes = Closes()
    watcher, _owners, connections = await watch_many(client, fake, 10, 100, closes)
    assert watcher.counts() == (10, 1000)  # one timer per session, not per connection
    assert all(g.handle is not None for g in watcher._groups.values())
    first = fake.calls["/sessions/whoami"]
    assert first == 10
    for round_ in range(1, 4):
        clock.advance(TTL + 1)
        watcher.poke(None)
        await settle(watcher)
        assert fake.calls["/sessions/whoami"] == first + 10 * round_
    # Within a TTL, checks are cache hits: no call at all.
    watcher.poke(None)
    await settle(watcher)
    assert fake.calls["/sessions/whoami"] == first + 30
    assert closes.seen == []
    for connection in connections:
        watcher.unwatch(connection)
    assert watcher.counts() == (0, 0)


async def test_a_revoked_session_closes_each_of_its_connections_once(
    client: AsyncKratosClient, fake: FakeKratos, clock: FakeClock
) -> None:
    closes = Closes()
    watcher, owners, _ = await watch_many(client, fake, 2, 3, closes)
    fake.revoke(owners[0])
    client.invalidate(credentials_of(owners[0]))  # the logout view: a check at once
    await asyncio.sleep(0)
    await settle(watcher)
    assert sorted(n for n, _, _ in closes.seen) == [0, 1, 2]
    assert {outcome for _, outcome, _ in closes.seen} == {Outcome.LOGIN}
    assert watcher.counts() == (1, 3)  # the other session's stay watched
    watcher.poke(None)
    await settle(watcher)
    assert len(closes.seen) == 3


async def test_a_logout_through_the_blocking_client_reaches_the_connections(
    fake: FakeKratos, clock: FakeClock
) -> None:
    # Django: WSGI views use the blocking client, Channels the awaitable one, one cache.
    config = fake.config(cache_ttl=TTL)
    blocking = KratosClient(
        config, http_client=httpx.Client(transport=fake.transport()), timer=clock
    )
    awaitable = AsyncKratosClient(
        config, http_client=httpx.AsyncClient(transport=fake.transport()), timer=clock
    )
    awaitable._share_cache(blocking)
    closes = Closes()
    _watcher, owners, _ = await watch_many(awaitable, fake, 1, 2, closes)
    fake.revoke(owners[0])
    await asyncio.to_thread(blocking.invalidate, credentials_of(owners[0]))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(closes.seen) == 2:
            break
    assert [outcome for _, outcome, _ in closes.seen] == [Outcome.LOGIN] * 2


async def test_a_check_under_way_at_a_logout_is_followed_by_another(
    client: AsyncKratosClient, fake: FakeKratos, clock: FakeClock
) -> None:
    closes = Closes()
    watcher, owners, _ = await watch_many(client, fake, 1, 1, closes)
    clock.advance(TTL + 1)
    watcher.poke(None)
    await asyncio.sleep(0)  # the check is under way (its whoami answered "still there")...
    fake.revoke(owners[0])
    client.invalidate(credentials_of(owners[0]))  # ...when the logout comes
    for _ in range(100):
        await asyncio.sleep(0.01)
        if closes.seen:
            break
    assert [outcome for _, outcome, _ in closes.seen] == [Outcome.LOGIN]


async def test_a_lapsed_max_age_closes_with_reauthenticate(
    client: AsyncKratosClient, fake: FakeKratos, clock: FakeClock
) -> None:
    closes = Closes()
    watcher = watcher_for(client)
    owner = fake.session("aal1")
    credentials = credentials_of(owner)
    fresh = Requirement("aal1", max_age=60)
    decision = await client.check(credentials, fresh)
    watcher.watch(credentials, fresh, decision.session, closes.on(0), lambda: "http://app/page")
    group = next(iter(watcher._groups.values()))
    assert group.handle is not None
    clock.advance(59)
    watcher.poke(None)
    await settle(watcher)
    assert closes.seen == []
    clock.advance(2)
    watcher.poke(None)
    await settle(watcher)
    [(_, outcome, target)] = closes.seen
    assert outcome is Outcome.REAUTHENTICATE
    assert (
        target is not None
        and "refresh=true" in target
        and "return_to=http%3A%2F%2Fapp%2Fpage" in target
    )


async def test_kratos_down_closes_nothing_until_the_session_lapses(
    client: AsyncKratosClient, fake: FakeKratos, clock: FakeClock
) -> None:
    closes = Closes()
    watcher = watcher_for(client)
    owner = fake.session("aal1", expires_in=300)
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")
    watcher.watch(credentials, Requirement("aal1"), decision.session, closes.on(0))
    fake.fail(Fault("status", status=503, times=None))
    for _ in range(5):  # checks fail, again and again, while the session still vouches
        clock.advance(TTL + 1)
        watcher.poke(None)
        await settle(watcher)
    assert closes.seen == []
    assert fake.calls["/sessions/whoami"] >= 6
    clock.advance(300 - 5 * (TTL + 1) + 1)  # past expires_at
    watcher.poke(None)
    await settle(watcher)
    assert [outcome for _, outcome, _ in closes.seen] == [Outcome.UNAVAILABLE]


async def test_a_kratos_outage_with_max_age_lasts_until_max_age_ends(
    client: AsyncKratosClient, fake: FakeKratos, clock: FakeClock
) -> None:
    closes = Closes()
    watcher = watcher_for(client)
    owner = fake.session("aal1")
    credentials = credentials_of(owner)
    fresh = Requirement("aal1", max_age=100)
    decision = await client.check(credentials, fresh)
    watcher.watch(credentials, fresh, decision.session, closes.on(0))
    fake.fail(Fault("status", status=503, times=None))
    clock.advance(90)
    watcher.poke(None)
    await settle(watcher)
    assert closes.seen == []
    clock.advance(11)
    watcher.poke(None)
    await settle(watcher)
    assert [outcome for _, outcome, _ in closes.seen] == [Outcome.UNAVAILABLE]


async def test_connections_that_close_leave_no_timer_task_or_object_behind(
    client: AsyncKratosClient, fake: FakeKratos
) -> None:
    watcher = watcher_for(client)
    owner = fake.session("aal1")
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")
    before = len(asyncio.all_tasks())
    refs = []
    for _ in range(1000):
        connection = watcher.watch(
            credentials, Requirement("aal1"), decision.session, Closes().on(0)
        )
        refs.append(weakref.ref(connection))
        watcher.unwatch(connection)
        del connection
    assert watcher.counts() == (0, 0)
    assert watcher._groups == {}
    gc.collect()
    assert all(ref() is None for ref in refs)
    assert len(asyncio.all_tasks()) == before
    loop = asyncio.get_running_loop()
    assert not [
        h for h in getattr(loop, "_scheduled", []) if not h.cancelled() and "recheck" in repr(h)
    ]


@pytest.mark.parametrize(
    ("expires_in", "max_age", "expected"),
    [
        pytest.param(100.0, None, 100.0, id="expires_at"),
        pytest.param(100.0, 50.0, 50.0, id="max-age-first"),
        pytest.param(30.0, 50.0, 30.0, id="expires-first"),
    ],
)
def test_the_last_known_state_lapses_at_expires_at_or_max_age(
    fake: FakeKratos, clock: FakeClock, expires_in: float, max_age: float | None, expected: float
) -> None:
    owner = fake.session("aal1", expires_in=expires_in)
    blocking = KratosClient(
        fake.config(), http_client=httpx.Client(transport=fake.transport()), timer=clock
    )
    session = blocking.whoami(credentials_of(owner))
    now = clock()
    lapse = lapse_of(session, Requirement("aal1", max_age=max_age), now, TTL)
    assert lapse == pytest.approx(now + expected, abs=1.0)


def test_a_session_without_expiry_is_vouched_for_one_ttl() -> None:
    assert lapse_of(None, Requirement("aal1"), 1000.0, TTL) == 1000.0 + TTL


async def test_a_connection_is_closed_once_and_keeps_kratos_return_to_on_a_bad_host(
    client: AsyncKratosClient, fake: FakeKratos
) -> None:
    closes = Closes()
    watcher = watcher_for(client)
    owner = fake.session("aal1")
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")

    def bad_host() -> str:
        raise ValueError("the Host header is not a valid host")

    connection = watcher.watch(
        credentials, Requirement("aal1"), decision.session, closes.on(0), bad_host
    )
    login = Decision(Outcome.LOGIN, redirect_to="http://k/self-service/login/browser")
    connection.close(login)
    connection.close(login)
    [(_, outcome, target)] = closes.seen  # once; on browser_url, with no return_to
    assert outcome is Outcome.LOGIN
    assert target is not None and target.endswith("/self-service/login/browser")
    watcher.unwatch(connection)  # again: nothing to do
    assert watcher.counts() == (0, 0)


async def test_a_stricter_connection_brings_its_session_check_forward(
    client: AsyncKratosClient, fake: FakeKratos
) -> None:
    watcher = watcher_for(client)
    owner = fake.session("aal1")
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")
    watcher.watch(credentials, Requirement("aal1"), decision.session, Closes().on(0))
    [group] = watcher._groups.values()
    assert group.handle is not None
    later = group.handle.when()
    fresh = Requirement("aal1", max_age=5)
    watcher.watch(credentials, fresh, decision.session, Closes().on(1))
    assert group.handle.when() < later  # at the end of max_age, not of the cached answer


def test_a_poke_for_a_closed_loop_forgets_its_connections(
    client: AsyncKratosClient, fake: FakeKratos
) -> None:
    watcher = watcher_for(client)
    owner = fake.session("aal1")
    credentials = credentials_of(owner)
    loop = asyncio.new_event_loop()

    async def watch() -> None:
        decision = await client.check(credentials, "aal1")
        watcher.watch(credentials, Requirement("aal1"), decision.session, Closes().on(0))

    loop.run_until_complete(watch())
    loop.close()  # a loop closed without ending its connections
    assert watcher.counts() == (1, 1)
    watcher.poke(None)
    assert watcher.counts() == (0, 0)


def test_what_a_closed_connection_is_told() -> None:
    from kratos_aal.integrations._asgi_live import close_reason, event_stream, sse_event

    login = Decision(Outcome.LOGIN, redirect_to="http://k/login")
    down = Decision(Outcome.UNAVAILABLE, retry_after=5)
    assert close_reason(login) == "kratos-aal: login"
    assert sse_event(login, "http://k/login?return_to=x") == (
        b'event: kratos-aal\ndata: {"outcome":"login",'
        b'"redirect_browser_to":"http://k/login?return_to=x"}\n\n'
    )
    assert b'"retry_after":5' in sse_event(down, None)
    assert event_stream({"headers": [(b"Content-Type", b"Text/Event-Stream; charset=utf-8")]})
    assert not event_stream({"headers": [(b"content-type", b"text/plain")]})
    assert not event_stream({})


def test_channels_reads_a_scope_as_the_other_adapters_do() -> None:
    from kratos_aal.integrations.channels import web_request

    request = web_request(
        {
            "type": "websocket",
            "scheme": "wss",
            "path": "/ws/é",
            "query_string": b"a=1",
            "headers": [(b"cookie", b"a=1"), (b"Cookie", b"b=2"), (b"origin", b"https://x")],
            "server": ("app.test", 443),
        }
    )
    assert (request.scheme, request.host, request.path, request.query) == (
        "https",
        "app.test:443",
        "/ws/%C3%A9",
        "a=1",
    )
    assert request.header("cookie") == "a=1; b=2"


async def test_channels_require_aal_needs_the_middleware() -> None:
    from kratos_aal.integrations.channels import require_aal

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    with pytest.raises(RuntimeError, match="KratosAuthMiddleware"):
        await require_aal("aal1")(app)({"type": "websocket"}, None, None)


# ---------------------------------------------------------------- the process's cap is full
# max_concurrent_checks calls are under way already (requests stuck on a slow Kratos): a
# check refused for want of a slot is no outage. It is tried again soon, so that a revoked
# session's connection still closes once a slot frees, not at the session's expires_at.

CAP = 2


class Holders:
    """Requests that hold every slot of the process's cap until released."""

    def __init__(self, fake: FakeKratos, clock: FakeClock, how: str) -> None:
        self.how = how
        self.config = fake.config(cache_ttl=TTL, max_concurrent_checks=CAP, timeout=60)
        self.clock = clock
        self.entered = 0
        self.entered_event = asyncio.Event()
        self.release_async = asyncio.Event()
        self.release_thread = threading.Event()
        self.tasks: list[asyncio.Future[Any]] = []

    def _answer(self) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": 401, "id": "session_inactive"}})

    async def hold(self) -> None:
        loop = asyncio.get_running_loop()

        def entered() -> None:
            self.entered += 1
            if self.entered == CAP:
                self.entered_event.set()

        if self.how == "awaitable":

            async def slow(request: httpx.Request) -> httpx.Response:
                entered()
                await self.release_async.wait()
                return self._answer()

            holder: Any = AsyncKratosClient(
                self.config,
                http_client=httpx.AsyncClient(transport=httpx.MockTransport(slow)),
                timer=self.clock,
            )
            for number in range(CAP):
                self.tasks.append(
                    asyncio.ensure_future(holder.check(Credentials(cookie=f"held-{number}")))
                )
        else:

            def stuck(request: httpx.Request) -> httpx.Response:
                loop.call_soon_threadsafe(entered)
                self.release_thread.wait(60)
                return self._answer()

            blocking = KratosClient(
                self.config,
                http_client=httpx.Client(transport=httpx.MockTransport(stuck)),
                timer=self.clock,
            )
            for number in range(CAP):
                self.tasks.append(
                    asyncio.ensure_future(
                        asyncio.to_thread(blocking.check, Credentials(cookie=f"held-{number}"))
                    )
                )
        await asyncio.wait_for(self.entered_event.wait(), 60)

    async def release(self) -> None:
        self.release_async.set()
        self.release_thread.set()
        await asyncio.gather(*self.tasks)


class Waited(Closes):
    """Closes that a test can wait for (an event, never a sleep of a guessed length)."""

    def __init__(self) -> None:
        super().__init__()
        self.any = asyncio.Event()

    def on(self, number: int) -> Any:
        record = super().on(number)

        def close(decision: Decision, target: str | None) -> None:
            record(decision, target)
            self.any.set()

        return close


def next_check_in(watcher: Watcher) -> float:
    """Return the seconds until the (one) watched session's timed check."""
    [group] = watcher._groups.values()
    assert group.handle is not None
    return group.handle.when() - group.loop.time()


@pytest.mark.parametrize("how", ["awaitable", "blocking"])
async def test_a_check_refused_for_the_cap_is_retried_soon_and_closes_once_a_slot_frees(
    fake: FakeKratos, clock: FakeClock, how: str
) -> None:
    holders = Holders(fake, clock, how)
    client = AsyncKratosClient(
        holders.config, http_client=httpx.AsyncClient(transport=fake.transport()), timer=clock
    )
    closes = Waited()
    watcher = watcher_for(client)
    owner = fake.session("aal1", expires_in=3600)
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")
    watcher.watch(credentials, Requirement("aal1"), decision.session, closes.on(0))
    await holders.hold()
    try:
        fake.revoke(owner)
        calls = fake.calls["/sessions/whoami"]
        client.invalidate(credentials)  # checked at once: no slot for it
        await asyncio.sleep(0)
        await settle(watcher)
        assert fake.calls["/sessions/whoami"] == calls  # Kratos was not asked
        assert closes.seen == []  # no slot is no verdict: nothing closed for it...
        # ...and tried again soon (about a second): not when Kratos would be (Retry-After,
        # 5 s), nor at expires_at.
        assert next_check_in(watcher) <= 2.0
    finally:
        await holders.release()
    # A slot is free: the retry (a timer, real time) sees the revoked session.
    await asyncio.wait_for(closes.any.wait(), 60)
    assert [outcome for _, outcome, _ in closes.seen] == [Outcome.LOGIN]
    assert watcher.counts() == (0, 0)


async def test_a_check_refused_for_the_cap_after_the_session_lapsed_closes_as_unavailable(
    fake: FakeKratos, clock: FakeClock
) -> None:
    holders = Holders(fake, clock, "awaitable")
    client = AsyncKratosClient(
        holders.config, http_client=httpx.AsyncClient(transport=fake.transport()), timer=clock
    )
    closes = Closes()
    watcher = watcher_for(client)
    owner = fake.session("aal1", expires_in=300)
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")
    watcher.watch(credentials, Requirement("aal1"), decision.session, closes.on(0))
    await holders.hold()
    try:
        clock.advance(301)  # past expires_at: nothing vouches for it any more
        watcher.poke(None)
        await settle(watcher)
    finally:
        await holders.release()
    assert [outcome for _, outcome, _ in closes.seen] == [Outcome.UNAVAILABLE]


# ---------------------------------------------------------------- invalidate() in an outage
# invalidate() is the app's logout: the session is checked at once, and when Kratos cannot
# be asked, its connections close as logged out, not at the session's expires_at.


async def _watched_in_an_outage(
    client: AsyncKratosClient, fake: FakeKratos
) -> tuple[Watcher, Credentials, Waited]:
    closes = Waited()
    watcher = watcher_for(client)
    owner = fake.session("aal1", expires_in=3600)
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")
    for number in range(2):
        watcher.watch(
            credentials,
            Requirement("aal1"),
            decision.session,
            closes.on(number),
            lambda: "http://app/page",
        )
    fake.fail(Fault("status", status=503, times=None))
    return watcher, credentials, closes


@pytest.mark.parametrize("how", ["awaitable", "blocking", "another-instance"])
async def test_invalidate_during_a_kratos_outage_closes_its_connections_as_logged_out(
    fake: FakeKratos, clock: FakeClock, how: str
) -> None:
    config = fake.config(cache_ttl=TTL)
    blocking = KratosClient(
        config, http_client=httpx.Client(transport=fake.transport()), timer=clock
    )
    client = AsyncKratosClient(
        config, http_client=httpx.AsyncClient(transport=fake.transport()), timer=clock
    )
    client._share_cache(blocking)  # Django: one cache for sync and async views
    watcher, credentials, closes = await _watched_in_an_outage(client, fake)
    calls = fake.calls["/sessions/whoami"]
    if how == "awaitable":
        client.invalidate(credentials)
    elif how == "blocking":
        await asyncio.to_thread(blocking.invalidate, credentials)
    else:  # the shared cache's logout message, heard on its listener's thread
        await asyncio.to_thread(client._drop, session_key(credentials))
    await asyncio.wait_for(closes.any.wait(), 60)
    await settle(watcher)
    assert fake.calls["/sessions/whoami"] > calls  # it was checked, and Kratos was down
    assert sorted(number for number, _, _ in closes.seen) == [0, 1]
    for _, outcome, target in closes.seen:
        assert outcome is Outcome.LOGIN
        assert target is not None and "/self-service/login/browser" in target
        assert "return_to=http%3A%2F%2Fapp%2Fpage" in target
    assert watcher.counts() == (0, 0)


async def test_an_outage_without_a_logout_still_closes_nothing_before_the_lapse(
    client: AsyncKratosClient, fake: FakeKratos, clock: FakeClock
) -> None:
    watcher, _credentials, closes = await _watched_in_an_outage(client, fake)
    client._drop(None)  # the shared cache reconnected: a re-check, but no logout
    await asyncio.sleep(0)
    await settle(watcher)
    watcher.poke(None)
    await settle(watcher)
    assert closes.seen == []
    assert watcher.counts() == (1, 2)


async def test_a_logout_kratos_still_denies_after_its_hold_is_forgotten(
    client: AsyncKratosClient, fake: FakeKratos, clock: FakeClock
) -> None:
    # invalidate() without a Kratos logout (the browser never got there): once Kratos has
    # allowed the session after the logout's hold, an outage is an outage again.
    closes = Closes()
    watcher = watcher_for(client)
    owner = fake.session("aal1", expires_in=3600)
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")
    watcher.watch(credentials, Requirement("aal1"), decision.session, closes.on(0))
    client.invalidate(credentials)
    await asyncio.sleep(0)
    await settle(watcher)
    [group] = watcher._groups.values()

    def marked() -> bool:
        return group.logout is not None

    assert closes.seen == [] and marked()  # within the hold: still marked as logged out
    clock.advance(TTL + 1)
    watcher.poke(None)
    await settle(watcher)
    assert not marked()
    fake.fail(Fault("status", status=503, times=None))
    clock.advance(TTL + 1)
    watcher.poke(None)
    await settle(watcher)
    assert closes.seen == []


# ---------------------------------------------------------------- a floor on the period
# cache_ttl=0 (or an answer nobody may cache) must not make each open session a loop of
# whoami calls: checks of one session are a second apart at least (documented).
FLOOR = 1.0


async def test_cache_ttl_zero_checks_an_open_session_once_a_second_at_most(
    fake: FakeKratos,
) -> None:
    assert MIN_PERIOD == FLOOR
    client = AsyncKratosClient(
        fake.config(cache_ttl=0), http_client=httpx.AsyncClient(transport=fake.transport())
    )
    watcher = watcher_for(client)
    owner = fake.session("aal1", expires_in=3600)
    credentials = credentials_of(owner)
    decision = await client.check(credentials, "aal1")
    for number in range(10):  # ten sockets of one session: one timer
        watcher.watch(credentials, Requirement("aal1"), decision.session, Closes().on(number))
    assert next_check_in(watcher) > FLOOR / 2
    first = fake.calls["/sessions/whoami"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(3 * FLOOR)  # real timers run; a slow machine runs fewer
    elapsed = loop.time() - started
    made = fake.calls["/sessions/whoami"] - first
    assert 1 <= made <= elapsed / FLOOR + 1
    # A check the timer began may still be under way (a busy machine: its timer had no
    # handle yet, and this failed in CI); once it ends, the next one waits too.
    [group] = watcher._groups.values()
    for _ in range(500):
        if group.task is None or group.task.done():
            break
        await asyncio.sleep(0.01)
    assert next_check_in(watcher) > 0
