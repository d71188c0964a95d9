"""pytest plugin (entry point ``pytest11``): the ``fake_kratos`` fixture.

Imports nothing heavy until a test asks for the fixture, so installing kratos-aal
never slows down or breaks an unrelated test run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kratos_aal.testing import FakeKratos

DJANGO_APP = "kratos_aal.integrations.django"


@pytest.fixture
def fake_kratos_options() -> dict[str, Any]:
    """Return keyword arguments for the ``fake_kratos`` FakeKratos; override it to change them.

    E.g. ``{"whoami_required_aal": "aal1"}``, as the kratos-aal docs recommend for Kratos.
    """
    return {}


@pytest.fixture
def fake_kratos(fake_kratos_options: dict[str, Any]) -> Iterator[FakeKratos]:
    """Return a fresh in-memory Kratos for this test.

    ``fake_kratos.session(aal="aal2")`` makes a logged-in session; its ``.cookies`` or
    ``.headers`` go on a test client. ``fake_kratos.client()`` and
    ``fake_kratos.async_client()`` return kratos-aal clients wired to it.

    In a Django project with ``kratos_aal.integrations.django`` installed, the
    middleware, decorators and mixin talk to this fake for the test's duration.
    """
    from kratos_aal.testing import FakeKratos

    fake = FakeKratos(**fake_kratos_options)
    if not _django_app_installed():
        yield fake
        return
    from kratos_aal.integrations.django.conf import override_clients

    with fake.client() as client:
        async_client = fake.async_client()
        with override_clients(client, async_client):
            yield fake


def _django_app_installed() -> bool:
    if "django.conf" not in sys.modules:
        return False  # Django not imported: not a Django test run
    from django.apps import apps
    from django.conf import settings

    return bool(settings.configured and apps.ready and apps.is_installed(DJANGO_APP))
