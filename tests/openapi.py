"""Validate JSON against Kratos's own OpenAPI description (../shared/kratos/openapi.json)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator

SHARED = Path(__file__).resolve().parents[2] / "shared" / "kratos"


def shared_path() -> Path:
    """Return the folder with BEHAVIOR.md, openapi.json and config.schema.json.

    It is ``shared/kratos`` beside the repository, or ``$KRATOS_AAL_SHARED/kratos``.
    """
    candidates = [SHARED]
    if os.environ.get("KRATOS_AAL_SHARED"):
        candidates.insert(0, Path(os.environ["KRATOS_AAL_SHARED"]) / "kratos")
    for candidate in candidates:
        if (candidate / "openapi.json").exists():
            return candidate
    raise FileNotFoundError(
        f"{SHARED / 'openapi.json'} is missing: put shared/ beside the repository "
        "or set KRATOS_AAL_SHARED"
    )


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((shared_path() / "openapi.json").read_text())
    return spec


def errors(schema_name: str, instance: Any) -> list[str]:
    """Return the validation errors of *instance* against ``components/schemas/<name>``."""
    spec = _spec()
    assert schema_name in spec["components"]["schemas"], schema_name
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return [
        f"{list(e.absolute_path)}: {e.message}"
        for e in OAS30Validator(schema).iter_errors(instance)
    ]


def assert_valid(schema_name: str, instance: Any) -> None:
    """Fail with every error when *instance* does not match the schema."""
    found = errors(schema_name, instance)
    assert not found, f"{schema_name}: {found}"
