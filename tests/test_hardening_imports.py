"""tune_app's search (validation) and orchestrate (Ray side) modules import one way only."""

from __future__ import annotations

import ast
from pathlib import Path

import tune_app


def imported_modules(module: str) -> set[str]:
    """Every module `tune_app/<module>.py` imports, at the top or inside a function."""
    source = Path(tune_app.__file__).parent / f"{module}.py"
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_orchestrate_does_not_import_search() -> None:
    assert "tune_app.search" not in imported_modules("orchestrate")
    assert "tune_app.orchestrate" in imported_modules("search")  # the one direction
    assert "tune_app.search" not in imported_modules("driver")
