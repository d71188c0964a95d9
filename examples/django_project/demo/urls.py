from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from kratos_aal.integrations.django.users import login

from . import views


@login_not_required
def no_icon(request: HttpRequest) -> HttpResponse:
    # DRF's browsable API names no icon: without this, each page's /favicon.ico request
    # printed "Not Found: /favicon.ico" into the demo's story.
    return HttpResponse(status=204)


urlpatterns = [
    path("", views.home),
    path("favicon.ico", no_icon),
    path("me/", views.me),
    path("user/", views.user),  # request.user, the Django user linked to the identity
    path("account/", views.account),
    path("billing/", views.billing),
    path("billing/async/", views.billing_async),
    path("billing/transfer/", views.TransferView.as_view()),
    path("transfer/", views.TransferView.as_view()),  # the older address of the same page
    path("statement/", views.AsyncStatementView.as_view()),
    path("api/balance/", views.api_balance),
    # The README's `curl .../api/balance` works on every example: a JSON client gets
    # Kratos's 401 here too, not an empty APPEND_SLASH redirect.
    path("api/balance", views.api_balance),
    path("api/", include("examples.django_project.demo.api")),  # Django REST framework
    path("reports/<str:name>/", views.report),
    path("django-only/", views.django_only),
    path("login/", login),  # LOGIN_URL: Kratos's login, then back to `next`
    path("logout/", views.logout),
    path("settings/", views.account_settings),  # Kratos's settings page, then back home
]
