"""Views for the linked-users tests: the admin behind Kratos login, Django's auth decorators."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.decorators import (
    login_not_required,
    login_required,
    permission_required,
)
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from kratos_aal.integrations.django.users import login


def user_json(user: object) -> JsonResponse:
    return JsonResponse(
        {
            "authenticated": bool(getattr(user, "is_authenticated", False)),
            "username": getattr(user, "username", ""),
            "email": getattr(user, "email", ""),
        }
    )


@login_not_required
def me(request: HttpRequest) -> JsonResponse:
    return user_json(request.user)


@login_not_required
async def ame(request: HttpRequest) -> JsonResponse:
    return user_json(await request.auser())


def plain(request: HttpRequest) -> JsonResponse:
    """No decorator: LoginRequiredMiddleware guards it."""
    return user_json(request.user)


@login_required
def private(request: HttpRequest) -> JsonResponse:
    return user_json(request.user)


@permission_required("auth.view_group", raise_exception=True)
def groups(request: HttpRequest) -> JsonResponse:
    return user_json(request.user)


urlpatterns = [
    # The admin's login is Kratos's: before admin.site.urls, so it wins.
    path("admin/login/", login),
    path("admin/", admin.site.urls),
    path("kratos/", include("kratos_aal.integrations.django.urls")),
    path("me/", me),
    path("ame/", ame),
    path("private/", private),
    path("plain/", plain),
    path("groups/", groups),
]
