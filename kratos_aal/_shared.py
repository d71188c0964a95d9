"""The shared cache tier: whoami answers kept in Redis (or Django's cache) for every instance.

The in-process cache stays in front and is read first; this tier is asked only on a local
miss, and only ever as an accelerator: any fault (Redis down, slow, answering garbage, an
entry that does not verify) is a miss, and the request asks Kratos as it would without it.

Keys are keyed hashes of the credential (``cache_key_secret``); values are signed with a
key derived from the same secret, name the key they were written under, and carry their
own wall-clock expiry, so an entry that is forged, stale, or read in reply to another key
is never an allow.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cachetools import LRUCache

from . import _observe
from ._cache import HOLD_TTL
from ._config import KratosConfig
from ._core import Fetch, WhoamiResult, whoami_request
from ._models import Credentials, Session
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    import redis

__all__ = ["RedisCache", "SharedCache", "SharedTier"]

T = TypeVar("T")
logger = logging.getLogger("kratos_aal")

#: The layout of a stored value; another number is a miss (written by another version).
FORMAT = 1
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
#: Seconds between two looks of an instance waiting for another's whoami answer.
LOCK_POLL = 0.005
#: Seconds a waiter waits at most for that answer before it asks Kratos itself: a lock
#: left behind by an instance that died (or lost Redis) must not hold requests for long.
LOCK_WAIT = 0.5
_WHOAMI_PATH = "/sessions/whoami"
#: Hex digits of a shared name's hash; the bytes they are written with.
_NAME_DIGITS = 40
_HEX = frozenset(b"0123456789abcdef")
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
            try:
                client = redis.Redis.from_url(
                    url or "",
                    socket_timeout=REDIS_TIMEOUT,
                    socket_connect_timeout=REDIS_TIMEOUT,
                    retry=Retry(NoBackoff(), 0),
                    health_check_interval=HEALTH_CHECK,
                )
            except (ValueError, TypeError):
                # KratosConfig checked the URL with redis-py's parser; the pool's own
                # options (max_connections=-1) are checked only here. The message of
                # redis-py may quote the URL and its password: it is left out.
                raise ConfigurationError(
                    "cache_url cannot be used by redis-py (an option in its query)"
                ) from None
            listener = redis.Redis.from_url(
                url or "",
                socket_timeout=LISTEN_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=HEALTH_CHECK,
            )
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


@dataclass(frozen=True, slots=True)
class SharedAnswer(WhoamiResult):
    """A whoami answer read from the shared tier: as cached as a local one.

    The plan asks Kratos again before denying from a cached answer; an answer another
    instance stored a while ago is no fresher than one of our own.
    """


def from_cache(value: object) -> bool:
    """Return whether *value* came from the shared tier."""
    return type(value) is SharedAnswer


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), b"kratos-aal shared cache " + purpose, hashlib.sha256).digest()


class SharedTier:
    """One client's view of a shared cache: names, signs, reads, writes, and listens.

    Args:
        config: The client's config (``cache_key_secret``, ``cache_key_prefix``,
            ``local_cache_ttl``).
        store: The shared cache.
        keep: Puts a value into the client's local tier: ``keep(effect, value, ttl, since)``
            (*since*: the client's logout generation when the lookup began).
        drop: Drops a local key; ``drop(None)`` drops every local entry.
        timer: POSIX time in seconds (the client's, so a test's fake clock drives expiry).

    Raises:
        ConfigurationError: ``cache_key_secret`` is not set.
    """

    def __init__(
        self,
        config: KratosConfig,
        store: SharedCache,
        keep: Callable[[Fetch[Any], Any, float, int], None],
        drop: Callable[[bytes | None], None],
        timer: Callable[[], float] = time.time,
    ) -> None:
        if not config.cache_key_secret:
            raise ConfigurationError(
                "cache_key_secret is required with a shared cache: set it to a random "
                "string of at least 16 characters, the same on every instance"
            )
        self.config = config
        self.store = store
        self._keep = keep
        self._drop = drop
        self._timer = timer
        self._name_key = _derive(config.cache_key_secret, b"key")
        self._sign_key = _derive(config.cache_key_secret, b"value")
        self._prefix = config.cache_key_prefix
        self.channel = f"{self._prefix}invalidate"
        self._name_head = f"{self._prefix}s:".encode()
        self._junk_seen = False
        self._lock = threading.Lock()
        # Shared name -> local key, so that a message naming an entry drops our copy.
        self._names: LRUCache[str, bytes] = LRUCache(config.cache_maxsize)
        # Shared name -> when its logout was heard: a load that started before must not
        # keep what it read. Shared names whose delete failed, to try again.
        self._heard: LRUCache[str, float] = LRUCache(config.cache_maxsize)
        self._pending: set[str] = set()
        # Concurrent cold lookups of one session on several instances make one whoami
        # call: the first takes a lock for as long as Kratos may take, the others wait.
        self._lock_ttl = config.timeout + 0.5
        # A logout leaves a tombstone beside the entry: while it lasts, no instance keeps
        # or shares a session for that name (SPEC §5a). It outlives the hold (cache_ttl)
        # and any entry a whoami under way at the logout could still write.
        self._tomb_ttl = config.cache_ttl + config.timeout + 1.0
        self._lock_wait = min(LOCK_WAIT, config.timeout)
        self._down_until = 0.0
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._listener_pid: int | None = None
        self._retrier: threading.Thread | None = None
        _TIERS.add(self)

    # ------------------------------------------------------------------ names and values

    def name_of(self, request: Any) -> str | None:
        """Return the shared key for a whoami *request*, ``None`` for any other request."""
        if not request.url.path.endswith(_WHOAMI_PATH):
            return None
        token = request.headers.get("x-session-token")
        if token:
            material = "t" + token
        else:
            # whoami_request sends exactly "<cookie_name>=<value>".
            material = "c" + request.headers.get("cookie", "").partition("=")[2]
        digest = hmac.new(
            self._name_key,
            f"{self.config.public_url}\0{material}".encode(),
            hashlib.sha256,
        ).hexdigest()
        return f"{self._prefix}s:{digest[:_NAME_DIGITS]}"

    def encode(self, name: str, session: Session, ttl: float, now: float) -> bytes:
        """Return the signed value that keeps *session* under *name* until ``now + ttl``."""
        body = json.dumps(
            {"v": FORMAT, "k": name, "exp": now + ttl, "session": dict(session.raw)},
            separators=(",", ":"),
        ).encode()
        signature = hmac.new(self._sign_key, body, hashlib.sha256).hexdigest().encode()
        return signature + b"." + body

    def decode(self, name: str, value: object, now: float) -> tuple[WhoamiResult, float] | None:
        """Return the session kept in *value* and its seconds left, or ``None`` (a miss)."""
        try:
            if not isinstance(value, bytes):
                return None
            signature, _, body = value.partition(b".")
            expected = hmac.new(self._sign_key, body, hashlib.sha256).hexdigest().encode()
            if not hmac.compare_digest(signature, expected):
                return None
            data = json.loads(body)
            left = float(data["exp"]) - now
            if data["v"] != FORMAT or data["k"] != name or not left > 0:
                return None
            session = Session.from_json(data["session"])
            if not session.active:
                return None
            if session.expires_at is not None:
                left = min(left, session.expires_at.timestamp() - now)
            return (SharedAnswer(session), left) if left > 0 else None
        except Exception:
            # Whatever a value holds, it is an accelerator's miss, never an error.
            return None

    def _lock_of(self, name: str) -> str:
        # "<prefix>s:<hash>" is locked by "<prefix>l:<hash>" while one instance asks Kratos.
        return f"{self._prefix}l:{name[len(self._prefix) + 2 :]}"

    def _tomb_of(self, name: str) -> str:
        # "<prefix>t:<hash>" is set by a logout of "<prefix>s:<hash>".
        return f"{self._prefix}t:{name[len(self._prefix) + 2 :]}"

    def local_ttl(self, ttl: float) -> float:
        """Return how long a local copy may stay in front of the shared tier."""
        return min(ttl, self.config.local_cache_ttl)

    # ------------------------------------------------------------------ faults

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

    # ------------------------------------------------------------------ blocking side

    def load(
        self, effect: Fetch[T], kratos: Callable[[Fetch[T]], tuple[T, float]], since: int
    ) -> T:
        """Return *effect*'s value from the shared tier, else from *kratos* (then share it).

        *since* is the client's logout generation when the lookup began (see ``keep``).
        """
        request = effect.request()
        name = self.name_of(request)
        if name is None:
            result, ttl = kratos(effect)
            self._keep(effect, result, ttl, since)
            return result
        self._listen()
        started = _monotonic()
        lock: str | None = None
        held = False  # a logout's tombstone lay there before Kratos was asked
        if not effect.refresh:
            value: object = None
            if self._usable():
                try:
                    value, held = self.store.peek(name, self._tomb_of(name))
                except Exception as error:
                    self._fault(error, "a read")
                else:
                    if self._pending:
                        self._retry_deletes()
            if not held:
                found = self._found(effect, name, value, started, since)
                if found is None:
                    lock, found = self._lead_or_wait(effect, name, started, since)
                if found is not None:
                    return found  # type: ignore[no-any-return]
        try:
            result, ttl = kratos(effect)
            buried = held or (self._has_session(result) and self._buried(name))
            shared = self._after_kratos(effect, name, result, ttl, started, since, buried, held)
            if shared is not None:
                try:
                    self.store.set(name, shared, ttl)
                except Exception as error:
                    self._fault(error, "a write")
        finally:
            if lock is not None:
                try:
                    self.store.delete(lock, None)
                except Exception as error:
                    self._fault(error, "an unlock")
        return result

    def _buried(self, name: str) -> bool:
        """Return whether a logout of *name* left its tombstone (``False`` when Redis fails)."""
        if not self._usable():
            return False
        try:
            return self.store.peek(name, self._tomb_of(name))[1]
        except Exception as error:
            self._fault(error, "a read")
            return False

    async def _aburied(self, name: str) -> bool:
        """:meth:`_buried` without blocking the loop."""
        if not self._usable():
            return False
        try:
            return (await self.store.apeek(name, self._tomb_of(name)))[1]
        except Exception as error:
            self._fault(error, "a read")
            return False

    @staticmethod
    def _has_session(result: object) -> bool:
        return getattr(result, "session", None) is not None

    def _lead_or_wait(
        self, effect: Fetch[Any], name: str, started: float, since: int
    ) -> tuple[str | None, Any]:
        """Take *name*'s lock, or wait for the answer of the instance that holds it.

        Returns ``(lock, None)`` to ask Kratos and unlock after, ``(None, answer)`` with
        the other instance's answer, or ``(None, None)`` to ask Kratos anyway (no answer
        came: the holder found no session, failed, or took longer than ``LOCK_WAIT``).
        """
        if not self._usable():
            return None, None
        lock = self._lock_of(name)
        try:
            if self.store.add(lock, b"1", self._lock_ttl):
                return lock, None
            deadline = time.monotonic() + self._lock_wait
            while time.monotonic() < deadline:
                time.sleep(LOCK_POLL)
                value, held = self.store.peek(name, lock)
                if value is not None or not held:
                    return None, self._found(effect, name, value, started, since)
        except Exception as error:
            self._fault(error, "coalescing")
        return None, None

    def invalidate(self, credentials: Credentials) -> None:
        """Delete the shared entry of *credentials* and tell every instance to drop theirs.

        Tried even while the tier is backing off: a logout matters more than a timeout.
        """
        name = self.name_of(whoami_request(self.config, credentials))
        assert name is not None
        self._listen()
        with self._lock:
            # Heard here at once: a lookup of ours under way keeps and shares nothing.
            self._heard[name] = _monotonic()
        try:
            self._bury(name)
        except Exception as error:
            self._fault(error, "a delete (logout)")
            # Deleted as soon as the store answers again (a logout must not be lost).
            with self._lock:
                if len(self._pending) < self.config.cache_maxsize:
                    self._pending.add(name)
            self._retry_soon()

    # ------------------------------------------------------------------ awaitable side

    async def aload(
        self,
        effect: Fetch[T],
        kratos: Callable[[Fetch[T]], Awaitable[tuple[T, float]]],
        since: int,
    ) -> T:
        """Return *effect*'s value; see :meth:`load`."""
        request = effect.request()
        name = self.name_of(request)
        if name is None:
            result, ttl = await kratos(effect)
            self._keep(effect, result, ttl, since)
            return result
        self._listen()
        started = _monotonic()
        lock: str | None = None
        held = False  # a logout's tombstone lay there before Kratos was asked
        if not effect.refresh:
            value: object = None
            if self._usable():
                try:
                    value, held = await self.store.apeek(name, self._tomb_of(name))
                except Exception as error:
                    self._fault(error, "a read")
                else:
                    if self._pending:
                        await asyncio.to_thread(self._retry_deletes)
            if not held:
                found = self._found(effect, name, value, started, since)
                if found is None:
                    lock, found = await self._alead_or_wait(effect, name, started, since)
                if found is not None:
                    return found  # type: ignore[no-any-return]
        try:
            result, ttl = await kratos(effect)
            buried = held or (self._has_session(result) and await self._aburied(name))
            shared = self._after_kratos(effect, name, result, ttl, started, since, buried, held)
            if shared is not None:
                try:
                    await self.store.aset(name, shared, ttl)
                except Exception as error:
                    self._fault(error, "a write")
        finally:
            if lock is not None:
                try:
                    await self.store.adelete(lock)
                except Exception as error:
                    self._fault(error, "an unlock")
        return result

    async def _alead_or_wait(
        self, effect: Fetch[Any], name: str, started: float, since: int
    ) -> tuple[str | None, Any]:
        """Take *name*'s lock or wait for its holder's answer; see :meth:`_lead_or_wait`."""
        if not self._usable():
            return None, None
        lock = self._lock_of(name)
        try:
            if await self.store.aadd(lock, b"1", self._lock_ttl):
                return lock, None
            deadline = time.monotonic() + self._lock_wait
            while time.monotonic() < deadline:
                await asyncio.sleep(LOCK_POLL)
                value, held = await self.store.apeek(name, lock)
                if value is not None or not held:
                    return None, self._found(effect, name, value, started, since)
        except Exception as error:
            self._fault(error, "coalescing")
        return None, None

    # ------------------------------------------------------------------ both sides

    def _found(
        self, effect: Fetch[Any], name: str, value: object, started: float, since: int
    ) -> Any:
        found = None if value is None else self.decode(name, value, self._timer())
        _observe.cache_lookup("shared", found is not None)
        if found is None:
            return None
        result, left = found
        # A logout heard while we read: this request may use the answer, no later one.
        if not self._remember(name, effect.key, started):
            self._keep(effect, result, left, since)
        return result

    def _after_kratos(
        self,
        effect: Fetch[Any],
        name: str,
        result: object,
        ttl: float,
        started: float,
        since: int,
        buried: bool,
        held: bool,
    ) -> bytes | None:
        """Keep Kratos's answer locally; return the value to share, or ``None``.

        Nothing is kept or shared when a logout was heard since *started*, or when a
        logout's tombstone came while Kratos was asked. A tombstone that lay there
        before (*held*: a request between a logout and Kratos's end of the session)
        lets the answer be kept locally for ``HOLD_TTL`` at most, and never shared.
        """
        if self._remember(name, effect.key, started, self._has_session(result)):
            return None
        if buried:
            if held:
                self._keep(effect, result, min(ttl, HOLD_TTL), since)
            return None
        self._keep(effect, result, ttl, since)
        session = getattr(result, "session", None)
        if not isinstance(result, WhoamiResult) or session is None or ttl < 0.001:
            return None
        if not self._usable():
            return None
        return self.encode(name, session, ttl, self._timer())

    def _remember(self, name: str, key: bytes, started: float, session: bool = True) -> bool:
        """Map *name* to the local *key*; return whether a logout was heard since *started*.

        Only a *session* is mapped: a logout message has nothing else to drop, and bogus
        cookies (a 401 each) must not push a live session's name out of the map, which
        would leave its local copy allowed after a logout elsewhere.
        """
        with self._lock:
            if session:
                self._names[name] = key
            heard = self._heard.get(name)
        return heard is not None and heard >= started

    def _on_message(self, data: bytes) -> None:
        # Only invalidate() publishes here, and only names: anything else (a stranger's 1 MB,
        # bytes that are no name) is dropped, and kept nowhere.
        if not self._is_name(data):
            self._junk(len(data))
            return
        name = data.decode("ascii")
        with self._lock:
            key = self._names.pop(name, None)
            self._heard[name] = _monotonic()
        if key is not None:
            self._drop(key)

    def _is_name(self, data: bytes) -> bool:
        """Return whether *data* is a shared name, as :meth:`name_of` makes them."""
        head = self._name_head
        return (
            len(data) == len(head) + _NAME_DIGITS
            and data.startswith(head)
            and all(byte in _HEX for byte in data[len(head) :])
        )

    def _junk(self, size: int) -> None:
        # The size only: whatever it holds is a stranger's, and may be anything.
        level = logging.DEBUG if self._junk_seen else logging.WARNING
        self._junk_seen = True
        logger.log(
            level,
            "kratos_aal shared cache: ignored a message of %d bytes on %s that names no "
            "entry (only kratos-aal should publish there)",
            size,
            self.channel,
        )

    def _on_subscribed(self) -> None:
        # Messages sent while we were not subscribed are lost: drop what we hold, and
        # delete what our own logouts could not while Redis was away.
        self._drop(None)
        self._retry_deletes()

    def _retry_deletes(self) -> None:
        with self._lock:
            pending = list(self._pending)
        for name in pending:
            try:
                self._bury(name)
            except Exception as error:
                self._fault(error, "a delete (logout)")
                return
            with self._lock:
                self._pending.discard(name)

    def _bury(self, name: str) -> None:
        """Lay *name*'s tombstone, delete its entry, and tell every instance.

        The tombstone first: an instance whose whoami was under way writes the entry
        after it saw no tombstone, or not at all; a reader that finds the tombstone
        ignores whatever entry lies beside it.
        """
        self.store.set(self._tomb_of(name), b"1", self._tomb_ttl)
        self.store.delete(name, self.channel)

    def _retry_soon(self) -> None:
        """Retry the pending deletes after each back-off, until they are done.

        On a thread of its own: the instance that served a logout may get no request
        after it (the user has gone), and its lookups were the only other retry.
        """
        with self._lock:
            if self._retrier is not None and self._retrier.is_alive():
                return
            self._retrier = retrier = threading.Thread(
                target=self._retry_pending,
                args=(self._stop,),
                name="kratos-aal-logout-retry",
                daemon=True,
            )
        retrier.start()

    def _retry_pending(self, stop: threading.Event) -> None:
        while self._pending and not stop.wait(BACKOFF):
            self._retry_deletes()

    def _listen(self) -> None:
        """Start the invalidation listener once per process (lazily: on the first lookup)."""
        if self._listener_pid == os.getpid() or self.store.listen is None:
            return
        with self._lock:
            # A forked worker (gunicorn --preload) inherits the object but not the thread.
            if self._listener_pid != os.getpid():
                self._listener_pid = os.getpid()
                self._stop = stop = threading.Event()
                self._listener = listener = threading.Thread(
                    target=self._run_listener,
                    args=(stop,),
                    name="kratos-aal-invalidations",
                    daemon=True,
                )
                listener.start()

    def _run_listener(self, stop: threading.Event) -> None:
        listen = self.store.listen
        assert listen is not None
        while not stop.is_set():
            try:
                listen(self.channel, self._on_message, self._on_subscribed, stop)
            except Exception as error:
                self._fault(error, "listening for logouts")
                stop.wait(BACKOFF)

    def close(self) -> None:
        """Stop the listener and close the store's connections; both restart on next use."""
        with self._lock:
            listener, self._listener = self._listener, None
            self._listener_pid = None
            self._stop.set()
        if listener is not None:
            listener.join(timeout=2 * _POLL + REDIS_TIMEOUT)
        try:
            self.store.close()
        except Exception as error:
            self._fault(error, "closing")


#: Every tier of this process, to mend after a fork.
_TIERS: weakref.WeakSet[SharedTier] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by one of the parent's threads (its listener, hearing a logout) at the
    # fork would be held for ever in the child: the child's first lookup would hang.
    for tier in list(_TIERS):
        tier._lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX system has it
    os.register_at_fork(after_in_child=_after_fork_in_child)


def tier_for(
    config: KratosConfig,
    store: SharedCache | None,
    keep: Callable[[Fetch[Any], Any, float, int], None],
    drop: Callable[[bytes | None], None],
    timer: Callable[[], float],
) -> SharedTier | None:
    """Return the shared tier for *config* (``cache_url``) or *store*, or ``None``."""
    if store is None:
        if config.cache_url is None:
            return None
        return SharedTier(config, RedisCache(config.cache_url), keep, drop, timer)
    return SharedTier(config, store, keep, drop, timer)
