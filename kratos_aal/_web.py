"""What every integration shares: reading a request, ``return_to``, and the denial response.

Sans-IO and framework-free: ASGI, WSGI and Django adapters turn their request into a
:class:`WebRequest`, ask the client for a decision, and turn a :class:`WebResponse` back
into their own response type.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ._config import KratosConfig
from ._core import DEFAULT_RETRY_AFTER, Decision, Outcome, Requirement, RequirementLike
from ._models import Credentials, cookie_from_header
from ._negotiate import wants_json
from .exceptions import ConfigurationError

__all__ = [
    "CrossOriginRefusal",
    "PathRules",
    "WebRequest",
    "WebResponse",
    "conclude",
    "cross_origin",
    "refuse_cross_origin",
    "return_to",
    "route_readings",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
HOP_COOKIE = "kratos_aal_hops"
#: Redirects to Kratos for one route, each back within HOP_WINDOW seconds of the last,
#: before the loop page. A redirect loop comes back at once; a person who looked at the
#: sign-in page and clicked "Back" takes longer, and is not a loop.
MAX_HOPS = 3
HOP_WINDOW = 3
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{{1,5}})?")
# Everything a URL may hold unescaped; the rest (spaces, CR/LF, non-ASCII) is %-encoded.
_URL_SAFE = "/%:@!$&'()*+,;=-._~?"
_MAX_URL = 4096
_SLASHES = re.compile("/{2,}")


@dataclass(frozen=True, slots=True)
class WebRequest:
    """One HTTP request, as much of it as kratos-aal reads.

    Args:
        method: Upper-case method.
        scheme: ``http`` or ``https`` as the app sees it.
        host: The ``Host`` header as the app sees it (behind a proxy, the framework's
            proxy support decides what that is).
        path: The path as sent, with any mount prefix (``root_path``/``SCRIPT_NAME``).
        query: The raw query string, without ``?``.
        headers: Header names in lower case; repeated headers may be joined with ``,``.
    """

    method: str
    scheme: str
    host: str | None
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        """Return a header value, or ``""``."""
        return self.headers.get(name, "")

    @property
    def is_htmx(self) -> bool:
        return self.header("hx-request").lower() == "true"


@dataclass(frozen=True, slots=True)
class WebResponse:
    """A response for the framework adapter to send as it is."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


#: Not in :attr:`PathRules.known`.
UNKNOWN: Any = object()
#: How many plain paths' answers PathRules remembers (hostile clients make up paths).
_KNOWN_PATHS = 4096


class PathRules:
    """Path globs mapped to requirements; the first match wins.

    ``*`` matches any run of characters, ``/`` included; ``/billing/*`` also matches
    ``/billing``, and a glob without ``*`` also matches its trailing-slash twin (``/x``
    matches ``/x/``, ``/x/`` matches ``/x``). Matching is case-sensitive. Adapters ask
    :meth:`requirement`, which matches every path the framework may route the request to
    (SPEC §4).

    Raises:
        ConfigurationError: a glob or a requirement is wrong; the message names it.
    """

    def __init__(
        self, rules: Mapping[str, RequirementLike] | None, *, setting: str = "rules"
    ) -> None:
        self._rules: list[tuple[re.Pattern[str], Requirement]] = []
        #: The same globs without their trailing-slash twins: a path keeps at least what
        #: the first glob written for it demands (see :meth:`match`).
        self._written: list[tuple[re.Pattern[str], Requirement]] = []
        #: What :meth:`requirement` answered for the plain paths seen most. A hot path may
        #: read it first (``known.get(path, UNKNOWN)``) and ask only when it is not there.
        self.known: dict[str, Requirement | None] = {}
        if rules is None:
            return
        if not isinstance(rules, Mapping):
            raise ConfigurationError(
                f"{setting} must map path globs to requirements, got {rules!r}"
            )
        for glob, requirement in rules.items():
            if not isinstance(glob, str) or not glob.startswith("/"):
                raise ConfigurationError(
                    f"{setting}: the glob {glob!r} must be a path starting with '/'"
                )
            name = f"{setting}[{glob!r}]"
            rule = Requirement.parse(requirement, setting=name)
            self._rules.append((_compile(glob), rule))
            self._written.append((_compile(glob, twin=False), rule))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def match(self, path: str) -> Requirement | None:
        """Return the requirement of the first glob that matches *path* as given, else ``None``.

        A glob's trailing-slash twin never weakens a later glob written for the path
        itself: with ``{"/x/": "aal1", "/x": "aal2"}``, ``/x`` demands the stricter of both.
        Adapters use :meth:`requirement`, which reads the path the way frameworks route it.
        """
        found = _first(self._rules, path)
        written = _first(self._written, path)
        if written is None or written is found:
            return found
        assert found is not None  # a twin's pattern matches all its glob's does
        return strictest([found, written])

    def requirement(self, path: str) -> Requirement | None:
        """Return the strictest requirement any routing of *path* meets, else ``None``.

        *path* is the decoded path below the mount point (``PATH_INFO``, ASGI's path less
        ``root_path``, Django's ``path_info``). Each reading from :func:`route_readings`
        is matched (first glob wins per reading), and the matches are merged with
        :func:`strictest`: ``//billing`` is public to a matcher that sees it as written,
        but Werkzeug routes it to ``/billing``.
        """
        if not self._rules:
            return None
        # Every request asks: the answers for the paths seen most are remembered.
        known = self.known.get(path, UNKNOWN)
        if known is not UNKNOWN:
            return known  # type: ignore[no-any-return]
        if _plain(path):
            match = self.match(path)  # the common case: one reading
            if len(self.known) < _KNOWN_PATHS:
                self.known[path] = match
            return match
        found = [r for r in map(self.match, route_readings(path)) if r is not None]
        return strictest(found) if found else None


def _collapse(path: str) -> str:
    return _SLASHES.sub("/", path)


def _remove_dots(path: str) -> str:
    # RFC 3986 section 5.2.4 on whole segments, as browsers and curl resolve "." and
    # "..": a trailing one leaves a trailing slash, and ".." never climbs above the top.
    out: list[str] = []
    segments = path.split("/")
    for segment in segments:
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/".join(out)


def _plain(path: str) -> bool:
    # ASCII too: only such paths are remembered, and a WSGI adapter may look one up before
    # decoding it (PEP 3333's latin-1 text of a non-ASCII path is another path decoded).
    return (
        path.isascii()
        and path.startswith("/")
        and "//" not in path
        and "/." not in path
        and "%" not in path
    )


def route_readings(path: str) -> frozenset[str]:
    """Return every path a framework might route *path* to.

    Servers pass the path through as the client sent it (gunicorn keeps ``//`` and, once
    decoded, ``%2f`` is a ``/``), and each framework then reads it its own way: Werkzeug
    routes ``"/" + path.lstrip("/")``, some routers collapse repeated slashes, some
    resolve ``.`` and ``..``, a proxy may decode ``%2e`` and ``%2f`` once more. The
    readings are the path as given, with repeated slashes collapsed, with dot segments
    resolved after that, and all of these again after one more percent-decoding.
    """
    path = path or "/"
    if _plain(path):
        return frozenset((path,))  # the common case: nothing to read differently
    readings: set[str] = set()
    for text in (path, unquote(path)):
        collapsed = "/" + _collapse(text).lstrip("/")
        readings.update((text, collapsed, _remove_dots(collapsed)))
    return frozenset(readings)


def strictest(requirements: list[Requirement]) -> Requirement:
    """Return one requirement that demands what each of *requirements* demands.

    The highest ``aal``, the shortest ``max_age``, and the methods every set allows.
    Two method sets with nothing in common cannot both be met by one method: the
    first such set is kept, as it still demands a second factor of that kind.
    """
    first = requirements[0]
    if all(r == first for r in requirements):
        return first
    aal = max(r.aal for r in requirements)
    ages = [r.max_age for r in requirements if r.max_age is not None]
    methods: frozenset[str] | None = None
    for r in requirements:
        if r.methods is not None:
            methods = r.methods if methods is None else (methods & r.methods or methods)
    return Requirement(aal, max_age=min(ages) if ages else None, methods=methods)


def _first(rules: list[tuple[re.Pattern[str], Requirement]], path: str) -> Requirement | None:
    for pattern, requirement in rules:
        if pattern.fullmatch(path):
            return requirement
    return None


def _compile(glob: str, *, twin: bool = True) -> re.Pattern[str]:
    tail = ""
    if glob.endswith("/*"):
        glob, tail = glob[:-2], "(?:/.*)?"
    elif twin and glob != "/" and not glob.endswith("*"):
        # An exact path covers its trailing-slash twin: Django (APPEND_SLASH) and Werkzeug
        # route "/x" to a view at "/x/" by a redirect, but "/x/" itself reaches it at once,
        # and Starlette's redirect_slashes does the same the other way round.
        glob, tail = glob.removesuffix("/"), "/?"
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")) + tail, re.DOTALL)


# Kratos writes Go's http.StatusText; Python 3.13 renamed two of these phrases.
_GO_STATUS_TEXT = {413: "Request Entity Too Large", 422: "Unprocessable Entity"}


def status_text(code: int) -> str:
    """Return the status text Kratos (Go's ``http.StatusText``) writes for *code*."""
    return _GO_STATUS_TEXT.get(code) or HTTPStatus(code).phrase


class BadRequest(Exception):
    """The request cannot be answered safely (e.g. a malformed ``Host``)."""


def _quoted(text: str) -> str:
    return quote(text, safe=_URL_SAFE)


def origin_of(request: WebRequest, config: KratosConfig) -> str:
    """Return this app's origin: ``app_url`` when set, else the request's own.

    Raises:
        BadRequest: there is no ``app_url`` and the ``Host`` header is not a host.
    """
    if config.app_url:
        parts = urlsplit(config.app_url)
        return f"{parts.scheme}://{parts.netloc}"
    host = request.host or ""
    if len(host) > 260 or not _HOST.fullmatch(host) or request.scheme not in ("http", "https"):
        raise BadRequest("the Host header is not a valid host")
    return f"{request.scheme}://{host.lower()}"


def _same_origin(url: str, origin: str) -> str | None:
    if not url or len(url) > _MAX_URL or any(ord(c) < 0x21 or ord(c) > 0x7E for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if f"{parts.scheme.lower()}://{parts.netloc.lower()}" != origin.lower() or parts.username:
        return None
    return url


def request_url(request: WebRequest, config: KratosConfig) -> str:
    """Return the absolute URL of *request* (on ``app_url`` when set), safely encoded."""
    url = origin_of(request, config) + _quoted(request.path or "/")
    if request.query:
        url += "?" + _quoted(request.query)
    return url


def return_to(request: WebRequest, config: KratosConfig) -> str:
    """Return where Kratos should send the browser back to (SPEC §3's X).

    The current URL for safe methods; for unsafe methods (the request is not run) the
    same-origin ``Referer`` (the page with the form), else ``app_url`` or ``/``. For HTMX,
    the same-origin ``HX-Current-URL`` (the page, not the fragment).

    Raises:
        BadRequest: the ``Host`` header is not a host and no ``app_url`` is set.
    """
    origin = origin_of(request, config)
    if request.is_htmx:
        current = _same_origin(request.header("hx-current-url"), origin)
        if current:
            return current
    if request.method in SAFE_METHODS:
        url = request_url(request, config)
        # An oversized URL would not survive the trip through Kratos: come back to the root.
        return url if len(url) <= _MAX_URL else origin + "/"
    referer = _same_origin(request.header("referer"), origin)
    if referer:
        return referer
    return config.app_url or origin + "/"


def page_of(request: WebRequest, config: KratosConfig) -> str:
    """Return the page a long-lived connection belongs to, for its ``return_to``.

    The same-origin ``Referer`` (the page that opened the event stream), else
    ``app_url`` or ``/``: the stream's own URL is no page to come back to.

    Raises:
        BadRequest: the ``Host`` header is not a host and no ``app_url`` is set.
    """
    origin = origin_of(request, config)
    return _same_origin(request.header("referer"), origin) or config.app_url or origin + "/"


# ---------------------------------------------------------------------------- responses

_JSON_ERRORS: dict[Outcome, tuple[int, str, str, str]] = {
    Outcome.LOGIN: (
        401,
        "session_inactive",
        "No active session was found in this request.",
        "request does not have a valid authentication session",
    ),
    Outcome.STEP_UP: (
        403,
        "session_aal2_required",
        "An active session was found but it does not fulfill the requested Authenticator "
        "Assurance Level. Please verify yourself with a second factor to resolve this issue.",
        "Session does not fulfill the requested Authenticator Assurance Level",
    ),
    Outcome.REAUTHENTICATE: (
        403,
        "session_refresh_required",
        "The login session is too old or lacks a required method for this action. "
        "Please re-authenticate.",
        "The requested action was forbidden",
    ),
    Outcome.ENROLL: (
        403,
        "session_aal2_enrollment_required",
        "This action requires a second factor, and this account has none yet. "
        "Please set one up in your account settings.",
        "A second factor must be set up first",
    ),
    Outcome.UNAVAILABLE: (
        503,
        "kratos_unavailable",
        "The session could not be verified because Ory Kratos did not answer in time. "
        "Please try again shortly.",
        "The service is temporarily unavailable",
    ),
}
_NO_STORE = ("Cache-Control", "no-store")


#: What the 503 says happened, by ``Decision.cause``.
_UNAVAILABLE_REASONS = {
    "connect": "The session could not be verified because this service could not connect "
    "to Ory Kratos. Please try again shortly.",
    "timeout": _JSON_ERRORS[Outcome.UNAVAILABLE][2],
    None: "The session could not be verified because Ory Kratos could not answer properly. "
    "Please try again shortly.",
}
# max_concurrent_checks calls under way already: the answer is the one it always was.
_UNAVAILABLE_REASONS["busy"] = _UNAVAILABLE_REASONS[None]


def error_body(decision: Decision) -> dict[str, object]:
    """Return the Kratos-shaped JSON body for a denial."""
    status, error_id, reason, message = _JSON_ERRORS[decision.outcome]
    if decision.outcome is Outcome.UNAVAILABLE:
        reason = _UNAVAILABLE_REASONS.get(decision.cause, reason)
    body: dict[str, object] = {
        "error": {
            "id": error_id,
            "code": status,
            "status": status_text(status),
            "reason": reason,
            "message": message,
        }
    }
    if decision.redirect_to:
        body["redirect_browser_to"] = decision.redirect_to
    return body


def _json_response(decision: Decision, extra: list[tuple[str, str]]) -> WebResponse:
    status = _JSON_ERRORS[decision.outcome][0]
    headers = [("Content-Type", "application/json"), _NO_STORE, *extra]
    return WebResponse(status, headers, json.dumps(error_body(decision)).encode())


def _page(
    status: int, title: str, paragraphs: Iterable[str], extra: list[tuple[str, str]]
) -> WebResponse:
    text = "".join(f"<p>{p}</p>" for p in paragraphs)
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        # No icon: browsers would otherwise ask the app for /favicon.ico, which may 404.
        '<link rel=icon href="data:,">'
        f"<title>{html.escape(title)}</title>"
        '<body style="font-family:system-ui,sans-serif;max-width:40rem;'
        'margin:3rem auto;padding:0 1rem">'
        f"<h1>{html.escape(title)}</h1>{text}</body></html>"
    )
    headers = [("Content-Type", "text/html; charset=utf-8"), _NO_STORE, *extra]
    return WebResponse(status, headers, body.encode())


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


@dataclass(frozen=True, slots=True)
class LoopPage(WebResponse):
    """The loop page; an adapter that knows more fills in its links with :meth:`linked`."""

    retry: str = ""
    #: Whether Kratos knows the session the browser sent (every denial but LOGIN).
    signed_in: bool = False

    def linked(self, home: str, sign_out: str | None) -> WebResponse:
        """Return this page linking *home* and, when there is one, the *sign_out* URL."""
        return WebResponse(self.status, self.headers, _loop_body(self.retry, home, sign_out))


def _loop_body(retry: str, home: str, sign_out: str | None) -> bytes:
    leave = (
        # A Kratos logout URL with its token: one click ends the session and comes home.
        f', or <a href="{html.escape(sign_out)}">sign out</a> and start over.'
        if sign_out
        else ". (A sign-out link appears here when your browser sends this app a session.)"
    )
    return _page(
        409,
        "Sign-in keeps coming back here",
        [
            "This page sent you to sign in several times in a row, and each time your browser "
            "came straight back without a session this page accepts.",
            "Likely causes: the Kratos session cookie does not reach this app (its domain or "
            "path does not cover this site, or it is Secure and this site is plain http), or "
            "kratos-aal's <code>browser_url</code> does not point at the Kratos that browsers use.",
            f'When that is fixed, <a href="{html.escape(retry)}">try again</a>. Or go to '
            f'<a href="{html.escape(home)}">the home page</a>{leave}',
        ],
        [],
    ).body


def _loop_page(decision: Decision, request: WebRequest, extra: list[tuple[str, str]]) -> LoopPage:
    retry = decision.redirect_to or ""
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        _NO_STORE,
        *extra,
        _hop_cookie("", request, 0),
    ]
    signed_in = decision.outcome is not Outcome.LOGIN
    return LoopPage(409, headers, _loop_body(retry, "/", None), retry, signed_in)


def conclude(
    decision: Decision,
    request: WebRequest,
    credentials: Credentials,
    *,
    now: float | None = None,
    secret: str | bytes | None = None,
) -> WebResponse | None:
    """Return the response for a denial (SPEC §4), or ``None`` when the request may run.

    *secret* signs the loop breaker's hop cookie (see :func:`hop_key`): pass one that every
    worker and instance shares (``cache_key_secret``, the framework's ``SECRET_KEY``).
    """
    if decision.outcome is Outcome.ALLOW:
        return None
    extra: list[tuple[str, str]] = []
    if decision.outcome is Outcome.UNAVAILABLE:
        extra.append(("Retry-After", str(decision.retry_after or DEFAULT_RETRY_AFTER)))
    if request.is_htmx and decision.redirect_to:
        return _json_response(decision, [*extra, ("HX-Redirect", decision.redirect_to)])
    if credentials.is_token or wants_json(request.header("accept"), request.header("content-type")):
        return _json_response(decision, extra)
    if decision.outcome is Outcome.UNAVAILABLE:
        return _page(
            503,
            "Please try again in a moment",
            [
                "Your session could not be checked because the sign-in service "
                + ("could not be reached" if decision.cause == "connect" else "did not answer")
                + ". Nothing was changed. Please reload this page in a few seconds."
            ],
            extra,
        )
    assert decision.redirect_to is not None
    moment = int(time.time() if now is None else now)
    route = hashlib.sha256(request.path.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    key = hop_key(secret)
    hops, _ = _hops(request, route, moment, key)
    if hops >= MAX_HOPS:
        return _loop_page(decision, request, extra)
    payload = f"{route}.{hops + 1}.{moment}"
    cookie = _hop_cookie(f"{payload}.{_hop_mac(key, payload)}", request, HOP_WINDOW)
    return WebResponse(303, [("Location", decision.redirect_to), _NO_STORE, cookie, *extra])


# ------------------------------------------------------------------ cross-origin requests
#
# Go 1.25's net/http.CrossOriginProtection: no tokens; a look at Sec-Fetch-Site, then at
# Origin against Host; a short list of trusted origins; safe methods pass (SPEC §4a).

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


def bad_request(reason: str) -> WebResponse:
    """Return a plain 400 for a request that cannot be answered safely."""
    return WebResponse(
        400,
        [("Content-Type", "text/plain; charset=utf-8"), _NO_STORE],
        f"Bad Request: {reason}\n".encode(),
    )
