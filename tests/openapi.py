"""Check JSON against Kratos's own API description, and against Ory's Python SDK models.

Ory's SDK (`ory-kratos-client`, a test dependency) is generated from the latest Kratos
release: its models check every required field and its type, and they ship with the
repository's dependencies, so these checks always run. Kratos's `openapi.json` of the
reference commit (`shared/kratos/` beside the repository, or `$KRATOS_AAL_SHARED/kratos`)
is checked too where it is found; the tests that need it alone are skipped without it.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator

SHARED = Path(__file__).resolve().parents[2] / "shared" / "kratos"
MISSING = (
    "Kratos's reference files (openapi.json, config.schema.json) are not beside the "
    "repository: set KRATOS_AAL_SHARED to the folder that holds kratos/ to run this check"
)


@functools.cache
def shared_path() -> Path | None:
    """Return the folder with openapi.json and config.schema.json, or ``None``.

    It is ``shared/kratos`` beside the repository, or ``$KRATOS_AAL_SHARED/kratos``.
    """
    candidates = [SHARED]
    if os.environ.get("KRATOS_AAL_SHARED"):
        candidates.insert(0, Path(os.environ["KRATOS_AAL_SHARED"]) / "kratos")
    for candidate in candidates:
        if (candidate / "openapi.json").exists():
            return candidate
    return None


def require_shared() -> Path:
    """Return :func:`shared_path`, or skip the test with a one-line reason."""
    found = shared_path()
    if found is None:
        pytest.skip(MISSING)
    return found


@functools.cache
def _spec() -> dict[str, Any] | None:
    found = shared_path()
    if found is None:
        return None
    spec: dict[str, Any] = json.loads((found / "openapi.json").read_text())
    return spec


def errors(schema_name: str, instance: Any) -> list[str]:
    """Return the errors of *instance* against ``components/schemas/<name>``; skip without it."""
    spec = _spec()
    if spec is None:
        pytest.skip(MISSING)
    assert schema_name in spec["components"]["schemas"], schema_name
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return [
        f"{list(e.absolute_path)}: {e.message}"
        for e in OAS30Validator(schema).iter_errors(instance)
    ]


def sdk_errors(schema_name: str, instance: Any) -> list[str]:
    """Return why Ory's SDK model for *schema_name* refuses *instance* (empty when it parses)."""
    import pydantic
    from ory_kratos_client import models

    model = getattr(models, schema_name[0].upper() + schema_name[1:])
    try:
        model.from_dict(instance)
    except (pydantic.ValidationError, ValueError) as error:
        return [str(error)]
    return []


def assert_valid(schema_name: str, instance: Any) -> None:
    """Fail with every error when *instance* does not match the SDK model (and the spec)."""
    found = sdk_errors(schema_name, instance)
    if _spec() is not None:
        found += errors(schema_name, instance)
    assert not found, f"{schema_name}: {found}"
