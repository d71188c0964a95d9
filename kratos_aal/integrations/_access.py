"""Build a request's :class:`~kratos_aal._page.PageAccess` on a client, blocking or awaitable.

Templates render synchronously. On a blocking client (Django's sync views, Flask) the two
answers that may need Kratos are asked when a template first needs them; on the
awaitable client (Starlette, FastAPI, Django's async views) they are asked before the
template renders, by :func:`aload_page`, since a template cannot await.
"""

from __future__ import annotations

from collections.abc import Callable

from .._client import AsyncKratosClient, KratosClient
from .._core import _second_factor_plan, logout_plan
from .._credentials import Credentials
from .._models import AAL, Session
from .._page import PageAccess
from ..exceptions import KratosAALError

__all__ = ["aload_page", "load_page", "logout_not_loaded"]

#: Keeps the templates' cached logout URLs apart from the loop page's: the loop page ends
#: the session when it first makes its link, and must still do so after a page made one.
_PAGE_LOGOUT = b"p"


def _needs_factor(session: Session | None, step_up_to: str | None) -> bool:
    # Only an aal1 session below an aal2 requirement is told step-up from enrollment.
    return session is not None and step_up_to is None and session.aal.rank == AAL.AAL1.rank


def load_page(
    client: KratosClient,
    credentials: Credentials,
    session: Session | None,
    *,
    return_to: Callable[[], str | None],
    step_up_to: str | None = None,
) -> PageAccess:
    """Return the page of a request on the blocking *client*; Kratos is asked when needed."""
    config = client.config

    def second_factor() -> bool:
        assert session is not None  # PageAccess asks only for a session below aal2
        return client._run(_second_factor_plan(config, credentials, session))

    def logout() -> str | None:
        plan = logout_plan(config, credentials, None, config.cache_ttl, kind=_PAGE_LOGOUT)
        try:
            return client._run(plan)
        except KratosAALError:
            return None  # Kratos cannot make one now: the page renders without it

    return PageAccess(
        session,
        config=config,
        return_to=return_to,
        now=client._now,
        second_factor=second_factor,
        logout=logout,
        step_up_to=step_up_to,
    )


def logout_not_loaded(how: str) -> Callable[[], str | None]:
    """Return a logout source that says how to load the logout URL before rendering."""

    def missing() -> str | None:
        raise RuntimeError(
            f"kratos_aal: logout_url needs Kratos, which a template rendered in async code "
            f"cannot await: {how}"
        )

    return missing


async def aload_page(
    client: AsyncKratosClient,
    credentials: Credentials,
    session: Session | None,
    *,
    return_to: Callable[[], str | None],
    step_up_to: str | None = None,
    logout: bool = False,
    how: str,
) -> PageAccess:
    """Return the page of a request on the awaitable *client*, with Kratos's answers loaded.

    Whether an aal1 session's identity has a second factor is asked now (cached by
    identity); the logout URL only with *logout*. *how* says, in the error a template
    meets, how to load the logout URL.
    """
    config = client.config
    has_factor = True
    if _needs_factor(session, step_up_to):
        assert session is not None
        has_factor = await client._run(_second_factor_plan(config, credentials, session))
    source = logout_not_loaded(how)
    if logout and (session is not None or step_up_to is not None):  # else none to make
        plan = logout_plan(config, credentials, None, config.cache_ttl, kind=_PAGE_LOGOUT)
        try:
            url = await client._run(plan)
        except KratosAALError:
            url = None  # Kratos cannot make one now: the page renders without it
        source = lambda: url  # noqa: E731
    return PageAccess(
        session,
        config=config,
        return_to=return_to,
        now=client._now,
        second_factor=lambda: has_factor,
        logout=source,
        step_up_to=step_up_to,
    )
