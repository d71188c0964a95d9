"""``page_access(request)`` and ``await apage_access(request)``: what a page's session may see.

The template tags (``{% load kratos_aal %}``) and the context processor ask the request's
:class:`~kratos_aal.PageAccess`, made once per request from the session the request's own
check attached: reading it in a template makes no Kratos call of its own.

Sync views need nothing more. An async view that renders such a template in its own body
(``render(request, ...)``) awaits :func:`apage_access` first: a template cannot await, and
what it may need of Kratos (is there a second factor? the logout URL) is loaded then. A
``TemplateResponse`` is rendered in a worker thread, where the sync path serves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject, empty

from ..._models import Session
from ..._page import PageAccess
from ..._web import BadRequest
from ...exceptions import StepUpRequired
from .._access import aload_page, load_page
from . import conf
from ._glue import _return_to, credentials_of

__all__ = ["apage_access", "page_access"]

_PAGE = "_kratos_aal_page"
_WITH_LOGOUT = "_kratos_aal_page_logout"
_STEP_UP = "_kratos_aal_step_up"  # set by the middleware's lookup on a withheld session
_ASYNC_HOW = "await apage_access(request, logout=True) in the view before rendering"


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _back(request: HttpRequest) -> str | None:
    try:
        return _return_to(request)
    except BadRequest:
        return None  # no page to come back to: Kratos's default return URL serves


def _attached(request: HttpRequest) -> tuple[bool, Session | None]:
    """Return whether the request's session is known without Kratos, and the session."""
    attached = request.__dict__.get("kratos_session", empty)
    # The lazy object first: isinstance(lazy, Session) would evaluate it (a blocking whoami).
    if isinstance(attached, SimpleLazyObject):
        wrapped = attached._wrapped
        if wrapped is empty:
            return False, None
        return True, wrapped if isinstance(wrapped, Session) else None
    if isinstance(attached, Session):
        return True, attached
    return False, None


def page_access(request: HttpRequest) -> PageAccess:
    """Return what this request's session may see, and the links that would let it see more.

    Made once per request. The session is the one the request's check attached (a rule,
    decorator or mixin), else the middleware's lazy ``request.kratos_session`` (one
    whoami, through the client's cache).

    Raises:
        RuntimeError: called in async code (an async view's own ``render()``) before
            :func:`apage_access` was awaited.
        KratosUnavailable: Kratos could not say who is signed in (the middleware answers
            503).

    .. versionadded:: 0.2
    """
    page = request.__dict__.get(_PAGE)
    if page is not None:
        return page  # type: ignore[no-any-return]
    if _in_event_loop():
        raise RuntimeError(
            "kratos_aal: a template asked what the Kratos session allows in async code; "
            "await apage_access(request) in the view before rendering (a template cannot "
            "await what it may need of Kratos)"
        )
    client, _ = conf.clients()
    known, session = _attached(request)
    step_up_to: str | None = None
    if not known:
        lazy = request.__dict__.get("kratos_session", empty)
        if isinstance(lazy, SimpleLazyObject):  # the middleware's lazy lookup: read it here
            bool(lazy)
            known, session = _attached(request)
        else:  # no KratosSessionMiddleware: ask the client (cached) ourselves
            try:
                session = client.whoami(credentials_of(request))
            except StepUpRequired as error:
                step_up_to = error.redirect_to
    step_up_to = step_up_to or request.__dict__.get(_STEP_UP)
    page = load_page(
        client,
        credentials_of(request),
        session,
        return_to=lambda: _back(request),
        step_up_to=step_up_to,
    )
    setattr(request, _PAGE, page)
    return page


async def apage_access(request: HttpRequest, *, logout: bool = False) -> PageAccess:
    """Load what this request's session may see, for templates rendered in async code.

    Asks Kratos what a template may need and cannot await: the session (when no check
    attached it), whether an aal1 session's identity has a second factor (cached by
    identity), and with *logout* the session's logout URL (cached with the session).

    Raises:
        KratosUnavailable: Kratos could not say who is signed in (the middleware answers
            503).

    .. versionadded:: 0.2
    """
    page = request.__dict__.get(_PAGE)
    if page is not None and (not logout or request.__dict__.get(_WITH_LOGOUT)):
        return page  # type: ignore[no-any-return]
    _, client = conf.clients()
    credentials = credentials_of(request)
    known, session = _attached(request)
    step_up_to: str | None = request.__dict__.get(_STEP_UP)
    if not known:
        try:
            session = await client.whoami(credentials)
        except StepUpRequired as error:
            step_up_to = error.redirect_to
        if session is not None:
            request.kratos_session = session  # sync code in this request reads it too
    page = await aload_page(
        client,
        credentials,
        session,
        return_to=lambda: _back(request),
        step_up_to=step_up_to,
        logout=logout,
        how=_ASYNC_HOW,
    )
    setattr(request, _PAGE, page)
    setattr(request, _WITH_LOGOUT, logout)
    return page


def lazy_page(request: HttpRequest) -> Any:
    """Return the request's page as a lazy object: made when a template first reads it."""
    return SimpleLazyObject(lambda: page_access(request))
