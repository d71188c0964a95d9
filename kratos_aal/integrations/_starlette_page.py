"""Starlette and FastAPI: ``load_page``, what a page's session may see, loaded before rendering.

Starlette's ``Jinja2Templates`` render synchronously, inside the endpoint: a template
cannot await Kratos. So the endpoint awaits :data:`load_page` (FastAPI: depends on it),
which loads the session and what a template may need of Kratos, and the template
globals (:func:`kratos_aal.integrations.jinja.install_starlette`) answer from it.
"""

from __future__ import annotations

from typing import get_type_hints

from starlette.requests import HTTPConnection, Request

from .._credentials import Credentials, asgi_credentials
from .._page import PageAccess
from .._web import BadRequest, return_to
from ._access import aload_page
from ._asgi import STEP_UP_KEY, _web_request
from .starlette import get_session, load_session, middleware_of

__all__ = ["LoadPage", "load_page", "page_of"]

PAGE_KEY = "kratos_aal.page"
_LOGOUT_KEY = "kratos_aal.page_logout"
_HOW = "await LoadPage(logout=True)(request) in the endpoint (FastAPI: depend on it)"


class LoadPage:
    """Load what a request's session may see, for the templates it renders; returns it.

    Await it in the endpoint (``page = await load_page(request)``), or depend on it in
    FastAPI (``page: PageAccess = Depends(load_page)``), before rendering a template that
    asks (``allows(...)``, ``step_up_url(...)``). It makes no Kratos call of its own for a
    session a rule, decorator or dependency attached; on a public page it looks the
    session up as :func:`~kratos_aal.integrations.starlette.load_session` does (Kratos
    trouble: 503). For an aal1 session, whether its identity has a second factor is
    asked now (cached by identity), to tell step-up from enrollment.

    Args:
        logout: Load the session's logout URL too (cached with the session), for
            ``logout_url()``.

    .. versionadded:: 0.2
    """

    def __init__(self, *, logout: bool = False) -> None:
        self.logout = logout

    def __repr__(self) -> str:
        return f"LoadPage(logout={self.logout})"

    async def __call__(self, request: Request) -> PageAccess:
        scope = request.scope
        page = scope.get(PAGE_KEY)
        if isinstance(page, PageAccess) and (scope.get(_LOGOUT_KEY) or not self.logout):
            return page
        middleware = middleware_of(request, "load_page")
        session = get_session(request) or await load_session(request)
        page = await aload_page(
            middleware.client,
            _credentials(request, middleware.config.cookie_name),
            session,
            return_to=lambda: _back(request),
            step_up_to=scope.get(STEP_UP_KEY) if session is None else None,
            logout=self.logout,
            how=_HOW,
        )
        scope[PAGE_KEY] = page
        scope[_LOGOUT_KEY] = self.logout
        return page


# FastAPI reads the annotations of a dependency instance's __call__ (see fastapi.py).
LoadPage.__call__.__annotations__.update(get_type_hints(LoadPage.__call__))

#: Await it in an endpoint, or depend on it in FastAPI; see :class:`LoadPage`.
load_page = LoadPage()


def _credentials(connection: HTTPConnection, cookie_name: str) -> Credentials:
    return asgi_credentials(connection.scope.get("headers", ()), cookie_name)


def _back(connection: HTTPConnection) -> str | None:
    middleware = middleware_of(connection, "load_page")
    try:
        return return_to(_web_request(connection.scope), middleware.config)
    except BadRequest:
        return None  # no page to come back to: Kratos's default return URL serves


def page_of(connection: HTTPConnection) -> PageAccess:
    """Return the page :data:`load_page` loaded for this request.

    Raises:
        RuntimeError: it was not loaded.
    """
    page = connection.scope.get(PAGE_KEY)
    if not isinstance(page, PageAccess):
        raise RuntimeError(
            "kratos_aal: a template asked what the Kratos session allows before the page "
            "was loaded; await load_page(request) in the endpoint (FastAPI: "
            "Depends(load_page)) before rendering (a template cannot await Kratos)"
        )
    return page
