"""Fill in the loop page's links: the app's home, and a sign-out link when there is a session.

Kratos's browser logout is a flow: ``/self-service/logout/browser`` answers JSON with a
``logout_url`` that carries a one-time token, which is no page a person can click. So the
adapter creates the flow for the session the browser sent and links the ``logout_url``
itself: one click ends the Kratos session and comes back to the app's home page. Only the
loop page pays for that call, once per session and ``cache_ttl`` (the logout token belongs
to the session): a page replayed within the hop window costs no call of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from .._client import AsyncKratosClient, KratosClient
from .._credentials import Credentials
from .._runners import adrive, drive
from .._web import BadRequest, LoopPage, WebRequest, WebResponse, origin_of
from ..exceptions import KratosAALError

__all__ = ["alinked", "linked"]

#: A plan's step: the name of a client method and its arguments.
Call = tuple[Any, ...]


def perform_on(client: KratosClient | AsyncKratosClient) -> Callable[[Call], Any]:
    """Perform a plan's steps on *client*: each step calls the client method it names.

    On the awaitable client the call is awaitable: one function serves both drivers.
    """
    return lambda step: getattr(client, step[0])(*step[1:])


def _home(request: WebRequest, client: KratosClient | AsyncKratosClient, prefix: str) -> str:
    """Return the app's absolute home URL (under its mount *prefix*), or the prefix alone."""
    try:
        return origin_of(request, client.config) + prefix.rstrip("/") + "/"
    except BadRequest:
        return prefix.rstrip("/") + "/"


def _may_sign_out(page: LoopPage, credentials: Credentials, home: str) -> bool:
    # Only a session Kratos knows can be ended, and only with somewhere to come back to.
    return page.signed_in and bool(credentials) and "://" in home


def linking(
    response: WebResponse,
    request: WebRequest,
    credentials: Credentials,
    client: KratosClient | AsyncKratosClient,
    prefix: str,
) -> Generator[Call, Any, WebResponse]:
    """The plan of :func:`linked`: it asks for a sign-out link that comes back home."""
    if not isinstance(response, LoopPage):
        return response
    home = _home(request, client, prefix)
    sign_out = None
    if _may_sign_out(response, credentials, home):
        try:
            sign_out = yield ("_sign_out_link", credentials, home)
        except KratosAALError:
            sign_out = None  # Kratos cannot make one now: the page offers home only
    return response.linked(home, sign_out)


def linked(
    response: WebResponse,
    request: WebRequest,
    credentials: Credentials,
    client: KratosClient,
    prefix: str = "",
) -> WebResponse:
    """Return *response*, with its links filled in when it is the loop page."""
    plan = linking(response, request, credentials, client, prefix)
    return drive(plan, perform_on(client), KratosAALError)


async def alinked(
    response: WebResponse,
    request: WebRequest,
    credentials: Credentials,
    client: AsyncKratosClient,
    prefix: str = "",
) -> WebResponse:
    """:func:`linked` on the awaitable client."""
    plan = linking(response, request, credentials, client, prefix)
    return await adrive(plan, perform_on(client), KratosAALError)
