"""Serve the self-service UI pages (Kratos leaves these to a UI app)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html import escape
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from . import _ui
from ._admin import _Admin
from ._records import _NO_CACHE, _home_of


class _Pages(_Admin):
    """Serve the HTML pages of the self-service UI."""

    def _html(self, status: int, body: bytes, cookies: Iterable[str] = ()) -> httpx.Response:
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", _NO_CACHE)]
        headers += [("Set-Cookie", c) for c in cookies]
        return httpx.Response(status, headers=headers, content=body)

    def _favicon(self, request: httpx.Request) -> httpx.Response:
        """Answer the browser's icon request (the UI's pages would log 404s otherwise)."""
        headers = [("Content-Type", "image/svg+xml"), ("Cache-Control", "max-age=86400")]
        return httpx.Response(200, headers=headers, content=_ui.ICON)

    def _ui(self, request: httpx.Request, page: str) -> httpx.Response:
        pages: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {
            ("GET", "login"): lambda r: self._ui_flow(r, "login"),
            ("GET", "settings"): lambda r: self._ui_flow(r, "settings"),
            ("GET", "registration"): lambda r: self._ui_flow(r, "registration"),
            ("GET", "error"): self._ui_error,
            ("GET", "welcome"): self._ui_welcome,
            ("GET", "logout"): self._ui_logout,
            ("POST", "clock"): self._ui_clock,
        }
        handler = pages.get((request.method, page))
        return handler(request) if handler else self._not_found()

    def _ui_flow(
        self, request: httpx.Request, kind: Literal["login", "settings", "registration"]
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
        elif kind == "registration":
            title = "Sign up"
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
        if kind == "login" and flow.requested_aal == "aal2":  # step-up and re-authentication
            html += (
                '<p class="hint">Enter the 6-digit code that the authenticator app paired '
                "with this account shows now.</p>"
            )
            # The demo users: say where this user's codes come from (bob's device, once he
            # pairs one, is his own: no hint).
            hint = self.ui_code_hints.get(identity.email) if identity is not None else None
            if hint:
                html += f'<p class="hint">{escape(hint)}</p>'
        if kind == "settings":
            _relabel(body["ui"], "totp", "Verify and continue")
        # Kratos labels the identifier "ID" (1070004) when the schema gives it no title; the
        # demo's identities sign in with their email, so the page says so.
        for node in body["ui"]["nodes"]:
            if node["attributes"].get("name") == "identifier" and "label" in node.get("meta", {}):
                node["meta"] = {"label": {**node["meta"]["label"], "text": "Email"}}
        html += _ui.form(body["ui"])
        if kind == "login" and flow.requested_aal == "aal1" and self.ui_hint:
            html += f'<p class="hint">{escape(self.ui_hint)}</p>'
        # Back to the app's home, not to the protected page that sent the user here: that
        # page would only send them straight back.
        home = self.app_url or _home_of(flow.return_to)
        back = [("Back to the app", home)] if home else [("Home", f"{self.ui_url}/welcome")]
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
        # Someone who typed Kratos's address (the demo prints it) finds the way to the app.
        app = [("Back to the app", self.app_url)] if self.app_url else []
        if record is None:
            html = "<p>You are not signed in.</p>"
            html += _ui.links(*app, ("Sign in", f"{self.public_url}/self-service/login/browser"))
        else:
            identity = self.identities[record.identity_id]
            html = f"<p>Signed in as <b>{escape(identity.email)}</b> at <b>{record.aal}</b>.</p>"
            html += _ui.links(
                *app,
                ("Settings", f"{self.public_url}/self-service/settings/browser"),
                ("Sign out", f"{self.ui_url}/logout"),
            )
        return self._html(200, _ui.document("Welcome", html))

    def _ui_logout(self, request: httpx.Request) -> httpx.Response:
        record, _, _ = self._current(request)
        if record is None:
            return self._redirect(self.default_return_url)
        params = {"token": record.logout_token}
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
            self._return_to_url(back)
            if back and self._allowed_return_to(back)
            else self.default_return_url
        )


def _relabel(ui: dict[str, Any], method: str, text: str) -> None:
    """Give a submit button a label that says what it does (on the page only).

    Kratos labels the TOTP pairing button "Save"; the page, which Kratos leaves to a UI
    app, may say more. The flow's JSON keeps Kratos's label.
    """
    for node in ui["nodes"]:
        attributes = node["attributes"]
        if attributes.get("name") == "method" and attributes.get("value") == method:
            node["meta"] = {"label": {**node["meta"]["label"], "text": text}}
