"""Share what every self-service flow does (Kratos's ``selfservice/flow``): return_to, CSRF, nodes."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import SplitResult, urlencode, urlsplit

import httpx
import pyotp

from ._messages import BAD_REQUEST, _ui_text
from ._records import _Flow, _Reply, _uuid, rfc3339
from ._session import _Sessions

#: cmd/daemon/serve.go wraps both ports in http.MaxBytesHandler(handler, 5 MB).
_MAX_BODY = 5 * 1024 * 1024

#: selfservice/flow/request.go EnsureCSRF: an API flow refuses these headers.
_ORIGIN_IN_API_FLOW = (
    'The HTTP Request Header included the "Origin" key, indicating that this request was made'
    " as part of an AJAX request in a Browser. The flow however was initiated as an API"
    " request. To prevent potential misuse and mitigate several attack vectors including"
    " CSRF, the request has been blocked. Please consult the documentation."
)

#: Kratos keeps flows in its database until ``kratos cleanup sql``; the fake drops them
#: from memory an hour after they expired, looking every this many new flows.
_SWEEP_EVERY = 1024
_EXPIRED_KEPT = timedelta(hours=1)

#: Go's url.Parse: what userinfo (validUserinfo) and host (shouldEscape, encodeHost) may
#: hold; any other ASCII byte, a backslash above all, makes it refuse the URL.
_GO_USERINFO = re.compile(r"[A-Za-z0-9\-._:~!$&'()*+,;=%\x80-\U0010ffff]*")
_GO_HOST = re.compile(
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:\[\]<>\"\x80-\U0010ffff]|%[89A-Fa-f][0-9A-Fa-f])*"
)

#: The replacement of an expired flow says why (text/id.go 4010001, 4050001).
_EXPIRED_MESSAGE = {
    "login": (4010001, "The login flow expired {:.2f} minutes ago, please try again."),
    "settings": (4050001, "The settings flow expired {:.2f} minutes ago, please try again."),
    "registration": (
        4040001,
        "The registration flow expired {:.2f} minutes ago, please try again.",
    ),
}

_BROWSER_ONLY = (
    'The HTTP Request Header included the "Cookie" key, indicating that this request was made'
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

    def _return_to_url(self, value: str) -> str:
        """Return *value* as Kratos redirects to it: a relative one made absolute.

        ``x/redir/secure_redirect.go`` gives a relative return_to the default return URL's
        scheme and host; sent back as is, ``/\\evil.example`` reads as ``//evil.example``.
        """
        target = urlsplit(value)
        if target.scheme:
            return value
        default = urlsplit(self.default_return_url)
        path = target.path.replace("\\", "%5C")
        return target._replace(
            scheme=default.scheme, netloc=target.netloc or default.netloc, path=path
        ).geturl()

    def _allowed_return_to(self, value: str) -> bool:
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            return False  # Go's url.Parse: "invalid control character in URL"
        try:
            target = urlsplit(value)
            if not target.scheme:
                # A relative return_to inherits scheme and host from the default return URL.
                default = urlsplit(self.default_return_url)
                target = target._replace(
                    scheme=default.scheme, netloc=target.netloc or default.netloc
                )
            target.port  # noqa: B018 (raises ValueError on a bad port)
            userinfo, _, hostport = target.netloc.rpartition("@")
            if not (_GO_USERINFO.fullmatch(userinfo) and _GO_HOST.fullmatch(hostport)):
                return False
        except ValueError:
            return False
        # x/redir/secure_redirect.go compares the whole host, its port included; a
        # wildcard entry "*.example.com" matches by suffix, so its port must match too.
        host = _host_of(target)
        for allowed in self.allowed_return_urls:
            entry = urlsplit(allowed)
            entry_host = _host_of(entry)
            if entry_host.endswith(":*"):  # the fake's default entries: any port
                entry_host = entry_host[:-2]
                host_ok = (target.hostname or "") == entry_host
            elif entry_host.startswith("*"):
                host_ok = host.endswith(entry_host[1:])
            else:
                host_ok = bool(entry_host) and host == entry_host
            if (
                target.scheme.lower() == entry.scheme.lower()
                and host_ok
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
        self._flows_made += 1
        if self._flows_made % _SWEEP_EVERY == 0:
            for stale in [f.id for f in self._flows.values() if f.expires_at + _EXPIRED_KEPT < now]:
                del self._flows[stale]
        return flow

    def _csrf_cookie(self, flow: _Flow) -> list[str]:
        if flow.csrf is None:
            return []
        return [
            f"{self.csrf_cookie_name}={flow.csrf}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
        ]

    def _new_csrf_cookie(self) -> str:
        """Return a fresh anti-CSRF cookie (nosurf's RegenerateToken)."""
        token = secrets.token_urlsafe(32)
        return f"{self.csrf_cookie_name}={token}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"

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
            return self._csrf_violation(request)
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

    def _find_flow(
        self, request: httpx.Request, kind: Literal["login", "settings", "registration"]
    ) -> _Flow:
        flow = self._flows.get(request.url.params.get("flow", ""))
        if flow is None or flow.kind != kind:
            raise _Reply(self._not_found())
        return flow

    def _submit_flow(
        self,
        request: httpx.Request,
        kind: Literal["login", "settings", "registration"],
        flow: _Flow | None = None,
    ) -> tuple[_Flow, dict[str, str]]:
        """Check a submit as Kratos's handlers and strategies do, in their order.

        The flow's expiry first, then the body's decoding (``decoderx``), then
        ``flow.EnsureCSRF``: browser-only headers on an API flow, the CSRF token on a
        browser flow.
        """
        flow = flow or self._find_flow(request, kind)
        now = self.clock.now()
        if flow.expires_at <= now:
            self._expired_on_submit(request, flow)
        form = self._decoded_form(request)
        if isinstance(form, str):
            raise _Reply(self._flow_error(request, flow, (4000001, form, "error"), kind))
        if flow.type == "api":
            reason = self._browser_headers_in_api_flow(request)
            if reason is not None:
                raise _Reply(self._flow_error(request, flow, (4000001, reason, "error"), kind))
        elif (
            not form.get("csrf_token")
            or form.get("csrf_token") != flow.csrf
            or self._csrf_of(request) != flow.csrf
        ):
            raise _Reply(self._forward(request, self._csrf_violation(request, form)))
        return flow, form

    def _expired_on_submit(self, request: httpx.Request, flow: _Flow) -> None:
        """Raise the answer to a submit of an expired flow: a replacement that says why."""
        now = self.clock.now()
        replacement = self._new_flow(
            request,
            flow.kind,
            flow.type,
            self.login_lifespan,
            requested_aal=flow.requested_aal,
            refresh=flow.refresh,
            identity_id=flow.identity_id,
            pending_totp=pyotp.random_base32() if flow.kind == "settings" else None,
        )
        replacement.return_to, replacement.request_url = flow.return_to, flow.request_url
        if flow.kind == "settings":
            replacement.state = "show_form"
        minutes = (now - flow.expires_at).total_seconds() / 60
        message_id, text = _EXPIRED_MESSAGE[flow.kind]
        replacement.messages = [
            _ui_text(
                (message_id, text.format(minutes), "error"), expired_at=rfc3339(flow.expires_at)
            )
        ]
        if flow.type == "browser" and not self._is_json(request):
            raise _Reply(
                self._redirect(
                    f"{self.ui_url}/{flow.kind}?flow={replacement.id}",
                    self._csrf_cookie(replacement),
                )
            )
        raise _Reply(
            self._error(
                410,
                "self_service_flow_expired",
                f"The self-service flow expired {minutes:.2f} minutes ago, initialize a new one.",
                "self-service flow expired",
                extra={
                    "expired_at": rfc3339(flow.expires_at),
                    "since": int(minutes * 60e9),
                    "use_flow_id": replacement.id,
                },
            )
        )

    @staticmethod
    def _browser_headers_in_api_flow(request: httpx.Request) -> str | None:
        """Return why ``flow.EnsureCSRF`` refuses an API flow's submit, or None.

        Cloudflare's own cookies (``__cf*``, ``_cf*``, ``cf_*``) do not count.
        """
        if request.headers.get("Origin"):
            return _ORIGIN_IN_API_FLOW
        for header in request.headers.get_list("Cookie"):
            for part in header.split(";"):
                name = part.split("=", 1)[0].strip()
                if name and not name.startswith(("__cf", "_cf", "cf_")):
                    return _BROWSER_ONLY
        return None

    def _decoded_form(self, request: httpx.Request) -> dict[str, str] | str:
        """Decode a submit's body as ``decoderx`` does; a string is why it cannot."""
        content_type = request.headers.get("Content-Type", "")
        media = content_type.split(";")[0].strip().lower()
        too_large = len(request.content) > _MAX_BODY
        if media == "application/json":
            if too_large:
                return "Unable to decode form as JSON."
            try:
                data = json.loads(request.content or b"{}")
            except ValueError:
                return "Unable to decode form as JSON."
            if not isinstance(data, dict):
                kind = {list: "JSON", str: "String", bool: "True" if data else "False"}
                return "Expected JSON sent in request body to be an object but got: " + kind.get(
                    type(data), "Null" if data is None else "Number"
                )
            return self._form(request)
        if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
            if too_large:
                return "Unable to decode HTTP POST form body: http: request body too large"
            return self._form(request)
        return f"Unable to determine decoder for content type: {content_type}"

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


def _host_of(url: SplitResult) -> str:
    """Return a URL's host with its port (Go's ``url.URL.Host``), lower-cased."""
    return url.netloc.rsplit("@", 1)[-1].lower()
