"""Say at WARNING, once per cause, what keeps requests from a verdict.

A ``public_url`` that points nowhere is silent otherwise: anonymous users are still sent
to log in, and only requests with a session get a 503. A Kratos that withholds aal1
sessions (``session.whoami.required_aal: highest_available``) sends users with a second
factor through step-up on aal1 routes, and nothing says why. Both are set-up mistakes that
a log line names at once; neither is repeated on every request.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading

import httpx

logger = logging.getLogger("kratos_aal")

#: Kinds of trouble reaching Kratos, as the 503 and the log name them.
CONNECT = "connect"
TIMEOUT = "timeout"

_lock = threading.Lock()
#: Public URL -> the kind of trouble last reported; gone once Kratos answers there again.
_down: dict[str, str] = {}
_said_highest_available = False


def cause_of(error: BaseException) -> tuple[str, str]:
    """Return ``(kind, words)`` for a transport *error*: refused, DNS, TLS, timeout."""
    if isinstance(error, httpx.TimeoutException):
        return TIMEOUT, "timed out"
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return CONNECT, "its host name does not resolve (DNS)"
        if isinstance(current, ssl.SSLError):
            return CONNECT, "the TLS handshake failed"
        if isinstance(current, ConnectionRefusedError):
            return CONNECT, "the connection was refused"
        if isinstance(current, TimeoutError):
            return TIMEOUT, "timed out"
        current = current.__cause__ or current.__context__
    # anyio and httpcore may keep only the words of the operating system's error.
    text = str(error).lower()
    if "refused" in text:
        return CONNECT, "the connection was refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return CONNECT, "its host name does not resolve (DNS)"
    if "ssl" in text or "certificate" in text:
        return CONNECT, "the TLS handshake failed"
    if isinstance(error, httpx.ConnectError):
        return CONNECT, f"the connection failed ({type(error).__name__})"
    return CONNECT, f"the exchange failed ({type(error).__name__})"


def unreachable(url: str, kind: str, words: str) -> None:
    """Log, once per *kind* until Kratos at *url* answers again, that it could not be reached.

    The kind, not the words: a Kratos that drips its answers fails one request on a read's
    timeout ("timed out") and the next on the exchange's deadline, and said in turn, the
    two would be a line per request.
    """
    if _down.get(url) == kind:
        return
    with _lock:
        if _down.get(url) == kind:
            return
        _down[url] = kind
    logger.warning(
        "Kratos at %s could not be reached: %s. Requests that carry a session get 503 until "
        "it answers (check public_url / KRATOS_PUBLIC_URL).",
        url,
        words,
    )


def answered(url: str) -> None:
    """Note that Kratos at *url* answered: the next failure there is reported again."""
    if url in _down:  # one dict lookup on every answer; the lock only after a failure
        with _lock:
            _down.pop(url, None)


def highest_available() -> None:
    """Say once per process that Kratos withholds aal1 sessions from aal1 routes."""
    global _said_highest_available
    if _said_highest_available:
        return
    _said_highest_available = True
    logger.warning(
        "Kratos answered session_aal2_required to a whoami made for an aal1 route: Kratos's "
        "session.whoami.required_aal is highest_available; set it to aal1 (docs/kratos.md), "
        "or users with a second factor are sent through step-up on every aal1 route."
    )


def reset() -> None:
    """Forget what was said (tests)."""
    global _said_highest_available
    with _lock:
        _down.clear()
        _said_highest_available = False
