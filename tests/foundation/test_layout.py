"""Guards: the import direction of DESIGN.md and the committed schema.graphql."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import schema

ROOT = Path(__file__).resolve().parents[2]

#: Which top-level packages each package may not import (DESIGN.md "Imports point one way").
FORBIDDEN = {
    "services": {"cadt_gateway", "schema", "resolvers", "jobs", "strawberry"},
    "jobs": {"cadt_gateway", "schema", "resolvers", "strawberry"},
    "resolvers": {"cadt_gateway", "schema"},
    "schema": {"cadt_gateway", "jobs"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_committed_schema_is_the_exported_schema():
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert committed == schema.print_schema(), "run `make schema` and commit schema.graphql"
