"""pytest plugin (entry point ``pytest11``): the ``fake_kratos`` fixture.

Imports nothing heavy until a test asks for the fixture, so installing kratos-aal
never slows down or breaks an unrelated test run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kratos_aal.testing import FakeKratos


@pytest.fixture
def fake_kratos() -> FakeKratos:
    """Return a fresh in-memory Kratos for this test.

    ``fake_kratos.session(aal="aal2")`` makes a logged-in session; its ``.cookies`` or
    ``.headers`` go on a test client. ``fake_kratos.client()`` and
    ``fake_kratos.async_client()`` return kratos-aal clients wired to it.
    """
    from kratos_aal.testing import FakeKratos

    return FakeKratos()
