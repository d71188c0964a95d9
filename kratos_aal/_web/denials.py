"""The response to a denial (SPEC §4): Kratos's JSON, a redirect, a page, the loop page."""

from __future__ import annotations

import hashlib
import html
import json
import time
from dataclasses import dataclass

from .._credentials import Credentials
from .._decision import DEFAULT_RETRY_AFTER, Decision, Outcome
from .._negotiate import wants_json
from .hops import HOP_WINDOW, MAX_HOPS, _hop_cookie, _hop_mac, _hops, hop_key
from .messages import _NO_STORE, WebRequest, WebResponse, _page, status_text

_JSON_ERRORS: dict[Outcome, tuple[int, str, str, str]] = {
    Outcome.LOGIN: (
        401,
        "session_inactive",
        "No active session was found in this request.",
        "request does not have a valid authentication session",
    ),
    Outcome.STEP_UP: (
        403,
        "session_aal2_required",
        "An active session was found but it does not fulfill the requested Authenticator "
        "Assurance Level. Please verify yourself with a second factor to resolve this issue.",
        "Session does not fulfill the requested Authenticator Assurance Level",
    ),
    Outcome.REAUTHENTICATE: (
        403,
        "session_refresh_required",
        "The login session is too old or lacks a required method for this action. "
        "Please re-authenticate.",
        "The requested action was forbidden",
    ),
    Outcome.ENROLL: (
        403,
        "session_aal2_enrollment_required",
        "This action requires a second factor, and this account has none yet. "
        "Please set one up in your account settings.",
        "A second factor must be set up first",
    ),
    Outcome.UNAVAILABLE: (
        503,
        "kratos_unavailable",
        "The session could not be verified because Ory Kratos did not answer in time. "
        "Please try again shortly.",
        "The service is temporarily unavailable",
    ),
}


#: What the 503 says happened, by ``Decision.cause``.
_UNAVAILABLE_REASONS = {
    "connect": "The session could not be verified because this service could not connect "
    "to Ory Kratos. Please try again shortly.",
    "timeout": _JSON_ERRORS[Outcome.UNAVAILABLE][2],
    None: "The session could not be verified because Ory Kratos could not answer properly. "
    "Please try again shortly.",
}
# max_concurrent_checks calls under way already: the answer is the one it always was.
_UNAVAILABLE_REASONS["busy"] = _UNAVAILABLE_REASONS[None]


def error_body(decision: Decision) -> dict[str, object]:
    """Return the Kratos-shaped JSON body for a denial."""
    status, error_id, reason, message = _JSON_ERRORS[decision.outcome]
    if decision.outcome is Outcome.UNAVAILABLE:
        reason = _UNAVAILABLE_REASONS.get(decision.cause, reason)
    body: dict[str, object] = {
        "error": {
            "id": error_id,
            "code": status,
            "status": status_text(status),
            "reason": reason,
            "message": message,
        }
    }
    if decision.redirect_to:
        body["redirect_browser_to"] = decision.redirect_to
    return body


def _json_response(decision: Decision, extra: list[tuple[str, str]]) -> WebResponse:
    status = _JSON_ERRORS[decision.outcome][0]
    headers = [("Content-Type", "application/json"), _NO_STORE, *extra]
    return WebResponse(status, headers, json.dumps(error_body(decision)).encode())


@dataclass(frozen=True, slots=True)
class LoopPage(WebResponse):
    """The loop page; an adapter that knows more fills in its links with :meth:`linked`."""

    retry: str = ""
    #: Whether Kratos knows the session the browser sent (every denial but LOGIN).
    signed_in: bool = False

    def linked(self, home: str, sign_out: str | None) -> WebResponse:
        """Return this page linking *home* and, when there is one, the *sign_out* URL."""
        return WebResponse(self.status, self.headers, _loop_body(self.retry, home, sign_out))


def _loop_body(retry: str, home: str, sign_out: str | None) -> bytes:
    leave = (
        # A Kratos logout URL with its token: one click ends the session and comes home.
        f', or <a href="{html.escape(sign_out)}">sign out</a> and start over.'
        if sign_out
        else ". (A sign-out link appears here when your browser sends this app a session.)"
    )
    return _page(
        409,
        "Sign-in keeps coming back here",
        [
            "This page sent you to sign in several times in a row, and each time your browser "
            "came straight back without a session this page accepts.",
            "Likely causes: the Kratos session cookie does not reach this app (its domain or "
            "path does not cover this site, or it is Secure and this site is plain http), or "
            "kratos-aal's <code>browser_url</code> does not point at the Kratos that browsers use.",
            f'When that is fixed, <a href="{html.escape(retry)}">try again</a>. Or go to '
            f'<a href="{html.escape(home)}">the home page</a>{leave}',
        ],
        [],
    ).body


def _loop_page(decision: Decision, request: WebRequest, extra: list[tuple[str, str]]) -> LoopPage:
    retry = decision.redirect_to or ""
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        _NO_STORE,
        *extra,
        _hop_cookie("", request, 0),
    ]
    signed_in = decision.outcome is not Outcome.LOGIN
    return LoopPage(409, headers, _loop_body(retry, "/", None), retry, signed_in)


def conclude(
    decision: Decision,
    request: WebRequest,
    credentials: Credentials,
    *,
    now: float | None = None,
    secret: str | bytes | None = None,
) -> WebResponse | None:
    """Return the response for a denial (SPEC §4), or ``None`` when the request may run.

    *secret* signs the loop breaker's hop cookie (see :func:`hop_key`): pass one that every
    worker and instance shares (``cache_key_secret``, the framework's ``SECRET_KEY``).
    """
    if decision.outcome is Outcome.ALLOW:
        return None
    extra: list[tuple[str, str]] = []
    if decision.outcome is Outcome.UNAVAILABLE:
        extra.append(("Retry-After", str(decision.retry_after or DEFAULT_RETRY_AFTER)))
    if request.is_htmx and decision.redirect_to:
        return _json_response(decision, [*extra, ("HX-Redirect", decision.redirect_to)])
    if credentials.is_token or wants_json(request.header("accept"), request.header("content-type")):
        return _json_response(decision, extra)
    if decision.outcome is Outcome.UNAVAILABLE:
        return _page(
            503,
            "Please try again in a moment",
            [
                "Your session could not be checked because the sign-in service "
                + ("could not be reached" if decision.cause == "connect" else "did not answer")
                + ". Nothing was changed. Please reload this page in a few seconds."
            ],
            extra,
        )
    assert decision.redirect_to is not None
    moment = int(time.time() if now is None else now)
    route = hashlib.sha256(request.path.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    key = hop_key(secret)
    hops, _ = _hops(request, route, moment, key)
    if hops >= MAX_HOPS:
        return _loop_page(decision, request, extra)
    payload = f"{route}.{hops + 1}.{moment}"
    cookie = _hop_cookie(f"{payload}.{_hop_mac(key, payload)}", request, HOP_WINDOW)
    return WebResponse(303, [("Location", decision.redirect_to), _NO_STORE, cookie, *extra])
