"""The awaitable client's HTTP connection pools: one per running event loop.

A pooled connection belongs to the event loop that opened it, and Django under WSGI
(async_to_sync), Flask and test clients run a new loop per request: one HTTP client per
running loop, each closed when its loop shuts down. The pool is kept on the loop itself
(see :func:`_pools_on`), so that it goes when the loop goes; the client keeps only weak
references, to close them all in ``aclose()``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from ._config import KratosConfig

__all__ = ["LoopPools", "no_cookies"]


def no_cookies() -> CookieJar:
    """Return a jar that keeps no cookie Kratos sets.

    Our own HTTP client keeps no cookie Kratos sets (a refreshed session cookie, a CSRF
    cookie), so nothing of one user can ride along with another's request.
    """
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class LoopPools:
    """The pools part of the awaitable client: made per running loop, closed with it."""

    config: KratosConfig

    def _init_pools(self, http_client: httpx.AsyncClient | None) -> None:
        self._injected = http_client
        self._loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._loops_lock = threading.Lock()
        # Made once, for every loop's client: building one (the CA bundle) took 24 ms and
        # ~1 MB of short-lived allocations, per request under Django's WSGI handler.
        self._tls: ssl.SSLContext | None = None

    def _new_http(self) -> httpx.AsyncClient:
        with self._loops_lock:
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            tls = self._tls
        return httpx.AsyncClient(
            timeout=self.config.timeout, follow_redirects=False, cookies=no_cookies(), verify=tls
        )

    async def _http_client(self) -> httpx.AsyncClient | None:
        """Return the HTTP client of the running loop, or ``None`` when the loop keeps none."""
        if self._injected is not None:
            return self._injected
        loop = asyncio.get_running_loop()
        pools = _pools_on(loop)
        if pools is None:
            return None
        with self._loops_lock:
            found = pools.get(self)
        if found is not None:
            return found[0]
        http = self._new_http()
        # An async generator started on this loop is closed by the loop's own shutdown
        # (asyncio.run, asgiref and anyio call shutdown_asyncgens): its finally closes
        # the client's connections on the loop they belong to. Nothing runs between
        # here and the entry below (the first step does not suspend), so no other task
        # of this loop makes a second pool.
        keeper = _close_at_shutdown(http, pools, weakref.ref(self))
        await keeper.__anext__()
        with self._loops_lock:
            pools[self] = (http, keeper)
            self._loops.add(loop)
        return http

    def _forget_pool(self, pools: _Pools, http: httpx.AsyncClient) -> None:
        with self._loops_lock:
            if pools.get(self, (None,))[0] is http:  # not a newer pool made after aclose()
                del pools[self]

    async def _close_pools(self) -> None:
        """Close every loop's pool: this loop's here, a running one's on its own loop."""
        current = asyncio.get_running_loop()
        with self._loops_lock:
            # Read, never made, here: only a loop's own thread puts its pools on it.
            pools = [(loop, getattr(loop, _POOLS, None)) for loop in self._loops]
            self._loops.clear()
            keepers = [
                (loop, found[1])
                for loop, on_loop in pools
                if on_loop is not None and (found := on_loop.pop(self, None)) is not None
            ]
        for loop, keeper in keepers:
            if loop is current:
                await keeper.aclose()
            elif not loop.is_closed() and loop.is_running():
                # Pools of other, still running loops are closed on their own loop.
                asyncio.run_coroutine_threadsafe(keeper.aclose(), loop)


#: The attribute of an event loop that holds its pools: {client (weakly): (http, keeper)}.
_POOLS = "_kratos_aal_pools"
_Pools = weakref.WeakKeyDictionary[LoopPools, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]]


def _pools_on(loop: asyncio.AbstractEventLoop) -> _Pools | None:
    """Return the pools kept on *loop*, or ``None`` when *loop* takes no attribute.

    A pool refers to its loop (its connections' transports, and the keeper's finalizer,
    which is a method of the loop), so a pool held anywhere else would hold the loop, and
    everything it holds, for as long as the client lives: one loop per request under
    Django's WSGI handler. Held by the loop, loop and pools go together; the client's own
    entry goes with the client.
    """
    pools: _Pools | None = getattr(loop, _POOLS, None)
    if pools is None:
        pools = weakref.WeakKeyDictionary()
        try:
            setattr(loop, _POOLS, pools)
        except AttributeError:  # a loop without a __dict__ (none of asyncio's or uvloop's)
            return None
    return pools


async def _close_at_shutdown(
    http: httpx.AsyncClient, pools: _Pools, owner: weakref.ref[LoopPools]
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        # Out of the loop's pools first: what refers to the loop then is the loop's own,
        # freed as soon as the loop is, without waiting for the cycle collector.
        client = owner()
        if client is not None:
            client._forget_pool(pools, http)
        del client
        await http.aclose()
        # A closed transport lets go of its socket in a callback of the loop: let it run
        # before the loop itself closes.
        for _ in range(3):
            await asyncio.sleep(0)
