"""The floors of docs/architecture.md: a module imports only from its own floor or below.

Read with ``ast`` (nothing is imported): imports under ``if TYPE_CHECKING:`` are left
out, since they are annotations only and never run.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kratos_aal"

# Lowest first. A module's dotted name below kratos_aal, matched by the first pattern
# that fits; a package's __init__ counts as the package.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("leaf", ("_version", "exceptions", "_deadline", "_diagnose", "_negotiate", "_runners")),
    (
        "core",
        (
            "_models",
            "_credentials",
            "_hit_key",
            "_config",
            "_decision",
            "_kratos_api",
            "_cached_session",
            "_core",
        ),
    ),
    (
        "client and tiers",
        (
            "_cache",
            "_tiers",
            "_observe",
            "_calls",
            "_exchange",
            "_pools",
            "_base",
            "_client",
            "_store",
            "_entries",
            "_logouts",
            "_shared",
            "_live",
        ),
    ),
    ("web", ("_web", "_web.*", "_page", "_settings")),
    ("adapters", ("integrations", "integrations.*")),
    ("apps", ("cli", "_cli_*", "_demo", "testing", "testing.*", "", "__main__")),
]

MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def floor_of(name: str) -> int:
    for level, (_, patterns) in enumerate(FLOORS):
        if any(fnmatchcase(name, pattern) for pattern in patterns):
            return level
    raise LookupError(name)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return found


def imported(source: str, name: str, *, is_package: bool, known: set[str]) -> set[str]:
    """The kratos_aal modules (dotted, below the package) that ``source`` imports."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    if name == "":
        package = []
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            candidates = [t for t in targets if t == "kratos_aal" or t.startswith("kratos_aal.")]
            found.update(c.removeprefix("kratos_aal").lstrip(".") for c in candidates)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (
                node.module == "kratos_aal" or node.module.startswith("kratos_aal.")
            ):
                stem = node.module.removeprefix("kratos_aal").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{stem}.{alias.name}" if stem else alias.name
                found.add(sub if sub in known else stem)
    return found


def violations(name: str, source: str, *, is_package: bool, known: set[str]) -> list[str]:
    mine = floor_of(name)
    return [
        f"{name or 'kratos_aal'} ({FLOORS[mine][0]}) imports {target} ({FLOORS[floor_of(target)][0]})"
        for target in sorted(imported(source, name, is_package=is_package, known=known))
        if floor_of(target) > mine
    ]


def test_every_module_has_a_floor() -> None:
    unassigned = []
    for name in modules():
        try:
            floor_of(name)
        except LookupError:
            unassigned.append(name)
    assert unassigned == []


def test_no_module_imports_from_a_floor_above() -> None:
    known = set(modules())
    found = []
    for name, path in modules().items():
        source = path.read_text(encoding="utf-8")
        found += violations(name, source, is_package=path.name == "__init__.py", known=known)
    assert found == []


@pytest.mark.parametrize(
    ("name", "source"),
    [
        pytest.param("_core", "from ._client import KratosClient\n", id="relative"),
        pytest.param("_core", "from kratos_aal.integrations import starlette\n", id="absolute"),
        pytest.param("_core", "import kratos_aal.cli\n", id="import"),
        pytest.param("_cache", "def f():\n    from . import _web\n", id="inside-a-function"),
        pytest.param("_web.hops", "from .. import cli\n", id="from-a-subpackage"),
    ],
)
def test_an_upward_import_is_found(name: str, source: str) -> None:
    known = set(modules())
    if name == "_web.hops" and name not in known:
        pytest.fail("the example module _web.hops is gone: name another")
    assert violations(name, source, is_package=False, known=known) != []


def test_an_import_for_annotations_only_is_left_out() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ._client import KratosClient\n"
    )
    assert violations("_core", source, is_package=False, known=set(modules())) == []


def test_no_module_outside_testing_is_over_450_lines() -> None:
    long = {
        name: count
        for name, path in modules().items()
        if not fnmatchcase(name, "testing*")
        and (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
