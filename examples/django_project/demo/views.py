"""Views of the example: public, aal1, aal2 (sync and async), a class with the mixin, max_age.

``/user/`` shows ``request.user``, the Django user linked to the Kratos identity; the DRF
views are in :mod:`.api`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required, login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.utils.html import escape
from django.views import View

from kratos_aal import Credentials
from kratos_aal.exceptions import KratosUnavailable
from kratos_aal.integrations.django import AALRequiredMixin, require_aal, require_aal2
from kratos_aal.integrations.django.conf import clients

from ... import _pages


def page(request: HttpRequest, name: str, title: str, text: str, extra: str = "") -> HttpResponse:
    """Answer a page in HTML, or in JSON for a client that asks for JSON."""
    checked = True
    try:
        session = request.kratos_session or None  # read lazily: a public page asks Kratos here
    except KratosUnavailable:
        # Still a public page: it renders, and says it could not check. (Left uncaught,
        # the middleware would answer 503 with Retry-After, as for a protected page.)
        session, checked = None, False
    if _pages.wants_json(request.headers.get("Accept", "")):
        return JsonResponse(_pages.as_json(name, session, checked=checked))
    page = _pages.render(title, text, session, extra=extra, slash="/", checked=checked)
    return HttpResponse(page)


@login_not_required
def home(request: HttpRequest) -> HttpResponse:
    extra = _pages.story(request.build_absolute_uri("/").rstrip("/"), slash="/")
    clock = getattr(settings, "KRATOS_DEMO_CLOCK_URL", None)
    if clock:  # only the demo can move Kratos's clock
        extra += _pages.clock_form(clock, request.build_absolute_uri("/?clock=moved"))
    extra = _pages.clock_note(request.GET.get("clock")) + extra + DJANGO_EXTRAS
    extra = _pages.settings_note(request.GET.get("settings")) + extra
    return page(request, "home", "kratos-aal example", _pages.home_text("django"), extra)


# What only the Django example shows: Django users from Kratos identities, and DRF.
DJANGO_EXTRAS = """
<h2>Django users and Django REST framework</h2>
<ul>
<li><a href="/user/">You, as Django sees you</a>: <code>request.user</code> is a Django user
linked to the Kratos identity (<code>KratosUserMiddleware</code>, <code>KratosBackend</code>),
behind <code>@login_required</code>.</li>
<li><a href="/api/accounts/">/api/accounts/</a> is a DRF ViewSet with <code>IsAAL2</code>:
the browsable API sends you to Kratos for a second factor like any page;
<a href="/api/me/">/api/me/</a> needs a password (<code>IsAAL1</code>);
<a href="/api/">/api/</a> lists them all.</li>
</ul>
"""


@login_not_required  # KRATOS_AAL["RULES"] guards /account/*
def account(request: HttpRequest) -> HttpResponse:
    text = "A password is enough here (<code>aal1</code>)."
    extra = ""
    if not _pages.wants_json(request.headers.get("Accept", "")):
        # {% load kratos_aal %} in the template asks what the session allows.
        extra = render_to_string("demo/bank_details.html", _pages.bank(), request=request)
    return page(request, "account", "Account", text, extra)


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


@login_not_required
def account_settings(request: HttpRequest) -> HttpResponseRedirect:
    """Kratos's settings page (pair or remove an authenticator app), then back home."""
    client, _ = clients()
    home_url = request.build_absolute_uri("/")
    return HttpResponseRedirect(
        _pages.settings_url(client.config.browser_url, home_url), status=303
    )


@login_required  # LOGIN_URL is kratos-aal's login view: anonymous people go to Kratos
def user(request: HttpRequest) -> HttpResponse:
    """Show ``request.user``: the Django user that KratosUserMiddleware linked to the identity."""
    user = request.user
    session = request.kratos_session or None
    identity = session.identity.id if session and session.identity else None
    if _pages.wants_json(request.headers.get("Accept", "")):
        return JsonResponse(
            _pages.as_json(
                "user",
                session,
                user={"username": user.get_username(), "email": getattr(user, "email", "")},
                identity=identity,
                is_staff=user.is_staff,
            )
        )
    rows = [
        ("Django user", user.get_username()),
        ("email (from the identity's traits)", getattr(user, "email", "") or "none"),
        ("Kratos identity", identity or "none"),
        ("staff (for the admin; the app decides)", "yes" if user.is_staff else "no"),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    text = (
        "<code>request.user</code> is a Django user linked to your Kratos identity: "
        "<code>@login_required</code>, permissions and foreign keys work with it."
    )
    return page(request, "user", "You, as Django sees you", text, f"<table>{table}</table>")


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
    return HttpResponse(f"Django user area, for {escape(request.user.get_username())}")
