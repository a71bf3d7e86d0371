"""Issue 17.4: no import circle inside strongroom.auth. Schemes verify against the KeyDirectory
protocol and return a claim; they never import the pipeline. Every import counts, including those
under ``if TYPE_CHECKING:`` and inside functions (a circle there is still a circle in the design)."""

from __future__ import annotations

import ast
from pathlib import Path

import strongroom

ROOT = Path(strongroom.__file__).parent.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (``from a import b`` counts ``a.b`` when
    that is a module, else ``a``)."""
    base = ROOT / package.replace(".", "/")
    modules = {module_name(p): p for p in base.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    origin = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                           for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary circle found by a depth-first search (each reported once, from its smallest module)."""
    found: set[tuple[str, ...]] = set()

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in path:
                visit(start, nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, start, [start])
    return [list(c) for c in sorted(found)]


def test_the_graph_sees_type_checking_imports() -> None:
    graph = import_graph("strongroom.auth")
    assert "strongroom.auth.directory" in graph["strongroom.auth.schemes.base"]  # under TYPE_CHECKING
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]


def test_no_import_circle_in_auth() -> None:
    graph = import_graph("strongroom.auth")
    assert cycles(graph) == []
    schemes = [m for m in graph if m.startswith("strongroom.auth.schemes")]
    assert schemes and not any("strongroom.auth.pipeline" in graph[m] for m in schemes)
