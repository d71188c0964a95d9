"""Views of the example: public, aal1, aal2 (sync and async), a class with the mixin, max_age."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.html import escape
from django.views import View

from kratos_aal import Credentials
from kratos_aal.integrations.django import AALRequiredMixin, require_aal, require_aal2
from kratos_aal.integrations.django.conf import clients

from ... import _pages


def page(request: HttpRequest, name: str, title: str, text: str, extra: str = "") -> HttpResponse:
    """Answer a page in HTML, or in JSON for a client that asks for JSON."""
    session = request.kratos_session or None  # read lazily: a public page asks Kratos here
    if _pages.wants_json(request.headers.get("Accept", "")):
        return JsonResponse(_pages.as_json(name, session))
    return HttpResponse(_pages.render(title, text, session, extra=extra, slash="/"))


@login_not_required
def home(request: HttpRequest) -> HttpResponse:
    extra = _pages.story(request.build_absolute_uri("/").rstrip("/"), slash="/")
    clock = getattr(settings, "KRATOS_DEMO_CLOCK_URL", None)
    if clock:  # only the demo can move Kratos's clock
        extra += _pages.clock_form(clock, request.build_absolute_uri("/?clock=moved"))
    extra = _pages.clock_note(request.GET.get("clock")) + extra
    return page(request, "home", "kratos-aal example", _pages.home_text("django"), extra)


@login_not_required  # KRATOS_AAL["RULES"] guards /account/*
def account(request: HttpRequest) -> HttpResponse:
    return page(request, "account", "Account", "A password is enough here (<code>aal1</code>).")


@login_not_required
def logout(request: HttpRequest) -> HttpResponseRedirect:
    """Sign out of Kratos (its logout URL), then come back home."""
    client, _ = clients()
    credentials = Credentials.from_headers(
        request.headers.items(), cookie_name=client.config.cookie_name
    )
    home_url = request.build_absolute_uri("/")
    target = client.logout_url(credentials, return_to=home_url)
    return HttpResponseRedirect(target or home_url, status=303)


@require_aal("aal1")
def login(request: HttpRequest) -> HttpResponse:
    """LOGIN_URL: kratos-aal sends anonymous users to Kratos's login, then they land here.

    Django's own login wall (LoginRequiredMiddleware) still wants a Django user on pages
    Kratos does not guard; this example creates none, so it says so instead of looping.
    """
    text = (
        "Kratos signed you in. Pages that Django's own login wall guards, such as "
        "<code>/django-only/</code>, also want a Django user, which this example does not create."
    )
    return page(request, "login", "Signed in", text)


@login_not_required
async def me(request: HttpRequest) -> JsonResponse:
    """Public async view: who is signed in, read without blocking the event loop."""
    session = await request.akratos_session()
    return JsonResponse({"session": session.id if session else None})


@require_aal2
def billing(request: HttpRequest) -> HttpResponse:
    return page(
        request, "billing", "Billing", "<span class=ok>You used a second factor (aal2).</span>"
    )


@require_aal2
async def billing_async(request: HttpRequest) -> HttpResponse:
    session = await request.akratos_session()
    return HttpResponse(f"Billing (async view), session at {session.aal.value}")


class TransferView(AALRequiredMixin, View):
    required_aal = "aal2"
    max_age = 300

    def get(self, request: HttpRequest) -> HttpResponse:
        text = "<span class=ok>Second factor used in the last 5 minutes.</span>"
        return page(request, "transfer", "Transfer", text)

    def post(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("Transfer sent")


class AsyncStatementView(AALRequiredMixin, View):
    required_aal = "aal1"

    async def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("Statement (async class-based view)")


@require_aal("aal2")
def api_balance(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"balance": 42, "aal": request.kratos_session.aal.value})


@login_not_required
def report(request: HttpRequest, name: str) -> HttpResponse:  # KRATOS_AAL["RULES"]: aal2, 10 min
    return HttpResponse(f"Report {escape(name)}")


def django_only(request: HttpRequest, **_: Any) -> HttpResponse:
    """Not guarded by Kratos: LoginRequiredMiddleware sends anonymous users to LOGIN_URL."""
    return HttpResponse("Django user area")
