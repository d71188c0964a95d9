"""Answer as Kratos's ``session/`` package does: tokens, cookies and whoami."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from datetime import timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp

from .._credentials import cookie_from_header
from ._errors import _Errors
from ._messages import BAD_REQUEST
from ._records import FakeIdentity, FakeSession, _SessionRecord, rfc3339


class _Sessions(_Errors):
    """Read session tokens and cookies and answer whoami."""

    def _session_cookie(self, record: _SessionRecord, cookie: str) -> str:
        # session/manager_http.go IssueCookie: a persistent cookie carries both Expires
        # and Max-Age (Go's http.Cookie writes both).
        max_age = max(int((record.expires_at - self.clock.now()).total_seconds()), 0)
        expires = format_datetime(record.expires_at.astimezone(timezone.utc), usegmt=True)
        return (
            f"{self.cookie_name}={cookie}; Path=/; Expires={expires}; Max-Age={max_age};"
            " HttpOnly; SameSite=Lax"
        )

    def _clear_cookie(self) -> str:
        return f"{self.cookie_name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"

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
        found = self._cookies.get(cookie or "")
        if found is not None:
            return found[0], cookie, True
        # A cookie that does not decode is skipped: Kratos goes on to the Bearer token
        # (session/manager_http.go extractToken).
        authorization = request.headers.get("Authorization", "")
        parts = authorization.split(" ")
        if len(parts) == 2 and parts[0].lower() == "bearer":
            return parts[1], None, True
        # No token found: Kratos's ErrNoActiveSessionFound says CredentialsMissing, whatever
        # other cookies or Authorization schemes the request carried.
        return None, cookie, False

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
        # identity/identity.go: the address lists are omitempty, state_changed_at is set
        # when the identity is created and whenever its state changes.
        body: dict[str, Any] = {
            "id": identity.id,
            "schema_id": identity.schema_id,
            "schema_url": f"{self.public_url}/schemas/ZGVmYXVsdA",
            "state": identity.state,
            "state_changed_at": rfc3339(identity.state_changed_at or identity.created_at),
            "traits": {"email": identity.email},
            "metadata_public": identity.metadata_public,
            "created_at": created,
            "updated_at": created,
            "organization_id": None,
        }
        if credentials is not None:
            body["credentials"] = self._credentials_json(identity, set(credentials))
        return body

    def _credentials_json(self, identity: FakeIdentity, included: set[str]) -> dict[str, Any]:
        """Return the admin API's credentials; ``config`` only for the *included* types."""
        created = rfc3339(identity.created_at)
        found: dict[str, tuple[list[str], Callable[[], dict[str, Any]]]] = {}
        if identity.password is not None:
            found["password"] = ([identity.email], dict)
        if identity.totp_secret is not None:
            uri = pyotp.TOTP(identity.totp_secret).provisioning_uri(
                name=identity.id, issuer_name=self._issuer()
            )
            found["totp"] = ([identity.id], lambda: {"totp_url": uri})
        if identity.lookup_codes or identity.used_lookup_codes:
            # identity/credentials_lookup.go: every code stays, a used one with used_at.
            codes: list[dict[str, Any]] = [
                {"code": code, "used_at": None} for code in identity.lookup_codes
            ]
            codes += [
                {"code": code, "used_at": rfc3339(when)}
                for code, when in identity.used_lookup_codes.items()
            ]
            found["lookup_secret"] = ([identity.id], lambda: {"recovery_codes": codes})
        if identity.webauthn_keys:
            # A passwordless key makes the identity findable by its user handle too.
            handle = base64.urlsafe_b64encode(identity.id.encode()).decode().rstrip("=")
            keys = [
                {
                    "id": key.id,
                    "display_name": key.display_name,
                    "is_passwordless": key.is_passwordless,
                    "added_at": created,
                    "attestation_type": "none",
                }
                for key in identity.webauthn_keys
            ]
            names = [identity.id] + ([handle] if any(k["is_passwordless"] for k in keys) else [])
            found["webauthn"] = (names, lambda: {"credentials": keys, "user_handle": handle})
        creds: dict[str, Any] = {}
        for kind, (identifiers, config) in found.items():
            creds[kind] = {
                "type": kind,
                "identifiers": identifiers,
                "version": 0,
                "created_at": created,
                "updated_at": created,
            }
            if kind in included:
                creds[kind]["config"] = config()
        return creds

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
                    "id": record.device_id,
                    "ip_address": "127.0.0.1",
                    "user_agent": "FakeKratos",
                    "location": "",
                }
            ],
        }

    def _whoami(self, request: httpx.Request) -> httpx.Response:
        record, cookie, present = self._current(request)
        if record is None:
            # session/handler.go whoami: with caching on, a 401 for a request that
            # carried no credentials at all may be cached for a minute; never otherwise.
            cache = self.cacheable_sessions is not None and not present
            headers = {"Ory-Session-Cache-For": "60"} if cache else {}
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
        template = request.url.params.get("tokenize_as")
        if template:
            # session/tokenizer.go: the fake configures no templates, so every name is unknown.
            reason = f'Unable to find tokenizer template "{template}".'
            return self._error(400, None, reason, BAD_REQUEST)
        headers = {"X-Kratos-Authenticated-Identity-Id": record.identity_id}
        if self.cacheable_sessions is not None:
            # session/handler.go whoami: the time left, capped by the configured max age.
            left = (record.expires_at - self.clock.now()).total_seconds()
            if self.cacheable_sessions > 0:
                left = min(left, self.cacheable_sessions)
            headers["Ory-Session-Cache-For"] = f"{left:.0f}"
        cookies = []
        if cookie is not None and self._cookies[cookie][1] < record.expires_at:
            cookies.append(self._session_cookie(record, self._issue_cookie(record)))
        return self._json(200, self._session_json(record), headers=headers, cookies=cookies)

    def _my_sessions(self, request: httpx.Request) -> httpx.Response:
        """List the other active sessions of the caller's identity (session/handler.go
        listMySessions): the current session is not in the list; paged with
        ``page_size`` and ``page_token`` (``X-Total-Count`` and ``Link`` headers)."""
        record, _, _ = self._current(request)
        if record is None:
            return self._no_session_cookie()
        if not self._satisfies(record, self.whoami_required_aal):
            return self._aal2_required(f"{self.public_url}/self-service/login/browser?aal=aal2")
        others = [
            r
            for r in self._sessions.values()
            if r.identity_id == record.identity_id and r.id != record.id and self._is_active(r)
        ]
        return self._paged(request, [self._session_json(r) for r in others])

    def _delete_my_sessions(self, request: httpx.Request) -> httpx.Response:
        """session/handler.go deleteMySessions: revoke the caller's other sessions."""
        record, _, _ = self._current(request)
        if record is None:
            return self._no_session_cookie()
        count = 0
        for other in self._sessions.values():
            if other.identity_id == record.identity_id and other.id != record.id and other.active:
                other.active = False
                count += 1
        return self._json(200, {"count": count})

    def _delete_my_session(self, request: httpx.Request, session_id: str) -> httpx.Response:
        """session/handler.go deleteMySession: revoke one other session of the caller."""
        record, _, _ = self._current(request)
        if record is None:
            return self._no_session_cookie()
        if session_id == record.id:
            return self._error(400, None, "", "cannot revoke current session")
        other = self._sessions.get(session_id)
        if other is None or other.identity_id != record.identity_id:
            return self._not_found()
        other.active = False
        return httpx.Response(204)

    def _no_session_cookie(self) -> httpx.Response:
        return self._error(
            401, None, "No valid session cookie found.", "The request could not be authorized"
        )

    def _paged(self, request: httpx.Request, items: list[Any]) -> httpx.Response:
        """Answer one page of *items* with Ory's page headers (``x/pagination.go``)."""
        params = request.url.params
        try:
            size = int(params.get("page_size") or params.get("per_page") or 250)
            page = int(params.get("page_token") or 1)
        except ValueError:
            size, page = 250, 1
        size = min(max(size, 1), 1000)
        page = max(page, 1)
        last = max((len(items) + size - 1) // size, 1)
        path = request.url.path

        def link(number: int, rel: str) -> str:
            return f'<{path}?page_size={size}&page_token={number}>; rel="{rel}"'

        links = [link(1, "first")]
        if page < last:
            links.append(link(page + 1, "next"))
        if page > 1:
            links.append(link(page - 1, "prev"))
        links.append(link(last, "last"))
        headers = {"X-Total-Count": str(len(items)), "Link": ",".join(links)}
        return self._json(200, items[(page - 1) * size : page * size], headers=headers)

    def session_json(self, session: FakeSession | str) -> dict[str, Any]:
        """Return the whoami JSON of a session."""
        with self._lock:
            return self._session_json(
                self._sessions[session if isinstance(session, str) else session.id]
            )
