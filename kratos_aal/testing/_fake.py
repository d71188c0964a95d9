"""FakeKratos: an in-memory Ory Kratos that answers as BEHAVIOR.md says.

It speaks HTTP through an ``httpx`` transport (no network) or as an ASGI app on a
real port. Only what kratos-aal and its demo need is modelled: whoami, login and
settings flows with password and TOTP, logout, the admin identity endpoint, and the
error envelopes, with Kratos's exact status codes, error ids and bodies.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import string
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pyotp

from .._models import AAL, cookie_from_header
from .._negotiate import negotiate, wants_json
from .._web import status_text as go_status_text
from . import _ui
from ._clock import FakeClock

__all__ = ["FakeIdentity", "FakeKratos", "FakeSession", "Fault"]

RequiredAAL = Literal["aal1", "highest_available"]
_ALPHANUM = string.ascii_letters + string.digits
_NO_CACHE = "private, no-cache, no-store, must-revalidate"
_SESSION_METHOD_AAL = {
    "password": "aal1",
    "passkey": "aal1",
    "oidc": "aal1",
    "code": "aal1",
    "link_recovery": "aal1",
    "code_recovery": "aal1",
    "totp": "aal2",
    "lookup_secret": "aal2",
    "webauthn": "aal2",
    "identifier_first": "aal0",
}
_WHOAMI_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "CONNECT", "OPTIONS", "TRACE"}

# Kratos's UI messages (text/id.go) that the fake uses.
MSG_CONFIRM = (1010003, "Please confirm this action by verifying that it is you.", "info")
MSG_SECOND_FACTOR = (1010004, "Please complete the second authentication challenge.", "info")
MSG_SAVED = (1050001, "Your changes have been saved!", "success")
MSG_INVALID_CREDENTIALS = (
    4000006,
    "The provided credentials are invalid, check for spelling mistakes in your password or "
    "username, email address, or phone number.",
    "error",
)
MSG_INVALID_CODE = (
    4000008,
    "The provided authentication code is invalid, please try again.",
    "error",
)
MSG_NO_TOTP = (4000011, "You have no TOTP device set up.", "error")


def rfc3339(moment: datetime) -> str:
    """Format *moment* as Kratos does: UTC, ``Z``, nanoseconds with trailing zeros cut."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}{secrets.randbelow(1000):03d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def _uuid() -> str:
    return str(uuid.uuid4())


def _ui_text(message: tuple[int, str, str], **context: Any) -> dict[str, Any]:
    text: dict[str, Any] = {"id": message[0], "text": message[1], "type": message[2]}
    if context:
        text["context"] = context
    return text


@dataclass
class FakeIdentity:
    """An identity: an email and password, and optionally a paired TOTP secret."""

    id: str
    email: str
    password: str | None
    created_at: datetime
    totp_secret: str | None = None
    state: str = "active"
    schema_id: str = "default"
    metadata_public: dict[str, Any] | None = None

    def totp(self) -> pyotp.TOTP:
        """Return the paired authenticator (raises if none is paired)."""
        if self.totp_secret is None:
            raise ValueError("this identity has no TOTP device")
        return pyotp.TOTP(self.totp_secret)

    @property
    def available_aal(self) -> str:
        return "aal2" if self.totp_secret else ("aal1" if self.password else "aal0")


@dataclass
class _SessionRecord:
    id: str
    token: str
    identity_id: str
    issued_at: datetime
    authenticated_at: datetime
    expires_at: datetime
    methods: list[dict[str, Any]] = field(default_factory=list)
    active: bool = True

    @property
    def aal(self) -> str:
        levels = {m["aal"] for m in self.methods}
        if not levels:
            return "aal0"
        return "aal2" if "aal1" in levels and "aal2" in levels else "aal1"


@dataclass(frozen=True)
class FakeSession:
    """A session made by :meth:`FakeKratos.session`, with what a test client needs.

    Attributes:
        id: The session id.
        token: The session token (``ory_st_...``).
        cookie: A session cookie value issued for it.
        cookie_name: The cookie's name.
        identity: The identity it belongs to.
    """

    id: str
    token: str
    cookie: str
    cookie_name: str
    identity: FakeIdentity

    @property
    def cookies(self) -> dict[str, str]:
        """Return ``{cookie_name: cookie}`` for a test client's ``cookies=``."""
        return {self.cookie_name: self.cookie}

    @property
    def cookie_header(self) -> str:
        """Return the ``Cookie`` header value."""
        return f"{self.cookie_name}={self.cookie}"

    @property
    def headers(self) -> dict[str, str]:
        """Return ``{"X-Session-Token": token}`` for API clients."""
        return {"X-Session-Token": self.token}

    def __repr__(self) -> str:
        return f"FakeSession(id={self.id!r}, identity={self.identity.email!r})"


@dataclass
class Fault:
    """A failure FakeKratos injects instead of answering.

    *kind* is ``"timeout"``, ``"reset"``, ``"status"`` (with *status*, e.g. 500 or 429,
    and optional *retry_after*), ``"garbage"`` (200 with a body that is not JSON) or
    ``"not_a_session"`` (200 with JSON that is no session). *times* None means forever.
    """

    kind: Literal["timeout", "reset", "status", "garbage", "not_a_session"]
    status: int = 500
    retry_after: int | None = None
    times: int | None = 1
    path_prefix: str = "/sessions/whoami"


@dataclass
class _Flow:
    id: str
    kind: Literal["login", "settings"]
    type: Literal["browser", "api"]
    request_url: str
    issued_at: datetime
    expires_at: datetime
    return_to: str | None
    csrf: str | None
    requested_aal: str = "aal1"
    refresh: bool = False
    identity_id: str | None = None
    pending_totp: str | None = None
    state: str = "choose_method"
    messages: list[dict[str, Any]] = field(default_factory=list)


class _Reply(Exception):
    """Raised inside a handler to answer at once."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _home_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/" if parts.scheme and parts.netloc else None


class FakeKratos:
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
        admin_token: When set, the admin API demands ``Authorization: Bearer <token>``.
        clock: The clock; tests move it with ``fake.clock.advance(seconds)``.
        session_lifespan: ``session.lifespan`` in seconds (24 h).
        privileged_max_age: ``privileged_session_max_age`` in seconds (1 h).
        cookie_name: ``session.cookie.name``.
        cacheable_sessions: Send ``Ory-Session-Cache-For`` (Ory Network's feature flag).
        app_url: The app's home, where the UI's "Back to the app" leads.
        unreleased: Answer as Kratos's main branch where it differs from the latest
            release (``autocomplete: "username"`` on the identifier node); off, the fake
            answers as the release does, which Ory's SDKs are generated from.
    """

    def __init__(
        self,
        *,
        public_url: str = "http://127.0.0.1:4433",
        ui_url: str | None = None,
        whoami_required_aal: RequiredAAL = "highest_available",
        settings_required_aal: RequiredAAL = "highest_available",
        allowed_return_urls: Iterable[str] = (
            "http://127.0.0.1",
            "http://localhost",
            "http://testserver",
            "https://testserver",
        ),
        default_return_url: str | None = None,
        admin_token: str | None = None,
        clock: FakeClock | None = None,
        session_lifespan: float = 24 * 3600,
        privileged_max_age: float = 3600,
        login_lifespan: float = 3600,
        cookie_name: str = "ory_kratos_session",
        cacheable_sessions: int | None = None,
        unreleased: bool = False,
        app_url: str | None = None,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.ui_url = (ui_url or f"{self.public_url}/ui").rstrip("/")
        self.whoami_required_aal = whoami_required_aal
        self.settings_required_aal = settings_required_aal
        self.allowed_return_urls = [
            self.public_url + "/self-service",
            self.ui_url,
            *allowed_return_urls,
        ]
        self.default_return_url = default_return_url or f"{self.ui_url}/welcome"
        self.admin_token = admin_token
        self.clock = clock or FakeClock()
        self.session_lifespan = session_lifespan
        self.privileged_max_age = privileged_max_age
        self.login_lifespan = login_lifespan
        self.cookie_name = cookie_name
        self.cacheable_sessions = cacheable_sessions
        self.unreleased = unreleased
        #: Where "Back to the app" leads (the app's home); else the home of return_to.
        self.app_url: str | None = app_url
        self.latency = 0.0
        #: A line shown under the login form (the demo lists its users there).
        self.ui_hint = ""
        #: Serve ``POST <ui_url>/clock`` (seconds=N) to move the clock on: for demos only.
        self.demo_controls = False
        self.csrf_cookie_name = (
            "csrf_token_" + hashlib.sha256(self.public_url.encode()).hexdigest()[:16]
        )
        self.identities: dict[str, FakeIdentity] = {}
        self._sessions: dict[str, _SessionRecord] = {}
        self._tokens: dict[str, str] = {}
        self._cookies: dict[str, tuple[str, datetime]] = {}
        self._flows: dict[str, _Flow] = {}
        self._errors: dict[str, dict[str, Any]] = {}
        self._logout_tokens: dict[str, str] = {}
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.requests: deque[httpx.Request] = deque(maxlen=1000)

    # ------------------------------------------------------------------ set-up

    def create_identity(
        self,
        email: str | None = None,
        password: str | None = "correct horse battery staple",
        *,
        totp: bool = False,
        totp_secret: str | None = None,
        state: str = "active",
    ) -> FakeIdentity:
        """Add an identity; with *totp* it has an authenticator app paired."""
        with self._lock:
            identity = FakeIdentity(
                id=_uuid(),
                email=email or f"user-{len(self.identities) + 1}@example.com",
                password=password,
                created_at=self.clock.now(),
                totp_secret=totp_secret or (pyotp.random_base32() if totp else None),
                state=state,
            )
            self.identities[identity.id] = identity
            return identity

    def session(
        self,
        aal: str = "aal1",
        methods: Iterable[str] | None = None,
        *,
        identity: FakeIdentity | None = None,
        totp: bool | None = None,
        authenticated_at: datetime | float | None = None,
        expires_in: float | None = None,
    ) -> FakeSession:
        """Create a logged-in session and return its cookie and token.

        Args:
            aal: ``"aal1"`` (a password) or ``"aal2"`` (password and TOTP).
            methods: Method names to record instead, e.g. ``["password", "webauthn"]``.
            identity: Whose session; a new identity by default.
            totp: Whether a new identity has TOTP paired (default: when *aal* is aal2).
            authenticated_at: When the methods were completed (a datetime or seconds ago).
            expires_in: Seconds until the session expires (``session_lifespan``).
        """
        level = AAL.parse(aal)
        names = (
            list(methods)
            if methods is not None
            else (["password", "totp"] if level >= AAL.AAL2 else ["password"])
        )
        with self._lock:
            if identity is None:
                identity = self.create_identity(totp=totp if totp is not None else "totp" in names)
            now = self.clock.now()
            if isinstance(authenticated_at, (int, float)):
                when = now - timedelta(seconds=authenticated_at)
            else:
                when = authenticated_at or now
            record = self._new_session(identity, when)
            record.methods = [self._method(name, when) for name in names]
            if expires_in is not None:
                record.expires_at = now + timedelta(seconds=expires_in)
            cookie = self._issue_cookie(record)
            return self._handle_for(record, cookie)

    def _handle_for(self, record: _SessionRecord, cookie: str) -> FakeSession:
        return FakeSession(
            id=record.id,
            token=record.token,
            cookie=cookie,
            cookie_name=self.cookie_name,
            identity=self.identities[record.identity_id],
        )

    def _new_session(self, identity: FakeIdentity, when: datetime) -> _SessionRecord:
        token = "ory_st_" + "".join(secrets.choice(_ALPHANUM) for _ in range(32))
        record = _SessionRecord(
            id=_uuid(),
            token=token,
            identity_id=identity.id,
            issued_at=when,
            authenticated_at=when,
            expires_at=when + timedelta(seconds=self.session_lifespan),
        )
        self._sessions[record.id] = record
        self._tokens[token] = record.id
        return record

    @staticmethod
    def _method(name: str, when: datetime) -> dict[str, Any]:
        return {
            "method": name,
            "aal": _SESSION_METHOD_AAL.get(name, "aal1"),
            "completed_at": rfc3339(when),
        }

    def _issue_cookie(self, record: _SessionRecord) -> str:
        # Like securecookie with a nonce: a new string every time, same token inside.
        cookie = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
        self._cookies[cookie] = (record.token, record.expires_at)
        return cookie

    def revoke(self, session: FakeSession | str) -> None:
        """Revoke a session (as ``DELETE /admin/sessions/{id}`` would)."""
        with self._lock:
            self._sessions[session if isinstance(session, str) else session.id].active = False

    def extend(self, session: FakeSession | str, seconds: float) -> None:
        """Move a session's expiry *seconds* further (as the admin extend API would)."""
        with self._lock:
            record = self._sessions[session if isinstance(session, str) else session.id]
            record.expires_at += timedelta(seconds=seconds)

    def disable(self, identity: FakeIdentity) -> None:
        """Set an identity's state to inactive."""
        with self._lock:
            identity.state = "inactive"

    def session_json(self, session: FakeSession | str) -> dict[str, Any]:
        """Return the whoami JSON of a session."""
        with self._lock:
            return self._session_json(
                self._sessions[session if isinstance(session, str) else session.id]
            )

    def totp_code(self, identity: FakeIdentity, *, secret: str | None = None) -> str:
        """Return the current TOTP code of *identity* (or of *secret*) by the fake's clock."""
        return pyotp.TOTP(secret or identity.totp_secret or "").at(self.clock.now())

    def pending_totp_secret(self, flow_id: str) -> str | None:
        """Return the secret a settings flow offers for pairing."""
        with self._lock:
            return self._flows[flow_id].pending_totp

    def fail(self, fault: Fault | str, **kwargs: Any) -> Fault:
        """Inject a failure (see :class:`Fault`); returns it so a test can keep count."""
        injected = fault if isinstance(fault, Fault) else Fault(fault, **kwargs)  # type: ignore[arg-type]
        with self._lock:
            self._faults.append(injected)
        return injected

    def heal(self) -> None:
        """Remove every injected failure."""
        with self._lock:
            self._faults.clear()

    # ----------------------------------------------------------------- clients

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

    # ----------------------------------------------------------------- serving

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _fault_response(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "status":
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            body = self._error_body(fault.status, None, "injected fault", "injected fault")
            return httpx.Response(fault.status, headers=headers, json=body, request=request)
        if fault.kind == "garbage":
            return httpx.Response(200, content=b"<html>\xff\xfe not json", request=request)
        return httpx.Response(200, json=[{"id": "not-a-session"}], request=request)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (its body already read)."""
        self.calls[request.url.path] += 1
        self.requests.append(request)
        try:
            with self._lock:
                response = self._route(request)
        except _Reply as reply:
            response = reply.response
        response.request = request
        return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/sessions/whoami" and method in _WHOAMI_METHODS:
            return self._whoami(request)
        routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {
            ("GET", "/self-service/login/browser"): lambda r: self._login_init(r, "browser"),
            ("GET", "/self-service/login/api"): lambda r: self._login_init(r, "api"),
            ("GET", "/self-service/login/flows"): lambda r: self._get_flow(r, "login"),
            ("POST", "/self-service/login"): self._login_submit,
            ("GET", "/self-service/settings/browser"): lambda r: self._settings_init(r, "browser"),
            ("GET", "/self-service/settings/api"): lambda r: self._settings_init(r, "api"),
            ("GET", "/self-service/settings/flows"): lambda r: self._get_flow(r, "settings"),
            ("POST", "/self-service/settings"): self._settings_submit,
            ("GET", "/self-service/logout/browser"): self._logout_browser,
            ("GET", "/self-service/logout"): self._logout,
            ("DELETE", "/self-service/logout/api"): self._logout_api,
            ("GET", "/self-service/errors"): self._get_error,
            ("GET", "/health/alive"): lambda r: self._json(200, {"status": "ok"}),
            ("GET", "/health/ready"): lambda r: self._json(200, {"status": "ok"}),
        }
        handler = routes.get((method, path))
        if handler is not None:
            return handler(request)
        ui_prefix = urlsplit(self.ui_url).path.rstrip("/") + "/"
        if path.startswith(ui_prefix):
            return self._ui(request, path[len(ui_prefix) :])
        if method == "GET" and path.startswith("/admin/identities/"):
            return self._admin_identity(request, path.removeprefix("/admin/identities/"))
        return self._not_found()

    # --------------------------------------------------------------- answers

    def _json(
        self,
        status: int,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        cookies: Iterable[str] = (),
    ) -> httpx.Response:
        all_headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Cache-Control", _NO_CACHE),
        ]
        all_headers += list((headers or {}).items())
        all_headers += [("Set-Cookie", c) for c in cookies]
        return httpx.Response(status, headers=all_headers, content=json.dumps(body).encode())

    @staticmethod
    def _error_body(
        code: int,
        error_id: str | None,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        status_text: str | None = None,
    ) -> dict[str, Any]:
        error: dict[str, Any] = {}
        if error_id:
            error["id"] = error_id
        error["code"] = code
        error["status"] = status_text or go_status_text(code)
        if reason:
            error["reason"] = reason
        if details:
            error["details"] = details
        error["message"] = message
        return {"error": error}

    def _error(
        self,
        code: int,
        error_id: str | None,
        reason: str,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        status_text: str | None = None,
        cookies: Iterable[str] = (),
    ) -> httpx.Response:
        body = self._error_body(
            code, error_id, reason, message, details=details, status_text=status_text
        )
        body.update(extra or {})
        headers = [
            ("Content-Type", "application/json"),
            ("Cache-Control", _NO_CACHE),
            ("Ory-Error-Id", error_id or ""),
        ] + [("Set-Cookie", c) for c in cookies]
        return httpx.Response(code, headers=headers, content=json.dumps(body).encode())

    def _not_found(self) -> httpx.Response:
        return self._error(
            404, None, "", "The requested resource could not be found", status_text="Not Found"
        )

    def _no_session(self) -> httpx.Response:
        return self._error(
            401,
            "session_inactive",
            "No active session was found in this request.",
            "request does not have a valid authentication session",
        )

    def _aal1_required(self) -> httpx.Response:
        return self._error(
            401,
            "session_aal1_required",
            "You can not requested a higher AAL (AAL2/AAL3) without an active session.",
            "aal2 and aal3 can only be requested if a session exists already",
        )

    def _aal2_required(self, target: str) -> httpx.Response:
        return self._error(
            403,
            "session_aal2_required",
            "An active session was found but it does not fulfill the requested Authenticator "
            "Assurance Level. Please verify yourself with a second factor to resolve this issue.",
            "Session does not fulfill the requested Authenticator Assurance Level",
            details={"redirect_browser_to": target},
            extra={"redirect_browser_to": target},
        )

    @staticmethod
    def _redirect(location: str, cookies: Iterable[str] = ()) -> httpx.Response:
        headers = [("Location", location), ("Cache-Control", _NO_CACHE)]
        headers += [("Set-Cookie", c) for c in cookies]
        return httpx.Response(303, headers=headers)

    def _forward(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        """errorx.Forward: JSON clients get the error, browsers a 303 to the error UI."""
        if self._is_json(request):
            return response
        error_id = _uuid()
        now = rfc3339(self.clock.now())
        self._errors[error_id] = {
            "id": error_id,
            "error": json.loads(response.content)["error"],
            "created_at": now,
            "updated_at": now,
        }
        return self._redirect(f"{self.ui_url}/error?id={error_id}")

    @staticmethod
    def _is_json(request: httpx.Request) -> bool:
        return wants_json(request.headers.get("Accept"), request.headers.get("Content-Type"))

    @staticmethod
    def _accepts_json(request: httpx.Request) -> bool:
        # x/http.go AcceptsJSON: offers text/html and application/json only.
        accept = request.headers.get("Accept", "")
        return (
            negotiate(accept, ("text/html", "application/json"), "text/html") == "application/json"
        )

    def _session_cookie(self, record: _SessionRecord, cookie: str) -> str:
        max_age = max(int((record.expires_at - self.clock.now()).total_seconds()), 0)
        return f"{self.cookie_name}={cookie}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"

    def _clear_cookie(self) -> str:
        return f"{self.cookie_name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"

    # ------------------------------------------------------------ sessions

    def _token_from(self, request: httpx.Request) -> tuple[str | None, str | None, bool]:
        """Return ``(token, cookie, present)`` as Kratos's extractToken finds them."""
        header = request.headers.get("X-Session-Token", "")
        if header:
            return header, None, True
        cookie = None
        for value in request.headers.get_list("Cookie"):
            cookie = cookie_from_header(value, self.cookie_name)
            if cookie:
                break
        if cookie:
            found = self._cookies.get(cookie)
            return (found[0] if found else None), cookie, True
        authorization = request.headers.get("Authorization", "")
        parts = authorization.split(" ")
        if len(parts) == 2 and parts[0].lower() == "bearer":
            return parts[1], None, True
        return None, None, bool(header or authorization or request.headers.get("Cookie"))

    def _current(self, request: httpx.Request) -> tuple[_SessionRecord | None, str | None, bool]:
        token, cookie, present = self._token_from(request)
        record = self._sessions.get(self._tokens.get(token or "", ""))
        if record is None or not self._is_active(record):
            return None, cookie, present
        return record, cookie, present

    def _is_active(self, record: _SessionRecord) -> bool:
        identity = self.identities.get(record.identity_id)
        return (
            record.active
            and record.expires_at > self.clock.now()
            and identity is not None
            and identity.state == "active"
        )

    def _satisfies(self, record: _SessionRecord, mode: str) -> bool:
        if record.aal == "aal2":
            return True
        if mode == "aal1":
            return record.aal >= "aal1"
        return self.identities[record.identity_id].available_aal != "aal2"

    def _identity_json(
        self, identity: FakeIdentity, credentials: Iterable[str] | None = None
    ) -> dict[str, Any]:
        created = rfc3339(identity.created_at)
        body: dict[str, Any] = {
            "id": identity.id,
            "schema_id": identity.schema_id,
            "schema_url": f"{self.public_url}/schemas/ZGVmYXVsdA",
            "state": identity.state,
            "traits": {"email": identity.email},
            "verifiable_addresses": [],
            "recovery_addresses": [],
            "metadata_public": identity.metadata_public,
            "created_at": created,
            "updated_at": created,
            "organization_id": None,
        }
        if credentials is not None:
            included = set(credentials)
            creds: dict[str, Any] = {}
            if identity.password is not None:
                creds["password"] = {
                    "type": "password",
                    "identifiers": [identity.email],
                    "version": 0,
                    "created_at": created,
                    "updated_at": created,
                }
            if identity.totp_secret is not None:
                creds["totp"] = {
                    "type": "totp",
                    "identifiers": [identity.id],
                    "version": 0,
                    "created_at": created,
                    "updated_at": created,
                }
                if "totp" in included:
                    creds["totp"]["config"] = {
                        "totp_url": pyotp.TOTP(identity.totp_secret).provisioning_uri(
                            name=identity.id, issuer_name=self._issuer()
                        )
                    }
            body["credentials"] = creds
        return body

    def _issuer(self) -> str:
        return urlsplit(self.public_url).hostname or "kratos"

    def _session_json(
        self, record: _SessionRecord, *, with_identity: bool = True
    ) -> dict[str, Any]:
        identity = self.identities[record.identity_id]
        return {
            "id": record.id,
            "active": self._is_active(record),
            "expires_at": rfc3339(record.expires_at),
            "authenticated_at": rfc3339(record.authenticated_at),
            "authenticator_assurance_level": record.aal,
            "authentication_methods": list(record.methods),
            "issued_at": rfc3339(record.issued_at),
            "identity": self._identity_json(identity) if with_identity else None,
            "devices": [
                {
                    "id": _uuid(),
                    "ip_address": "127.0.0.1",
                    "user_agent": "FakeKratos",
                    "location": "",
                }
            ],
        }

    def _whoami(self, request: httpx.Request) -> httpx.Response:
        record, cookie, present = self._current(request)
        if record is None:
            headers = {} if present else {"Ory-Session-Cache-For": "60"}
            response = self._error(
                401,
                None,
                "No valid session credentials found in the request.",
                "The request could not be authorized",
            )
            response.headers.update(headers)
            return response
        if not self._satisfies(record, self.whoami_required_aal):
            target = f"{self.public_url}/self-service/login/browser?aal=aal2"
            return self._aal2_required(target)
        headers = {"X-Kratos-Authenticated-Identity-Id": record.identity_id}
        if self.cacheable_sessions is not None:
            headers["Ory-Session-Cache-For"] = str(self.cacheable_sessions)
        cookies = []
        if cookie is not None and self._cookies[cookie][1] < record.expires_at:
            cookies.append(self._session_cookie(record, self._issue_cookie(record)))
        return self._json(200, self._session_json(record), headers=headers, cookies=cookies)

    # ------------------------------------------------------------ flows

    def _allowed_return_to(self, value: str) -> bool:
        try:
            target = urlsplit(value)
            if not target.scheme:
                # A relative return_to inherits scheme and host from the default return URL.
                default = urlsplit(self.default_return_url)
                target = target._replace(
                    scheme=default.scheme, netloc=target.netloc or default.netloc
                )
            target.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            return False
        for allowed in self.allowed_return_urls:
            entry = urlsplit(allowed)
            host_ok = target.hostname == entry.hostname or (
                (entry.hostname or "").startswith("*.")
                and (target.hostname or "").endswith((entry.hostname or "")[1:])
            )
            same_port = entry.port is None or target.port == entry.port
            if (
                target.scheme.lower() == entry.scheme.lower()
                and host_ok
                and same_port
                and (target.path or "/").startswith(entry.path or "/")
            ):
                return True
        return False

    def _check_return_to(
        self, request: httpx.Request, return_to: str | None, *, api: bool = False
    ) -> None:
        if return_to and not self._allowed_return_to(return_to):
            response = self._error(
                400,
                "self_service_flow_return_to_forbidden",
                f'Requested return_to URL "{return_to}" is not allowed.',
                "The request was malformed or contained invalid parameters",
            )
            raise _Reply(response if api else self._forward(request, response))

    def _new_flow(
        self,
        request: httpx.Request,
        kind: Literal["login", "settings"],
        flow_type: Literal["browser", "api"],
        lifespan: float,
        **values: Any,
    ) -> _Flow:
        now = self.clock.now()
        flow = _Flow(
            id=_uuid(),
            kind=kind,
            type=flow_type,
            request_url=self._request_url(request),
            issued_at=now,
            expires_at=now + timedelta(seconds=lifespan),
            return_to=request.url.params.get("return_to") or None,
            csrf=secrets.token_urlsafe(32) if flow_type == "browser" else None,
            **values,
        )
        self._flows[flow.id] = flow
        return flow

    def _request_url(self, request: httpx.Request) -> str:
        query = request.url.query.decode()
        return f"{self.public_url}{request.url.path}" + (f"?{query}" if query else "")

    def _csrf_cookie(self, flow: _Flow) -> list[str]:
        if flow.csrf is None:
            return []
        return [
            f"{self.csrf_cookie_name}={flow.csrf}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
        ]

    @staticmethod
    def _input(
        name: str,
        input_type: str,
        group: str,
        *,
        value: Any = None,
        required: bool = False,
        label: tuple[int, str, str] | None = None,
        autocomplete: str | None = None,
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "name": name,
            "type": input_type,
            "disabled": False,
            "node_type": "input",
        }
        if value is not None:
            attributes["value"] = value
        if required:
            attributes["required"] = True
        if autocomplete:
            attributes["autocomplete"] = autocomplete
        meta = {"label": _ui_text(label)} if label else {}
        return {
            "type": "input",
            "group": group,
            "attributes": attributes,
            "messages": [],
            "meta": meta,
        }

    def _login_nodes(self, flow: _Flow) -> list[dict[str, Any]]:
        nodes = []
        if flow.csrf:
            nodes.append(
                self._input("csrf_token", "hidden", "default", value=flow.csrf, required=True)
            )
        identity = self.identities.get(flow.identity_id or "")
        if flow.requested_aal == "aal2":
            if identity is not None and identity.totp_secret:
                nodes.append(
                    self._input(
                        "totp_code",
                        "text",
                        "totp",
                        required=True,
                        autocomplete="one-time-code",
                        label=(1010006, "Authentication code", "info"),
                    )
                )
                nodes.append(
                    self._input(
                        "method",
                        "submit",
                        "totp",
                        value="totp",
                        label=(1010009, "Use Authenticator", "info"),
                    )
                )
            return nodes
        nodes.append(
            self._input(
                "identifier",
                "hidden" if identity else "text",
                "default",
                required=True,
                value=identity.email if identity else "",
                # Only Kratos's main branch sends this; the latest release (and so Ory's
                # SDKs, whose enum rejects it) has no autocomplete on the identifier.
                autocomplete="username" if self.unreleased else None,
                label=(1070004, "ID", "info"),
            )
        )
        nodes.append(
            self._input(
                "password",
                "password",
                "password",
                required=True,
                autocomplete="current-password",
                label=(1070001, "Password", "info"),
            )
        )
        nodes.append(
            self._input(
                "method",
                "submit",
                "password",
                value="password",
                label=(1010022, "Sign in with password", "info"),
            )
        )
        return nodes

    def _settings_nodes(self, flow: _Flow) -> list[dict[str, Any]]:
        nodes = []
        if flow.csrf:
            nodes.append(
                self._input("csrf_token", "hidden", "default", value=flow.csrf, required=True)
            )
        identity = self.identities[flow.identity_id or ""]
        if identity.totp_secret:
            nodes.append(
                self._input(
                    "totp_unlink",
                    "submit",
                    "totp",
                    value="true",
                    label=(1050004, "Unlink TOTP Authenticator App", "info"),
                )
            )
            return nodes
        secret = flow.pending_totp or ""
        uri = pyotp.TOTP(secret).provisioning_uri(name=identity.email, issuer_name=self._issuer())
        nodes.append(
            {
                "type": "img",
                "group": "totp",
                "attributes": {
                    "src": _qr_data_uri(uri),
                    "id": "totp_qr",
                    "width": 256,
                    "height": 256,
                    "node_type": "img",
                },
                "messages": [],
                "meta": {"label": _ui_text((1050005, "Authenticator app QR code", "info"))},
            }
        )
        nodes.append(
            {
                "type": "text",
                "group": "totp",
                "attributes": {
                    "text": _ui_text((1050006, secret, "info"), secret=secret),
                    "id": "totp_secret_key",
                    "node_type": "text",
                },
                "messages": [],
                "meta": {
                    "label": _ui_text(
                        (
                            1050017,
                            "This is your authenticator app secret. Use it if you "
                            "can not scan the QR code.",
                            "info",
                        )
                    )
                },
            }
        )
        nodes.append(
            self._input(
                "totp_code",
                "text",
                "totp",
                required=True,
                autocomplete="one-time-code",
                label=(1070006, "Verify code", "info"),
            )
        )
        nodes.append(
            self._input("method", "submit", "totp", value="totp", label=(1070003, "Save", "info"))
        )
        return nodes

    def flow_json(self, flow: _Flow) -> dict[str, Any]:
        """Return the JSON of a login or settings flow."""
        action = f"{self.public_url}/self-service/{flow.kind}?flow={flow.id}"
        ui: dict[str, Any] = {"action": action, "method": "POST"}
        ui["nodes"] = (
            self._login_nodes(flow) if flow.kind == "login" else self._settings_nodes(flow)
        )
        if flow.messages:
            ui["messages"] = list(flow.messages)
        body: dict[str, Any] = {
            "id": flow.id,
            "type": flow.type,
            "expires_at": rfc3339(flow.expires_at),
            "issued_at": rfc3339(flow.issued_at),
            "request_url": flow.request_url,
            "ui": ui,
            "state": flow.state,
        }
        if flow.return_to:
            body["return_to"] = flow.return_to
        if flow.kind == "login":
            body.update(
                refresh=flow.refresh,
                requested_aal=flow.requested_aal,
                created_at=rfc3339(flow.issued_at),
                updated_at=rfc3339(flow.issued_at),
            )
        else:
            body["identity"] = self._identity_json(self.identities[flow.identity_id or ""])
        return body

    def _flow_answer(self, request: httpx.Request, flow: _Flow, ui_page: str) -> httpx.Response:
        cookies = self._csrf_cookie(flow)
        if flow.type == "browser" and not self._is_json(request):
            return self._redirect(f"{self.ui_url}/{ui_page}?flow={flow.id}", cookies)
        return self._json(200, self.flow_json(flow), cookies=cookies)

    def _login_init(
        self, request: httpx.Request, flow_type: Literal["browser", "api"]
    ) -> httpx.Response:
        params = request.url.params
        requested = (params.get("aal") or "aal1").lower()
        if requested not in ("aal1", "aal2"):
            response = self._error(
                400,
                None,
                "Unable to parse AuthenticationMethod Assurance Level (AAL): expected one of "
                f"[aal1, aal2] but got {params.get('aal')}",
                "The request was malformed or contained invalid parameters",
            )
            return response if flow_type == "api" else self._forward(request, response)
        refresh = params.get("refresh", "").lower() in ("1", "t", "true")
        return_to = params.get("return_to") or None
        self._check_return_to(request, return_to, api=flow_type == "api")
        record, _, _ = self._current(request)
        if record is None and requested == "aal2":
            response = self._aal1_required()
            return response if flow_type == "api" else self._forward(request, response)
        if record is not None and not refresh and (requested == "aal1" or requested <= record.aal):
            response = self._error(
                400,
                "session_already_available",
                "A valid session was detected and thus login is not possible. "
                "Did you forget to set "
                "`?refresh=true`?",
                "you are already logged in",
            )
            if flow_type == "api" or self._is_json(request):
                return response
            return self._redirect(return_to or self.default_return_url)
        flow = self._new_flow(
            request,
            "login",
            flow_type,
            self.login_lifespan,
            requested_aal=requested,
            refresh=refresh and record is not None,
            identity_id=record.identity_id if record is not None else None,
        )
        if flow.refresh:
            flow.messages.append(_ui_text(MSG_CONFIRM))
        if record is not None and requested == "aal2":
            flow.messages.append(_ui_text(MSG_SECOND_FACTOR))
        return self._flow_answer(request, flow, "login")

    def _get_flow(
        self, request: httpx.Request, kind: Literal["login", "settings"]
    ) -> httpx.Response:
        flow = self._flows.get(request.url.params.get("id", ""))
        if flow is None or flow.kind != kind:
            return self._not_found()
        if flow.type == "browser" and self._csrf_of(request) != flow.csrf:
            return self._csrf_violation()
        return self._json(200, self.flow_json(flow))

    def _csrf_of(self, request: httpx.Request) -> str | None:
        for value in request.headers.get_list("Cookie"):
            found = cookie_from_header(value, self.csrf_cookie_name)
            if found:
                return found
        return None

    def _csrf_violation(self) -> httpx.Response:
        return self._error(
            403,
            "security_csrf_violation",
            "Please retry the flow and optionally clear your cookies. The request was rejected to "
            "protect you from Cross-Site-Request-Forgery (CSRF) which could cause account "
            "takeover, "
            "leaking personal information, and other serious security issues.",
            "the request was rejected to protect you from Cross-Site-Request-Forgery",
            details={
                "docs": "https://www.ory.sh/kratos/docs/debug/csrf",
                "hint": "The anti-CSRF cookie was found but the CSRF token was not included in "
                "the HTTP request body (csrf_token) nor in the HTTP Header (X-CSRF-Token).",
                "reject_reason": "The HTTP Cookie Header was set and a CSRF token was sent but "
                "they do not match. We recommend deleting all cookies for this "
                "domain and retrying the flow.",
            },
        )

    @staticmethod
    def _form(request: httpx.Request) -> dict[str, str]:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        raw = request.content
        if content_type == "application/json":
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                return {}
            return (
                {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()}
                if isinstance(data, dict)
                else {}
            )
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))

    def _submit_flow(
        self, request: httpx.Request, kind: Literal["login", "settings"]
    ) -> tuple[_Flow, dict[str, str]]:
        flow = self._flows.get(request.url.params.get("flow", ""))
        if flow is None or flow.kind != kind:
            raise _Reply(self._not_found())
        now = self.clock.now()
        if flow.expires_at <= now:
            replacement = self._new_flow(
                request,
                kind,
                flow.type,
                self.login_lifespan,
                requested_aal=flow.requested_aal,
                refresh=flow.refresh,
                identity_id=flow.identity_id,
                pending_totp=pyotp.random_base32() if kind == "settings" else None,
            )
            replacement.return_to, replacement.request_url = flow.return_to, flow.request_url
            minutes = (now - flow.expires_at).total_seconds() / 60
            if flow.type == "browser" and not self._is_json(request):
                raise _Reply(
                    self._redirect(
                        f"{self.ui_url}/{kind}?flow={replacement.id}",
                        self._csrf_cookie(replacement),
                    )
                )
            raise _Reply(
                self._error(
                    410,
                    "self_service_flow_expired",
                    f"The self-service flow expired {minutes:.2f} minutes ago, "
                    "initialize a new one.",
                    "self-service flow expired",
                    extra={
                        "expired_at": rfc3339(flow.expires_at),
                        "since": int(minutes * 60e9),
                        "use_flow_id": replacement.id,
                    },
                )
            )
        form = self._form(request)
        if flow.type == "browser" and (
            not form.get("csrf_token")
            or form.get("csrf_token") != flow.csrf
            or self._csrf_of(request) != flow.csrf
        ):
            raise _Reply(self._csrf_violation())
        return flow, form

    def _flow_error(
        self, request: httpx.Request, flow: _Flow, message: tuple[int, str, str], ui_page: str
    ) -> httpx.Response:
        flow.messages = [_ui_text(message)]
        if flow.type == "browser" and not self._is_json(request):
            return self._redirect(f"{self.ui_url}/{ui_page}?flow={flow.id}")
        return self._json(400, self.flow_json(flow))

    def _login_submit(self, request: httpx.Request) -> httpx.Response:
        flow, form = self._submit_flow(request, "login")
        record, _, _ = self._current(request)
        method = form.get("method", "")
        now = self.clock.now()
        if method == "password":
            if flow.requested_aal == "aal2":
                return self._flow_error(
                    request,
                    flow,
                    (
                        4000001,
                        "Could not find a strategy to log you "
                        "in with. Did you fill out the form correctly?",
                        "error",
                    ),
                    "login",
                )
            identifier = form.get("identifier") or form.get("password_identifier") or ""
            identity = next(
                (
                    i
                    for i in self.identities.values()
                    if i.email.lower() == identifier.strip().lower()
                ),
                None,
            )
            password = form.get("password", "")
            if (
                identity is None
                or identity.password is None
                or not secrets.compare_digest(identity.password.encode(), password.encode())
            ):
                return self._flow_error(request, flow, MSG_INVALID_CREDENTIALS, "login")
            if identity.state != "active":
                return self._error(
                    400,
                    "identity_disabled",
                    "This account was disabled.",
                    "The request was malformed or contained invalid parameters",
                )
            if record is not None and record.identity_id == identity.id:
                if not flow.refresh:
                    return self._already_logged_in(request, flow)
            else:
                record = self._new_session(identity, now)
        elif method == "totp":
            if record is None:
                return self._aal1_required()
            identity = self.identities[record.identity_id]
            if not identity.totp_secret:
                return self._flow_error(request, flow, MSG_NO_TOTP, "login")
            if not self._totp_ok(identity.totp_secret, form.get("totp_code", "")):
                return self._flow_error(request, flow, MSG_INVALID_CODE, "login")
            if not flow.refresh and flow.requested_aal <= record.aal:
                return self._already_logged_in(request, flow)
        else:
            return self._flow_error(
                request,
                flow,
                (
                    4010002,
                    "Could not find a strategy to log you in "
                    "with. Did you fill out the form correctly?",
                    "error",
                ),
                "login",
            )
        return self._login_success(request, flow, record, method)

    def _already_logged_in(self, request: httpx.Request, flow: _Flow) -> httpx.Response:
        if flow.type == "browser" and not self._is_json(request):
            return self._redirect(self.default_return_url)
        return self._flow_error(
            request,
            flow,
            (
                4000001,
                "A valid session was detected and thus login "
                "is not possible. Did you forget to set "
                "`?refresh=true`?",
                "error",
            ),
            "login",
        )

    def _login_success(
        self, request: httpx.Request, flow: _Flow, record: _SessionRecord, method: str
    ) -> httpx.Response:
        now = self.clock.now()
        record.methods.append(self._method(method, now))
        record.active = True
        record.authenticated_at = record.issued_at = now
        record.expires_at = now + timedelta(seconds=self.session_lifespan)
        flow.state = "passed_challenge"
        satisfied = self._satisfies(record, self.whoami_required_aal)
        body: dict[str, Any]
        if flow.type == "api":
            body = {
                "session_token": record.token,
                "session": self._session_json(record, with_identity=satisfied),
            }
            return self._json(200, body)
        cookie = self._session_cookie(record, self._issue_cookie(record))
        if not satisfied:
            params = {"aal": "aal2"}
            original = dict(parse_qsl(urlsplit(flow.request_url).query))
            for key in ("login_challenge", "return_to"):
                if original.get(key):
                    params[key] = original[key]
            target = f"{self.public_url}/self-service/login/browser?{urlencode(params)}"
            if self._is_json(request):
                return self._error(
                    422,
                    "browser_location_change_required",
                    f"In order to complete this flow please redirect the browser to: {target}",
                    "browser location change required",
                    extra={"redirect_browser_to": target},
                    cookies=[cookie],
                )
            return self._redirect(target, [cookie])
        destination = flow.return_to or self.default_return_url
        if self._is_json(request):
            body = {
                "session": self._session_json(record),
                "continue_with": [
                    {"action": "redirect_browser_to", "redirect_browser_to": destination}
                ],
            }
            return self._json(200, body, cookies=[cookie])
        return self._redirect(destination, [cookie])

    def _settings_init(
        self, request: httpx.Request, flow_type: Literal["browser", "api"]
    ) -> httpx.Response:
        record, _, _ = self._current(request)
        return_to = request.url.params.get("return_to") or None
        if record is None:
            if flow_type == "api":
                return self._error(
                    401,
                    "session_inactive",
                    "This endpoint can only be accessed with a "
                    "valid session. Please log in and try again.",
                    "request does not have a valid authentication session",
                )
            if self._is_json(request):
                return self._no_session()
            target = f"{self.public_url}/self-service/login/browser"
            return self._redirect(
                target + (f"?{urlencode({'return_to': return_to})}" if return_to else "")
            )
        self._check_return_to(request, return_to, api=flow_type == "api")
        if not self._satisfies(record, self.settings_required_aal):
            params = {"aal": "aal2"}
            if return_to and flow_type == "browser":
                params["return_to"] = self._request_url(request)
            target = f"{self.public_url}/self-service/login/browser?{urlencode(params)}"
            if flow_type == "browser" and not self._is_json(request):
                return self._redirect(target)
            return self._aal2_required(target)
        flow = self._new_flow(
            request,
            "settings",
            flow_type,
            self.login_lifespan,
            identity_id=record.identity_id,
            pending_totp=pyotp.random_base32(),
        )
        return self._flow_answer(request, flow, "settings")

    def _settings_submit(self, request: httpx.Request) -> httpx.Response:
        flow, form = self._submit_flow(request, "settings")
        record, _, _ = self._current(request)
        if record is None:
            return self._no_session()
        if record.identity_id != flow.identity_id:
            return self._error(
                403,
                "security_identity_mismatch",
                "The request was initiated by someone else and has been blocked for "
                "security reasons. Please go back and try again.",
                "The requested action was forbidden",
            )
        now = self.clock.now()
        if record.authenticated_at + timedelta(seconds=self.privileged_max_age) <= now:
            continue_url = f"{self.public_url}/self-service/settings?flow={flow.id}"
            target = (
                f"{self.public_url}/self-service/login/browser?"
                f"{urlencode({'refresh': 'true', 'return_to': continue_url})}"
            )
            if flow.type == "browser" and not self._is_json(request):
                return self._redirect(target)
            return self._error(
                403,
                "session_refresh_required",
                "The login session is too old and thus not allowed to update these fields. Please "
                "re-authenticate.",
                "The requested action was forbidden",
                extra={"redirect_browser_to": target},
            )
        identity = self.identities[record.identity_id]
        unlink = form.get("totp_unlink", "").lower() == "true"
        # selfservice/strategy/totp/settings.go: an unlink submit is the TOTP method's,
        # whatever "method" says (the unlink button sends no method=totp).
        if form.get("method") != "totp" and not unlink:
            return self._flow_error(
                request,
                flow,
                (4000001, "Could not find a strategy to update your settings.", "error"),
                "settings",
            )
        if unlink:
            identity.totp_secret = None
        else:
            secret = flow.pending_totp or ""
            if not self._totp_ok(secret, form.get("totp_code", "")):
                return self._flow_error(request, flow, MSG_INVALID_CODE, "settings")
            identity.totp_secret = secret
            record.methods.append(self._method("totp", now))
            record.authenticated_at = now
        flow.state = "success"
        flow.messages = [_ui_text(MSG_SAVED)]
        flow.pending_totp = pyotp.random_base32()
        if flow.type == "api":
            return self._json(200, self.flow_json(flow))
        cookie = self._session_cookie(record, self._issue_cookie(record))
        if self._is_json(request):
            body = self.flow_json(flow)
            if flow.return_to:
                body["continue_with"] = [
                    {"action": "redirect_browser_to", "redirect_browser_to": flow.return_to}
                ]
            return self._json(200, body, cookies=[cookie])
        return self._redirect(flow.return_to or f"{self.ui_url}/settings?flow={flow.id}", [cookie])

    def _totp_ok(self, secret: str, code: str) -> bool:
        """Validate like Kratos (30 s, 6 digits, SHA1, skew ±1) at the fake's time.

        Codes valid at the real time pass too: a phone's authenticator app keeps real
        time when a test or the demo has moved the fake's clock on.
        """
        totp = pyotp.TOTP(secret)
        return any(
            totp.verify(code, for_time=moment, valid_window=1)
            for moment in (self.clock.now(), datetime.now(timezone.utc))
        )

    # ------------------------------------------------------------ logout, admin, errors

    def _logout_browser(self, request: httpx.Request) -> httpx.Response:
        record, _, _ = self._current(request)
        if record is None:
            return self._no_session()
        token = secrets.token_urlsafe(24)
        self._logout_tokens[token] = record.id
        params = {"token": token}
        if request.url.params.get("return_to"):
            self._check_return_to(request, request.url.params["return_to"])
            params["return_to"] = request.url.params["return_to"]
        return self._json(
            200,
            {
                "logout_url": f"{self.public_url}/self-service/logout?{urlencode(params)}",
                "logout_token": token,
            },
        )

    def _logout(self, request: httpx.Request) -> httpx.Response:
        session_id = self._logout_tokens.pop(request.url.params.get("token", ""), None)
        if session_id is None:
            return self._forward(
                request,
                self._error(
                    401,
                    None,
                    "No active session was found in this request.",
                    "request does not have a valid authentication session",
                ),
            )
        self._sessions[session_id].active = False
        if self._accepts_json(request):
            return httpx.Response(204, headers=[("Set-Cookie", self._clear_cookie())])
        return self._redirect(
            request.url.params.get("return_to") or self.default_return_url, [self._clear_cookie()]
        )

    def _logout_api(self, request: httpx.Request) -> httpx.Response:
        token = self._form(request).get("session_token", "")
        session_id = self._tokens.get(token)
        if session_id is None:
            return self._error(
                403,
                None,
                "The provided session token is invalid.",
                "The requested action was forbidden",
            )
        self._sessions[session_id].active = False
        return httpx.Response(204)

    def _admin_identity(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        if self.admin_token is not None:
            expected = f"Bearer {self.admin_token}"
            if not secrets.compare_digest(
                request.headers.get("Authorization", "").encode(), expected.encode()
            ):
                return self._error(401, None, "", "The request could not be authorized")
        identity = self.identities.get(identity_id)
        if identity is None:
            return self._error(
                404, None, "", "Unable to locate the resource", status_text="Not Found"
            )
        included = request.url.params.get_list("include_credential")
        return self._json(200, self._identity_json(identity, credentials=included))

    def _get_error(self, request: httpx.Request) -> httpx.Response:
        error = self._errors.get(request.url.params.get("id", ""))
        if error is None:
            return self._not_found()
        return self._json(200, error)

    # ------------------------------------------------------------ self-service UI

    def _html(self, status: int, body: bytes, cookies: Iterable[str] = ()) -> httpx.Response:
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", _NO_CACHE)]
        headers += [("Set-Cookie", c) for c in cookies]
        return httpx.Response(status, headers=headers, content=body)

    def _ui(self, request: httpx.Request, page: str) -> httpx.Response:
        pages: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {
            ("GET", "login"): lambda r: self._ui_flow(r, "login"),
            ("GET", "settings"): lambda r: self._ui_flow(r, "settings"),
            ("GET", "error"): self._ui_error,
            ("GET", "welcome"): self._ui_welcome,
            ("GET", "logout"): self._ui_logout,
            ("POST", "clock"): self._ui_clock,
        }
        handler = pages.get((request.method, page))
        return handler(request) if handler else self._not_found()

    def _ui_flow(
        self, request: httpx.Request, kind: Literal["login", "settings"]
    ) -> httpx.Response:
        flow = self._flows.get(request.url.params.get("flow", ""))
        if flow is None or flow.kind != kind or flow.expires_at <= self.clock.now():
            start = f"{self.public_url}/self-service/{kind}/browser"
            return self._redirect(start)
        body = self.flow_json(flow)
        identity = self.identities.get(flow.identity_id or "")
        if kind == "login":
            title = "Sign in"
            if flow.requested_aal == "aal2":
                title = "Confirm it's you" if flow.refresh else "Second factor"
            elif flow.refresh:
                title = "Confirm it's you"
        else:
            title = "Account settings"
        html = _ui.messages(body["ui"].get("messages", []))
        if identity is not None:
            html += f'<p class="hint">Signed in as <b>{escape(identity.email)}</b></p>'
        if kind == "settings" and identity is not None and not identity.totp_secret:
            if flow.return_to:
                html += (
                    "<p>The page you came from needs a second factor, and this account has "
                    "none yet: pair an authenticator app to go on.</p>"
                )
            html += (
                "<p>Scan the QR code with an authenticator app (or type the secret), then "
                "enter the code it shows.</p>"
            )
        html += _ui.form(body["ui"])
        if kind == "login" and flow.requested_aal == "aal1" and self.ui_hint:
            html += f'<p class="hint">{escape(self.ui_hint)}</p>'
        # Back to the app's home, not to the protected page that sent the user here: that
        # page would only send them straight back.
        home = self.app_url or _home_of(flow.return_to)
        back = [("Back to the app", home)] if home else []
        signed_in = [("Sign out", f"{self.ui_url}/logout")] if identity is not None else []
        html += _ui.links(*back, *signed_in)
        return self._html(200, _ui.document(title, html))

    def _ui_error(self, request: httpx.Request) -> httpx.Response:
        stored = self._errors.get(request.url.params.get("id", ""), {})
        error = stored.get("error", {})
        rows = "".join(
            f"<tr><td><b>{escape(key)}</b></td><td>{escape(str(error[key]))}</td></tr>"
            for key in ("id", "code", "reason", "message")
            if key in error
        )
        html = f"<table>{rows}</table>" if rows else "<p>No such error.</p>"
        html += _ui.links(("Sign in", f"{self.public_url}/self-service/login/browser"))
        return self._html(200 if rows else 404, _ui.document("Something went wrong", html))

    def _ui_welcome(self, request: httpx.Request) -> httpx.Response:
        record, _, _ = self._current(request)
        if record is None:
            html = "<p>You are not signed in.</p>"
            html += _ui.links(("Sign in", f"{self.public_url}/self-service/login/browser"))
        else:
            identity = self.identities[record.identity_id]
            html = f"<p>Signed in as <b>{escape(identity.email)}</b> at <b>{record.aal}</b>.</p>"
            html += _ui.links(
                ("Settings", f"{self.public_url}/self-service/settings/browser"),
                ("Sign out", f"{self.ui_url}/logout"),
            )
        return self._html(200, _ui.document("Welcome", html))

    def _ui_logout(self, request: httpx.Request) -> httpx.Response:
        record, _, _ = self._current(request)
        if record is None:
            return self._redirect(self.default_return_url)
        token = secrets.token_urlsafe(24)
        self._logout_tokens[token] = record.id
        params = {"token": token}
        return_to = request.url.params.get("return_to")
        if return_to and self._allowed_return_to(return_to):
            params["return_to"] = return_to
        return self._redirect(f"{self.public_url}/self-service/logout?{urlencode(params)}")

    def _ui_clock(self, request: httpx.Request) -> httpx.Response:
        """Demo control: move the fake's clock on (sessions age; max_age routes re-ask)."""
        if not self.demo_controls:
            return self._not_found()
        try:
            seconds = float(self._form(request).get("seconds", "0"))
        except ValueError:
            seconds = 0.0
        self.clock.advance(max(0.0, min(seconds, 86400.0)))
        back = self._form(request).get("return_to", "")
        return self._redirect(
            back if back and self._allowed_return_to(back) else self.default_return_url
        )

    # ------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve the fake as an ASGI app (e.g. with uvicorn on a real port)."""
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
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode("latin-1")
        url = f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{scope['path']}"
        query = scope.get("query_string", b"").decode("latin-1")
        request = httpx.Request(
            scope["method"],
            url + (f"?{query}" if query else ""),
            headers=[(k, v) for k, v in scope["headers"]],
            content=body,
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(scope["path"])
        if fault is not None and fault.kind in ("timeout", "reset"):
            if fault.kind == "timeout":
                await asyncio.sleep(3600)
            raise ConnectionResetError("injected fault: connection reset")
        response = self._fault_response(fault, request) if fault else self.handle(request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k.lower(), v) for k, v in response.headers.raw],
            }
        )
        await send({"type": "http.response.body", "body": response.content})


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


def _qr_data_uri(text: str) -> str:
    try:
        import segno
    except ImportError:  # segno comes with the testing extra; without it, no picture
        return "data:image/png;base64,"
    return str(segno.make(text, error="m").png_data_uri(scale=4))
