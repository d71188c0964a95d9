"""Views of the example: public, aal1, aal2 (sync and async), a class with the mixin, max_age."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views import View

from kratos_aal.integrations.django import AALRequiredMixin, require_aal, require_aal2

NAV = (
    '<nav><a href="/">Home</a> · <a href="/account/">Account (aal1)</a> · '
    '<a href="/billing/">Billing (aal2)</a> · '
    '<a href="/billing/async/">Billing, async (aal2)</a> · '
    '<a href="/transfer/">Transfer (aal2, 5 min)</a></nav>'
)


def page(request: HttpRequest, title: str, text: str) -> HttpResponse:
    session = request.kratos_session
    who = f"Signed in at {session.aal.value}" if session else "Not signed in"
    return HttpResponse(
        f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>"
        f"<p>{escape(text)}</p><p><small>{escape(who)}</small></p>{NAV}"
    )


@login_not_required
def home(request: HttpRequest) -> HttpResponse:
    return page(request, "Home", "Anyone may see this page; it reads the session lazily.")


@login_not_required  # KRATOS_AAL["RULES"] guards /account/*
def account(request: HttpRequest) -> HttpResponse:
    return page(request, "Account", "A password is enough here (aal1).")


@login_not_required
async def me(request: HttpRequest) -> JsonResponse:
    """Public async view: who is signed in, read without blocking the event loop."""
    session = await request.akratos_session()
    return JsonResponse({"session": session.id if session else None})


@require_aal2
def billing(request: HttpRequest) -> HttpResponse:
    return page(request, "Billing", "This page needs a second factor (aal2).")


@require_aal2
async def billing_async(request: HttpRequest) -> HttpResponse:
    session = await request.akratos_session()
    return HttpResponse(f"Billing (async view), session at {session.aal.value}")


class TransferView(AALRequiredMixin, View):
    required_aal = "aal2"
    max_age = 300

    def get(self, request: HttpRequest) -> HttpResponse:
        return page(request, "Transfer", "A second factor used in the last 5 minutes.")

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
