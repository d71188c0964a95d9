"""FakeKratos: an in-memory Ory Kratos that answers as BEHAVIOR.md says.

It speaks HTTP through an ``httpx`` transport (no network) or as an ASGI app on a
real port (the admin API on a port of its own). Modelled: whoami, login, settings and
registration flows with password, TOTP and backup codes, logout, the admin identity and
session API, and the error envelopes, with Kratos's status codes, error ids and bodies.
Each concern lives in the module named after Kratos's package for it; this one routes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ._flow import _MAX_BODY
from ._pages import _Pages
from ._records import _WHOAMI_METHODS, FakeIdentity, FakeSession, Fault, _Reply

#: A Host header Go's net/http takes (httpguts.ValidHostHeader, less what would move the
#: path of the URL the fake rebuilds); any other is "400 Bad Request: malformed Host header".
_VALID_HOST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%]*|\[[0-9A-Fa-f:.]+\](?::[0-9]*)?")
#: What the fake leaves unescaped when it puts the decoded ASGI path back into a URL.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"

__all__ = ["FakeIdentity", "FakeKratos", "FakeSession", "FakeTransport", "Fault"]


class FakeKratos(_Pages):
    """An in-memory Kratos for tests and demos.

    Args:
        public_url: Kratos's ``serve.public.base_url``: the base of every URL it writes.
            Set it to ``http://kratos:4433`` to reproduce the internal-URL trap.
        ui_url: Base of the self-service UI pages (login, settings, error).
        whoami_required_aal: ``session.whoami.required_aal``, Kratos's default
            ``highest_available``, or ``aal1`` (what per-route step-up wants).
        settings_required_aal: ``selfservice.flows.settings.required_aal``.
        allowed_return_urls: ``selfservice.allowed_return_urls``.
        default_return_url: ``selfservice.default_browser_return_url``.
        admin_url: Kratos's ``serve.admin.base_url``, the only base the admin API answers
            on (default: the public host on port 4434, or 4435 if the public port is 4434).
            Serve :attr:`admin_app` there when the fake runs on real ports.
        admin_token: When set, the admin API demands ``Authorization: Bearer <token>``.
        clock: The clock; tests move it with ``fake.clock.advance(seconds)``.
        session_lifespan: ``session.lifespan`` in seconds (24 h).
        privileged_max_age: ``privileged_session_max_age`` in seconds (1 h).
        cookie_name: ``session.cookie.name``.
        cacheable_sessions: ``feature_flags.cacheable_sessions`` (off by default, as in
            Kratos), given as ``cacheable_sessions_max_age`` in seconds: when set, whoami
            sends ``Ory-Session-Cache-For`` with the session's time left capped at this
            (0: uncapped), and 60 on a 401 to a request that carried no session token.
        app_url: The app's home, where the UI's "Back to the app" leads.
    """

    #: Served on a real port, it sends Go's canonical header names (``Set-Cookie``), which
    #: Ory's SDKs read case-sensitively: :func:`~kratos_aal.testing.serve` runs it on
    #: uvicorn's h11 protocol, as httptools would lower-case them.
    canonical_header_names = True

    def transport(self) -> FakeTransport:
        """Return an httpx transport (sync and async) that answers from this fake."""
        return FakeTransport(self)

    def config(self, **overrides: Any) -> Any:
        """Return a ``KratosConfig`` pointed at this fake."""
        from .._config import KratosConfig

        values: dict[str, Any] = {"public_url": self.public_url, "cookie_name": self.cookie_name}
        values.update(overrides)
        return KratosConfig(**values)

    def client(self, **config: Any) -> Any:
        """Return a ``KratosClient`` that talks to this fake through its transport."""
        from .._client import KratosClient

        return KratosClient(
            self.config(**config),
            http_client=httpx.Client(transport=self.transport()),
            timer=self.clock,
        )

    def async_client(self, **config: Any) -> Any:
        """Return an ``AsyncKratosClient`` that talks to this fake through its transport."""
        from .._client import AsyncKratosClient

        return AsyncKratosClient(
            self.config(**config),
            http_client=httpx.AsyncClient(transport=self.transport()),
            timer=self.clock,
        )

    def handle(self, request: httpx.Request, *, admin: bool | None = None) -> httpx.Response:
        """Answer one request (its body already read).

        *admin* says which port it came to; by default, the admin port when the
        request's origin is :attr:`admin_url`'s.
        """
        if admin is None:
            admin = _origin(str(request.url)) == _origin(self.admin_url)
        self.calls[request.url.path] += 1
        self.requests.append(request)
        try:
            with self._lock:
                response = self._admin_route(request) if admin else self._route(request)
        except _Reply as reply:
            response = reply.response
        if response.status_code == 303 and request.method in ("GET", "HEAD"):
            response = _with_redirect_body(response)
        response.request = request
        return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/sessions/whoami" and method in _WHOAMI_METHODS:
            return self._whoami(request)
        if path.startswith(("/admin/", "/identities/")) or path == "/identities":
            return self._to_admin(request)
        routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {
            ("GET", "/self-service/login/browser"): lambda r: self._login_init(r, "browser"),
            ("GET", "/self-service/login/api"): lambda r: self._login_init(r, "api"),
            ("GET", "/self-service/login/flows"): lambda r: self._get_flow(r, "login"),
            ("POST", "/self-service/login"): self._login_submit,
            ("GET", "/self-service/settings/browser"): lambda r: self._settings_init(r, "browser"),
            ("GET", "/self-service/settings/api"): lambda r: self._settings_init(r, "api"),
            ("GET", "/self-service/settings/flows"): self._get_settings_flow,
            ("POST", "/self-service/settings"): self._settings_submit,
            ("GET", "/self-service/registration/browser"): lambda r: self._registration_init(
                r, "browser"
            ),
            ("GET", "/self-service/registration/api"): lambda r: self._registration_init(r, "api"),
            ("GET", "/self-service/registration/flows"): lambda r: self._get_flow(
                r, "registration"
            ),
            ("POST", "/self-service/registration"): self._registration_submit,
            ("GET", "/sessions"): self._my_sessions,
            ("GET", "/self-service/logout/browser"): self._logout_browser,
            ("GET", "/self-service/logout"): self._logout,
            ("DELETE", "/self-service/logout/api"): self._logout_api,
            ("GET", "/self-service/errors"): self._get_error,
            # Not Kratos: a person who opens the fake's bare address gets its welcome page.
            ("GET", "/"): lambda r: self._redirect(f"{self.ui_url}/welcome"),
            ("GET", "/favicon.ico"): self._favicon,
            ("GET", "/health/alive"): lambda r: self._json(200, {"status": "ok"}),
            ("GET", "/health/ready"): lambda r: self._json(200, {"status": "ok"}),
            ("DELETE", "/sessions"): self._delete_my_sessions,
        }
        handler = routes.get((method, path))
        if handler is not None:
            return handler(request)
        ui_prefix = urlsplit(self.ui_url).path.rstrip("/") + "/"
        if path.startswith(ui_prefix):
            return self._ui(request, path[len(ui_prefix) :])
        if method == "DELETE" and path.startswith("/sessions/"):
            return self._delete_my_session(request, path[len("/sessions/") :])
        return self._no_route()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve the fake's public API as an ASGI app (e.g. with uvicorn on a real port)."""
        await self._serve_asgi(scope, receive, send, admin=False)

    @property
    def admin_app(self) -> Callable[[dict[str, Any], Any, Any], Awaitable[None]]:
        """Return the ASGI app of the admin API, to serve on :attr:`admin_url`'s port."""
        return _AdminApp(self)

    async def _serve_asgi(
        self, scope: dict[str, Any], receive: Any, send: Any, *, admin: bool
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        # cmd/daemon/serve.go: http.MaxBytesHandler stops at 5 MB. Keeping one byte more
        # lets handle() refuse the request as too large; the rest is drained, not kept.
        body = bytearray()
        while True:
            message = await receive()
            if len(body) <= _MAX_BODY:
                body += message.get("body", b"")[: _MAX_BODY + 1 - len(body)]
            if not message.get("more_body"):
                break
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode("latin-1")
        path = quote(f"{scope.get('root_path', '')}{scope['path']}", safe=_PATH_SAFE)
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            if not _VALID_HOST.fullmatch(host):
                raise httpx.InvalidURL(host)
            request = httpx.Request(
                scope["method"],
                f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else ""),
                headers=[(k, v) for k, v in scope["headers"]],
                content=bytes(body),
            )
        except httpx.InvalidURL:
            text = b"400 Bad Request: malformed Host header"
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": text})
            return
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(scope["path"])
        if fault is not None and fault.kind in ("timeout", "reset"):
            if fault.kind == "timeout":
                await asyncio.sleep(3600)
            raise ConnectionResetError("injected fault: connection reset")
        response = (
            self._fault_response(fault, request) if fault else self.handle(request, admin=admin)
        )
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                # Go writes canonical names (Set-Cookie); clients that keep headers in a
                # case-sensitive dict (Ory's SDKs) look them up that way.
                "headers": list(response.headers.raw),
            }
        )
        await send({"type": "http.response.body", "body": response.content})


def _with_redirect_body(response: httpx.Response) -> httpx.Response:
    """Add the small HTML body Go's http.Redirect writes for GET and HEAD."""
    location = response.headers["Location"]
    headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-type"]
    headers.append((b"Content-Type", b"text/html; charset=utf-8"))
    body = f'<a href="{escape(location, quote=True)}">See Other</a>.\n\n'
    return httpx.Response(303, headers=headers, content=body.encode())


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


class FakeTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport, sync and async, that answers from a :class:`FakeKratos`."""

    def __init__(self, fake: FakeKratos) -> None:
        self.fake = fake

    def _answer(self, request: httpx.Request) -> httpx.Response:
        fault = self.fake._take_fault(request.url.path)
        if fault is None:
            return self.fake.handle(request)
        self.fake.calls[request.url.path] += 1
        self.fake.requests.append(request)
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("injected fault: timed out", request=request)
        if fault.kind == "reset":
            raise httpx.RemoteProtocolError("injected fault: connection reset", request=request)
        return self.fake._fault_response(fault, request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        if self.fake.latency:
            time.sleep(self.fake.latency)
        return self._answer(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        if self.fake.latency:
            await asyncio.sleep(self.fake.latency)
        return self._answer(request)


class _AdminApp:
    """The admin API of a :class:`FakeKratos`, as an ASGI app of its own."""

    #: See :attr:`FakeKratos.canonical_header_names`.
    canonical_header_names = True

    def __init__(self, fake: FakeKratos) -> None:
        self.fake = fake

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.fake._serve_asgi(scope, receive, send, admin=True)
