"""The loop breaker's hop cookie: how often a browser bounced to Kratos for one route."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from .._models import cookie_from_header
from .messages import WebRequest

HOP_COOKIE = "kratos_aal_hops"
#: Redirects to Kratos for one route, each back within HOP_WINDOW seconds of the last,
#: before the loop page. A redirect loop comes back at once; a person who looked at the
#: sign-in page and clicked "Back" takes longer, and is not a loop.
MAX_HOPS = 3
HOP_WINDOW = 3


def _hop_cookie(value: str, request: WebRequest, max_age: int) -> tuple[str, str]:
    secure = "; Secure" if request.scheme == "https" else ""
    return (
        "Set-Cookie",
        f"{HOP_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
    )


def clear_hops(request: WebRequest) -> tuple[str, str] | None:
    """Return the ``Set-Cookie`` that resets the loop counter, when the request carries one."""
    if f"{HOP_COOKIE}=" not in request.header("cookie"):
        return None
    return _hop_cookie("", request, 0)


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
