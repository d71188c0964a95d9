"""The invalidation channel: what a stranger publishes there cannot knock listeners offline.

Issue 21 item 14: a 1 MB message on the channel made every listener fail (Redis's 0.1 s
timeout on a read of that size), back off for a second and, on subscribing again, drop
every local entry. Oversized and malformed messages are now dropped one by one.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import pytest

from kratos_aal import KratosConfig, _shared, _store

from .conftest import SECRET, RedisServer


class Recorder:
    """The client's side of a tier: which local keys it was told to drop."""

    def __init__(self) -> None:
        self.dropped: list[bytes | None] = []
        self.changed = threading.Condition()

    def keep(self, *args: Any) -> None:
        pass

    def drop(self, key: bytes | None) -> None:
        with self.changed:
            self.dropped.append(key)
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[bytes | None]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.dropped) >= count, timeout=30)
            return list(self.dropped)


def listen_at(url: str) -> tuple[_shared.SharedTier, Recorder]:
    """Return a tier listening on the channel of the Redis at *url*, once subscribed."""
    config = KratosConfig("http://kratos:4433", cache_url=url, cache_key_secret=SECRET)
    recorder = Recorder()
    tier = _shared.SharedTier(config, _store.RedisCache(url), recorder.keep, recorder.drop)
    tier._listen()
    assert recorder.wait_for(1) == [None]  # subscribed: what it held is dropped once
    return tier, recorder


def hold(tier: _shared.SharedTier, digit: str) -> str:
    """Make *tier* hold an entry (local key ``b"local-key"``); return its shared name."""
    name = "kratos-aal:s:" + digit * 40  # what invalidate() publishes: a shared name
    with tier._lock:
        tier._names[name] = b"local-key"
    return name


@pytest.fixture
def listening(redis_server: RedisServer) -> Any:
    tier, recorder = listen_at(redis_server.url)
    yield tier, recorder
    tier.close()


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param(b"x" * (1 << 20), id="1-MB"),
        pytest.param(b"kratos-aal:s:" + b"\xff" * 40, id="not-ascii"),
        pytest.param(b"kratos-aal:s:" + b"a" * 4000, id="too-long-for-a-name"),
        pytest.param(b"", id="empty"),
    ],
)
def test_junk_on_the_channel_is_dropped_and_the_listener_stays(
    listening: Any, redis_server: RedisServer, junk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    tier, recorder = listening
    name = hold(tier, "0")
    publisher = redis_server.client()
    with caplog.at_level(logging.DEBUG, logger="kratos_aal"):
        publisher.publish(tier.channel, junk)
        publisher.publish(tier.channel, name)
        # The real logout is applied, and nothing else: no fault, no resubscription (which
        # would drop every local entry again: a second None).
        assert recorder.wait_for(2) == [None, b"local-key"]
    publisher.close()
    assert tier._usable()  # no fault, no back-off
    assert list(tier._heard) == [name]  # the junk is kept nowhere
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"ignored a message of {len(junk)} bytes on kratos-aal:invalidate" in (
        warning.getMessage()
    )
    if junk:
        assert junk[-16:].decode("latin-1") not in warning.getMessage()


def test_only_the_first_junk_is_a_warning(
    listening: Any, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    tier, recorder = listening
    name = hold(tier, "f")
    publisher = redis_server.client()
    with caplog.at_level(logging.DEBUG, logger="kratos_aal"):
        for junk in (b"one", b"two", "kratos-aal:s:" + "F" * 40):
            publisher.publish(tier.channel, junk)
        publisher.publish(tier.channel, name)
        assert recorder.wait_for(2) == [None, b"local-key"]
    publisher.close()
    levels = [r.levelno for r in caplog.records if "ignored a message" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]


class SlowLink:
    """A TCP proxy to Redis whose link pauses 0.3 s in the middle of any large reply.

    With *hold*, a SUBSCRIBE on its way to Redis waits that many seconds first.
    """

    def __init__(self, upstream: int, hold: float = 0.0) -> None:
        self.upstream = upstream
        self.hold = hold
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"
        self.stalls = 0
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, slow: bool) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if not slow and self.hold and b"SUBSCRIBE" in data.upper():
                    time.sleep(self.hold)
                if slow and sent > 65536:
                    # Halfway through a large reply: longer than Redis's 0.1 s timeout.
                    time.sleep(0.3)
                    self.stalls += 1
                    sent = 0
                target.sendall(data)
                sent += len(data)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            sock.close()


def test_a_large_message_over_a_slow_link_keeps_the_listener(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    link = SlowLink(redis_server.port)
    tier, recorder = listen_at(link.url)
    try:
        name = hold(tier, "1")
        publisher = redis_server.client()
        with caplog.at_level(logging.WARNING, logger="kratos_aal"):
            publisher.publish(tier.channel, b"x" * (1 << 20))
            publisher.publish(tier.channel, name)
            # Before: the read timed out mid-message, the listener backed off for a second and
            # subscribed again, dropping everything (a second None) before the logout.
            assert recorder.wait_for(2) == [None, b"local-key"]
        publisher.close()
        assert link.stalls > 0  # the link did pause mid-message
        assert tier._usable()
        assert not [r for r in caplog.records if "failed" in r.getMessage()]
    finally:
        tier.close()
        link.close()


def test_what_is_held_is_dropped_once_redis_has_taken_the_subscription(
    redis_server: RedisServer,
) -> None:
    # The drop of everything held (messages sent while not subscribed are lost) came as
    # SUBSCRIBE went out, not when Redis took it: a logout published in between, on a
    # slow link or a busy machine, reached nobody, and an entry cached meanwhile stayed.
    link = SlowLink(redis_server.port, hold=0.5)
    tier, recorder = listen_at(link.url)
    publisher = redis_server.client()
    try:
        name = hold(tier, "2")
        assert publisher.publish(tier.channel, name) == 1  # one listener hears it
        assert recorder.wait_for(2) == [None, b"local-key"]
    finally:
        publisher.close()
        tier.close()
        link.close()
