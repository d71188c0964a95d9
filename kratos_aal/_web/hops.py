"""The loop breaker's hop cookie: how often a browser bounced to Kratos for one route."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from .._credentials import cookie_from_header
from .messages import WebRequest

HOP_COOKIE = "kratos_aal_hops"
#: Redirects to Kratos for one route, each back within HOP_WINDOW seconds of the last,
#: before the loop page. A redirect loop comes back at once; a person who looked at the
#: sign-in page and clicked "Back" takes longer, and is not a loop.
MAX_HOPS = 3
HOP_WINDOW = 3


#: What a ``Cookie`` or ``Set-Cookie`` header that carries the hop cookie holds.
HOP_MARK = f"{HOP_COOKIE}="
_HOP_MARK_BYTES = HOP_MARK.encode()


def _hop_cookie(value: str, request: WebRequest, max_age: int) -> tuple[str, str]:
    return _set_hops(value, request.scheme == "https", max_age)


def _set_hops(value: str, secure: bool, max_age: int) -> tuple[str, str]:
    flag = "; Secure" if secure else ""
    return (
        "Set-Cookie",
        f"{HOP_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{flag}",
    )


#: The ``Set-Cookie`` that resets the loop counter, by whether the request came on https.
CLEAR_HOPS = {secure: _set_hops("", secure, 0) for secure in (False, True)}


def clear_hops(request: WebRequest) -> tuple[str, str] | None:
    """Return the ``Set-Cookie`` that resets the loop counter, when the request carries one."""
    if HOP_MARK not in request.header("cookie"):
        return None
    return CLEAR_HOPS[request.scheme == "https"]


def sets_hops(headers: Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]) -> bool:
    """Return whether a response with *headers* sets the hop cookie itself.

    Every adapter resets the loop counter on the response to an allowed request (with
    :func:`clear_hops`), but not on one that sets the cookie already: a denial from below
    (a stricter middleware, dependency or decorator) counts a hop itself, and clearing
    after it would restart the count on every bounce. *headers* are the response's
    ``(name, value)`` pairs: text (WSGI, Flask, Django) or bytes (ASGI).
    """
    for name, value in headers:
        # Text is str; anything else is read as bytes (ASGI's, or a bytearray an app sent).
        if isinstance(value, str):
            if value.startswith(HOP_MARK) and name.lower() == "set-cookie":
                return True
        elif value.startswith(_HOP_MARK_BYTES) and name.lower() == b"set-cookie":
            return True
    return False


# The hop cookie is signed: unsigned, any client could send "<route>.3.<now>" on every
# request and get the loop page, whose sign-out link costs a Kratos call. Without a
# secret (cache_key_secret, or the framework's SECRET_KEY), a key made at import serves:
# workers forked from one process (gunicorn --preload) share it; workers that import on
# their own do not, and a count signed by one is absent on another (the loop breaker
# then needs its hops on one worker: it catches fewer loops, never causes one).
_PROCESS_HOP_KEY = secrets.token_bytes(32)
_MAC_LENGTH = 22


@functools.lru_cache(maxsize=64)
def hop_key(secret: str | bytes | None) -> bytes:
    """Return the key that signs the hop cookie: derived from *secret*, else this process's."""
    if not secret:
        return _PROCESS_HOP_KEY
    material = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(material, b"kratos-aal hop cookie", hashlib.sha256).digest()


def _hop_mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
    return digest[:_MAC_LENGTH]


def _hops(request: WebRequest, route: str, now: int, key: bytes) -> tuple[int, int]:
    """Return how often this browser bounced to Kratos for *route*, and when it last did.

    A cookie whose signature does not verify counts as no cookie.
    """
    value = cookie_from_header(request.header("cookie"), HOP_COOKIE) or ""
    parts = value.split(".")
    if len(parts) == 4 and parts[0] == route and parts[1].isdigit() and parts[2].isdigit():
        payload = value.rpartition(".")[0]
        if hmac.compare_digest(parts[3].encode(), _hop_mac(key, payload).encode()):
            count, last = int(parts[1]), int(parts[2])
            if 0 <= now - last < HOP_WINDOW:
                return count, last
    return 0, now
