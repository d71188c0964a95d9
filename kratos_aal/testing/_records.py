"""Hold what FakeKratos stores: identities, sessions, flows, faults."""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pyotp

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


# DELETE too: session/handler.go deleteMySession answers /sessions/whoami as whoami.
_WHOAMI_METHODS = {
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
}


def rfc3339(moment: datetime) -> str:
    """Format *moment* as Kratos does: UTC, ``Z``, nanoseconds with trailing zeros cut."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    # Stored times: the same moment always reads the same (no random nanoseconds).
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def _uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class WebAuthnKey:
    """A WebAuthn key registered on an identity; a passwordless one is a first factor."""

    display_name: str
    is_passwordless: bool = False
    id: str = field(default_factory=lambda: secrets.token_urlsafe(16))


@dataclass
class FakeIdentity:
    """An identity: an email and password, and optionally second factors.

    Second factors are a paired TOTP secret, unused lookup (backup) codes (used ones move
    to ``used_lookup_codes``), and WebAuthn
    security keys; a passwordless WebAuthn key (a passkey) is a first factor instead.
    """

    id: str
    email: str
    password: str | None
    created_at: datetime
    totp_secret: str | None = None
    state: str = "active"
    schema_id: str = "default"
    metadata_public: dict[str, Any] | None = None
    state_changed_at: datetime | None = None
    lookup_codes: list[str] = field(default_factory=list)
    #: Backup codes already used, with when (Kratos keeps them, with ``used_at``).
    used_lookup_codes: dict[str, datetime] = field(default_factory=dict)
    webauthn_keys: list[WebAuthnKey] = field(default_factory=list)

    @property
    def security_keys(self) -> list[WebAuthnKey]:
        """Return the WebAuthn keys that are a second factor (not passwordless)."""
        return [key for key in self.webauthn_keys if not key.is_passwordless]

    def totp(self) -> pyotp.TOTP:
        """Return the paired authenticator (raises if none is paired)."""
        if self.totp_secret is None:
            raise ValueError("this identity has no TOTP device")
        return pyotp.TOTP(self.totp_secret)

    @property
    def available_aal(self) -> str:
        # identity.SetAvailableAAL: any active second factor gives aal2, a first factor aal1.
        if self.totp_secret or self.lookup_codes or self.security_keys:
            return "aal2"
        return "aal1" if self.password or self.webauthn_keys else "aal0"


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
    # Kratos stores one logout token per session (session/session.go LogoutToken).
    logout_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    device_id: str = field(default_factory=lambda: str(uuid.uuid4()))

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
    kind: Literal["login", "settings", "registration"]
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
    # Registration: what was typed (shown again) and messages attached to nodes.
    traits: dict[str, Any] = field(default_factory=dict)
    node_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


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
