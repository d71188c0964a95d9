"""Talking to Kratos, sans IO: the requests it is asked, and the reading of its answers.

Nothing here sends anything: the plans in ``_core`` hand these requests to a client and
these parsers read what came back. The browser flow URLs handed to browsers are made here
too, on ``browser_url``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from ._config import KratosConfig
from ._credentials import Credentials
from ._models import Session
from .exceptions import KratosUnavailable, MalformedResponse

_MAX_RETRY_AFTER = 3600
#: Seconds a whoami 401 for a credential is remembered at most (never longer than
#: cache_ttl, nor than Kratos's own Ory-Session-Cache-For on that 401): a client that
#: repeats a bogus cookie costs one Kratos call per cookie in that time, not one per request.
NO_SESSION_TTL = 5.0
_SECOND_FACTOR_GROUPS = frozenset({"totp", "webauthn", "lookup_secret"})


# ---------------------------------------------------------------------------
# URLs


def browser_flow_url(config: KratosConfig, path: str, params: dict[str, str]) -> str:
    """Return *path* (starting ``/self-service/``) with *params* under ``browser_url``."""
    query = urlencode(params)
    return f"{config.browser_base}{path}" + (f"?{query}" if query else "")


def rebase(config: KratosConfig, url: object, return_to: str | None) -> str | None:
    """Move a URL Kratos handed out onto ``browser_url``, keeping path and query.

    Whatever origin Kratos wrote (its public URL, or an internal ``http://kratos:4433``)
    only the part from ``/self-service/`` on is kept. *return_to* replaces any
    ``return_to`` in the query; without one, Kratos's own stays. Returns ``None`` when
    *url* is no Kratos flow URL.
    """
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    index = parts.path.find("/self-service/")
    if index < 0:
        return None
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if return_to:
        params["return_to"] = return_to
    return browser_flow_url(config, parts.path[index:], params)


def login_url(config: KratosConfig, return_to: str | None, **extra: str) -> str:
    """Return the browser login URL, with *extra* query parameters and *return_to*."""
    params = dict(extra)
    if return_to:
        params["return_to"] = return_to
    return browser_flow_url(config, "/self-service/login/browser", params)


def settings_url(config: KratosConfig, return_to: str | None) -> str:
    """Return the browser settings URL where a second factor is set up."""
    return browser_flow_url(
        config, "/self-service/settings/browser", {"return_to": return_to} if return_to else {}
    )


# ---------------------------------------------------------------------------
# Requests and answers


def _request(
    config: KratosConfig,
    base: str,
    path: str,
    credentials: Credentials | None,
    *,
    params: tuple[tuple[str, str], ...] = (),
    headers: dict[str, str] | None = None,
) -> httpx.Request:
    all_headers = {"Accept": "application/json", **(headers or {})}
    if credentials is not None:
        if credentials.token:
            all_headers["X-Session-Token"] = credentials.token
        elif credentials.cookie:
            # Only the Kratos cookie: the app's other cookies never leave the app.
            all_headers["Cookie"] = f"{config.cookie_name}={credentials.cookie}"
    return httpx.Request(
        "GET",
        f"{base}{path}",
        params=params,
        headers=all_headers,
        extensions={"timeout": httpx.Timeout(config.timeout).as_dict()},
    )


def whoami_request(config: KratosConfig, credentials: Credentials) -> httpx.Request:
    """Return the ``GET /sessions/whoami`` request for *credentials*."""
    return _request(config, config.public_url, "/sessions/whoami", credentials)


def logout_request(config: KratosConfig, credentials: Credentials) -> httpx.Request:
    """Return the ``GET /self-service/logout/browser`` request for *credentials*."""
    return _request(config, config.public_url, "/self-service/logout/browser", credentials)


def ascii_digits(value: str) -> bool:
    """Return whether *value* is a run of ASCII digits (``str.isdigit`` also takes ``²``)."""
    return value.isascii() and value.isdigit()


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("Retry-After", "").strip()
    if ascii_digits(value):
        return min(int(value), _MAX_RETRY_AFTER)
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a body nested deeper than the parser's stack, which no Kratos
        # (or proxy error page) answer is; it is an odd answer like any other.
        raise MalformedResponse(
            f"Kratos answered {response.status_code} with a body that is not JSON"
        ) from None


def _error_id(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    value = error.get("id") if isinstance(error, dict) else None
    return value if isinstance(value, str) else None


def raise_for_unavailable(response: httpx.Response) -> None:
    """Raise :class:`KratosUnavailable` for 5xx and 429 answers."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise KratosUnavailable(
            f"Kratos answered {status}",
            retry_after=_retry_after(response) if status == 429 else None,
            status_code=status,
        )


@dataclass(frozen=True, slots=True)
class WhoamiResult:
    """A parsed whoami answer: a session, no session, or a step-up demanded by Kratos."""

    session: Session | None
    step_up_to: str | None = None


def parse_whoami(
    config: KratosConfig, response: httpx.Response, now: float
) -> tuple[WhoamiResult, float]:
    """Read a whoami answer; return the result and how many seconds it may be cached.

    Raises:
        KratosUnavailable: the answer is not one Kratos gives for a working session check.
    """
    raise_for_unavailable(response)
    status = response.status_code
    if status == 401:
        # A new login always brings a new cookie string (Kratos's cookie carries a nonce)
        # or a new token, so remembering that this one has no session locks nobody out.
        return WhoamiResult(None), _cache_for(response, min(config.cache_ttl, NO_SESSION_TTL))
    body = _json(response)
    if status == 403:
        if _error_id(body) == "session_aal2_required":
            target = rebase(config, body.get("redirect_browser_to"), None)
            return WhoamiResult(None, target or login_url(config, None, aal="aal2")), 0.0
        raise KratosUnavailable(
            f"Kratos answered 403 {_error_id(body) or ''}".rstrip(), status_code=403
        )
    if status != 200:
        raise KratosUnavailable(f"Kratos answered {status} to whoami", status_code=status)
    session = Session.from_json(body)
    if not session.active:
        raise MalformedResponse("Kratos answered 200 with a session that is not active")
    ttl = config.cache_ttl
    if session.expires_at is not None:
        ttl = min(ttl, session.expires_at.timestamp() - now)
    return WhoamiResult(session), _cache_for(response, ttl)


def _cache_for(response: httpx.Response, ttl: float) -> float:
    """Return *ttl*, capped by Kratos's ``Ory-Session-Cache-For`` when it sent one."""
    cache_for = response.headers.get("Ory-Session-Cache-For", "").strip()
    if ascii_digits(cache_for):
        ttl = min(ttl, float(cache_for))
    return max(ttl, 0.0)


def second_factor_request(
    config: KratosConfig, credentials: Credentials, session: Session
) -> httpx.Request:
    """Return the request that tells whether the session's identity has a second factor.

    With ``admin_url`` it asks the admin identity API; otherwise it creates an ``aal=aal2``
    login flow for this very session, whose nodes list the second factors it has.
    """
    if config.admin_url and session.identity is not None:
        headers = {"Authorization": f"Bearer {config.admin_token}"} if config.admin_token else {}
        query = tuple(("include_credential", kind) for kind in sorted(_SECOND_FACTOR_GROUPS))
        path = f"/admin/identities/{quote(session.identity.id, safe='')}"
        return _request(config, config.admin_url, path, None, params=query, headers=headers)
    # The browser route (answered as JSON) for tokens too: Kratos adds WebAuthn nodes to
    # browser flows only (strategy/webauthn/login.go), so an API flow hides security keys.
    return _request(
        config,
        config.public_url,
        "/self-service/login/browser",
        credentials,
        params=(("aal", "aal2"),),
    )


def parse_second_factor(response: httpx.Response) -> bool:
    """Read the answer to :func:`second_factor_request`: does a second factor exist?

    Raises:
        KratosUnavailable: the answer does not say.
    """
    raise_for_unavailable(response)
    if response.status_code != 200:
        raise KratosUnavailable(
            f"Kratos answered {response.status_code} to the second-factor probe",
            status_code=response.status_code,
        )
    body = _json(response)
    if not isinstance(body, dict):
        raise MalformedResponse("the second-factor probe got a body that is not an object")
    if "credentials" in body or "schema_id" in body:
        return _identity_has_second_factor(body.get("credentials"))
    ui = body.get("ui")
    nodes = ui.get("nodes") if isinstance(ui, dict) else None
    if not isinstance(nodes, list):
        raise MalformedResponse("the login flow has no ui.nodes")
    return any(isinstance(n, dict) and n.get("group") in _SECOND_FACTOR_GROUPS for n in nodes)


def _identity_has_second_factor(credentials: Any) -> bool:
    if not isinstance(credentials, dict):
        return False
    for kind in ("totp", "lookup_secret"):
        if isinstance(credentials.get(kind), dict):
            return True
    webauthn = credentials.get("webauthn")
    if isinstance(webauthn, dict):
        config = webauthn.get("config")
        keys = config.get("credentials") if isinstance(config, dict) else None
        if not isinstance(keys, list):
            # Without the config we cannot tell passwordless keys apart: a step-up is the
            # safe guess, Kratos offers it only when it can succeed.
            return True
        return any(isinstance(k, dict) and not k.get("is_passwordless") for k in keys)
    return False


def parse_logout(
    config: KratosConfig, response: httpx.Response, return_to: str | None
) -> str | None:
    """Read ``/self-service/logout/browser``: the logout URL on ``browser_url``, or ``None``."""
    raise_for_unavailable(response)
    if response.status_code in (401, 403):
        return None  # no session to end
    if response.status_code != 200:
        raise KratosUnavailable(
            f"Kratos answered {response.status_code} to logout", status_code=response.status_code
        )
    body = _json(response)
    url = rebase(config, body.get("logout_url") if isinstance(body, dict) else None, return_to)
    if url is None:
        raise MalformedResponse("Kratos sent no logout_url")
    return url
