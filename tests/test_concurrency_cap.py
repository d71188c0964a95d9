"""``max_concurrent_checks``: beyond it a request gets 503 at once, never a wait for Kratos.

Kratos is stalled by an event the test releases, so "at once" is shown by what happened
(the request was answered while the stall still held, and never reached Kratos), not by
how fast a busy machine was.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest

from kratos_aal import AsyncKratosClient, Credentials, KratosClient, Outcome, _calls
from kratos_aal._decision import DEFAULT_RETRY_AFTER
from kratos_aal.testing import FakeKratos

CAP = 3
WAIT = 30.0  # far longer than anything here takes, unless it waits for the stall


@pytest.fixture(autouse=True)
def _own_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count from zero: a call another test left under way must not hold a slot here."""
    monkeypatch.setattr(_calls, "_CALLS", _calls._Calls())


class Stall(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """FakeKratos behind a gate: every call waits until :attr:`release` is set."""

    def __init__(self, fake: FakeKratos) -> None:
        self.inner = fake.transport()
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def _enter(self, request: httpx.Request) -> None:
        with self._lock:
            self.seen.append(request.headers.get("cookie", ""))
        self.entered.release()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._enter(request)
        assert self.release.wait(WAIT)
        return self.inner.handle_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._enter(request)
        # Polled: the gate is released from another thread, and loops come and go.
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return await self.inner.handle_async_request(request)

    def wait_entered(self, count: int) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=WAIT), "a call never reached Kratos"


def _sync_client(fake: FakeKratos, stall: Stall) -> KratosClient:
    return KratosClient(
        fake.config(max_concurrent_checks=CAP, timeout=WAIT * 2),
        http_client=httpx.Client(transport=stall),
        timer=fake.clock,
    )


def _async_client(fake: FakeKratos, stall: Stall) -> AsyncKratosClient:
    return AsyncKratosClient(
        fake.config(max_concurrent_checks=CAP, timeout=WAIT * 2),
        http_client=httpx.AsyncClient(transport=stall),
        timer=fake.clock,
    )


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


def _cookies(fake: FakeKratos, count: int) -> list[Credentials]:
    return [Credentials(cookie=fake.session("aal2").cookie) for _ in range(count)]


def test_sync_beyond_the_cap_is_503_at_once(fake: FakeKratos) -> None:
    stall = Stall(fake)
    client = _sync_client(fake, stall)
    held = _cookies(fake, CAP)
    running = [_in_thread(partial(client.check, c, "aal2")) for c in held]
    stall.wait_entered(CAP)

    # One credential more: refused without a call, while the stall still holds.
    extra = Credentials(cookie=fake.session("aal2").cookie)
    thread, result = _in_thread(lambda: client.check(extra, "aal2"))
    thread.join(WAIT)
    assert not thread.is_alive() and not stall.release.is_set()
    (decision,) = result
    assert decision.outcome is Outcome.UNAVAILABLE
    assert decision.retry_after == DEFAULT_RETRY_AFTER
    assert len(stall.seen) == CAP

    # A request for a credential already on its way to Kratos waits for that call: it
    # adds none, so it is not refused.
    same, same_result = _in_thread(lambda: client.check(held[0], "aal2"))

    stall.release.set()
    for waiting, outcome in [*running, (same, same_result)]:
        waiting.join(WAIT)
        assert [d.outcome for d in outcome] == [Outcome.ALLOW]
    assert len(stall.seen) == CAP  # the one that waited made no call of its own

    # Every slot is back: the refused credential and new ones go to Kratos again.
    assert client.check(extra, "aal2").outcome is Outcome.ALLOW
    for credentials in _cookies(fake, CAP + 1):
        assert client.check(credentials, "aal2").outcome is Outcome.ALLOW
    client.close()


async def test_async_beyond_the_cap_is_503_at_once(fake: FakeKratos) -> None:
    stall = Stall(fake)
    client = _async_client(fake, stall)
    held = _cookies(fake, CAP)
    running = [asyncio.ensure_future(client.check(c, "aal2")) for c in held]
    await asyncio.to_thread(stall.wait_entered, CAP)

    extra = Credentials(cookie=fake.session("aal2").cookie)
    decision = await client.check(extra, "aal2")  # the stall still holds
    assert not stall.release.is_set()
    assert decision.outcome is Outcome.UNAVAILABLE
    assert decision.retry_after == DEFAULT_RETRY_AFTER
    assert len(stall.seen) == CAP
    same = asyncio.ensure_future(client.check(held[0], "aal2"))
    await asyncio.sleep(0)
    assert not same.done()  # waits for the call under way, refused by no cap

    stall.release.set()
    decisions = await asyncio.gather(*running, same)
    assert [d.outcome for d in decisions] == [Outcome.ALLOW] * (CAP + 1)
    assert len(stall.seen) == CAP

    assert (await client.check(extra, "aal2")).outcome is Outcome.ALLOW
    for credentials in _cookies(fake, CAP + 1):
        assert (await client.check(credentials, "aal2")).outcome is Outcome.ALLOW
    await client.aclose()


@pytest.mark.parametrize("held_by", ["event-loops", "sync-client"])
def test_one_count_for_every_loop_and_every_client(fake: FakeKratos, held_by: str) -> None:
    # Django's WSGI handler runs each async view on a loop of its own, and an app may
    # have several clients (Django's sync and async views, a Flask extension beside a
    # WSGI middleware): the process's threads are the same, so is the count.
    stall = Stall(fake)
    async_client = _async_client(fake, stall)
    sync_client = _sync_client(fake, stall)
    held = _cookies(fake, CAP)
    if held_by == "event-loops":
        running = [_in_thread(partial(asyncio.run, async_client.check(c, "aal2"))) for c in held]
    else:
        running = [_in_thread(partial(sync_client.check, c, "aal2")) for c in held]
    stall.wait_entered(CAP)

    extra = Credentials(cookie=fake.session("aal2").cookie)
    refused = asyncio.run(async_client.check(extra, "aal2"))
    assert refused.outcome is Outcome.UNAVAILABLE and not stall.release.is_set()
    assert sync_client.check(extra, "aal2").outcome is Outcome.UNAVAILABLE
    assert len(stall.seen) == CAP

    stall.release.set()
    for thread, result in running:
        thread.join(WAIT)
        assert [d.outcome for d in result] == [Outcome.ALLOW]
    assert asyncio.run(async_client.check(extra, "aal2")).outcome is Outcome.ALLOW
    sync_client.close()


def test_a_forked_child_starts_with_every_slot_free(fake: FakeKratos) -> None:
    import kratos_aal._client as client_module

    stall = Stall(fake)
    client = _sync_client(fake, stall)
    running = [_in_thread(partial(client.check, c, "aal2")) for c in _cookies(fake, CAP)]
    stall.wait_entered(CAP)
    # What a forked child sees: the slots its parent's calls took, by threads that do
    # not exist there and so never give them back. The child's fork hook frees them.
    client_module._after_fork_in_child()
    child = _in_thread(lambda: client.check(_cookies(fake, 1)[0], "aal2"))
    stall.wait_entered(1)  # not refused: it reached Kratos
    stall.release.set()
    for thread, result in [*running, child]:
        thread.join(WAIT)
        assert [d.outcome for d in result] == [Outcome.ALLOW]
    client.close()


def test_a_loop_closed_under_a_call_gives_its_slot_back(fake: FakeKratos) -> None:
    # A loop that is closed without cancelling its tasks (loop.run_until_complete, then
    # loop.close(), where the request gave up first) never runs the call's end again:
    # its slot was held for ever, and after max_concurrent_checks such loops every cache
    # miss of the process was a 503.
    stall = Stall(fake)
    client = _async_client(fake, stall)

    async def give_up(credentials: Credentials) -> None:
        waiter = asyncio.ensure_future(client.check(credentials, "aal2"))
        await asyncio.to_thread(stall.wait_entered, 1)
        waiter.cancel()  # the request gives up; the call to Kratos goes on

    for credentials in _cookies(fake, CAP):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(give_up(credentials))
        loop.close()

    fresh = _in_thread(partial(asyncio.run, client.check(_cookies(fake, 1)[0], "aal2")))
    stall.wait_entered(1)  # not refused: it reached Kratos
    stall.release.set()
    fresh[0].join(WAIT)
    assert [d.outcome for d in fresh[1]] == [Outcome.ALLOW]
    assert not client._flights._calls  # nor is what they left kept
