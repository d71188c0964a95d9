"""Views for the cross-origin tests: every Django and DRF way to guard a view, counting runs."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views import View
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kratos_aal.integrations.django import AALRequiredMixin, require_aal, require_aal2
from kratos_aal.integrations.drf import IsAAL1, IsAAL2, KratosAuthentication, RequireAAL

#: One entry per run of a guarded view.
RAN: list[str] = []

METHODS = ("get", "post", "put", "patch", "delete")


@login_not_required  # guarded by KRATOS_AAL["RULES"], not Django's login wall
def plain(request: HttpRequest) -> HttpResponse:
    RAN.append("ran")
    return HttpResponse("done")


@login_not_required
async def aplain(request: HttpRequest) -> HttpResponse:
    RAN.append("ran")
    return HttpResponse("done")


class Mixin(AALRequiredMixin, View):
    http_method_names = [*METHODS, "options", "head"]

    def get(self, request: HttpRequest) -> HttpResponse:
        RAN.append("ran")
        return HttpResponse("done")

    post = put = patch = delete = get


class AsyncMixin(AALRequiredMixin, View):
    required_aal = "aal1"

    async def get(self, request: HttpRequest) -> HttpResponse:
        RAN.append("ran")
        return HttpResponse("done")

    post = put = patch = delete = get


def drf_view(auth: list[Any], permissions: list[Any]) -> Any:
    class Guarded(APIView):
        authentication_classes = auth
        permission_classes = permissions

        def get(self, request: Request) -> Response:
            RAN.append("ran")
            return Response({"done": True})

        post = put = patch = delete = get

    return login_not_required(Guarded.as_view())


urlpatterns = [
    path("rule/", plain),
    path("arule/", aplain),
    path("deco/", require_aal2(plain)),
    path("adeco/", require_aal("aal1")(aplain)),
    path("mixin/", Mixin.as_view()),
    path("amixin/", AsyncMixin.as_view()),
    path("drf/session/", drf_view([SessionAuthentication], [IsAAL2])),
    path("drf/none/", drf_view([], [IsAAL1])),
    path("drf/require/", drf_view([], [RequireAAL("aal2", max_age=3600)])),
    path("drf/kratos/", drf_view([KratosAuthentication], [IsAAL2])),
    path("drf/rule/", drf_view([], [AllowAny])),
]
