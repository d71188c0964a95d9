"""Serve settings flows as Kratos's ``selfservice/flow/settings`` does."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import pyotp

from ._login import _Login
from ._messages import (
    MSG_DUPLICATE,
    MSG_EMAIL_MISSING,
    MSG_INVALID_CODE,
    MSG_SAVED,
    _too_short,
    _ui_text,
)
from ._records import _NO_CACHE, _Flow


def _new_password_input() -> dict[str, Any]:
    """Return the password strategy's input of a new password (registration, settings)."""
    return _Login._input(
        "password",
        "password",
        "password",
        required=True,
        autocomplete="new-password",
        label=(1070001, "Password", "info"),
    )


class _Settings(_Login):
    """Start and submit settings flows (profile, password, TOTP pairing and unlinking)."""

    def _settings_nodes(self, flow: _Flow) -> list[dict[str, Any]]:
        nodes = self._csrf_nodes(flow)
        identity = self.identities[flow.identity_id or ""]
        # The profile and password strategies are on by default: their groups come first.
        save = (1070003, "Save", "info")
        nodes.append(
            self._input(
                "traits.email",
                "email",
                "profile",
                required=True,
                value=identity.email,
                autocomplete="email",
                label=(1070002, "E-Mail", "info"),
            )
        )
        nodes.append(self._input("method", "submit", "profile", value="profile", label=save))
        nodes.append(_new_password_input())
        nodes.append(self._input("method", "submit", "password", value="password", label=save))
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
        # totp/generator.go NewKey: the account name is the identity id.
        uri = pyotp.TOTP(secret).provisioning_uri(name=identity.id, issuer_name=self._issuer())
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
                label=(1070006, "Verify code", "info"),
            )
        )
        nodes.append(
            self._input("method", "submit", "totp", value="totp", label=(1070003, "Save", "info"))
        )
        return nodes

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
            state="show_form",  # settings/flow.go NewFlow
        )
        return self._flow_answer(request, flow, "settings")

    def _settings_submit(self, request: httpx.Request) -> httpx.Response:
        # settings/handler.go updateSettingsFlow, wrapped in IsAuthenticated: the session
        # first, then the flow, the AAL, the flow's expiry and owner, then the strategy.
        record, _, _ = self._current(request)
        if record is None:
            return self._settings_unauthenticated(request)
        flow = self._find_flow(request, "settings")
        if not self._satisfies(record, self.settings_required_aal):
            return self._settings_aal_failure(request, flow, self._request_url(request))
        if flow.expires_at <= self.clock.now():
            self._expired_on_submit(request, flow)
        if record.identity_id != flow.identity_id:
            return self._error(
                403,
                "security_identity_mismatch",
                "The request was initiated by someone else and has been blocked for "
                "security reasons. Please go back and try again.",
                "The requested action was forbidden",
            )
        flow, form = self._submit_flow(request, "settings", flow)
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
        method = form.get("method")
        if method in ("profile", "password") and not unlink:
            failed = self._settings_profile_or_password(request, flow, form, method)
            if failed is not None:
                return failed
        # selfservice/strategy/totp/settings.go: an unlink submit is the TOTP method's,
        # whatever "method" says (the unlink button sends no method=totp).
        elif method != "totp" and not unlink:
            return self._flow_error(
                request,
                flow,
                (4000001, "Could not find a strategy to update your settings.", "error"),
                "settings",
            )
        elif unlink:
            identity.totp_secret = None
        else:
            secret = flow.pending_totp or ""
            if not self._totp_ok(secret, form.get("totp_code", "")):
                # strategy/totp/settings.go: the error belongs to the code's node.
                flow.node_messages = {"totp_code": [_ui_text(MSG_INVALID_CODE)]}
                return self._flow_error(request, flow, None, "settings")
            identity.totp_secret = secret
            record.methods.append(self._method("totp", now))
            record.authenticated_at = now
        flow.state = "success"
        flow.node_messages = {}
        flow.messages = [_ui_text(MSG_SAVED)]
        flow.pending_totp = pyotp.random_base32()
        if flow.type == "api":
            return self._json(200, self.flow_json(flow))
        cookie = self._session_cookie(record, self._issue_cookie(record))
        if self._is_json(request):
            body = self.flow_json(flow)
            if flow.return_to:
                body["continue_with"] = [
                    {
                        "action": "redirect_browser_to",
                        "redirect_browser_to": self._return_to_url(flow.return_to),
                    }
                ]
            return self._json(200, body, cookies=[cookie])
        done_to = self._return_to_url(flow.return_to) if flow.return_to else None
        return self._redirect(done_to or f"{self.ui_url}/settings?flow={flow.id}", [cookie])

    def _settings_profile_or_password(
        self, request: httpx.Request, flow: _Flow, form: dict[str, str], method: str
    ) -> httpx.Response | None:
        """Change the email (profile) or the password; an answer if it fails."""
        identity = self.identities[flow.identity_id or ""]
        if method == "password":
            password = form.get("password", "")
            too_short = _too_short(password)
            if too_short is not None:
                flow.node_messages = {"password": [too_short]}
                return self._flow_error(request, flow, None, "settings")
            identity.password = password
            return None
        email = form.get("traits.email", "")
        if request.headers.get("Content-Type", "").startswith("application/json"):
            try:
                traits = json.loads(request.content).get("traits") or {}
                email = str(traits.get("email") or email)
            except (ValueError, AttributeError):
                pass
        email = email.strip()
        if not email:
            flow.node_messages = {"traits.email": [_ui_text(MSG_EMAIL_MISSING)]}
            return self._flow_error(request, flow, None, "settings")
        taken = any(
            i.email.lower() == email.lower() and i.id != identity.id
            for i in self.identities.values()
        )
        if taken:
            return self._flow_error(request, flow, MSG_DUPLICATE, "settings")
        identity.email = email
        return None

    def _settings_unauthenticated(self, request: httpx.Request) -> httpx.Response:
        """settings/strategy_helper.go OnUnauthenticated: JSON gets a 401 without an
        error id, a browser a 302 to the login UI."""
        if self._is_json(request):
            return self._error(
                401,
                None,
                "A valid Ory Session Cookie or Ory Session Token is missing.",
                "The request could not be authorized",
            )
        headers = [("Location", f"{self.ui_url}/login"), ("Cache-Control", _NO_CACHE)]
        return httpx.Response(302, headers=headers)

    def _settings_aal_failure(
        self, request: httpx.Request, flow: _Flow, return_to: str
    ) -> httpx.Response:
        target = (
            f"{self.public_url}/self-service/login/browser?"
            f"{urlencode({'aal': 'aal2', 'return_to': return_to})}"
        )
        if flow.type == "browser" and not self._is_json(request):
            return self._redirect(target)
        return self._aal2_required(target)

    def _get_settings_flow(self, request: httpx.Request) -> httpx.Response:
        """settings/handler.go getSettingsFlow: a session and the flow's owner, the AAL,
        then expiry; no CSRF check."""
        record, _, _ = self._current(request)
        if record is None:
            return self._settings_unauthenticated(request)
        flow = self._flows.get(request.url.params.get("id", ""))
        if flow is None or flow.kind != "settings":
            return self._not_found()
        if flow.identity_id != record.identity_id:
            return self._error(
                403,
                "security_identity_mismatch",
                "The request was made for another identity and has been blocked for security "
                "reasons.",
                "The requested action was forbidden",
            )
        if not self._satisfies(record, self.settings_required_aal):
            return self._aal2_required(
                f"{self.public_url}/self-service/login/browser?"
                + urlencode({"aal": "aal2", "return_to": f"{self.ui_url}/settings?flow={flow.id}"})
            )
        if flow.expires_at <= self.clock.now():
            return self._expired_on_get(flow)
        return self._json(200, self.flow_json(flow))


def _qr_data_uri(text: str) -> str:
    try:
        import segno
    except ImportError:  # segno comes with the testing extra; without it, no picture
        return "data:image/png;base64,"
    return str(segno.make(text, error="m").png_data_uri(scale=4))
