"""What every integration shares: reading a request, ``return_to``, and the denial response.

Sans-IO and framework-free: ASGI, WSGI and Django adapters turn their request into a
:class:`WebRequest`, ask the client for a decision, and turn a :class:`WebResponse` back
into their own response type. One concern per module:

- :mod:`.messages`: :class:`WebRequest`, :class:`WebResponse`, status texts, plain pages;
- :mod:`.paths`: :class:`PathRules` and the readings of a path (SPEC §4);
- :mod:`.urls`: this app's origin and ``return_to``;
- :mod:`.hops`: the loop breaker's hop cookie;
- :mod:`.denials`: the response to a denial (:func:`conclude`);
- :mod:`.origins`: cross-origin requests on the cookie (SPEC §4a).
"""

from __future__ import annotations

from .denials import LoopPage, conclude, error_body
from .hops import (
    CLEAR_HOPS,
    HOP_COOKIE,
    HOP_MARK,
    HOP_WINDOW,
    MAX_HOPS,
    clear_hops,
    hop_key,
    sets_hops,
)
from .messages import (
    SAFE_METHODS,
    BadRequest,
    WebRequest,
    WebResponse,
    asgi_headers,
    bad_request,
    status_text,
)
from .origins import (
    CrossOriginRefusal,
    cross_origin,
    csrf_error_body,
    is_handshake,
    is_trusted,
    refuse_cross_origin,
)
from .paths import UNKNOWN, PathRules, route_readings, strictest
from .urls import origin_of, page_of, request_url, return_to

__all__ = [
    "CLEAR_HOPS",
    "HOP_COOKIE",
    "HOP_MARK",
    "HOP_WINDOW",
    "MAX_HOPS",
    "SAFE_METHODS",
    "UNKNOWN",
    "BadRequest",
    "CrossOriginRefusal",
    "LoopPage",
    "PathRules",
    "WebRequest",
    "WebResponse",
    "asgi_headers",
    "bad_request",
    "clear_hops",
    "conclude",
    "cross_origin",
    "csrf_error_body",
    "error_body",
    "hop_key",
    "is_handshake",
    "is_trusted",
    "origin_of",
    "page_of",
    "refuse_cross_origin",
    "request_url",
    "return_to",
    "route_readings",
    "sets_hops",
    "status_text",
    "strictest",
]
