"""The shared tier without a server: fakeredis and hand-made stores (unit tests only)."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import fakeredis
import httpx
import pytest

from kratos_aal import (
    AsyncKratosClient,
    Credentials,
    KratosClient,
    KratosConfig,
    Outcome,
    _calls,
    _client,
    _exchange,
    _logouts,
    _observe,
    _shared,
    _store,
)
from kratos_aal._kratos_api import whoami_request
from kratos_aal.exceptions import ConfigurationError
from kratos_aal.testing import FakeKratos

from .conftest import SECRET

Client = KratosClient | AsyncKratosClient


class Store:
    """A dict store that counts calls and can be made to fail."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.calls: list[str] = []
        self.error: BaseException | None = None
        self.listen: _store.Listen | None = None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.error is not None:
            raise self.error

    def get(self, key: str) -> bytes | None:
        self._call("get")
        return self.data.get(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._call("bury" if ":t:" in key else "set")  # a logout's tombstone, or an entry
        self.data[key] = value

    def delete(self, key: str, channel: str | None) -> None:
        self._call("delete" if channel else "unlock")
        self.data.pop(key, None)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        self._call("lock")
        if key in self.data:
            return False
        self.data[key] = value
        return True

    def peek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        # An entry read beside its tombstone, or beside its lock (a waiter's look).
        self._call("read" if ":t:" in lock else "peek")
        return self.data.get(key), lock in self.data

    def entries(self) -> list[str]:
        return [key for key in self.data if ":s:" in key]

    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        self.set(key, value, ttl)

    async def aadd(self, key: str, value: bytes, ttl: float) -> bool:
        return self.add(key, value, ttl)

    async def apeek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        return self.peek(key, lock)

    async def adelete(self, key: str) -> None:
        self.delete(key, None)

    def close(self) -> None:
        self._call("close")


@pytest.fixture
def fake() -> FakeKratos:
    return FakeKratos(whoami_required_aal="aal1")


class Pair:
    """Clients of one kind (sync or async) on one fake Kratos, sharing one store."""

    def __init__(self, fake: FakeKratos, mode: str) -> None:
        self.fake = fake
        self.mode = mode
        self.clients: list[Client] = []

    def client(self, store: Any, **config: Any) -> Client:
        settings = {"cache_key_secret": SECRET, **config}
        made: Client
        if self.mode == "sync":
            made = KratosClient(
                self.fake.config(**settings),
                http_client=httpx.Client(transport=self.fake.transport()),
                timer=self.fake.clock,
                shared_cache=store,
            )
        else:
            made = AsyncKratosClient(
                self.fake.config(**settings),
                http_client=httpx.AsyncClient(transport=self.fake.transport()),
                timer=self.fake.clock,
                shared_cache=store,
            )
        self.clients.append(made)
        return made

    @staticmethod
    async def check(client: Client, credentials: Credentials, aal: str = "aal1") -> Outcome:
        result = client.check(credentials, aal)
        decision = await result if inspect.isawaitable(result) else result
        return decision.outcome

    @property
    def whoami_calls(self) -> int:
        return self.fake.calls["/sessions/whoami"]


@pytest.fixture(params=["sync", "async"])
async def pair(request: pytest.FixtureRequest, fake: FakeKratos) -> AsyncIterator[Pair]:
    made = Pair(fake, request.param)
    yield made
    for client in made.clients:
        if isinstance(client, AsyncKratosClient):
            await client.aclose()
            await client._injected.aclose()  # type: ignore[union-attr]
        else:
            client.close()
            client._http.close()


def fake_redis(server: fakeredis.FakeServer) -> _store.RedisCache:
    return _store.RedisCache(client=fakeredis.FakeRedis(server=server))


# ---------------------------------------------------------------------------- settings


def test_cache_url_needs_the_secret() -> None:
    with pytest.raises(ConfigurationError, match=r"^cache_key_secret is required"):
        KratosConfig("http://kratos:4433", cache_url="redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        pytest.param({"cache_url": "http://127.0.0.1:6379"}, "cache_url", id="http-scheme"),
        pytest.param({"cache_url": "redis:///0"}, "cache_url", id="no-host"),
        pytest.param({"cache_url": "redis://h:99999/0"}, "cache_url", id="bad-port"),
        pytest.param({"cache_url": 6379}, "cache_url", id="not-a-string"),
        pytest.param({"cache_url": "redis://h:port/0"}, "cache_url", id="port-not-a-number"),
        pytest.param({"cache_url": "redis://h:0/0"}, "cache_url", id="port-0"),
        # redis-py would use database 0 for these: apps meant apart would share entries.
        pytest.param({"cache_url": "redis://h:6379/app1"}, "cache_url", id="database-a-name"),
        pytest.param({"cache_url": "redis://h/0/1"}, "cache_url", id="database-a-path"),
        pytest.param({"cache_url": "redis://h/0?socket_timeout=x"}, "cache_url", id="query-value"),
        pytest.param({"cache_key_secret": "x" * 15}, "cache_key_secret", id="secret-15"),
        pytest.param({"cache_key_secret": b"x" * 16}, "cache_key_secret", id="secret-bytes"),
        pytest.param({"local_cache_ttl": -1}, "local_cache_ttl", id="negative-local-ttl"),
        pytest.param({"cache_key_prefix": "a b"}, "cache_key_prefix", id="prefix-space"),
        pytest.param({"cache_key_prefix": "é"}, "cache_key_prefix", id="prefix-non-ascii"),
        pytest.param({"cache_key_prefix": "p" * 65}, "cache_key_prefix", id="prefix-65"),
        pytest.param({"cache_key_prefix": 7}, "cache_key_prefix", id="prefix-number"),
    ],
)
def test_bad_shared_settings_fail_naming_the_setting(values: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{setting} "):
        KratosConfig("http://kratos:4433", **{"cache_key_secret": SECRET, **values})


def test_good_shared_settings_on_the_boundaries() -> None:
    for url in ("redis://h:1", "redis://h:65535/", "redis://h/15?socket_timeout=0.5"):
        assert KratosConfig("http://kratos:4433", cache_url=url, cache_key_secret=SECRET).cache_url
    config = KratosConfig(
        "http://kratos:4433",
        cache_url="rediss://user:pw@redis.internal:6380/2",
        cache_key_secret="k7Qp2mZr9TvB4xWc",  # 16 characters, random
        cache_key_prefix="p" * 64,
        local_cache_ttl=0,
    )
    assert (config.local_cache_ttl, config.cache_key_prefix) == (0.0, "p" * 64)
    assert KratosConfig("http://kratos:4433", cache_url="").cache_url is None
    assert KratosConfig("http://kratos:4433").local_cache_ttl == 5.0


def test_the_url_password_and_the_secret_are_never_shown() -> None:
    config = KratosConfig(
        "http://kratos:4433", cache_url="redis://:hunter2@h:6379", cache_key_secret=SECRET
    )
    assert "hunter2" not in repr(config)
    assert SECRET not in repr(config)
    for url in (
        "http://:hunter2@h",
        "redis://:hunter2@h:port",
        "redis://:hunter2@h/db",
        "redis://:hunter2@h/0?socket_timeout=x",
    ):
        with pytest.raises(ConfigurationError) as raised:
            KratosConfig("http://kratos:4433", cache_url=url, cache_key_secret=SECRET)
        assert "hunter2" not in str(raised.value)


def test_a_redis_message_that_quotes_the_url_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import redis.connection

    def parse_url(url: str) -> None:
        raise ValueError(f"cannot read {url}")

    monkeypatch.setattr(redis.connection, "parse_url", parse_url)
    for url in ("redis://:hunter2@h/0", "redis://u@h/0"):
        with pytest.raises(ConfigurationError) as raised:
            KratosConfig("http://kratos:4433", cache_url=url, cache_key_secret=SECRET)
        assert str(raised.value) == "cache_url cannot be used by redis-py"
    monkeypatch.setattr(redis.connection, "parse_url", lambda url: None)
    assert KratosConfig("http://kratos:4433", cache_url="redis://h/0", cache_key_secret=SECRET)


def test_a_pool_option_redis_py_refuses_fails_when_the_client_is_built() -> None:
    config = KratosConfig(
        "http://kratos:4433",
        cache_url="redis://:hunter2@h/0?max_connections=-1",
        cache_key_secret=SECRET,
    )
    with pytest.raises(ConfigurationError, match=r"^cache_url ") as raised:
        KratosClient(config)
    assert "hunter2" not in str(raised.value)


def test_from_env_reads_the_shared_settings() -> None:
    config = KratosConfig.from_env(
        {
            "KRATOS_PUBLIC_URL": "http://kratos:4433",
            "KRATOS_AAL_CACHE_URL": "redis://127.0.0.1:6379/1",
            "KRATOS_AAL_CACHE_KEY_SECRET": SECRET,
            "KRATOS_AAL_CACHE_KEY_PREFIX": "app1:",
            "KRATOS_AAL_LOCAL_CACHE_TTL": "2",
        }
    )
    assert (config.cache_url, config.cache_key_secret) == ("redis://127.0.0.1:6379/1", SECRET)
    assert (config.cache_key_prefix, config.local_cache_ttl) == ("app1:", 2.0)
    with pytest.raises(ConfigurationError, match=r"^KRATOS_AAL_CACHE_KEY_SECRET: "):
        KratosConfig.from_env(
            {"KRATOS_PUBLIC_URL": "http://k:4433", "KRATOS_AAL_CACHE_URL": "redis://h/0"}
        )


def test_a_store_without_the_secret_is_refused(fake: FakeKratos) -> None:
    with pytest.raises(ConfigurationError, match="cache_key_secret is required"):
        KratosClient(fake.config(), shared_cache=Store())


# ---------------------------------------------------------------------------- names and values


def tier(secret: str = SECRET, prefix: str = "kratos-aal:", **config: Any) -> _shared.SharedTier:
    settings = KratosConfig(
        "http://kratos:4433", cache_key_secret=secret, cache_key_prefix=prefix, **config
    )
    return _shared.SharedTier(settings, Store(), lambda *_: None, lambda _: None)


def name(shared: _shared.SharedTier, *, cookie: str | None = None, token: str | None = None) -> str:
    credentials = Credentials(cookie=cookie, token=token)
    found = shared.name_of(whoami_request(shared.config, credentials))
    assert found is not None
    return found


def test_names_are_keyed_hashes_never_the_credential() -> None:
    one = tier()
    cookie, token = "the-cookie-value-" * 3, "ory_st_" + "t" * 32
    by_cookie, by_token = name(one, cookie=cookie), name(one, token=token)
    assert by_cookie.startswith("kratos-aal:s:")
    assert cookie not in by_cookie and token not in by_token
    assert by_cookie != by_token
    # Every instance with the same secret names an entry alike; another secret or prefix not.
    assert name(tier(), cookie=cookie) == by_cookie
    assert name(tier(secret="another-random-7Kq2xZ"), cookie=cookie) != by_cookie
    assert name(tier(prefix="app2:"), cookie=cookie).startswith("app2:s:")
    assert one.name_of(httpx.Request("GET", "http://kratos:4433/self-service/login/api")) is None


def session_json(fake: FakeKratos, aal: str = "aal1", **kwargs: Any) -> dict[str, Any]:
    return fake.session_json(fake.session(aal, **kwargs))


def test_a_value_round_trips_and_is_capped(fake: FakeKratos) -> None:
    from kratos_aal import Session

    one = tier()
    key = name(one, cookie="c")
    session = Session.from_json(session_json(fake))
    now = time.time()
    value = one.encode(key, session, 30, now)
    found = one.decode(key, value, now)
    assert found is not None
    assert found[0].session == session
    assert found[1] == pytest.approx(30)
    # Its own expiry, on both sides of the boundary.
    assert one.decode(key, value, now + 29.9) is not None
    assert one.decode(key, value, now + 30) is None
    # The session's expires_at caps it as well.
    short = Session.from_json(session_json(fake, expires_in=5))
    left = one.decode(key, one.encode(key, short, 30, fake.clock()), fake.clock())
    assert left is not None
    assert left[1] <= 5


def tampered(value: bytes) -> list[bytes]:
    signature, _, body = value.partition(b".")
    data = json.loads(body)
    raised = json.dumps({**data, "session": {**data["session"], "aal": "aal2"}}).encode()
    return [
        signature + b"." + raised,  # a forged body under the old signature
        b"0" * len(signature) + b"." + body,
        body,
        b"",
        b"\xff\xfe garbage",
        value[:-1],
    ]


def test_anything_that_does_not_verify_is_a_miss(fake: FakeKratos) -> None:
    from kratos_aal import Session

    one = tier()
    key = name(one, cookie="c")
    session = Session.from_json(session_json(fake))
    now = time.time()
    value = one.encode(key, session, 30, now)
    for bad in tampered(value):
        assert one.decode(key, bad, now) is None, bad
    # A good value read for another key (a reply out of step) is a miss too.
    assert one.decode(name(one, cookie="other"), value, now) is None
    # Another secret cannot read (or forge) it.
    assert tier(secret="another-random-7Kq2xZ").decode(key, value, now) is None
    assert one.decode(key, "text", now) is None


def signed(one: _shared.SharedTier, data: dict[str, Any]) -> bytes:
    import hashlib
    import hmac

    body = json.dumps(data).encode()
    return hmac.new(one._sign_key, body, hashlib.sha256).hexdigest().encode() + b"." + body


def test_a_signed_value_of_another_format_or_an_inactive_session_is_a_miss(
    fake: FakeKratos,
) -> None:
    one = tier()
    key = name(one, cookie="c")
    now = time.time()
    good: dict[str, Any] = {"v": 1, "k": key, "exp": now + 30, "session": session_json(fake)}
    assert one.decode(key, signed(one, good), now) is not None
    for bad in [
        {**good, "v": 2},
        {**good, "exp": now},
        {**good, "session": {**good["session"], "active": False}},
        {**good, "session": {"id": ""}},
        {k: v for k, v in good.items() if k != "exp"},
    ]:
        assert one.decode(key, signed(one, bad), now) is None, bad
    expired = {**good, "session": session_json(fake, expires_in=1)}
    assert one.decode(key, signed(one, expired), fake.clock() + 1) is None


# ---------------------------------------------------------------------------- two instances


async def test_a_second_instance_uses_the_first_ones_answer(pair: Pair) -> None:
    server = fakeredis.FakeServer()
    one, two = pair.client(fake_redis(server)), pair.client(fake_redis(server))
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(one, credentials) is Outcome.ALLOW
    assert await pair.check(two, credentials) is Outcome.ALLOW
    assert pair.whoami_calls == 1


async def test_a_hit_in_front_never_asks_the_store(pair: Pair) -> None:
    store = Store()
    client = pair.client(store)
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    before = list(store.calls)
    for _ in range(20):
        assert await pair.check(client, credentials) is Outcome.ALLOW
    assert store.calls == before == ["read", "lock", "read", "set", "unlock"]


async def test_the_local_copy_lasts_local_cache_ttl_then_the_store_answers(pair: Pair) -> None:
    store = Store()
    client = pair.client(store, local_cache_ttl=2)
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    pair.fake.clock.advance(1.9)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert store.calls == ["read", "lock", "read", "set", "unlock"]
    pair.fake.clock.advance(0.2)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert store.calls == ["read", "lock", "read", "set", "unlock", "read"]
    assert pair.whoami_calls == 1


async def test_a_shared_entry_is_not_trusted_past_the_sessions_expiry(pair: Pair) -> None:
    store = Store()
    one, two = pair.client(store), pair.client(store)
    session = pair.fake.session("aal1", expires_in=10)
    credentials = Credentials(cookie=session.cookie)
    assert await pair.check(one, credentials) is Outcome.ALLOW
    pair.fake.clock.advance(10)
    # The entry is still in the store (a store with a coarse TTL), but it says when it ends.
    assert store.data
    assert await pair.check(two, credentials) is Outcome.LOGIN
    assert pair.whoami_calls == 2


async def test_a_denial_from_a_shared_entry_asks_kratos_again(pair: Pair) -> None:
    store = Store()
    one, two = pair.client(store), pair.client(store)
    session = pair.fake.session("aal1", totp=True)
    credentials = Credentials(cookie=session.cookie)
    assert await pair.check(one, credentials, "aal1") is Outcome.ALLOW
    # Kratos upgrades the session in place; the shared copy still says aal1.
    record = pair.fake._sessions[session.id]
    record.methods.append(pair.fake._method("totp", pair.fake.clock.now()))
    assert await pair.check(two, credentials, "aal2") is Outcome.ALLOW
    assert pair.whoami_calls == 2
    # ...and the fresh answer replaced the shared one.
    assert await pair.check(pair.client(store), credentials, "aal2") is Outcome.ALLOW
    assert pair.whoami_calls == 2


async def test_no_session_and_step_up_answers_are_not_shared(pair: Pair) -> None:
    store = Store()
    client = pair.client(store)
    assert await pair.check(client, Credentials(cookie="forged")) is Outcome.LOGIN
    assert "set" not in store.calls


async def test_shared_lookups_are_counted(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []
    monkeypatch.setattr(_observe, "cache_lookup", lambda tier, hit: seen.append((tier, hit)))
    store = Store()
    one, two = pair.client(store), pair.client(store)
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(one, credentials) is Outcome.ALLOW
    assert await pair.check(two, credentials) is Outcome.ALLOW
    assert [s for s in seen if s[0] == "shared"] == [("shared", False), ("shared", True)]


# ---------------------------------------------------------------------------- logout


async def test_logout_on_one_instance_reaches_the_other(pair: Pair) -> None:
    server = fakeredis.FakeServer()
    one, two = pair.client(fake_redis(server)), pair.client(fake_redis(server))
    session = pair.fake.session("aal1")
    credentials = Credentials(cookie=session.cookie)
    assert await pair.check(one, credentials) is Outcome.ALLOW
    assert await pair.check(two, credentials) is Outcome.ALLOW
    pair.fake.revoke(session)
    one.invalidate(credentials)
    await wait_until(lambda: len(two._cache) == 0)
    assert await pair.check(two, credentials) is Outcome.LOGIN


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(0.005)


async def test_a_listener_that_lost_its_subscription_drops_what_it_holds(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "BACKOFF", 0.01)
    store = Store()
    calls: list[int] = []
    go_on = threading.Event()

    def listen(channel: str, on_message: Any, on_subscribed: Any, stop: threading.Event) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the subscription broke")
        go_on.wait(5)
        on_subscribed()  # messages may have been lost meanwhile
        stop.wait()

    store.listen = listen
    client = pair.client(store)
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert len(client._cache) == 1
    go_on.set()
    await wait_until(lambda: len(client._cache) == 0)
    assert len(calls) == 2


def test_messages_drop_only_the_named_entry(fake: FakeKratos) -> None:
    server = fakeredis.FakeServer()
    client = KratosClient(
        fake.config(cache_key_secret=SECRET),
        http_client=httpx.Client(transport=fake.transport()),
        timer=fake.clock,
        shared_cache=fake_redis(server),
    )
    with client:
        first = Credentials(cookie=fake.session("aal1").cookie)
        second = Credentials(cookie=fake.session("aal1").cookie)
        assert client.check(first, "aal1").allowed and client.check(second, "aal1").allowed
        assert client._shared is not None
        client._shared._on_message(b"kratos-aal:s:unknown")
        assert len(client._cache) == 2
        client._shared._on_message(name(client._shared, cookie=first.cookie or "").encode())
        assert len(client._cache) == 1
        client._shared._on_subscribed()
        assert len(client._cache) == 0
    client._http.close()


# ---------------------------------------------------------------------------- faults


async def test_a_failing_store_is_a_miss_then_left_alone_then_tried_again(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(_store, "_monotonic", lambda: clock[0])
    store = Store()
    store.error = ConnectionError("down")
    client = pair.client(store, cache_ttl=30, local_cache_ttl=0)
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert store.calls == ["read"]  # the write was not even tried
    # Backing off: no store call, every request asks Kratos.
    clock[0] += _store.BACKOFF - 0.01
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert store.calls == ["read"]
    assert pair.whoami_calls == 2
    # Back after the back-off, by itself.
    store.error = None
    clock[0] += 0.01
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert store.calls == ["read", "read", "lock", "read", "set", "unlock"]
    assert await pair.check(pair.client(store), credentials) is Outcome.ALLOW
    assert pair.whoami_calls == 3


@pytest.mark.parametrize(
    "error", [ConnectionError("x"), TimeoutError(), ValueError("odd reply"), RuntimeError()]
)
async def test_any_store_error_is_a_miss_never_an_error(pair: Pair, error: Exception) -> None:
    store = Store()
    client = pair.client(store)
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    store.error = error
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert await pair.check(client, Credentials(cookie="forged")) is Outcome.LOGIN
    client.invalidate(credentials)  # a lost delete is logged, not raised
    assert store.calls[-1] == "bury"


async def test_garbage_in_the_store_is_never_an_allow(pair: Pair) -> None:
    store = Store()
    client = pair.client(store)
    session = pair.fake.session("aal1")
    credentials = Credentials(cookie=session.cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    (key,) = store.data
    pair.fake.revoke(session)
    for bad in tampered(store.data[key]):
        store.data[key] = bad
        client.clear_cache()
        assert await pair.check(client, credentials) is Outcome.LOGIN


def test_the_redis_store_speaks_redis() -> None:
    server = fakeredis.FakeServer()
    store = fake_redis(server)
    reader = fakeredis.FakeRedis(server=server)
    store.set("k", b"v", 1.5)
    assert store.get("k") == b"v"
    assert 0 < reader.pttl("k") <= 1500
    assert asyncio.run(store.aget("k")) == b"v"
    asyncio.run(store.aset("k2", b"w", 1))
    assert reader.get("k2") == b"w"
    pubsub = reader.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]
    pubsub.subscribe("chan")
    store.delete("k", "chan")
    assert reader.get("k") is None
    message = None
    for _ in range(10):  # the subscription's own confirmation comes first, as None
        message = message or pubsub.get_message(timeout=0.1)
    assert message is not None
    assert message["data"] == b"k"
    pubsub.close()
    store.close()


def test_closing_stops_the_listener(fake: FakeKratos) -> None:
    server = fakeredis.FakeServer()
    client = KratosClient(
        fake.config(cache_key_secret=SECRET),
        http_client=httpx.Client(transport=fake.transport()),
        timer=fake.clock,
        shared_cache=fake_redis(server),
    )
    credentials = Credentials(cookie=fake.session("aal1").cookie)
    assert client.check(credentials, "aal1").allowed
    assert client._shared is not None
    listener = client._shared._listener
    assert listener is not None and listener.is_alive()
    client.close()
    assert not listener.is_alive()
    # Usable again: the listener starts anew on the next lookup.
    client.clear_cache()
    assert client.check(credentials, "aal1").allowed
    assert client._shared._listener is not None
    client.close()
    client._http.close()


async def test_a_logout_that_could_not_reach_the_store_is_retried(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "BACKOFF", 60.0)  # the retry thread keeps out of this one
    store = Store()
    client = pair.client(store, local_cache_ttl=0)
    session = pair.fake.session("aal1")
    credentials = Credentials(cookie=session.cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert store.data
    store.error = ConnectionError("away")
    client.invalidate(credentials)
    assert store.data  # the entry outlived the logout, for now
    store.error = None
    assert client._shared is not None
    client._shared._down_until = 0.0  # the back-off is over
    other = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(client, other) is Outcome.ALLOW
    assert store.calls[-7:] == ["read", "bury", "delete", "lock", "read", "set", "unlock"]
    assert not client._shared._pending
    (name_left,) = store.entries()
    assert name_left == name(client._shared, cookie=other.cookie)


async def test_a_lost_logout_is_retried_without_a_lookup(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "BACKOFF", 0.01)
    store = Store()
    client = pair.client(store)
    assert client._shared is not None
    sessions = [Credentials(cookie=pair.fake.session("aal1").cookie) for _ in range(2)]
    for credentials in sessions:
        assert await pair.check(client, credentials) is Outcome.ALLOW
    assert len(store.data) == 2
    store.error = ConnectionError("away")
    for credentials in sessions:  # the second logout finds the retry thread at work
        client.invalidate(credentials)
    await wait_until(lambda: store.calls.count("bury") >= 4)  # tried, and tried again
    assert len(store.data) == 2 and len(client._shared._pending) == 2
    calls = len(store.calls)
    store.error = None
    shared = client._shared
    await wait_until(lambda: not store.entries() and not shared._pending)
    assert set(store.calls[calls:]) == {"bury", "delete"}  # the retry thread, no lookup


def test_closing_stops_the_logout_retries(
    fake: FakeKratos, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "BACKOFF", 0.01)
    store = Store()
    store.error = ConnectionError("away")
    client = KratosClient(fake.config(cache_key_secret=SECRET), shared_cache=store)
    assert client._shared is not None
    client.invalidate(Credentials(cookie=fake.session("aal1").cookie))
    retrier = client._shared._retrier
    assert retrier is not None
    client.close()
    retrier.join(2)
    assert not retrier.is_alive()
    assert len(client._shared._pending) == 1  # still owed: the next lookup tries it


def test_a_retried_logout_stops_at_the_first_failure(fake: FakeKratos) -> None:
    store = Store()
    shared = _shared.SharedTier(
        fake.config(cache_key_secret=SECRET), store, lambda *_: None, lambda _: None
    )
    shared._pending.update({"a", "b"})
    store.error = ConnectionError()
    shared._retry_deletes()
    assert store.calls == ["bury"]
    assert shared._pending == {"a", "b"}


class Meddling(Store):
    """A store during whose read the logout message of what is read arrives."""

    tier: _shared.SharedTier | None = None

    def peek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        found = super().peek(key, lock)
        if ":t:" in lock:  # the read of the entry (beside its tombstone)
            assert self.tier is not None
            self.tier._on_message(key.encode())
        return found


async def test_a_logout_heard_during_a_shared_read_keeps_nothing(pair: Pair) -> None:
    store = Meddling()
    one, two = pair.client(Store()), pair.client(store)
    store.data = one._shared.store.data  # type: ignore[union-attr]
    assert two._shared is not None
    store.tier = two._shared
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(one, credentials) is Outcome.ALLOW
    # The request under way gets the answer it read; no copy is kept for later ones.
    assert await pair.check(two, credentials) is Outcome.ALLOW
    assert len(two._cache) == 0
    assert pair.whoami_calls == 1


async def test_a_logout_heard_while_kratos_answers_keeps_and_shares_nothing(pair: Pair) -> None:
    store = Meddling()
    client = pair.client(store)
    assert client._shared is not None
    store.tier = client._shared
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert len(client._cache) == 0
    assert "set" not in store.calls


async def test_only_whoami_answers_are_shared(pair: Pair) -> None:
    store = Store()
    client = pair.client(store)
    # An aal1 session on an aal2 route: the second-factor probe runs, and stays local.
    credentials = Credentials(cookie=pair.fake.session("aal1", totp=True).cookie)
    assert await pair.check(client, credentials, "aal2") is Outcome.STEP_UP
    assert pair.fake.calls["/self-service/login/browser"] == 1
    assert len(store.data) == 1
    assert all(key.startswith("kratos-aal:s:") for key in store.data)


# ---------------------------------------------------------------------------- coalescing


def lock_of(client: Client, credentials: Credentials) -> tuple[str, str]:
    assert client._shared is not None
    entry = name(client._shared, cookie=credentials.cookie)
    return entry, client._shared._lock_of(entry)


async def later(seconds: float, action: Callable[[], object]) -> None:
    await asyncio.sleep(seconds)
    action()


async def check_beside(pair: Pair, client: Client, credentials: Credentials) -> Outcome:
    """Check while this loop's other tasks run (a blocking check goes to a thread)."""
    if pair.mode == "async":
        return await pair.check(client, credentials)
    return await asyncio.to_thread(asyncio.run, pair.check(client, credentials))


async def test_a_waiter_takes_the_lock_holders_answer(pair: Pair) -> None:
    store = Store()
    client = pair.client(store)
    session = pair.fake.session("aal1")
    credentials = Credentials(cookie=session.cookie)
    entry, lock = lock_of(client, credentials)
    assert lock.startswith("kratos-aal:l:") and lock[13:] == entry[13:]
    store.data[lock] = b"1"  # another instance is asking Kratos

    def answer() -> None:
        from kratos_aal import Session

        assert client._shared is not None
        session_data = Session.from_json(pair.fake.session_json(session))
        store.data[entry] = client._shared.encode(entry, session_data, 30, pair.fake.clock())
        del store.data[lock]

    helper = asyncio.create_task(later(0.05, answer))
    outcome = await (
        pair.check(client, credentials)
        if pair.mode == "async"
        else asyncio.to_thread(asyncio.run, pair.check(client, credentials))
    )
    await helper
    assert outcome is Outcome.ALLOW
    assert pair.whoami_calls == 0
    assert "peek" in store.calls and "set" not in store.calls
    assert len(client._cache) == 1


async def test_a_waiter_asks_kratos_when_the_lock_goes_without_an_answer(pair: Pair) -> None:
    store = Store()
    client = pair.client(store)
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    _, lock = lock_of(client, credentials)
    store.data[lock] = b"1"
    helper = asyncio.create_task(later(0.03, lambda: store.data.pop(lock)))
    outcome = await (
        pair.check(client, credentials)
        if pair.mode == "async"
        else asyncio.to_thread(asyncio.run, pair.check(client, credentials))
    )
    await helper
    assert outcome is Outcome.ALLOW
    assert pair.whoami_calls == 1
    assert store.calls[-1] == "set"  # it answered; it held no lock, so it frees none


@pytest.mark.parametrize("timeout", [0.05, 3.0])
async def test_a_waiter_gives_up_after_a_short_wait(
    pair: Pair, timeout: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shared, "LOCK_WAIT", 0.1)
    store = Store()
    client = pair.client(store, timeout=timeout)
    assert client._shared is not None
    assert client._shared._lock_wait == min(0.1, timeout)
    assert client._shared._lock_ttl == timeout + 0.5
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    _, lock = lock_of(client, credentials)
    store.data[lock] = b"1"  # held by an instance that died
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert pair.whoami_calls == 1
    # It looked more than once while it waited (every 5 ms). How many times is not
    # asserted: on a busy machine the sleeps run long, and 4 looks need not fit in 50 ms.
    assert store.calls.count("peek") > 1


async def test_a_failing_lock_is_a_miss(pair: Pair) -> None:
    class NoLocks(Store):
        def add(self, key: str, value: bytes, ttl: float) -> bool:
            raise ConnectionError("no")

    store = NoLocks()
    client = pair.client(store)
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW
    assert pair.whoami_calls == 1
    assert "set" not in store.calls  # backing off


async def test_a_failing_unlock_is_logged_not_raised(pair: Pair) -> None:
    class NoUnlock(Store):
        def delete(self, key: str, channel: str | None) -> None:
            raise ConnectionError("no")

    client = pair.client(NoUnlock())
    credentials = Credentials(cookie=pair.fake.session("aal1").cookie)
    assert await pair.check(client, credentials) is Outcome.ALLOW


def test_a_forked_worker_starts_its_own_listener(
    fake: FakeKratos, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = fakeredis.FakeServer()
    client = KratosClient(
        fake.config(cache_key_secret=SECRET),
        http_client=httpx.Client(transport=fake.transport()),
        shared_cache=fake_redis(server),
    )
    assert client.check(Credentials(cookie=fake.session("aal1").cookie), "aal1").allowed
    assert client._shared is not None
    parent, parent_stop = client._shared._listener, client._shared._stop
    assert parent is not None
    import os

    # As after a fork: the same object, another process, no listener thread of its own.
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)
    assert client.check(Credentials(cookie=fake.session("aal1").cookie), "aal1").allowed
    assert client._shared._listener is not parent
    assert client._shared._listener_pid == child_pid
    client.close()
    parent_stop.set()  # (in a real fork, this thread is not in the child at all)
    parent.join(1)
    assert not parent.is_alive()
    client._http.close()


def test_after_a_fork_a_client_starts_afresh(
    fake: FakeKratos, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hook os.register_at_fork runs in a child (tests/shared/forking.py forks for real).
    exchanges = _exchange._Exchanges()
    monkeypatch.setattr(_exchange, "_EXCHANGES", exchanges)
    # A count of its own: resetting the process's would let calls of other tests still
    # under way give back slots they no longer hold, and raise the cap for later tests.
    calls = _calls._Calls()
    monkeypatch.setattr(_calls, "_CALLS", calls)
    calls.take(5)  # a call of the parent's, which never ends in the child
    owned = KratosClient(fake.config())
    injected_http = httpx.Client(transport=fake.transport())
    injected = KratosClient(fake.config(), http_client=injected_http)
    exchanges._idle = 3  # the parent's threads, absent from the child
    jobs, old_http, old_flights = exchanges._jobs, owned._http, owned._flights
    _client._after_fork_in_child()
    assert exchanges._idle == 0 and exchanges._jobs is not jobs
    assert calls._busy == 0
    assert owned._http is not old_http and owned._flights is not old_flights
    assert injected._http is injected_http  # the app's own client is the app's business
    for closing in (old_http, owned, injected, injected_http):
        closing.close()


def test_after_a_fork_a_tier_has_a_lock_of_its_own() -> None:
    one = tier()
    held = one._lock
    held.acquire()  # by a thread of the parent, which the child does not have
    _logouts._after_fork_in_child()
    assert one._lock is not held
    assert one._lock.acquire(blocking=False)
    held.release()
