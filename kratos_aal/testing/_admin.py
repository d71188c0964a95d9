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
from ._records import FakeIdentity

_IDENTITY = re.compile(r"/admin/identities/([^/]+)")
_IDENTITY_SESSIONS = re.compile(r"/admin/identities/([^/]+)/sessions")
_SESSION = re.compile(r"/admin/sessions/([^/]+)")
_SESSION_EXTEND = re.compile(r"/admin/sessions/([^/]+)/extend")


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
        if path == "/admin/identities":
            if method == "GET":
                return self._json(200, [self._identity_json(i) for i in self.identities.values()])
            if method == "POST":
                return self._admin_create_identity(request)
        if path == "/admin/sessions" and method == "GET":
            records = [r for r in self._sessions.values() if self._is_active(r)]
            return self._json(200, [self._session_json(r) for r in records])
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
                return handler(request, match[1]) if handler else self._not_found()
        return self._not_found()

    def _missing(self) -> httpx.Response:
        return self._error(404, None, "", "Unable to locate the resource", status_text="Not Found")

    def _admin_identity(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        identity = self.identities.get(identity_id)
        if identity is None:
            return self._missing()
        included = request.url.params.get_list("include_credential")
        return self._json(200, self._identity_json(identity, credentials=included))

    def _admin_create_identity(self, request: httpx.Request) -> httpx.Response:
        try:
            body: Any = json.loads(request.content or b"{}")
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
        return self._json(201, self._identity_json(identity))

    def _admin_delete_identity(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        identity = self.identities.pop(identity_id, None)
        if identity is None:
            return self._missing()
        # Kratos deletes the identity's sessions with it (a foreign-key cascade).
        for record in [r for r in self._sessions.values() if r.identity_id == identity_id]:
            del self._sessions[record.id]
        return httpx.Response(204)

    def _revoke_sessions_of(self, identity: FakeIdentity) -> None:
        for record in self._sessions.values():
            if record.identity_id == identity.id:
                record.active = False

    def _admin_identity_sessions(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        if identity_id not in self.identities:
            return self._missing()
        records = [r for r in self._sessions.values() if r.identity_id == identity_id]
        return self._json(200, [self._session_json(r) for r in records])

    def _admin_revoke_all(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        identity = self.identities.get(identity_id)
        if identity is None:
            return self._missing()
        self._revoke_sessions_of(identity)
        return httpx.Response(204)

    def _admin_session(self, request: httpx.Request, session_id: str) -> httpx.Response:
        record = self._sessions.get(session_id)
        if record is None:
            return self._missing()
        return self._json(200, self._session_json(record))

    def _admin_extend(self, request: httpx.Request, session_id: str) -> httpx.Response:
        record = self._sessions.get(session_id)
        if record is None or not self._is_active(record):
            return self._missing()
        # Kratos sets expires_at to now + session.lifespan (session/session.go Extend).
        record.expires_at = self.clock.now() + timedelta(seconds=self.session_lifespan)
        return self._json(200, self._session_json(record))

    def _admin_revoke(self, request: httpx.Request, session_id: str) -> httpx.Response:
        record = self._sessions.get(session_id)
        if record is None:
            return self._missing()
        record.active = False
        return httpx.Response(204)
