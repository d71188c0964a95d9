from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def fake_kratos_options() -> dict[str, Any]:
    return {"whoami_required_aal": "aal1"}
