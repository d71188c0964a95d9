"""Views with no protection of their own: only KRATOS_AAL["RULES"] guards them."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.urls import path


@login_not_required  # Django's login wall stays out of the way: only the rule guards
def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"SECRET {request.path}")


urlpatterns = [
    path("slash/", page),  # ruled "/slash": APPEND_SLASH redirects /slash here
    path("bare", page),  # ruled "/bare/"
    path("slashy/", page),
    path("barely", page),
]
