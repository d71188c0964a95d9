"""Validate JSON against Kratos's own OpenAPI description (../shared/kratos/openapi.json)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator

SHARED = Path(__file__).resolve().parents[2] / "shared" / "kratos"


def shared_path() -> Path:
    """Return the folder with BEHAVIOR.md, openapi.json and config.schema.json."""
    for candidate in (SHARED, Path(__file__).resolve().parents[1] / "shared" / "kratos"):
        if (candidate / "openapi.json").exists():
            return candidate
    raise FileNotFoundError("shared/kratos/openapi.json is not beside the repository")


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
