"""The package's import graph (issue 17, item 4): no circle, and no import from a lower layer upward.

Every ``import`` counts, at module level, under ``TYPE_CHECKING`` and inside functions (a lazy
import is still a dependency). A package's ``__init__`` is treated as the package itself, and importing a
module of a package depends on that package too when its ``__init__`` imports anything (it runs first), unless
the importer is inside it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "strongroom"

# Layers, lowest first: a module may import its own layer and those below, never one above.
LAYERS: list[tuple[str, ...]] = [
    ("strongroom.enums", "strongroom.scopes", "strongroom.settings", "strongroom.logs", "strongroom.errors",
     "strongroom.verify.rules"),
    ("strongroom.db", "strongroom.crypto", "strongroom.models", "strongroom.principal", "strongroom.pagination",
     "strongroom.metrics", "strongroom.ratelimit", "strongroom.exchanges", "strongroom.migrations",
     "strongroom.datastore"),
    ("strongroom.services", "strongroom.auth", "strongroom.vault", "strongroom.keys",
     "strongroom.accounts", "strongroom.balances", "strongroom.users", "strongroom.audit", "strongroom.jobs",
     "strongroom.events", "strongroom.core", "strongroom.verify", "strongroom.trading",
     "strongroom.webhooks"),
    ("strongroom.http", "strongroom.surfaces", "strongroom.contrib"),
    ("strongroom.app", "strongroom.cli", "strongroom.console", "strongroom.serving", "strongroom.launch",
     "strongroom.__main__"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> list[str]:
    """Every strongroom name ``path`` imports, most specific first for ``from x import y`` (``x.y``, then
    ``x``): y is a submodule or a name of x. Relative imports are resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.extend(f"{base}.{alias.name}" for alias in node.names)
    return [m for m in found if m.startswith("strongroom.")]


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations/versions" not in str(p)}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path, name):
            # the longest prefix that is a module: ``strongroom.x.y`` is module y, or name y of module x
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "strongroom":
                targets.add(imported)
        edges[name] = targets
    # packages whose __init__ imports something: importing one of their modules runs it first
    importing = {name: targets for name, targets in edges.items() if targets}
    return {name: targets | parents_run_by(name, targets, importing) for name, targets in edges.items()}


def parents_run_by(name: str, targets: set[str], packages: Mapping[str, object]) -> set[str]:
    """The ``packages`` whose ``__init__`` importing ``targets`` runs first (``strongroom.a.b`` runs
    ``strongroom.a``), but not those ``name`` is inside (its own package's ``__init__`` is already under way)."""
    found = set()
    for target in targets:
        parts = target.split(".")
        for end in range(2, len(parts)):
            parent = ".".join(parts[:end])
            if parent in packages and not (name == parent or name.startswith(parent + ".")):
                found.add(parent)
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in graph() if layer_of(m) is None and m != "strongroom")
    assert not unplaced, f"place these modules in a layer of tests/architecture/test_imports.py: {unplaced}"


def test_no_import_circle() -> None:
    found = cycles(graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_upward_import() -> None:
    upward = []
    for module, targets in graph().items():
        mine = layer_of(module)
        for target in targets:
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports from a lower layer upward:\n" + "\n".join(sorted(upward))


# Capability packages: a surface (or the HTTP kit) uses one through its package (``strongroom.accounts``: the
# façade and the types it exports), never a module inside it (``strongroom.accounts.services``).
CAPABILITIES = ("strongroom.accounts", "strongroom.keys", "strongroom.vault", "strongroom.balances",
                "strongroom.users", "strongroom.audit", "strongroom.jobs", "strongroom.trading",
                "strongroom.webhooks")
FACES = ("strongroom.surfaces", "strongroom.http", "strongroom.console", "strongroom.contrib")


def capability_internals(edges: dict[str, set[str]]) -> list[str]:
    """Every import by a face of a module inside a capability package (its package itself is fine)."""
    found = []
    for module, targets in edges.items():
        if not any(module == f or module.startswith(f + ".") for f in FACES):
            continue
        for target in targets:
            for capability in CAPABILITIES:
                if target.startswith(capability + "."):
                    found.append(f"{module} -> {target}")
    return sorted(found)


def test_surfaces_import_capabilities_only_through_their_package() -> None:
    found = capability_internals(graph())
    assert not found, "import the capability's package instead:\n" + "\n".join(found)


def test_every_capability_package_exists() -> None:
    for capability in CAPABILITIES:
        if capability != "strongroom.jobs":  # being created in parallel (issue 17 item 6)
            assert (PACKAGE.parent / capability.replace(".", "/") / "__init__.py").is_file(), capability


@pytest.mark.parametrize("edges,expected", [
    ({"strongroom.surfaces.x": {"strongroom.accounts.services"}}, ["strongroom.surfaces.x -> strongroom.accounts.services"]),
    ({"strongroom.surfaces.x": {"strongroom.accounts"}, "strongroom.accounts": {"strongroom.accounts.services"}}, []),
])
def test_the_internals_finder_finds_internals(edges: dict[str, set[str]], expected: list[str]) -> None:
    assert capability_internals(edges) == expected


@pytest.mark.parametrize("edges,expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_circle_finder_finds_circles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(edges) == expected


def test_importing_a_module_of_a_package_depends_on_the_package() -> None:
    modules = {"strongroom.a": 1, "strongroom.a.b": 1, "strongroom.a.b.c": 1, "strongroom.d": 1}
    assert parents_run_by("strongroom.d", {"strongroom.a.b.c"}, modules) == {"strongroom.a", "strongroom.a.b"}
    assert parents_run_by("strongroom.a.x", {"strongroom.a.b.c"}, modules) == {"strongroom.a.b"}  # inside a
