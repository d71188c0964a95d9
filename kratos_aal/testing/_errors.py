"""Answer as Kratos's ``x/`` package does: JSON and error envelopes, redirects, CSRF."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx

from .._credentials import cookie_from_header
from .._negotiate import negotiate, wants_json
from .._web import status_text as go_status_text
from ._records import _NO_CACHE, Fault, _uuid, rfc3339
from ._state import _State

#: Kratos keeps errors in its database until ``kratos cleanup sql``; the fake keeps the
#: newest in memory, so that a long-running ``kratos-aal fake`` stays bounded.
_MAX_ERRORS = 10_000

_CSRF_NO_COOKIE = "The HTTP Cookie Header is empty or not set."
_CSRF_COOKIE_MISSING = "The HTTP Cookie Header was set but did not include the anti-CSRF cookie."
_CSRF_TOKEN_NOT_SENT = (
    "The anti-CSRF cookie was found but the CSRF token was not included in the HTTP request"
    " body (csrf_token) nor in the HTTP Header (X-CSRF-Token)."
)
_CSRF_MISMATCH = (
    "The HTTP Cookie Header was set and a CSRF token was sent but they do not match. We"
    " recommend deleting all cookies for this domain and retrying the flow."
)
_CSRF_HINT_AJAX = (
    "We detected an AJAX call, please ensure that CORS is enabled and configured correctly,"
    " and that your AJAX code sends cookies and has credentials enabled. For further"
    " debugging, check your Browser's Network Tab to see what cookies are included or"
    " excluded."
)
_CSRF_HINT_SERVER = (
    "We detected a regular browser or server-side call. To debug browser calls check your"
    " Browser's Network Tab to see what cookies are included or excluded. If you are calling"
    " from a server ensure that the appropriate cookies are being forwarded and that the SDK"
    " method is called correctly."
)


class _Errors(_State):
    """Build Kratos's answers: JSON, error envelopes, redirects, CSRF failures."""

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
        """Answer a flow, error or session that is not stored (sqlcon.ErrNoRows)."""
        return self._error(404, None, "", "Unable to locate the resource", status_text="Not Found")

    def _missing(self) -> httpx.Response:
        return self._not_found()

    def _to_admin(self, request: httpx.Request) -> httpx.Response:
        """x/redir/port_redirect.go RedirectToAdminRoute: the admin API lives on the
        admin port; the public port sends a 307 there, with the /admin prefix."""
        path = request.url.path
        if not path.startswith("/admin/"):
            path = "/admin" + path
        query = request.url.query.decode()
        location = self.admin_url + path + (f"?{query}" if query else "")
        return httpx.Response(307, headers=[("Location", location)])

    @staticmethod
    def _no_route() -> httpx.Response:
        """Answer a route nobody serves as Go's http.NotFound does: plain text."""
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        return httpx.Response(404, headers=headers, content=b"404 page not found\n")

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
        while len(self._errors) > _MAX_ERRORS:
            del self._errors[next(iter(self._errors))]
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

    def _csrf_of(self, request: httpx.Request) -> str | None:
        for value in request.headers.get_list("Cookie"):
            found = cookie_from_header(value, self.csrf_cookie_name)
            if found:
                return found
        return None

    def _csrf_violation(
        self, request: httpx.Request, form: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """Answer a CSRF failure as ``x/nosurfx`` ``CSRFErrorReason`` words it.

        It tells no cookies, the anti-CSRF cookie missing, the token not sent and a
        mismatch apart, for AJAX calls (``Sec-Fetch-Mode: cors`` or ``same-origin``)
        and for server or plain browser calls.
        """
        ajax = request.headers.get("Sec-Fetch-Mode", "") in ("cors", "same-origin")
        details: dict[str, Any] = {"docs": "https://www.ory.sh/kratos/docs/debug/csrf"}
        hint = _CSRF_HINT_AJAX if ajax else _CSRF_HINT_SERVER
        json_body = request.headers.get("Content-Type", "").startswith("application/json")
        sent = (form or {}).get("csrf_token", "") + request.headers.get("X-CSRF-Token", "")
        if not request.headers.get("Cookie"):
            details.update(hint=hint, reject_reason=_CSRF_NO_COOKIE)
        elif self._csrf_of(request) is None:
            details.update(hint=hint, reject_reason=_CSRF_COOKIE_MISSING)
        elif not json_body and not sent:
            details.update(hint=_CSRF_TOKEN_NOT_SENT)
        else:
            details.update(hint=hint, reject_reason=_CSRF_MISMATCH)
        return self._error(
            403,
            "security_csrf_violation",
            "Please retry the flow and optionally clear your cookies. The request was rejected to "
            "protect you from Cross-Site-Request-Forgery (CSRF) which could cause account "
            "takeover, leaking personal information, and other serious security issues.",
            "the request was rejected to protect you from Cross-Site-Request-Forgery",
            details=details,
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

    def _get_error(self, request: httpx.Request) -> httpx.Response:
        error = self._errors.get(request.url.params.get("id", ""))
        if error is None:
            return self._not_found()
        return self._json(200, error)

    def _request_url(self, request: httpx.Request) -> str:
        query = request.url.query.decode()
        return f"{self.public_url}{request.url.path}" + (f"?{query}" if query else "")
