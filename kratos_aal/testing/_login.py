"""Serve login flows as Kratos's ``selfservice/flow/login`` does."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from ._flow import _Flows
from ._messages import (
    BAD_REQUEST,
    MSG_CONFIRM,
    MSG_INVALID_CODE,
    MSG_INVALID_CREDENTIALS,
    MSG_INVALID_LOOKUP,
    MSG_NO_TOTP,
    MSG_SECOND_FACTOR,
    MSG_USED_LOOKUP,
    _ui_text,
)
from ._records import FakeIdentity, _Flow, _SessionRecord, _uuid


class _Login(_Flows):
    """Start and submit login flows (password, TOTP, refresh, step-up)."""

    def _login_nodes(self, flow: _Flow) -> list[dict[str, Any]]:
        nodes = self._csrf_nodes(flow)
        identity = self.identities.get(flow.identity_id or "")
        if flow.requested_aal == "aal2":
            # Each AAL2 strategy adds nodes only for credentials the identity has
            # (strategy/{totp,lookup,webauthn}/login.go PopulateLoginMethod).
            if identity is not None:
                nodes += self._second_factor_nodes(identity, browser=flow.type == "browser")
            return nodes
        nodes.append(
            self._input(
                "identifier",
                "hidden" if identity else "text",
                "default",
                required=True,
                value=identity.email if identity else "",
                label=(1070004, "ID", "info"),
            )
        )
        nodes.append(
            self._input(
                "password",
                "password",
                "password",
                required=True,
                value="",
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

    def _second_factor_nodes(
        self, identity: FakeIdentity, *, browser: bool = True
    ) -> list[dict[str, Any]]:
        # BEHAVIOR.md (opening): the TOTP and backup-code inputs carry no autocomplete,
        # and login nodes have value "".
        nodes = []
        if identity.totp_secret:
            nodes.append(
                self._input(
                    "totp_code",
                    "text",
                    "totp",
                    required=True,
                    value="",
                    label=(1010006, "Authentication code", "info"),
                )
            )
            nodes.append(self._submit("totp", (1010009, "Use Authenticator", "info")))
        if identity.lookup_codes:
            label = (1010007, "Backup recovery code", "info")
            nodes.append(
                self._input(
                    "lookup_secret", "text", "lookup_secret", required=True, value="", label=label
                )
            )
            nodes.append(
                self._submit("lookup_secret", (1010010, "Use backup recovery code", "info"))
            )
        if identity.security_keys and browser:
            # strategy/webauthn/login.go: browser flows only; x/webauthnx/nodes.go gives
            # the script, the trigger button and the hidden input. The fake offers them
            # (so a reader sees the factor) but cannot verify an assertion.
            nodes += self._webauthn_login_nodes(identity)
        return nodes

    def _webauthn_login_nodes(self, identity: FakeIdentity) -> list[dict[str, Any]]:
        options = json.dumps(
            {
                "publicKey": {
                    "challenge": secrets.token_urlsafe(32),
                    "timeout": 60000,
                    "rpId": self._issuer(),
                    "allowCredentials": [
                        {"type": "public-key", "id": key.id} for key in identity.security_keys
                    ],
                    "userVerification": "discouraged",
                }
            }
        )
        script = {
            "type": "script",
            "group": "webauthn",
            "attributes": {
                "src": f"{self.public_url}/.well-known/ory/webauthn.js",
                "async": True,
                "referrerpolicy": "no-referrer",
                "crossorigin": "anonymous",
                "integrity": "sha512-" + base64.b64encode(hashlib.sha512(b"").digest()).decode(),
                "type": "text/javascript",
                "id": "webauthn_script",
                "nonce": _uuid(),
                "node_type": "script",
            },
            "messages": [],
            "meta": {},
        }
        trigger = self._input(
            "webauthn_login_trigger",
            "button",
            "webauthn",
            value=options,
            label=(1010008, "Sign in with hardware key", "info"),
        )
        trigger["attributes"]["onclick"] = f"oryWebAuthnLogin({options})"
        trigger["attributes"]["onclickTrigger"] = "oryWebAuthnLogin"
        hidden = self._input("webauthn_login", "hidden", "webauthn", value="")
        return [script, trigger, hidden]

    def _submit(self, method: str, label: tuple[int, str, str]) -> dict[str, Any]:
        return self._input("method", "submit", method, value=method, label=label)

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
                BAD_REQUEST,
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
            return self._redirect(self._return_to_url(return_to or self.default_return_url))
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

    def _login_submit(self, request: httpx.Request) -> httpx.Response:
        flow = self._find_flow(request, "login")
        record, _, _ = self._current(request)
        # login/handler.go updateLoginFlow: a caller with a session is refused before any
        # strategy runs unless the flow refreshes or raises the AAL; none asks for aal2.
        if record is not None:
            if not flow.refresh and not flow.requested_aal > record.aal:
                return self._already_logged_in(request, flow)
        elif flow.requested_aal == "aal2":
            return self._forward(request, self._aal1_required())
        flow, form = self._submit_flow(request, "login", flow)
        method = form.get("method", "")
        now = self.clock.now()
        if method == "password":
            if flow.requested_aal == "aal2":
                # No aal2 strategy takes a password: login/handler.go finds none (4010002).
                return self._flow_error(
                    request,
                    flow,
                    (
                        4010002,
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
                    BAD_REQUEST,
                )
            if record is None or record.identity_id != identity.id:
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
        elif method == "lookup_secret":
            if record is None:
                return self._aal1_required()
            identity = self.identities[record.identity_id]
            code = form.get("lookup_secret", "")
            if code in identity.used_lookup_codes:
                return self._flow_error(request, flow, MSG_USED_LOOKUP, "login")
            if code not in identity.lookup_codes:
                return self._flow_error(request, flow, MSG_INVALID_LOOKUP, "login")
            # A backup code works once (strategy/lookup/login.go sets its used_at).
            identity.lookup_codes.remove(code)
            identity.used_lookup_codes[code] = now
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
        destination = self._return_to_url(flow.return_to or self.default_return_url)
        if self._is_json(request):
            body = {
                "session": self._session_json(record),
                "continue_with": [
                    {"action": "redirect_browser_to", "redirect_browser_to": destination}
                ],
            }
            return self._json(200, body, cookies=[cookie])
        return self._redirect(destination, [cookie])
