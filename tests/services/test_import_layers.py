"""Import layering of the services: the lower module never imports the one built on it (issue 17.4).

Read from the source (every ``import`` statement, also inside functions and ``TYPE_CHECKING``
blocks), so that a deferred import that hides a circle from the interpreter is found too.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest


def imported_modules(module: str) -> set[str]:
    """Every module ``module``'s source imports (absolute names; ``from x import y`` gives x and x.y)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                package = module.rsplit(".", node.level)[0]
                base = f"{package}.{base}" if base else package
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(("lower", "upper"), [("strongroom.services.valuation", "strongroom.services.balances")])
def test_lower_layer_does_not_import_upper(lower: str, upper: str) -> None:
    assert not {m for m in imported_modules(lower) if m == upper or m.startswith(upper + ".")}, (
        f"{lower} imports {upper}, which imports it: a circle")
    assert lower in imported_modules(upper), f"{upper} no longer uses {lower}: this layering test is stale"
