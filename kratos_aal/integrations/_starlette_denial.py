"""Denials raised below the middleware (a dependency, ``load_session``), and their answer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from .._web import CrossOriginRefusal, WebResponse
from ..exceptions import KratosUnavailable


class KratosDenied(Exception):
    """Raised by a FastAPI dependency; the middleware answers with :attr:`response`."""

    def __init__(self, response: WebResponse) -> None:
        super().__init__(response.status)
        self.response = response


class _SessionUnavailable(KratosUnavailable, KratosDenied):
    """Kratos could not say who is signed in, while a page asked (:func:`load_session`).

    A :class:`KratosUnavailable`, so a page can catch it and render "could not check";
    uncaught, it is answered as a :class:`KratosDenied` (by the app that runs the page, or
    the middleware): the 503 with ``Retry-After`` every adapter gives, never a 500.
    ``KratosUnavailable`` comes first in the MRO: an app's own handler of it (or of
    ``KratosAALError``) must win over the ``KratosDenied`` handler that answers denials.
    """

    def __init__(self, response: WebResponse, error: KratosUnavailable) -> None:
        KratosDenied.__init__(self, response)
        self.retry_after = error.retry_after
        self.status_code = error.status_code


def deny_in_scope(scope: Scope, response: WebResponse) -> KratosDenied:
    """Return the exception a dependency raises for *response*, for the app in *scope* to answer.

    The Starlette or FastAPI app that runs the dependency answers it itself: the denial
    becomes that app's handler of :class:`KratosDenied` (unless it has one of its own), as
    if it had been registered with ``add_exception_handler``. An app mounted below the
    middleware would otherwise answer with a 500 from its own error middleware first; and
    the app's own middleware (CORS, say) sees the denial as it sees any response. Where
    no such app runs it, the middleware's own ``except`` answers a denial that reaches it.
    """
    _answer_here(scope)
    return KratosDenied(response)


def _answer_here(scope: Scope) -> bool:
    """Make the app now running answer a :class:`KratosDenied`; ``False``: there is none.

    The Starlette or FastAPI app (the innermost one, when mounted) answers it unless it
    has a handler of its own.
    """
    handlers = scope.get("starlette.exception_handlers")
    if handlers is None:
        return False
    handlers[0].setdefault(KratosDenied, _answer_denied)
    return True


async def _answer_denied(request: Request, error: Exception) -> Response:
    """Answer a :class:`KratosDenied` inside the app that raised it (an exception handler)."""
    assert isinstance(error, KratosDenied)
    return _as_response(error.response)


def _as_response(response: WebResponse) -> Response:
    answer = Response(response.body, status_code=response.status)
    # Raw, so that a header sent twice (Set-Cookie) is sent twice.
    answer.raw_headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
    ]
    return answer


def _reason(denial: WebResponse) -> str:
    """Return the close reason of a WebSocket the route refuses (code 1008)."""
    if isinstance(denial, CrossOriginRefusal):
        return "Cross-origin WebSocket refused"
    return "Kratos session required"
