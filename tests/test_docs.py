"""The docs: the kratos.yml they ship is valid Kratos configuration, and their code parses."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from .openapi import require_shared

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md"])


def test_kratos_yml_says_what_per_route_step_up_needs() -> None:
    config = yaml.safe_load((ROOT / "docs" / "kratos.yml").read_text())
    assert config["session"]["whoami"]["required_aal"] == "aal1"
    assert config["selfservice"]["methods"]["totp"]["enabled"] is True
    assert config["selfservice"]["allowed_return_urls"]


def test_kratos_yml_matches_kratos_config_schema() -> None:
    schema = json.loads((require_shared() / "config.schema.json").read_text())
    config = yaml.safe_load((ROOT / "docs" / "kratos.yml").read_text())
    jsonschema.validate(config, schema, cls=jsonschema.Draft7Validator)


def test_a_wrong_kratos_yml_is_caught() -> None:
    schema = json.loads((require_shared() / "config.schema.json").read_text())
    config = yaml.safe_load((ROOT / "docs" / "kratos.yml").read_text())
    config["session"]["whoami"]["required_aal"] = "aal2"  # not one of Kratos's values
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema, cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_parse(page: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)
    for block in blocks:
        ast.parse(block.replace("...,", "None,").replace("[...]", "[]"))


def test_kratos_md_shows_kratos_yml_inline() -> None:
    # GitHub and PyPI render the page as it is: no include that only mkdocs fills in.
    page = (ROOT / "docs" / "kratos.md").read_text()
    assert "--8<--" not in page
    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == (ROOT / "docs" / "kratos.yml").read_text()


def test_readme_has_no_relative_link() -> None:
    # PyPI renders README.md away from the repository: a relative link there is a dead one.
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", readme) + re.findall(r'(?:href|src)="([^"]+)"', readme)
    assert links, "the README links to its docs"
    relative = [link for link in links if not re.match(r"https?://|#|mailto:", link)]
    assert relative == []
