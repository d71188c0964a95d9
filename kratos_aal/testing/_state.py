"""Keep FakeKratos's state: configuration, identities, sessions, faults (Kratos's ``identity/`` and ``session/`` stores)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp

from .._models import AAL
from ._clock import FakeClock
from ._records import (
    _ALPHANUM,
    _SESSION_METHOD_AAL,
    FakeIdentity,
    FakeSession,
    Fault,
    RequiredAAL,
    WebAuthnKey,
    _Flow,
    _SessionRecord,
    _uuid,
    rfc3339,
)

#: The fake's own default allow-list (Kratos has none): an app on any port of 127.0.0.1
#: or localhost, and test clients' "testserver". ":*" is the fake's, not Kratos's: an
#: entry a user passes matches as Kratos matches it, its port included.
_ANY_LOCAL_APP = (
    "http://127.0.0.1:*",
    "http://localhost:*",
    "http://testserver",
    "https://testserver",
)


class _State:
    """Hold FakeKratos's configuration and stores, and the set-up calls tests use."""

    def __init__(
        self,
        *,
        public_url: str = "http://127.0.0.1:4433",
        ui_url: str | None = None,
        whoami_required_aal: RequiredAAL = "highest_available",
        settings_required_aal: RequiredAAL = "highest_available",
        allowed_return_urls: Iterable[str] = _ANY_LOCAL_APP,
        default_return_url: str | None = None,
        admin_url: str | None = None,
        admin_token: str | None = None,
        clock: FakeClock | None = None,
        session_lifespan: float = 24 * 3600,
        privileged_max_age: float = 3600,
        login_lifespan: float = 3600,
        cookie_name: str = "ory_kratos_session",
        cacheable_sessions: int | None = None,
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
        self.admin_url = (admin_url or _default_admin_url(self.public_url)).rstrip("/")
        self.admin_token = admin_token
        self.clock = clock or FakeClock()
        self.session_lifespan = session_lifespan
        self.privileged_max_age = privileged_max_age
        self.login_lifespan = login_lifespan
        self.cookie_name = cookie_name
        self.cacheable_sessions = cacheable_sessions
        #: Where "Back to the app" leads (the app's home); else the home of return_to.
        self.app_url: str | None = app_url
        self.latency = 0.0
        #: A line shown under the login form (the demo lists its users there).
        self.ui_hint = ""
        #: Per email, where that user's second-factor codes come from (the login pages).
        self.ui_code_hints: dict[str, str] = {}
        #: Serve ``POST <ui_url>/clock`` (seconds=N) to move the clock on: for demos only.
        self.demo_controls = False
        self.csrf_cookie_name = (
            # x/nosurfx: csrf_token_ + the whole hex SHA-256 of the public base URL.
            "csrf_token_" + hashlib.sha256(self.public_url.encode()).hexdigest()
        )
        self.identities: dict[str, FakeIdentity] = {}
        self._sessions: dict[str, _SessionRecord] = {}
        self._tokens: dict[str, str] = {}
        self._cookies: dict[str, tuple[str, datetime]] = {}
        self._flows: dict[str, _Flow] = {}
        self._flows_made = 0
        self._errors: dict[str, dict[str, Any]] = {}
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.requests: deque[httpx.Request] = deque(maxlen=1000)

    def create_identity(
        self,
        email: str | None = None,
        password: str | None = "correct horse battery staple",
        *,
        totp: bool = False,
        totp_secret: str | None = None,
        state: str = "active",
        lookup_secrets: bool | Iterable[str] = False,
        security_keys: int = 0,
        passkeys: int = 0,
    ) -> FakeIdentity:
        """Add an identity; with *totp* it has an authenticator app paired.

        Args:
            lookup_secrets: Give it backup codes: True for twelve random ones, or the codes.
            security_keys: How many WebAuthn keys it has as a second factor.
            passkeys: How many passwordless WebAuthn keys it has (a first factor).
        """
        if lookup_secrets is True:
            codes = [secrets.token_hex(4) for _ in range(12)]
        else:
            codes = list(lookup_secrets or ())
        keys = [WebAuthnKey(f"Security key {n + 1}") for n in range(security_keys)]
        keys += [WebAuthnKey(f"Passkey {n + 1}", is_passwordless=True) for n in range(passkeys)]
        with self._lock:
            identity = FakeIdentity(
                id=_uuid(),
                email=email or f"user-{len(self.identities) + 1}@example.com",
                password=password,
                created_at=self.clock.now(),
                totp_secret=totp_secret or (pyotp.random_base32() if totp else None),
                state=state,
                lookup_codes=codes,
                webauthn_keys=keys,
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
        # Like securecookie with a nonce: a new string every time, same token inside. Its
        # value is base64 of "<unix time>|...", so a real cookie starts "MT", never "-".
        stamp = f"{int(self.clock.now().timestamp())}|".encode()
        cookie = base64.urlsafe_b64encode(stamp + secrets.token_bytes(48)).decode().rstrip("=")
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
            identity.state_changed_at = self.clock.now()

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


def _default_admin_url(public_url: str) -> str:
    # Kratos's admin port is 4434 beside the public 4433; keep the two apart always.
    parts = urlsplit(public_url)
    port = 4435 if parts.port == 4434 else 4434
    return f"{parts.scheme}://{parts.hostname}:{port}"
