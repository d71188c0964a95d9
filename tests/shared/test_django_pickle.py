"""Issue 21 item 14: nothing read from a Django cache alias is unpickled (SPEC §5a).

Django's RedisCache unpickles whatever Redis holds, before kratos-aal could check a
signature: whoever could write to Redis could run code in the app. The alias's own Redis
connection now carries plain bytes; the backends that cannot are refused.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import AsyncClient, Client

from kratos_aal import Credentials, _shared
from kratos_aal._kratos_api import whoami_request
from kratos_aal.integrations.django import conf
from kratos_aal.integrations.django.cache import DjangoRedisCache
from kratos_aal.integrations.django.checks import check_settings
from kratos_aal.testing import FakeKratos

from .conftest import RedisServer
from .test_django import LOCMEM, anew_instance, new_instance, served_fake  # noqa: F401 - a fixture

SettingsWrapper = Any
#: What the planted pickle did when it was unpickled.
RAN: list[str] = []


def side_effect(what: str) -> str:
    RAN.append(what)
    return what


class Payload:
    """Unpickling this calls side_effect: what a Redis writer's payload could do."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return side_effect, ("unpickled",)


@pytest.fixture
def redis_alias(
    settings: SettingsWrapper,
    redis_server: RedisServer,
    served_fake: FakeKratos,  # noqa: F811
) -> Iterator[FakeKratos]:
    settings.CACHES = {
        "default": LOCMEM,
        "shared": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": "app1",
        },
    }
    settings.KRATOS_AAL = {
        "PUBLIC_URL": served_fake.public_url,
        "CACHE": "shared",
        "RULES": {"/account/*": "aal1"},
    }
    RAN.clear()
    new_instance()
    yield served_fake
    new_instance()


def raw_key(cookie: str) -> str:
    """Return the Redis key the shared tier reads for *cookie*, as Django's alias names it."""
    config = conf.get().config
    tier = _shared.SharedTier(config, DjangoRedisCache("shared"), print, print)
    name = tier.name_of(whoami_request(config, Credentials(cookie=cookie)))
    assert name is not None
    return str(caches["shared"].make_key(name))


def test_a_planted_pickle_is_never_unpickled(
    redis_alias: FakeKratos, redis_server: RedisServer
) -> None:
    fake = redis_alias
    session = fake.session("aal1")
    redis = redis_server.client()
    redis.set(raw_key(session.cookie), pickle.dumps(Payload()))
    response = Client(HTTP_COOKIE=session.cookie_header).get("/account/")
    assert RAN == []  # before: ["unpickled"], run by Django's cache.get
    assert response.status_code == 200
    assert fake.calls["/sessions/whoami"] == 1  # a miss: Kratos was asked
    redis.close()


async def test_a_planted_pickle_is_never_unpickled_in_async_views(
    redis_alias: FakeKratos, redis_server: RedisServer
) -> None:
    fake = redis_alias
    session = fake.session("aal2")
    redis = redis_server.client()
    redis.set(raw_key(session.cookie), pickle.dumps(Payload()))
    client = AsyncClient()
    client.cookies.load(session.cookie_header)
    response = await client.get("/billing/async/")
    assert RAN == []
    assert response.status_code == 200
    assert fake.calls["/sessions/whoami"] == 1
    redis.close()
    await anew_instance()


def test_entries_are_plain_bytes_under_the_aliases_keys(
    redis_alias: FakeKratos, redis_server: RedisServer
) -> None:
    fake = redis_alias
    session = fake.session("aal1")
    for _ in range(3):  # three instances, one whoami call: sharing still works
        new_instance()
        assert Client(HTTP_COOKIE=session.cookie_header).get("/account/").status_code == 200
    assert fake.calls["/sessions/whoami"] == 1
    redis = redis_server.client()
    key = raw_key(session.cookie)
    assert key.startswith("app1:1:kratos-aal:s:")  # the alias's KEY_PREFIX and VERSION
    value: Any = redis.get(key)
    assert isinstance(value, bytes) and not value.startswith(b"\x80")  # no pickle
    signature, _, body = value.partition(b".")
    assert len(signature) == 64 and body.startswith(b'{"v":1,')
    assert 0 < redis.pttl(key) <= 30_000
    redis.close()
    assert RAN == []


def test_the_alias_store_locks_with_plain_bytes(redis_alias: FakeKratos) -> None:
    store = DjangoRedisCache("shared")
    assert store.add("lock", b"1", 5) is True
    assert store.add("lock", b"1", 5) is False
    assert store.peek("entry", "lock") == (None, True)
    store.set("entry", b"v", 0.2)
    assert store.get("entry") == b"v"
    store.delete("lock", "ignored-channel")
    assert store.peek("entry", "lock") == (b"v", False)
    assert store.listen is None


async def test_the_alias_store_is_awaitable_with_plain_bytes(redis_alias: FakeKratos) -> None:
    store = DjangoRedisCache("shared")
    assert await store.aadd("alock", b"1", 5) is True
    assert await store.aadd("alock", b"1", 5) is False
    assert await store.apeek("aentry", "alock") == (None, True)
    await store.aset("aentry", b"v", 5)
    assert await store.aget("aentry") == b"v"
    await store.adelete("alock")
    assert await store.apeek("aentry", "alock") == (b"v", False)


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.filebased.FileBasedCache",
        "django.core.cache.backends.memcached.PyMemcacheCache",
        "django.core.cache.backends.memcached.PyLibMCCache",
        "tests.shared.test_django_pickle.ThirdParty",
    ],
)
def test_backends_that_unpickle_are_refused(settings: SettingsWrapper, backend: str) -> None:
    settings.CACHES = {"default": LOCMEM, "shared": {"BACKEND": backend, "LOCATION": "x"}}
    settings.KRATOS_AAL = {"PUBLIC_URL": "http://kratos:4433", "CACHE": "shared"}
    (error,) = check_settings()
    assert error.id == "kratos_aal.E006"
    assert error.msg.startswith(
        f"KRATOS_AAL['CACHE']: CACHES['shared'] uses {backend}, which unpickles"
    ), error.msg
    assert "django.core.cache.backends.redis.RedisCache" in error.msg


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.redis.RedisCache",
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    ],
)
def test_backends_without_an_outside_pickle_are_taken(
    settings: SettingsWrapper, backend: str
) -> None:
    settings.CACHES = {
        "default": LOCMEM,
        "shared": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:1/0"},
    }
    settings.KRATOS_AAL = {"PUBLIC_URL": "http://kratos:4433", "CACHE": "shared"}
    assert check_settings() == []
    expected = "DjangoRedisCache" if backend.endswith("RedisCache") else "DjangoCache"
    assert type(conf.shared_cache()).__name__ == expected


def test_an_unimportable_backend_is_named(settings: SettingsWrapper) -> None:
    settings.CACHES = {"default": LOCMEM, "shared": {"BACKEND": "no.such.Backend"}}
    settings.KRATOS_AAL = {"PUBLIC_URL": "http://kratos:4433", "CACHE": "shared"}
    (error,) = check_settings()
    assert "CACHES['shared']['BACKEND'] cannot be imported: 'no.such.Backend'" in error.msg


class ThirdParty:
    """A backend kratos-aal does not know (django-redis and the like pickle by default)."""
