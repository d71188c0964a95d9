"""Share what every self-service flow does (Kratos's ``selfservice/flow``): return_to, CSRF, nodes."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import httpx
import pyotp

from ._messages import BAD_REQUEST, _ui_text
from ._records import _Flow, _Reply, _uuid, rfc3339
from ._session import _Sessions

_BROWSER_ONLY = (
    'The HTTP Request Header included the "{}" key, indicating that this request was made'
    " by a Browser. The flow however was initiated as an API request. To prevent potential"
    " misuse and mitigate several attack vectors including CSRF, the request has been"
    " blocked. Please consult the documentation."
)


class _Flows(_Sessions):
    """Start, fetch and submit flows; each kind's nodes come from its own module."""

    # Defined by the login, settings and registration modules further up the class chain.
    _login_nodes: Callable[[_Flow], list[dict[str, Any]]]
    _settings_nodes: Callable[[_Flow], list[dict[str, Any]]]
    _registration_nodes: Callable[[_Flow], list[dict[str, Any]]]

    def _allowed_return_to(self, value: str) -> bool:
        try:
            target = urlsplit(value)
            if not target.scheme:
                # A relative return_to inherits scheme and host from the default return URL.
                default = urlsplit(self.default_return_url)
                target = target._replace(
                    scheme=default.scheme, netloc=target.netloc or default.netloc
                )
            target.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            return False
        for allowed in self.allowed_return_urls:
            entry = urlsplit(allowed)
            host_ok = target.hostname == entry.hostname or (
                (entry.hostname or "").startswith("*.")
                and (target.hostname or "").endswith((entry.hostname or "")[1:])
            )
            same_port = entry.port is None or target.port == entry.port
            if (
                target.scheme.lower() == entry.scheme.lower()
                and host_ok
                and same_port
                and (target.path or "/").startswith(entry.path or "/")
            ):
                return True
        return False

    def _check_return_to(
        self, request: httpx.Request, return_to: str | None, *, api: bool = False
    ) -> None:
        if return_to and not self._allowed_return_to(return_to):
            response = self._error(
                400,
                "self_service_flow_return_to_forbidden",
                f'Requested return_to URL "{return_to}" is not allowed.',
                BAD_REQUEST,
            )
            raise _Reply(response if api else self._forward(request, response))

    def _new_flow(
        self,
        request: httpx.Request,
        kind: Literal["login", "settings", "registration"],
        flow_type: Literal["browser", "api"],
        lifespan: float,
        **values: Any,
    ) -> _Flow:
        now = self.clock.now()
        flow = _Flow(
            id=_uuid(),
            kind=kind,
            type=flow_type,
            request_url=self._request_url(request),
            issued_at=now,
            expires_at=now + timedelta(seconds=lifespan),
            return_to=request.url.params.get("return_to") or None,
            csrf=secrets.token_urlsafe(32) if flow_type == "browser" else None,
            **values,
        )
        self._flows[flow.id] = flow
        return flow

    def _csrf_cookie(self, flow: _Flow) -> list[str]:
        if flow.csrf is None:
            return []
        return [
            f"{self.csrf_cookie_name}={flow.csrf}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
        ]

    @staticmethod
    def _input(
        name: str,
        input_type: str,
        group: str,
        *,
        value: Any = None,
        required: bool = False,
        label: tuple[int, str, str] | None = None,
        autocomplete: str | None = None,
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "name": name,
            "type": input_type,
            "disabled": False,
            "node_type": "input",
        }
        if value is not None:
            attributes["value"] = value
        if required:
            attributes["required"] = True
        if autocomplete:
            attributes["autocomplete"] = autocomplete
        meta = {"label": _ui_text(label)} if label else {}
        return {
            "type": "input",
            "group": group,
            "attributes": attributes,
            "messages": [],
            "meta": meta,
        }

    def _csrf_nodes(self, flow: _Flow) -> list[dict[str, Any]]:
        """Return the hidden csrf_token node of a browser flow (none for API flows)."""
        if flow.csrf is None:
            return []
        return [self._input("csrf_token", "hidden", "default", value=flow.csrf, required=True)]

    def flow_json(self, flow: _Flow) -> dict[str, Any]:
        """Return the JSON of a login, settings or registration flow."""
        action = f"{self.public_url}/self-service/{flow.kind}?flow={flow.id}"
        ui: dict[str, Any] = {"action": action, "method": "POST"}
        nodes = {
            "login": self._login_nodes,
            "settings": self._settings_nodes,
            "registration": self._registration_nodes,
        }
        ui["nodes"] = nodes[flow.kind](flow)
        for node in ui["nodes"]:
            name = node["attributes"].get("name")
            if name in flow.node_messages:
                node["messages"] = list(flow.node_messages[name])
        if flow.messages:
            ui["messages"] = list(flow.messages)
        body: dict[str, Any] = {
            "id": flow.id,
            "type": flow.type,
            "expires_at": rfc3339(flow.expires_at),
            "issued_at": rfc3339(flow.issued_at),
            "request_url": flow.request_url,
            "ui": ui,
            "state": flow.state,
        }
        if flow.return_to:
            body["return_to"] = flow.return_to
        if flow.kind == "login":
            body.update(
                refresh=flow.refresh,
                requested_aal=flow.requested_aal,
                created_at=rfc3339(flow.issued_at),
                updated_at=rfc3339(flow.issued_at),
            )
        elif flow.kind == "settings":
            body["identity"] = self._identity_json(self.identities[flow.identity_id or ""])
        return body

    def _flow_answer(self, request: httpx.Request, flow: _Flow, ui_page: str) -> httpx.Response:
        cookies = self._csrf_cookie(flow)
        if flow.type == "browser" and not self._is_json(request):
            return self._redirect(f"{self.ui_url}/{ui_page}?flow={flow.id}", cookies)
        return self._json(200, self.flow_json(flow), cookies=cookies)

    def _get_flow(
        self, request: httpx.Request, kind: Literal["login", "settings", "registration"]
    ) -> httpx.Response:
        flow = self._flows.get(request.url.params.get("id", ""))
        if flow is None or flow.kind != kind:
            return self._not_found()
        if flow.expires_at <= self.clock.now():
            return self._expired_on_get(flow)
        if flow.type == "browser" and self._csrf_of(request) != flow.csrf:
            return self._csrf_violation()
        return self._json(200, self.flow_json(flow))

    def _expired_on_get(self, flow: _Flow) -> httpx.Response:
        """Answer a fetch of an expired flow (login/handler.go getLoginFlow and peers)."""
        init = f"{self.public_url}/self-service/{flow.kind}/{flow.type}"
        if flow.type == "browser":
            reason = (
                f"The {flow.kind} flow has expired. Redirect the user to the {flow.kind} flow"
                f" init endpoint to initialize a new {flow.kind} flow."
            )
            query = f"?{urlencode({'return_to': flow.return_to})}" if flow.return_to else ""
            details = {"redirect_to": init + query, "return_to": flow.return_to or ""}
        else:
            reason = (
                f"The {flow.kind} flow has expired. Call the {flow.kind} flow init API"
                f" endpoint to initialize a new {flow.kind} flow."
            )
            details = {"api": init}
        return self._error(
            410, "self_service_flow_expired", reason, "self-service flow expired", details=details
        )

    def _submit_flow(
        self, request: httpx.Request, kind: Literal["login", "settings", "registration"]
    ) -> tuple[_Flow, dict[str, str]]:
        flow = self._flows.get(request.url.params.get("flow", ""))
        if flow is None or flow.kind != kind:
            raise _Reply(self._not_found())
        now = self.clock.now()
        if flow.expires_at <= now:
            replacement = self._new_flow(
                request,
                kind,
                flow.type,
                self.login_lifespan,
                requested_aal=flow.requested_aal,
                refresh=flow.refresh,
                identity_id=flow.identity_id,
                pending_totp=pyotp.random_base32() if kind == "settings" else None,
            )
            replacement.return_to, replacement.request_url = flow.return_to, flow.request_url
            minutes = (now - flow.expires_at).total_seconds() / 60
            if flow.type == "browser" and not self._is_json(request):
                raise _Reply(
                    self._redirect(
                        f"{self.ui_url}/{kind}?flow={replacement.id}",
                        self._csrf_cookie(replacement),
                    )
                )
            raise _Reply(
                self._error(
                    410,
                    "self_service_flow_expired",
                    f"The self-service flow expired {minutes:.2f} minutes ago, "
                    "initialize a new one.",
                    "self-service flow expired",
                    extra={
                        "expired_at": rfc3339(flow.expires_at),
                        "since": int(minutes * 60e9),
                        "use_flow_id": replacement.id,
                    },
                )
            )
        if flow.type == "api":
            # flow.EnsureCSRF: an API flow refuses what only a browser sends.
            for header in ("Origin", "Cookie"):
                if request.headers.get(header):
                    raise _Reply(self._error(400, None, _BROWSER_ONLY.format(header), BAD_REQUEST))
        form = self._form(request)
        if flow.type == "browser" and (
            not form.get("csrf_token")
            or form.get("csrf_token") != flow.csrf
            or self._csrf_of(request) != flow.csrf
        ):
            raise _Reply(self._csrf_violation())
        return flow, form

    def _flow_error(
        self,
        request: httpx.Request,
        flow: _Flow,
        message: tuple[int, str, str] | None,
        ui_page: str,
    ) -> httpx.Response:
        flow.messages = [_ui_text(message)] if message else []
        if flow.type == "browser" and not self._is_json(request):
            return self._redirect(f"{self.ui_url}/{ui_page}?flow={flow.id}")
        return self._json(400, self.flow_json(flow))

    def _totp_ok(self, secret: str, code: str) -> bool:
        """Validate like Kratos (30 s, 6 digits, SHA1, skew ±1) at the fake's time.

        Codes valid at the real time pass too: a phone's authenticator app keeps real
        time when a test or the demo has moved the fake's clock on.
        """
        totp = pyotp.TOTP(secret)
        return any(
            totp.verify(code, for_time=moment, valid_window=1)
            for moment in (self.clock.now(), datetime.now(timezone.utc))
        )
