"""DRF views guarded by kratos-aal's authentication and permissions, every style."""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from rest_framework import routers, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kratos_aal.integrations.drf import IsAAL1, IsAAL2, KratosAuthentication, RequireAAL

AUTH = [KratosAuthentication]


def whoami(request: Request) -> dict[str, Any]:
    return {"user": str(request.user), "session": request.auth.id if request.auth else None}


class Balance(APIView):
    authentication_classes = AUTH
    permission_classes = [IsAAL2]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))

    def post(self, request: Request) -> Response:
        return Response(whoami(request), status=201)


class Profile(APIView):
    authentication_classes = AUTH
    permission_classes = [IsAAL1]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class Fresh(APIView):
    authentication_classes = AUTH
    permission_classes = [RequireAAL("aal2", max_age=300)]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class Either(APIView):
    """aal2, or a Django admin (an aal1 Kratos user is not one)."""

    authentication_classes = AUTH
    permission_classes = [IsAAL2 | IsAdminUser]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class AdminOr(APIView):
    authentication_classes = AUTH
    permission_classes = [IsAdminUser | RequireAAL("aal2")]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class KratosFirst(APIView):
    authentication_classes = AUTH
    permission_classes = [RequireAAL("aal2") | IsAdminUser]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class Both(APIView):
    authentication_classes = AUTH
    permission_classes = [IsAAL1 & RequireAAL("aal2", methods={"webauthn"})]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class Authenticated(APIView):
    authentication_classes = AUTH
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class Public(APIView):
    authentication_classes = AUTH
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class Accounts(viewsets.ViewSet):
    authentication_classes = AUTH
    permission_classes = [IsAAL2]

    def list(self, request: Request) -> Response:
        return Response([whoami(request)])

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response({"pk": pk, **whoami(request)})


@api_view(["GET", "POST"])
@authentication_classes(AUTH)
@permission_classes([IsAAL2])
def transfer(request: Request) -> Response:
    return Response(whoami(request))


class SessionFirst(APIView):
    """Django's session ahead of Kratos's, as DRF's defaults list SessionAuthentication."""

    authentication_classes = [SessionAuthentication, KratosAuthentication]
    permission_classes = [IsAAL2]

    def get(self, request: Request) -> Response:
        return Response(whoami(request))


class SessionFirstOrAdmin(SessionFirst):
    permission_classes = [IsAAL2 | IsAdminUser]


router = routers.SimpleRouter()
router.register("accounts", Accounts, basename="accounts")

urlpatterns = [
    path("balance/", Balance.as_view()),
    path("profile/", Profile.as_view()),
    path("fresh/", Fresh.as_view()),
    path("either/", Either.as_view()),
    path("admin-or/", AdminOr.as_view()),
    path("both/", Both.as_view()),
    path("kratos-first/", KratosFirst.as_view()),
    path("public/", Public.as_view()),
    path("authenticated/", Authenticated.as_view()),
    path("transfer/", transfer),
    path("session-first/", SessionFirst.as_view()),
    path("session-first-or-admin/", SessionFirstOrAdmin.as_view()),
    path("", include(router.urls)),
]
