"""Flask: the request's :class:`~kratos_aal.PageAccess`, for the Jinja2 globals.

Flask renders on the blocking client (async views too, on a loop of their own): what a
template needs of Kratos is asked when it first needs it, once per request.
"""

from __future__ import annotations

from flask import request

from .._credentials import Credentials
from .._page import PageAccess
from .._web import BadRequest, return_to
from ._access import load_page
from .flask import _mine, _state, get_session
from .wsgi import _web_request

__all__ = ["page_access"]


def _back() -> str | None:
    web, _ = _web_request(request.environ)
    try:
        return return_to(web, _state().config)
    except BadRequest:
        return None  # no page to come back to: Kratos's default return URL serves


def page_access() -> PageAccess:
    """Return what the current request's session may see (made once per request).

    The session is the one a rule or decorator attached, else looked up as
    :func:`~kratos_aal.integrations.flask.get_session` does.

    Raises:
        KratosUnavailable: Kratos could not say who is signed in (the extension answers 503).
    """
    mine = _mine()
    page = mine.get("page")
    if isinstance(page, PageAccess):
        return page
    state = _state()
    session = get_session()
    _, raw = _web_request(request.environ)
    credentials = Credentials.from_headers(raw, cookie_name=state.config.cookie_name)
    page = load_page(
        state.client,
        credentials,
        session,
        return_to=_back,
        step_up_to=mine.get("step_up") if session is None else None,
    )
    mine["page"] = page
    return page
