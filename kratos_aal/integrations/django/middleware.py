"""KratosSessionMiddleware: a lazy ``request.kratos_session``, RULES, and 503 on outages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from ... import _observe
from ..._decision import Decision, Outcome, unavailable
from ..._models import Session
from ..._web import WebRequest, conclude
from ...exceptions import KratosUnavailable, StepUpRequired
from . import conf
from ._glue import adeny, after, as_response, credentials_of, deny

__all__ = ["KratosSessionMiddleware"]


class KratosSessionMiddleware:
    """Attach the Kratos session to requests and enforce ``KRATOS_AAL['RULES']``.

    ``request.kratos_session`` is lazy (no Kratos call for views that never read it) and
    falsy when there is no session; async views use ``await request.akratos_session()``.
    Kratos trouble while reading either becomes a 503 with ``Retry-After``, never an
    anonymous request.

    Raises:
        ImproperlyConfigured: at start-up, when ``KRATOS_AAL`` is wrong.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.settings = conf.get()  # fail at start-up, naming the key, not at the first request
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        self._attach(request)
        requirement = self._requirement(request)
        if requirement is not None:
            denial = deny(request, requirement)
            if denial is not None:
                return denial
        return after(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self._attach(request)
        requirement = self._requirement(request)
        if requirement is not None:
            denial = await adeny(request, requirement)
            if denial is not None:
                return denial
        response: Awaitable[HttpResponse] = self.get_response(request)
        return after(request, await response)

    def _requirement(self, request: HttpRequest) -> Any:
        settings = conf.get()
        if not settings.rules:
            return None
        return settings.rules.requirement(request.path_info)

    @staticmethod
    def _attach(request: HttpRequest) -> None:
        def lookup() -> Session | None:
            client, _ = conf.clients()
            try:
                return client.whoami(credentials_of(request))
            except StepUpRequired as error:
                # Kept for templates: every requirement is a step-up there (see pages.py).
                request._kratos_aal_step_up = error.redirect_to
                return None

        async def alookup() -> Session | None:
            attached = request.__dict__.get("kratos_session")
            # Not the lazy object: isinstance(lazy, Session) would evaluate it, a blocking
            # whoami on the event loop.
            if not isinstance(attached, SimpleLazyObject) and isinstance(attached, Session):
                return attached
            _, client = conf.clients()
            try:
                return await client.whoami(credentials_of(request))
            except StepUpRequired:
                return None

        request.kratos_session = SimpleLazyObject(lookup)
        request.akratos_session = alookup

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Answer Kratos trouble met while reading the session with 503, not a 500."""
        if not isinstance(exception, KratosUnavailable):
            return None
        decision: Decision = unavailable(exception, None)
        assert decision.outcome is Outcome.UNAVAILABLE
        from ._glue import web_request

        web: WebRequest = web_request(request)
        _observe.decided(decision, "django", web)
        response = conclude(decision, web, credentials_of(request))
        assert response is not None
        return as_response(response)
