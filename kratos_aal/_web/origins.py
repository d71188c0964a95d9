"""Cross-origin requests that ride on the cookie (SPEC §4a).

Go 1.25's net/http.CrossOriginProtection: no tokens; a look at Sec-Fetch-Site, then at
Origin against Host; a short list of trusted origins; safe methods pass.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._config import KratosConfig
from .._credentials import Credentials
from .._negotiate import wants_json
from .messages import _NO_STORE, SAFE_METHODS, WebRequest, WebResponse, _page, status_text

_CSRF_ERROR = (
    "security_csrf_violation",
    # Kratos's own words for its CSRF error (x/nosurfx), the first sentence fitted to us.
    "The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF) which "
    "could cause account takeover, leaking personal information, and other serious security "
    "issues: it came from another site than this one.",
    "the request was rejected to protect you from Cross-Site-Request-Forgery",
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@functools.lru_cache(maxsize=64)
def _trusted(origins: tuple[str, ...]) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    # KratosConfig validated and normalised each entry: exact ones, and "*." subdomain ones.
    exact = frozenset(o for o in origins if "://*." not in o)
    wild = tuple(
        (scheme, "." + rest[2:])
        for scheme, _, rest in (o.partition("://") for o in origins if "://*." in o)
    )
    return exact, wild


def _netloc(scheme: str, netloc: str) -> str:
    # Browsers leave a default port out of Origin; a Host header may carry it.
    netloc = netloc.lower()
    host, sep, port = netloc.rpartition(":")
    return host if sep and port == _DEFAULT_PORTS.get(scheme) else netloc


def is_trusted(origin: str, config: KratosConfig) -> bool:
    """Return whether *origin* (an ``Origin`` header) is one of ``trusted_origins``.

    An entry matches the header exactly (scheme, host and port; a default port is the
    same as none). An entry ``https://*.example.com`` matches, as Django's
    ``CSRF_TRUSTED_ORIGINS`` does, ``https://example.com`` and every subdomain of it on
    the default port.
    """
    if not config.trusted_origins or not origin:
        return False
    exact, wild = _trusted(config.trusted_origins)  # a tuple: hashable
    scheme, sep, netloc = origin.strip().lower().partition("://")
    if not sep or not netloc or "/" in netloc:
        return False
    host = _netloc(scheme, netloc)
    if f"{scheme}://{host}" in exact:
        return True
    return any(
        scheme == wild_scheme and (host.endswith(suffix) or host == suffix[1:])
        for wild_scheme, suffix in wild
    )


def _origin_matches(origin: str, host: str | None, config: KratosConfig) -> bool:
    scheme, sep, netloc = origin.strip().lower().partition("://")
    if not sep or not netloc or scheme not in _DEFAULT_PORTS or "/" in netloc:
        return False  # "null" (a sandboxed frame, a redirect across sites) and the like
    mine = _netloc(scheme, netloc)
    if host and mine == _netloc(scheme, host.strip()):
        return True
    # The app's own origin as configured (behind a proxy that rewrites Host).
    if config.app_url:
        app = urlsplit(config.app_url)
        return scheme == app.scheme and mine == _netloc(app.scheme, app.netloc)
    return False


def cross_origin(
    method: str,
    sec_fetch_site: str,
    origin: str,
    host: str | None,
    config: KratosConfig,
    *,
    websocket: bool = False,
) -> str | None:
    """Return why a request comes from another origin, or ``None`` when it may go on.

    Go 1.25's ``CrossOriginProtection``: a safe method (GET, HEAD, OPTIONS, TRACE) goes
    on; ``Sec-Fetch-Site: same-origin`` or ``none`` goes on, any other value is refused;
    without it, an ``Origin`` whose host and port are not the request's *host* (or the
    ``app_url``'s) is refused; without either header the request goes on (no browser
    sent it). Origins in ``trusted_origins`` go on. A WebSocket handshake (a GET) is
    judged by its ``Origin`` alone, which browsers always send on one.

    Args:
        method: The request method, upper-case.
        sec_fetch_site: The ``Sec-Fetch-Site`` header, or ``""``.
        origin: The ``Origin`` header, or ``""``.
        host: The host the app sees (``Host``, or what the framework's proxy support made
            of it).
        config: Where ``trusted_origins`` and ``app_url`` are.
        websocket: Whether this is a WebSocket handshake.
    """
    if websocket:
        if not origin or _origin_matches(origin, host, config) or is_trusted(origin, config):
            return None
        return f"the WebSocket's Origin {_shown(origin)} is not this site's"
    if method in SAFE_METHODS:
        return None
    site = sec_fetch_site.strip().lower()
    if site:
        if site in ("same-origin", "none") or is_trusted(origin, config):
            return None
        return f"Sec-Fetch-Site is {_shown(site)}"
    if not origin or _origin_matches(origin, host, config) or is_trusted(origin, config):
        return None
    return f"the Origin {_shown(origin)} is not this site's"


def is_handshake(request: WebRequest) -> bool:
    """Return whether *request* is a WebSocket handshake: a ``GET`` with ``Upgrade: websocket``."""
    return request.method == "GET" and "websocket" in request.header("upgrade").lower()


def _shown(value: str) -> str:
    # Headers a client chose: short, printable, quoted.
    return repr(value[:100].encode("ascii", "replace").decode())


def csrf_error_body(why: str) -> dict[str, object]:
    """Return Kratos's envelope for a refused cross-origin request; *why* goes in details."""
    error_id, reason, message = _CSRF_ERROR
    return {
        "error": {
            "id": error_id,
            "code": 403,
            "status": status_text(403),
            "reason": reason,
            "message": message,
            "details": {"reject_reason": f"Cross-origin request refused: {why}."},
        }
    }


@dataclass(frozen=True, slots=True)
class CrossOriginRefusal(WebResponse):
    """The 403 for a cross-origin request that rode on the cookie; :attr:`reason` says why."""

    reason: str = ""


def refuse_cross_origin(
    request: WebRequest, credentials: Credentials, config: KratosConfig, *, websocket: bool = False
) -> CrossOriginRefusal | None:
    """Return the 403 for a cross-origin request that the cookie would let in, else ``None``.

    Only a request whose credential is the Kratos cookie (the one Kratos itself would
    use) is refused: a session token never rides along on a cross-site request, and a
    request with no credential is answered as usual (LOGIN). It is refused before Kratos
    is asked, whatever the cookie is worth. A ``GET`` with ``Upgrade: websocket`` is a
    WebSocket handshake (as a WSGI server that upgrades hands one over), whatever
    *websocket* says.
    """
    if not config.cross_origin_protection or credentials.cookie is None:
        return None
    why = cross_origin(
        request.method,
        request.header("sec-fetch-site"),
        request.header("origin"),
        request.host,
        config,
        websocket=websocket or is_handshake(request),
    )
    if why is None:
        return None
    if request.is_htmx or wants_json(request.header("accept"), request.header("content-type")):
        headers = [("Content-Type", "application/json"), _NO_STORE]
        return CrossOriginRefusal(403, headers, json.dumps(csrf_error_body(why)).encode(), why)
    page = _page(
        403,
        "Request refused",
        [
            "This request came from another site, and it would have acted with your session "
            "here: it was refused to protect your account (cross-site request forgery).",
            "If you meant to do this, go back to this site's own page and try again from there.",
        ],
        [],
    )
    return CrossOriginRefusal(page.status, page.headers, page.body, why)
