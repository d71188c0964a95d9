"""The example's Django REST framework API: Kratos authentication and AAL permissions.

``/api/`` lists the endpoints (public), ``/api/me/`` needs a password (aal1),
``/api/accounts/`` a second factor (aal2) and ``/api/payouts/`` a second factor used in the
last 5 minutes. Browsers (the browsable API) are sent to Kratos like on any page; JSON
clients and session tokens get Kratos's own error body.
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from rest_framework import routers, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kratos_aal.integrations.drf import IsAAL1, IsAAL2, KratosAuthentication, RequireAAL

ACCOUNTS = {"1": {"name": "Checking", "balance": 42}, "2": {"name": "Savings", "balance": 1000}}


def caller(request: Request) -> dict[str, Any]:
    """Return who calls: ``request.user`` (the linked Django user) and the session's AAL."""
    # The linked user's username is the identity id (a UUID); its email is the trait copied
    # by USER_FIELDS, what a person recognises.
    user = request.user
    return {"user": user.get_username(), "email": user.email, "aal": request.auth.aal.value}


#: What the index lists: each endpoint and what it needs.
ENDPOINTS = {
    "me": ("me/", "a password (IsAAL1)"),
    "accounts": ("accounts/", "a second factor (IsAAL2)"),
    "payouts": ("payouts/", "a second factor used in the last 5 minutes (RequireAAL)"),
}


class Index(APIView):
    """The API's front door: public, so that /api/ in a browser is not a 404.

    Each endpoint below says what it needs; a browser is sent to Kratos for it like any page.
    """

    authentication_classes = [KratosAuthentication]
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response(
            {
                name: {"url": request.build_absolute_uri(path), "needs": needs}
                for name, (path, needs) in ENDPOINTS.items()
            }
        )


class Me(APIView):
    authentication_classes = [KratosAuthentication]
    permission_classes = [IsAAL1]

    def get(self, request: Request) -> Response:
        return Response(caller(request))


class Accounts(viewsets.ViewSet):
    authentication_classes = [KratosAuthentication]
    permission_classes = [IsAAL2]

    def list(self, request: Request) -> Response:
        return Response({"accounts": ACCOUNTS, **caller(request)})

    def retrieve(self, request: Request, pk: str) -> Response:
        if pk not in ACCOUNTS:
            return Response({"detail": "No such account."}, status=404)
        return Response({"account": ACCOUNTS[pk], **caller(request)})


class Payouts(APIView):
    authentication_classes = [KratosAuthentication]
    permission_classes = [RequireAAL("aal2", max_age=300)]

    def get(self, request: Request) -> Response:
        return Response({"payouts": [], **caller(request)})

    def post(self, request: Request) -> Response:
        return Response({"sent": True, **caller(request)}, status=201)


router = routers.SimpleRouter()
router.register("accounts", Accounts, basename="accounts")

urlpatterns = [
    path("", Index.as_view()),
    path("me/", Me.as_view()),
    path("payouts/", Payouts.as_view()),
    path("", include(router.urls)),
]
