from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("me/", views.me),
    path("account/", views.account),
    path("billing/", views.billing),
    path("billing/async/", views.billing_async),
    path("billing/transfer/", views.TransferView.as_view()),
    path("transfer/", views.TransferView.as_view()),  # the older address of the same page
    path("statement/", views.AsyncStatementView.as_view()),
    path("api/balance/", views.api_balance),
    path("reports/<str:name>/", views.report),
    path("django-only/", views.django_only),
    path("login/", views.login),
    path("logout/", views.logout),
]
