"""Serve the admin API as Kratos's ``identity/`` and ``session/`` admin handlers do.

Kratos serves these on its admin port only (``serve.admin.base_url``, 4434 by
default); FakeKratos answers them only on :attr:`FakeKratos.admin_url`.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import timedelta
from typing import Any

import httpx

from ._logout import _Logout
from ._messages import BAD_REQUEST
from ._records import _SessionRecord

_IDENTITY = re.compile(r"/admin/identities/([^/]+)")
_IDENTITY_SESSIONS = re.compile(r"/admin/identities/([^/]+)/sessions")
_SESSION = re.compile(r"/admin/sessions/([^/]+)")
_SESSION_EXTEND = re.compile(r"/admin/sessions/([^/]+)/extend")

#: identity/handler.go CreateIdentityBody's fields.
_CREATE_FIELDS = {
    "schema_id",
    "traits",
    "credentials",
    "metadata_public",
    "metadata_admin",
    "recovery_addresses",
    "verifiable_addresses",
    "state",
    "external_id",
    "organization_id",
}


class _Admin(_Logout):
    """Answer the admin API: identities (get, list, create, delete) and sessions."""

    def _admin_route(self, request: httpx.Request) -> httpx.Response:
        if self.admin_token is not None:
            expected = f"Bearer {self.admin_token}"
            if not secrets.compare_digest(
                request.headers.get("Authorization", "").encode(), expected.encode()
            ):
                return self._error(401, None, "", "The request could not be authorized")
        path, method = request.url.path, request.method
        # oryx/httprouterx AddAdminPrefixIfNotPresentNegroni: the admin port serves every
        # route with and without the /admin prefix.
        if not path.startswith("/admin/"):
            path = "/admin" + path
        if method == "GET" and path == "/admin/sessions/whoami":
            # session/handler.go getSession: whoami lives on the public port.
            query = request.url.query.decode()
            location = f"{self.public_url}/sessions/whoami" + (f"?{query}" if query else "")
            return httpx.Response(307, headers=[("Location", location)])
        if method == "GET" and path in ("/admin/health/alive", "/admin/health/ready"):
            return self._json(200, {"status": "ok"})
        if path == "/admin/identities":
            if method == "GET":
                return self._json(200, [self._identity_json(i) for i in self.identities.values()])
            if method == "POST":
                return self._admin_create_identity(request)
        if path == "/admin/sessions" and method == "GET":
            return self._admin_list_sessions(request)
        for pattern, handlers in (
            (
                _IDENTITY_SESSIONS,
                {"GET": self._admin_identity_sessions, "DELETE": self._admin_revoke_all},
            ),
            (_IDENTITY, {"GET": self._admin_identity, "DELETE": self._admin_delete_identity}),
            (_SESSION_EXTEND, {"PATCH": self._admin_extend}),
            (_SESSION, {"GET": self._admin_session, "DELETE": self._admin_revoke}),
        ):
            match = pattern.fullmatch(path)
            if match is not None:
                handler = handlers.get(method)
                return handler(request, match[1]) if handler else self._no_route()
        return self._no_route()

    def _admin_identity(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        identity = self.identities.get(identity_id)
        if identity is None:
            return self._missing()
        included = request.url.params.get_list("include_credential")
        return self._json(200, self._identity_json(identity, credentials=included))

    def _admin_create_identity(self, request: httpx.Request) -> httpx.Response:
        try:
            body: Any = json.loads(request.content or b"{}")
            # identity/handler.go create: jsonx.NewStrictDecoder refuses unknown fields.
            unknown = sorted(set(body) - _CREATE_FIELDS) if isinstance(body, dict) else []
            if unknown:
                return self._error(400, None, "", f'json: unknown field "{unknown[0]}"')
            email = body["traits"]["email"]
            password = ((body.get("credentials") or {}).get("password") or {}).get("config", {})
            if not isinstance(email, str) or "@" not in email:
                raise ValueError(email)
        except (ValueError, KeyError, TypeError, AttributeError):
            # Kratos validates the body and the traits against the identity schema: 400.
            return self._error(
                400,
                None,
                BAD_REQUEST,
                BAD_REQUEST,
            )
        if any(i.email == email for i in self.identities.values()):
            return self._error(
                409,
                None,
                "This identity conflicts with another identity that already exists.",
                "The resource could not be created due to a conflict",
                status_text="Conflict",
            )
        identity = self.create_identity(
            email, password.get("password"), state=str(body.get("state") or "active")
        )
        identity.metadata_public = body.get("metadata_public")
        # WriteCreated: 201 with Location (the admin base, no /admin prefix) and the
        # credentials without their config.
        location = f"{self.admin_url}/identities/{identity.id}"
        return self._json(
            201, self._identity_json(identity, credentials=()), headers={"Location": location}
        )

    def _admin_delete_identity(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        identity = self.identities.pop(identity_id, None)
        if identity is None:
            return self._missing()
        # Kratos deletes the identity's sessions with it (a foreign-key cascade).
        for record in [r for r in self._sessions.values() if r.identity_id == identity_id]:
            del self._sessions[record.id]
        return httpx.Response(204)

    def _admin_list_sessions(self, request: httpx.Request) -> httpx.Response:
        """session/handler.go adminListSessions: every session, revoked ones too, unless
        ``active`` is given; ``identity`` and ``devices`` only when expanded."""
        selected = self._by_active(request, list(self._sessions.values()))
        if isinstance(selected, httpx.Response):
            return selected
        expand = self._expand(request)
        if isinstance(expand, httpx.Response):
            return expand
        return self._json(200, [self._admin_session_json(r, expand) for r in selected])

    def _by_active(
        self, request: httpx.Request, records: list[_SessionRecord]
    ) -> list[_SessionRecord] | httpx.Response:
        """Filter by ``?active=`` as persister_session.go does (expiry counts too)."""
        raw = request.url.params.get("active", "")
        if not raw:
            return records
        truth = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
        wanted = truth.get(raw.lower())
        if wanted is None:
            return self._error(400, None, "", "could not parse parameter active")
        now = self.clock.now()
        return [r for r in records if (r.active and r.expires_at >= now) == wanted]

    def _expand(self, request: httpx.Request) -> set[str] | httpx.Response:
        expand = set()
        for value in request.url.params.get_list("expand"):
            if value not in ("identity", "devices"):
                return self._error(
                    400, None, f"Could not parse expand option: {value}", BAD_REQUEST
                )
            expand.add(value)
        return expand

    def _admin_session_json(self, record: _SessionRecord, expand: set[str]) -> dict[str, Any]:
        body = self._session_json(record)
        if "identity" not in expand:
            del body["identity"]
        if "devices" not in expand:
            del body["devices"]
        return body

    def _admin_identity_sessions(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        """session/handler.go listIdentitySessions: an unknown identity has no sessions
        (200 ``[]``); ``active`` filters; identity and devices always; paged."""
        records = [r for r in self._sessions.values() if r.identity_id == identity_id]
        selected = self._by_active(request, records)
        if isinstance(selected, httpx.Response):
            return selected
        return self._paged(request, [self._session_json(r) for r in selected])

    def _admin_revoke_all(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        """persister_session.go DeleteSessionsByIdentity: the rows go; none is a 404."""
        doomed = [r for r in self._sessions.values() if r.identity_id == identity_id]
        if not doomed:
            return self._missing()
        for record in doomed:
            del self._sessions[record.id]
            self._tokens.pop(record.token, None)
        return httpx.Response(204)

    def _admin_session(self, request: httpx.Request, session_id: str) -> httpx.Response:
        record = self._sessions.get(session_id)
        if record is None:
            return self._missing()
        expand = self._expand(request)
        if isinstance(expand, httpx.Response):
            return expand
        return self._json(200, self._admin_session_json(record, expand))

    def _admin_extend(self, request: httpx.Request, session_id: str) -> httpx.Response:
        """persister_session.go ExtendSession: any stored session, revoked or not; the
        answer has the identity (ExpandDefault)."""
        record = self._sessions.get(session_id)
        if record is None:
            return self._missing()
        # Kratos sets expires_at to now + session.lifespan (session/session.go Refresh).
        record.expires_at = self.clock.now() + timedelta(seconds=self.session_lifespan)
        return self._json(200, self._admin_session_json(record, {"identity"}))

    def _admin_revoke(self, request: httpx.Request, session_id: str) -> httpx.Response:
        record = self._sessions.get(session_id)
        if record is None:
            return self._missing()
        record.active = False
        return httpx.Response(204)
