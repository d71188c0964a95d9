"""Any WSGI app (Flask, Bottle, Pyramid, ...): ``KratosAALWSGIMiddleware``.

.. code-block:: python

    app.wsgi_app = KratosAALWSGIMiddleware(app.wsgi_app, config=KratosConfig.from_env(),
                                           rules={"/billing/*": "aal2"})

The session of an allowed request is at ``environ["kratos_aal.session"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from .. import _observe
from .._client import KratosClient, client_for
from .._config import KratosConfig
from .._credentials import Credentials
from .._decision import Requirement, RequirementLike
from .._hit_key import environ_hit_key
from .._web import (
    HOP_MARK,
    SAFE_METHODS,
    UNKNOWN,
    BadRequest,
    CrossOriginRefusal,
    PathRules,
    WebRequest,
    WebResponse,
    bad_request,
    clear_hops,
    conclude,
    refuse_cross_origin,
    return_to,
    sets_hops,
    status_text,
)
from ._loop import linked

__all__ = ["ENVIRON_KEY", "KratosAALWSGIMiddleware"]

ENVIRON_KEY = "kratos_aal.session"
_URL_SAFE = "/%:@!$&'()*+,;=-._~"
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _wsgi_text(value: str) -> str:
    # PEP 3333 strings are bytes decoded as latin-1: decode them as what they are, UTF-8.
    if value.isascii():
        return value  # the same either way, and every request's path is read
    return value.encode("latin-1", "replace").decode("utf-8", "replace")


def _web_request(environ: Mapping[str, Any]) -> tuple[WebRequest, list[tuple[str, str]]]:
    headers: dict[str, str] = {}
    raw: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            name = key[5:].replace("_", "-").lower()
            headers[name] = value
            raw.append((name, value))
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    request = WebRequest(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        scheme=str(environ.get("wsgi.url_scheme", "http")),
        host=headers.get("host") or _server_host(environ),
        path=quote(path.encode("latin-1", "replace"), safe=_URL_SAFE) or "/",
        query=environ.get("QUERY_STRING", ""),
        headers=headers,
    )
    return request, raw


def _no_hops() -> bool:
    """The hit path runs only without the hop cookie: an allow there ends no step-up."""
    return False


def _web_request_only(environ: Mapping[str, Any]) -> WebRequest:
    return _web_request(environ)[0]


def _server_host(environ: Mapping[str, Any]) -> str | None:
    name, port = environ.get("SERVER_NAME"), environ.get("SERVER_PORT")
    return f"{name}:{port}" if name and port else None


class KratosAALWSGIMiddleware:
    """WSGI middleware: enforce AAL rules by path with the blocking client.

    Args:
        app: The WSGI app to protect.
        config: Where Kratos is; a new :class:`KratosClient` is made from it.
        client: A :class:`KratosClient` to use instead of *config*.
        rules: Path globs mapped to requirements; first match wins; unmatched paths are public.
            Each ``PATH_INFO`` is matched as the framework may route it (``//x``, ``/./x``):
            the strictest rule applies.

    Raises:
        ConfigurationError: neither or both of *config* and *client*, or a bad rule.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        config: KratosConfig | None = None,
        client: KratosClient | None = None,
        rules: Mapping[str, RequirementLike] | None = None,
    ) -> None:
        self.app = app
        self.client, _ = client_for("KratosAALWSGIMiddleware", KratosClient, config, client)
        self.config = self.client.config
        self.rules = PathRules(rules)
        self._known = self.rules.known
        self._cookie = self.config.cookie_name

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # PATH_INFO is what the app routes; SCRIPT_NAME is where the app is mounted.
        path = environ.get("PATH_INFO", "")
        requirement = self._known.get(path, UNKNOWN)  # only ASCII paths are in it
        if requirement is UNKNOWN:
            requirement = self.rules.requirement(_wsgi_text(path))
        if requirement is None:
            return self.app(environ, start_response)
        # A GET: one look-up and a key test. A WebSocket handshake is a GET with Upgrade.
        if environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS or "HTTP_UPGRADE" in environ:
            refusal = refuse_environ(environ, self.config, requirement)
            if refusal is not None:
                return _respond(start_response, refusal)
        cookie = environ.get("HTTP_COOKIE")
        if cookie is None or HOP_MARK not in cookie:  # clearing the hop cookie: full path
            key = environ_hit_key(environ.get("HTTP_X_SESSION_TOKEN"), cookie, self._cookie)
            hit = self.client.cached_allow(key, requirement)  # a None key is a miss
            if hit is not None:
                environ[ENVIRON_KEY] = hit.session
                if not _observe.STATE.quiet:
                    _observe.decided(
                        hit.allowed(requirement), "wsgi", environ, _web_request_only, _no_hops
                    )
                return self.app(environ, start_response)
        request, raw = _web_request(environ)
        credentials = Credentials.from_headers(raw, cookie_name=self.config.cookie_name)
        try:
            decision = self.client.check(
                credentials, requirement, lambda: return_to(request, self.config)
            )
        except BadRequest as error:
            return _respond(start_response, bad_request(str(error)))
        denial = conclude(decision, request, credentials, secret=self.config.cache_key_secret)
        _observe.decided(decision, "wsgi", request)
        if denial is not None:
            prefix = _wsgi_text(environ.get("SCRIPT_NAME", ""))
            denial = linked(denial, request, credentials, self.client, prefix)
            return _respond(start_response, denial)
        environ[ENVIRON_KEY] = decision.session
        clear = clear_hops(request)
        if clear is None:
            return self.app(environ, start_response)

        def start_and_clear(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            if sets_hops(headers):  # a denial from below (a stricter middleware) counted one
                return start_response(status, headers, *exc)
            return start_response(status, [*headers, clear], *exc)

        return self.app(environ, start_and_clear)


def refuse_environ(
    environ: Mapping[str, Any], config: KratosConfig, requirement: Requirement
) -> CrossOriginRefusal | None:
    """Return the 403 for a cross-origin request on the cookie (SPEC §4a), else ``None``.

    Asked before the session is looked up, for unsafe methods and WebSocket handshakes (a
    GET with ``Upgrade: websocket``, judged by its ``Origin``: a 403 fails the handshake);
    audited like a denial.
    """
    if not config.cross_origin_protection:
        return None
    request, raw = _web_request(environ)
    credentials = Credentials.from_headers(raw, cookie_name=config.cookie_name)
    refusal = refuse_cross_origin(request, credentials, config)
    if refusal is not None:
        _observe.refused(request, "wsgi", requirement, refusal.reason)
    return refusal


def _respond(start_response: StartResponse, response: WebResponse) -> Iterable[bytes]:
    status = f"{response.status} {status_text(response.status)}"
    start_response(status, [*response.headers, ("Content-Length", str(len(response.body)))])
    return [response.body]
