"""The ``kratos_aal:login`` view, for ``include("kratos_aal.integrations.django.urls")``."""

from __future__ import annotations

from django.urls import path

from .users import login

app_name = "kratos_aal"
urlpatterns = [path("login/", login, name="login")]
