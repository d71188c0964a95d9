"""Django: KRATOS_AAL["CACHE"] names one of CACHES; the secret comes from SECRET_KEY."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import AsyncClient, Client

from kratos_aal import Credentials, KratosClient, _store
from kratos_aal.integrations.django import conf
from kratos_aal.integrations.django.cache import DjangoCache, derived_secret
from kratos_aal.integrations.django.checks import check_settings
from kratos_aal.testing import FakeKratos, reserve_port, serve

from .conftest import SECRET, RedisServer

SettingsWrapper = Any
GOOD = {"PUBLIC_URL": "http://kratos:4433"}
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "shared"}


def found(settings: SettingsWrapper) -> list[tuple[str, str]]:
    return [(error.id, error.msg) for error in check_settings()]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(
            {**GOOD, "CACHE": "nope"},
            "KRATOS_AAL['CACHE'] must name one of CACHES (default, shared), got 'nope'",
            id="unknown-alias",
        ),
        pytest.param(
            {**GOOD, "CACHE": "shared", "CACHE_URL": "redis://h/0"},
            "KRATOS_AAL['CACHE'] and KRATOS_AAL['CACHE_URL'] are both set",
            id="alias-and-url",
        ),
        pytest.param(
            {**GOOD, "CACHE_URL": "memcached://h"},
            "KRATOS_AAL['CACHE_URL']: cache_url must be a redis:// or rediss:// URL",
            id="not-redis",
        ),
        pytest.param(
            {**GOOD, "CACHE_URL": "redis://h/0", "CACHE_KEY_SECRET": "short"},
            "KRATOS_AAL['CACHE_KEY_SECRET']: cache_key_secret must be a string",
            id="short-secret",
        ),
    ],
)
def test_bad_shared_cache_settings_are_reported(
    settings: SettingsWrapper, value: dict[str, Any], text: str
) -> None:
    settings.CACHES = {"default": LOCMEM, "shared": LOCMEM}
    settings.KRATOS_AAL = value
    (error,) = check_settings()
    assert error.id == "kratos_aal.E006"
    assert error.msg.startswith(text), error.msg


def test_other_cache_settings_keep_their_error(settings: SettingsWrapper) -> None:
    settings.KRATOS_AAL = {**GOOD, "CACHE_TTL": -1}
    assert [error.id for error in check_settings()] == ["kratos_aal.E002"]


def test_the_secret_is_derived_from_secret_key(settings: SettingsWrapper) -> None:
    settings.SECRET_KEY = "django-secret-key-for-this-test"
    settings.KRATOS_AAL = {**GOOD, "CACHE_URL": "redis://127.0.0.1:1/0"}
    config = conf.get().config
    assert config.cache_key_secret == derived_secret("django-secret-key-for-this-test")
    assert "django-secret-key" not in (config.cache_key_secret or "")
    settings.KRATOS_AAL = {**GOOD, "CACHE_URL": "redis://127.0.0.1:1/0", "CACHE_KEY_SECRET": SECRET}
    assert conf.get().config.cache_key_secret == SECRET
    settings.KRATOS_AAL = GOOD
    assert conf.get().config.cache_key_secret is None
    assert conf.shared_cache() is None


def test_the_alias_store_uses_that_cache(settings: SettingsWrapper) -> None:
    from django.core.cache import caches

    settings.CACHES = {"default": LOCMEM, "shared": {**LOCMEM, "LOCATION": "other"}}
    store = DjangoCache("shared")
    store.set("k", b"v", 0.2)  # at least a second: the value itself says when it ends
    assert caches["shared"].get("k") == b"v"
    assert store.get("k") == b"v"
    caches["shared"].set("text", "not bytes")
    assert store.get("text") is None
    store.delete("k", "channel")
    assert store.get("k") is None
    assert store.listen is None
    store.close()


async def test_the_alias_store_is_awaitable(settings: SettingsWrapper) -> None:
    settings.CACHES = {"default": LOCMEM, "shared": LOCMEM}
    store = DjangoCache("shared")
    await store.aset("k", b"v", 5)
    assert await store.aget("k") == b"v"
    await store.aset("k", "x", 5)  # type: ignore[arg-type]
    assert await store.aget("k") is None


def two_instances_share(fake: FakeKratos) -> None:
    credentials = Credentials(cookie=fake.session("aal1").cookie)
    for _ in range(2):
        client = KratosClient(
            fake.config(cache_key_secret=SECRET),
            http_client=httpx.Client(transport=fake.transport()),
            timer=fake.clock,
            shared_cache=DjangoCache("shared"),
        )
        with client:
            assert client.check(credentials, "aal1").allowed
        client._http.close()
    assert fake.calls["/sessions/whoami"] == 1


def test_two_instances_share_through_locmem(settings: SettingsWrapper) -> None:
    settings.CACHES = {"default": LOCMEM, "shared": LOCMEM}
    two_instances_share(FakeKratos(whoami_required_aal="aal1"))


# ---------------------------------------------------------------------------- real Redis


@pytest.fixture
def served_fake() -> Iterator[FakeKratos]:
    sock = reserve_port()
    fake = FakeKratos(
        public_url=f"http://127.0.0.1:{sock.getsockname()[1]}", whoami_required_aal="aal1"
    )
    with serve(fake, sock=sock):
        yield fake


def new_instance() -> None:
    """Forget the settings' clients: the next request builds them anew, like a new process."""
    with conf._state.lock:
        clients, conf._state.clients = conf._state.clients, None
    if clients is not None:
        clients[0].close()


async def anew_instance() -> None:
    """Like :func:`new_instance`, closing the awaitable client's pool on this loop too."""
    clients = conf._state.clients
    new_instance()
    if clients is not None:
        await clients[1].aclose()


@pytest.fixture
def redis_alias(
    settings: SettingsWrapper, redis_server: RedisServer, served_fake: FakeKratos
) -> Iterator[FakeKratos]:
    settings.CACHES = {
        "default": LOCMEM,
        "shared": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
        },
    }
    settings.KRATOS_AAL = {
        "PUBLIC_URL": served_fake.public_url,
        "CACHE": "shared",
        "RULES": {"/account/*": "aal1"},
    }
    new_instance()
    yield served_fake
    new_instance()


def test_the_alias_with_djangos_redis_backend(redis_alias: FakeKratos) -> None:
    fake = redis_alias
    two_instances_share(fake)
    session = fake.session("aal1")
    calls = fake.calls["/sessions/whoami"]
    for _ in range(3):
        new_instance()
        response = Client(HTTP_COOKIE=session.cookie_header).get("/account/")
        assert response.status_code == 200
    assert fake.calls["/sessions/whoami"] == calls + 1


def browser(cookies: str) -> AsyncClient:
    client = AsyncClient()
    client.cookies.load(cookies)
    return client


async def test_the_alias_in_async_views(redis_alias: FakeKratos) -> None:
    fake = redis_alias
    session = fake.session("aal2")
    for _ in range(3):
        await anew_instance()
        response = await browser(session.cookie_header).get("/billing/async/")
        assert response.status_code == 200
    assert fake.calls["/sessions/whoami"] == 1
    # Logout: the shared entry is gone, the next instance asks Kratos and is refused.
    fake.revoke(session)
    sync_client, _ = conf.clients()
    sync_client.invalidate(Credentials(cookie=session.cookie))
    await anew_instance()
    response = await browser(session.cookie_header).get("/billing/async/")
    assert response.status_code == 303
    await anew_instance()


def test_the_alias_store_locks(settings: SettingsWrapper) -> None:
    settings.CACHES = {"default": LOCMEM, "shared": LOCMEM}
    store = DjangoCache("shared")
    assert store.add("lock", b"1", 5) is True
    assert store.add("lock", b"1", 5) is False
    assert store.peek("entry", "lock") == (None, True)
    store.set("entry", b"v", 5)
    store.delete("lock", None)
    assert store.peek("entry", "lock") == (b"v", False)


async def test_the_alias_store_locks_awaitably(settings: SettingsWrapper) -> None:
    settings.CACHES = {"default": LOCMEM, "shared": LOCMEM}
    store = DjangoCache("shared")
    assert await store.aadd("alock", b"1", 5) is True
    assert await store.aadd("alock", b"1", 5) is False
    assert await store.apeek("aentry", "alock") == (None, True)
    await store.aset("aentry", b"v", 5)
    await store.adelete("alock")
    assert await store.apeek("aentry", "alock") == (b"v", False)


class Paused:
    """Redis paused until the block ends, or for ``limit`` seconds at most (then resumed).

    ``answered()`` says whether Redis is still paused: a request that answers only after
    the limit waited for Redis instead of treating it as a miss.
    """

    def __init__(self, server: RedisServer, limit: float = 8.0) -> None:
        self.server = server
        self.resumed = threading.Event()
        self.timer = threading.Timer(limit, self._resume)

    def _resume(self) -> None:
        if not self.resumed.is_set():
            self.resumed.set()
            self.server.resume()

    def __enter__(self) -> Paused:
        self.server.pause()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()
        self._resume()

    def answered(self) -> bool:
        return not self.resumed.is_set()


def test_a_paused_redis_behind_the_alias_is_a_miss_not_a_hang(
    redis_alias: FakeKratos, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Django's RedisCache has no socket timeout of its own: without ours, every request
    # would wait for as long as Redis is paused.
    monkeypatch.setattr(_store, "BACKOFF", 0.0)  # every request meets the paused Redis
    fake = redis_alias
    sessions = [fake.session("aal1") for _ in range(3)]
    with Paused(redis_server) as paused:
        for session in sessions:
            response = Client(HTTP_COOKIE=session.cookie_header).get("/account/")
            assert response.status_code == 200
            assert paused.answered()
    assert fake.calls["/sessions/whoami"] == 3


async def test_a_paused_redis_behind_the_alias_is_a_miss_in_async_views(
    redis_alias: FakeKratos, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "BACKOFF", 0.0)
    fake = redis_alias
    sessions = [fake.session("aal2") for _ in range(3)]
    with Paused(redis_server) as paused:
        for session in sessions:
            response = await browser(session.cookie_header).get("/billing/async/")
            assert response.status_code == 200
            assert paused.answered()
    assert fake.calls["/sessions/whoami"] == 3
    await anew_instance()
