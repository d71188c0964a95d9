"""Jinja2 templates (Starlette's ``Jinja2Templates``, FastAPI, Flask): step-up inside a page.

.. code-block:: python

    # Starlette or FastAPI
    templates = install_starlette(Jinja2Templates(directory="templates"))

    async def account(request):
        await load_page(request)  # FastAPI: Depends(load_page)
        return templates.TemplateResponse(request, "account.html")

    # Flask
    install_flask(app)

.. code-block:: jinja

    {% if allows("aal2", max_age=300) %}
      {{ account.iban }}
    {% else %}
      <a href="{{ step_up_url("aal2", max_age=300) }}">Verify to see your IBAN</a>
    {% endif %}

Every template then has ``kratos_session`` (the request's session, or ``None``) and the
functions ``allows(aal, max_age=..., methods=...)``, ``step_up_url(...)``,
``aal_decision(...)`` (the whole :class:`~kratos_aal.Decision`), ``login_url()``,
``logout_url()`` and ``settings_url()``, answered by the request's
:class:`~kratos_aal.PageAccess`: the URLs are those the middleware would send, coming back
to the page. Jinja2 is the ``jinja2`` extra (Flask brings it anyway).

This module imports no framework: each ``install_*`` imports its own when called.

.. versionadded:: 0.2
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._decision import Decision, RequirementLike
from .._page import PageAccess

if TYPE_CHECKING:
    from flask import Flask
    from starlette.requests import Request
    from starlette.templating import Jinja2Templates

    from ._starlette_page import LoadPage, load_page

__all__ = ["LoadPage", "install_flask", "install_starlette", "load_page", "template_names"]

_MaxAge = float | timedelta | None
_Methods = Collection[str] | str | None


def template_names(page: Callable[[], PageAccess], session: Any) -> dict[str, Any]:
    """Return the names every template gets: *session*, and functions asking *page()*.

    *page* is called when a function is: a template that asks nothing costs nothing.
    """

    def allows(
        aal: RequirementLike = "aal2", max_age: _MaxAge = None, methods: _Methods = None
    ) -> bool:
        return page().allows(aal, max_age=max_age, methods=methods)

    def step_up_url(
        aal: RequirementLike = "aal2", max_age: _MaxAge = None, methods: _Methods = None
    ) -> str:
        return page().step_up_url(aal, max_age=max_age, methods=methods)

    def aal_decision(
        aal: RequirementLike = "aal2", max_age: _MaxAge = None, methods: _Methods = None
    ) -> Decision:
        return page().decision(aal, max_age=max_age, methods=methods)

    def login_url() -> str:
        return page().login_url()

    def logout_url(return_to: str | None = None) -> str:
        return page().logout_url(return_to) or ""

    def settings_url() -> str:
        return page().settings_url()

    return {
        "kratos_session": session,
        "allows": allows,
        "step_up_url": step_up_url,
        "aal_decision": aal_decision,
        "login_url": login_url,
        "logout_url": logout_url,
        "settings_url": settings_url,
    }


def install_starlette(templates: Jinja2Templates) -> Jinja2Templates:
    """Give every template of *templates* the helpers; returns *templates*.

    For Starlette's (and FastAPI's) ``Jinja2Templates``: a context processor, so the
    helpers answer for the request of each ``TemplateResponse``. The endpoint awaits
    :data:`load_page` first (a template cannot await Kratos); a helper called without it
    raises ``RuntimeError``. ``kratos_session`` is the session the page loaded, else the
    one a rule, decorator or dependency attached.
    """
    from ._starlette_page import PAGE_KEY, page_of
    from .starlette import get_session

    def kratos(request: Request) -> dict[str, Any]:
        page = request.scope.get(PAGE_KEY)
        session = page.session if isinstance(page, PageAccess) else get_session(request)
        return template_names(lambda: page_of(request), session)

    templates.context_processors.append(kratos)
    return templates


def install_flask(app: Flask) -> None:
    """Give every template *app* renders the helpers (a context processor).

    Call it after ``KratosAAL(app)``. The helpers answer for the current request; what
    they need of Kratos is asked once per request, when first needed.
    """
    from werkzeug.local import LocalProxy

    from ._flask_page import page_access

    session = LocalProxy(lambda: page_access().session)

    def kratos() -> dict[str, Any]:
        return template_names(page_access, session)

    app.context_processor(kratos)


def __getattr__(name: str) -> Any:
    # Starlette's, imported only when asked for: Flask apps have no Starlette.
    if name in ("LoadPage", "load_page"):
        from . import _starlette_page

        return getattr(_starlette_page, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
