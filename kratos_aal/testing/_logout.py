"""Serve logout as Kratos's ``selfservice/flow/logout`` does."""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlencode

import httpx

from ._messages import BAD_REQUEST
from ._records import _Reply
from ._registration import _Registration


class _Logout(_Registration):
    """Log out browser and API sessions."""

    def _logout_browser(self, request: httpx.Request) -> httpx.Response:
        record, _, _ = self._current(request)
        if record is None:
            # logout/handler.go createBrowserLogoutFlow: errorx.Forward (a browser gets
            # the error UI).
            return self._forward(request, self._no_session())
        token = record.logout_token
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
        # selfservice/flow/logout/handler.go updateLogoutFlow: the token alone is not
        # enough; the session must come with the request and own that token.
        token = request.url.params.get("token", "")
        if not token:
            reason = "Please include a token in the URL query."
            return self._forward(request, self._error(400, None, reason, BAD_REQUEST))
        record, _, _ = self._current(request)
        if record is None:
            return self._forward(request, self._no_session())
        if not secrets.compare_digest(token.encode(), record.logout_token.encode()):
            reason = (
                "Unable to log out because the logout token in the URL query does not match"
                " the session cookie."
            )
            return self._forward(
                request, self._error(403, None, reason, "The requested action was forbidden")
            )
        record.active = False
        # completeLogout: RegenerateToken sets a new anti-CSRF cookie.
        cookies = [self._clear_cookie(), self._new_csrf_cookie()]
        return_to = request.url.params.get("return_to")
        if return_to:
            # completeLogout then redirects through SecureRedirectTo: the session is gone,
            # and a return_to added to the logout URL is checked, a 400 when not allowed.
            try:
                self._check_return_to(request, return_to, api=self._accepts_json(request))
            except _Reply as refused:
                headers = [*refused.response.headers.multi_items()]
                headers += [("Set-Cookie", cookie) for cookie in cookies]
                status, content = refused.response.status_code, refused.response.content
                return httpx.Response(status, headers=headers, content=content)
        if self._accepts_json(request):
            return httpx.Response(204, headers=[("Set-Cookie", c) for c in cookies])
        return self._redirect(
            self._return_to_url(return_to or self.default_return_url),
            cookies,
        )

    def _logout_api(self, request: httpx.Request) -> httpx.Response:
        """logout/handler.go performNativeLogout: a JSON body with the session token."""
        try:
            body = json.loads(request.content or b"")
        except ValueError as error:
            reason = f"Unable to decode JSON payload: {error}"
            return self._error(400, None, reason, BAD_REQUEST)
        token = body.get("session_token", "") if isinstance(body, dict) else ""
        session_id = self._tokens.get(token if isinstance(token, str) else "")
        if session_id is None:
            return self._error(
                403,
                None,
                "The provided Ory Session Token could not be found, is invalid, or otherwise "
                "malformed.",
                "The requested action was forbidden",
            )
        self._sessions[session_id].active = False
        return httpx.Response(204)
