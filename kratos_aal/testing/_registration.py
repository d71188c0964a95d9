"""Serve registration flows as Kratos's ``selfservice/flow/registration`` does.

Password registration only, with the ``session`` hook on (as in Kratos's quickstart):
a successful sign-up logs the new identity in.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx

from ._messages import MSG_DUPLICATE, MSG_EMAIL_MISSING, _too_short, _ui_text
from ._records import _Flow
from ._settings import _new_password_input, _Settings


class _Registration(_Settings):
    """Start and submit registration flows (password method)."""

    def _registration_nodes(self, flow: _Flow) -> list[dict[str, Any]]:
        nodes = self._csrf_nodes(flow)
        email = self._input(
            "traits.email",
            "email",
            "default",
            required=True,
            value=flow.traits.get("email") or None,
            autocomplete="email",
            label=(1070002, "E-Mail", "info"),
        )
        nodes += [email, _new_password_input()]
        nodes.append(self._submit("password", (1040001, "Sign up", "info")))
        return nodes

    def _registration_init(
        self, request: httpx.Request, flow_type: Literal["browser", "api"]
    ) -> httpx.Response:
        self._check_return_to(request, request.url.params.get("return_to"), api=flow_type == "api")
        record, _, _ = self._current(request)
        if record is not None:
            # registration/handler.go: a session means "already logged in".
            if flow_type == "browser" and not self._is_json(request):
                return_to = request.url.params.get("return_to")
                return self._redirect(self._return_to_url(return_to or self.default_return_url))
            response = self._error(
                400,
                "session_already_available",
                "A valid session was detected and thus registration is not possible.",
                "you are already logged in",
            )
            return response if flow_type == "api" else self._forward(request, response)
        flow = self._new_flow(request, "registration", flow_type, self.login_lifespan)
        return self._flow_answer(request, flow, "registration")

    def _registration_submit(self, request: httpx.Request) -> httpx.Response:
        flow = self._find_flow(request, "registration")
        if self._current(request)[0] is not None:
            # registration/handler.go updateRegistrationFlow: a caller with a session is
            # sent home (browser flows) or refused (API flows) before any strategy runs.
            if flow.type == "browser":
                return self._redirect(self.default_return_url)
            return self._error(
                400,
                "session_already_available",
                "A valid session was detected and thus registration is not possible.",
                "you are already logged in",
            )
        flow, form = self._submit_flow(request, "registration", flow)
        traits = _traits(request, form)
        email = str(traits.get("email") or "").strip()
        password = form.get("password", "")
        flow.traits = {"email": email}
        flow.node_messages = {}
        if form.get("method") != "password":
            return self._flow_error(
                request,
                flow,
                (
                    4010002,
                    "Could not find a strategy to sign you up with. "
                    "Did you fill out the form correctly?",
                    "error",
                ),
                "registration",
            )
        if not email:
            flow.node_messages["traits.email"] = [_ui_text(MSG_EMAIL_MISSING)]
            return self._flow_error(request, flow, None, "registration")
        too_short = _too_short(password)
        if too_short is not None:
            flow.node_messages["password"] = [too_short]
            return self._flow_error(request, flow, None, "registration")
        if any(i.email.lower() == email.lower() for i in self.identities.values()):
            return self._flow_error(request, flow, MSG_DUPLICATE, "registration")
        identity = self.create_identity(email, password)
        record = self._new_session(identity, self.clock.now())
        record.methods.append(self._method("password", self.clock.now()))
        flow.state = "passed_challenge"
        body: dict[str, Any]
        if flow.type == "api":
            body = {
                "identity": self._identity_json(identity),
                "session": self._session_json(record),
                "session_token": record.token,
                "continue_with": [
                    {"action": "set_ory_session_token", "ory_session_token": record.token}
                ],
            }
            return self._json(200, body)
        cookie = self._session_cookie(record, self._issue_cookie(record))
        destination = self._return_to_url(flow.return_to or self.default_return_url)
        if self._is_json(request):
            body = {
                "identity": self._identity_json(identity),
                "session": self._session_json(record),
                "continue_with": [
                    {"action": "redirect_browser_to", "redirect_browser_to": destination}
                ],
            }
            return self._json(200, body, cookies=[cookie])
        return self._redirect(destination, [cookie])


def _traits(request: httpx.Request, form: dict[str, str]) -> dict[str, Any]:
    """Read ``traits`` from a JSON body (an object) or a form (``traits.email``)."""
    if request.headers.get("Content-Type", "").split(";")[0].strip().lower() == "application/json":
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return {}
        traits = body.get("traits") if isinstance(body, dict) else None
        return traits if isinstance(traits, dict) else {}
    return {"email": form.get("traits.email", "")}
