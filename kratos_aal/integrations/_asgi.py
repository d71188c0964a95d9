"""Raw ASGI helpers of the Starlette adapter.

The request as kratos-aal reads it, the scope keys, sending a response.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes

from starlette.types import Scope, Send

from .._models import Session
from .._web import WebRequest, WebResponse, asgi_headers
from ._asgi_live import GUARD_KEY, Guard

SCOPE_KEY = "kratos_aal.middleware"
STEP_UP_KEY = "kratos_aal.step_up"
_SESSION_KEY = "kratos_session"
_HOPS_KEY = "kratos_aal.hops"  # set by an allowing hit: whether it saw the hop cookie
_EVENT_STREAM = b"text/event-stream"
_URL_SAFE = "/%:@!$&'()*+,;=-._~"


def _web_request(scope: Scope) -> WebRequest:
    headers = asgi_headers(scope.get("headers", ()))
    raw_path = scope.get("raw_path")
    path = (
        quote_from_bytes(raw_path, safe=_URL_SAFE)
        if raw_path
        else quote_from_bytes(scope["path"].encode("utf-8", "surrogateescape"), safe=_URL_SAFE)
    )
    root = scope.get("root_path", "")
    if root and not path.startswith(root):
        path = root + path
    scheme = str(scope.get("scheme") or "http")
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return WebRequest(
        method=scope.get("method", "GET"),
        scheme=scheme,
        host=headers.get("host") or _server_host(scope),
        path=path,
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
    )


def _server_host(scope: Scope) -> str | None:
    server = scope.get("server")
    if not server or server[1] is None:
        return None
    return f"{server[0]}:{server[1]}"


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] or "/" if root and path.startswith(root) else path


async def _send(send: Send, response: WebResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def _session_of(scope: Scope) -> Session | None:
    session = scope.get("state", {}).get(_SESSION_KEY)
    return session if isinstance(session, Session) else None


def _stopped(scope: Scope, error: BaseException) -> bool:
    """Return whether the app's *error* is its stop by the stream's guard (then swallowed)."""
    guard = scope.get(GUARD_KEY)
    return type(guard) is Guard and guard.stopped(error)
