"""The shared cache's store: the protocol every store meets, and Redis through redis-py.

Also the tier's back-off: how long a store that failed is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    import redis

__all__ = ["Faults", "Listen", "RedisCache", "SharedCache"]

logger = logging.getLogger("kratos_aal")

#: Seconds a Redis command may take before it counts as a fault (a miss).
REDIS_TIMEOUT = 0.1
#: Seconds the tier is left alone after a fault, so a dead Redis does not add its timeout
#: to every request; the next lookup after that tries again.
BACKOFF = 1.0
#: Seconds of silence after which a connection is PINGed before use.
HEALTH_CHECK = 10
#: Seconds between two polls of the invalidation channel (how fast close() returns).
_POLL = 0.1
#: Seconds the logout listener waits for the rest of a message it has begun to read. It is
#: on no request's path, so a large message over a slow link is worth waiting for: a
#: timeout there would cost a second of back-off and a drop of every local entry.
LISTEN_TIMEOUT = 5.0
# The back-off's clock, apart so that tests can move it.
_monotonic = time.monotonic

#: ``listen(channel, on_message, on_subscribed, stop)``: deliver messages until *stop*;
#: *on_subscribed* once the store has taken the subscription (each time it is made again).
Listen = Callable[[str, Callable[[bytes], None], Callable[[], None], threading.Event], None]


class SharedCache(Protocol):
    """Where shared entries live: bytes under string keys, each with a time to live.

    Every method may raise anything: the tier treats it as a miss (or a lost delete).
    ``listen`` is ``None`` for stores without publish/subscribe (Django's caches).
    """

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: float) -> None: ...
    def delete(self, key: str, channel: str | None) -> None: ...
    def add(self, key: str, value: bytes, ttl: float) -> bool: ...
    def peek(self, key: str, lock: str) -> tuple[bytes | None, bool]: ...
    async def aget(self, key: str) -> bytes | None: ...
    async def aset(self, key: str, value: bytes, ttl: float) -> None: ...
    async def aadd(self, key: str, value: bytes, ttl: float) -> bool: ...
    async def apeek(self, key: str, lock: str) -> tuple[bytes | None, bool]: ...
    async def adelete(self, key: str) -> None: ...

    listen: Listen | None

    def close(self) -> None: ...


class RedisCache:
    """Redis through redis-py: GET, SET with PX, DEL plus PUBLISH, and SUBSCRIBE.

    Args:
        url: ``redis://`` or ``rediss://``; its query may set ``socket_timeout``.
        client: A ``redis.Redis`` to use instead (tests pass ``fakeredis``).
    """

    def __init__(self, url: str | None = None, *, client: redis.Redis | None = None) -> None:
        if client is None:
            try:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry
            except ImportError:  # pragma: no cover - the extra is installed in the suite
                raise ConfigurationError(
                    "cache_url needs redis-py: pip install 'kratos-aal[redis]'"
                ) from None

            # No retries: a retried command would add its timeout again, and a miss costs
            # only one Kratos call. The URL's own socket_timeout wins over ours.
            # The health check PINGs a connection idle for that long before using it: a
            # subscription cut without a word (a network partition) is found and renewed.
            def connect(socket_timeout: float) -> redis.Redis:
                return redis.Redis.from_url(
                    url or "",
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=REDIS_TIMEOUT,
                    retry=Retry(NoBackoff(), 0),
                    health_check_interval=HEALTH_CHECK,
                )

            try:
                client = connect(REDIS_TIMEOUT)
            except (ValueError, TypeError):
                # KratosConfig checked the URL with redis-py's parser; the pool's own
                # options (max_connections=-1) are checked only here. The message of
                # redis-py may quote the URL and its password: it is left out.
                raise ConfigurationError(
                    "cache_url cannot be used by redis-py (an option in its query)"
                ) from None
            listener = connect(LISTEN_TIMEOUT)
        else:
            listener = client
        self._redis = client
        self._listener = listener
        self.listen: Listen | None = self._listen

    def get(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        value = self._redis.get(key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Keep *value* under *key* for *ttl* seconds (whole milliseconds, rounded down)."""
        self._redis.set(key, value, px=int(ttl * 1000))

    def delete(self, key: str, channel: str | None) -> None:
        """Delete *key*, then tell every subscriber of *channel* (if any) to drop its copy."""
        self._redis.delete(key)
        if channel is not None:
            self._redis.publish(channel, key)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set *key* only if it is not set (``SET NX PX``); return whether it was set."""
        return bool(self._redis.set(key, value, px=max(1, int(ttl * 1000)), nx=True))

    def peek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        """Return *key*'s value and whether *lock* is still held, in one round trip."""
        value, held = self._redis.mget(key, lock)
        return (value if isinstance(value, bytes) else None), held is not None

    # redis-py's blocking client on a worker thread: one connection pool serves every
    # event loop (Django and Flask run a new loop per request), and a command's timeout
    # bounds the wait.
    async def aget(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``, without blocking the loop."""
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """Keep *value* under *key*, without blocking the loop."""
        await asyncio.to_thread(self.set, key, value, ttl)

    async def aadd(self, key: str, value: bytes, ttl: float) -> bool:
        """Set *key* if it is not set, without blocking the loop."""
        return await asyncio.to_thread(self.add, key, value, ttl)

    async def apeek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        """Return *key*'s value and whether *lock* is held, without blocking the loop."""
        return await asyncio.to_thread(self.peek, key, lock)

    async def adelete(self, key: str) -> None:
        """Delete *key* (no message), without blocking the loop."""
        await asyncio.to_thread(self.delete, key, None)

    def _listen(
        self,
        channel: str,
        on_message: Callable[[bytes], None],
        on_subscribed: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        pubsub = self._listener.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
        try:
            pubsub.subscribe(channel)
            while not stop.is_set():
                message = pubsub.get_message(timeout=_POLL)
                if message is None:
                    continue
                if message.get("type") == "subscribe":
                    # Only now are logouts heard: one published between SUBSCRIBE going
                    # out and Redis taking it was lost, and so must be what we hold.
                    on_subscribed()
                elif message.get("type") == "message" and isinstance(message.get("data"), bytes):
                    on_message(message["data"])
        finally:
            pubsub.close()

    def close(self) -> None:
        """Close the connections (they reopen on the next command)."""
        self._redis.close()
        if self._listener is not self._redis:
            self._listener.close()


class Faults:
    """A tier's back-off: after a fault, the store is left alone for ``BACKOFF`` seconds."""

    _down_until: float

    def _usable(self) -> bool:
        return _monotonic() >= self._down_until

    def _fault(self, error: BaseException, doing: str) -> None:
        first = self._usable()
        self._down_until = _monotonic() + BACKOFF
        if first:
            # The type name only: a client's message may quote the URL and its password.
            logger.warning(
                "kratos_aal shared cache: %s failed (%s); asking Kratos for %g s",
                doing,
                type(error).__name__,
                BACKOFF,
            )
