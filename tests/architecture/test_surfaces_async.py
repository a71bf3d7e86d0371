"""Surfaces await the capabilities' async façades and never hop to a thread themselves (issue 17, item 2).

A capability's façade runs its engine's database work in a worker thread once per call; a surface module that
calls ``to_thread``/``run_sync`` (or FastAPI's threadpool helpers), declares a blocking ``def`` route (which
FastAPI runs in its threadpool) or imports a capability's synchronous engine is doing the façade's job in the
wrong place. Each check has an explicit allow-list, every entry with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SURFACES = Path(__file__).resolve().parents[2] / "strongroom" / "surfaces"

# what a thread hop is called: anyio.to_thread.run_sync, asyncio.to_thread, starlette/fastapi's
# run_in_threadpool, loop.run_in_executor
HOP_NAMES = frozenset({"to_thread", "run_sync", "run_in_threadpool", "run_in_executor"})
HOP_MODULES = ("anyio.to_thread", "starlette.concurrency", "fastapi.concurrency", "concurrent.futures")
# a capability's synchronous engine: a surface takes the façade (strongroom/surfaces/deps.py) instead
ENGINES = frozenset({"ApiKeyService", "UserService", "SessionService", "AuditService", "CredentialService",
                     "ExchangeAccountService", "BalanceService", "MasterKeyService", "KeyRotationService", "Vault"})
ROUTE_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "api_route"})

# "module:line-free name" -> why it must stay. Keep these empty unless there is no other way.
ALLOWED_HOPS: dict[str, str] = {}
ALLOWED_ENGINES: dict[str, str] = {}
ALLOWED_SYNC_ROUTES: dict[str, str] = {
    "strongroom/surfaces/cadenza/routes.py:health": "the database ping is blocking and must answer even when the "
                                                    "pool is exhausted: FastAPI runs it in its threadpool",
}


def _name(path: Path) -> str:
    return path.relative_to(SURFACES.parents[1]).as_posix()


def thread_hops(source: str, where: str) -> list[str]:
    """Return ``where:line what`` for every thread hop, and every import of a thread-hop helper, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in HOP_NAMES:
            found.append(f"{where}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in HOP_NAMES:
            found.append(f"{where}:{node.lineno} {node.id}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if module.startswith(HOP_MODULES) or names & HOP_NAMES:
                found.append(f"{where}:{node.lineno} from {module} import {', '.join(sorted(names))}")
        elif isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno} import {a.name}" for a in node.names if a.name.startswith(HOP_MODULES)]
    return found


def engine_imports(source: str, where: str) -> list[str]:
    """Return ``where:line name`` for every capability engine ``source`` imports."""
    return [f"{where}:{node.lineno} {alias.name}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) for alias in node.names if alias.name in ENGINES]


def sync_routes(source: str, where: str) -> list[str]:
    """Return ``where:name`` for every route endpoint (a function decorated ``@<router>.<method>(...)``) that is
    a plain ``def``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(call, ast.Attribute) and call.attr in ROUTE_METHODS:
                found.append(f"{where}:{node.name}")
                break
    return found


def _every(finder: object, allowed: dict[str, str]) -> list[str]:
    found = []
    for path in sorted(SURFACES.rglob("*.py")):
        found += finder(path.read_text(), _name(path))  # type: ignore[operator]
    return [f for f in found if f.split(" ")[0].rsplit(":", 1)[0] not in allowed and f not in allowed]


def test_no_surface_module_hops_to_a_thread() -> None:
    found = _every(thread_hops, ALLOWED_HOPS)
    assert not found, ("a surface awaits a capability's façade, which runs the engine in a thread; move the hop "
                       "into the façade (or allow it here with its reason):\n" + "\n".join(found))


def test_no_surface_route_is_a_blocking_def() -> None:
    found = _every(sync_routes, ALLOWED_SYNC_ROUTES)
    assert not found, ("a route is `async def` and awaits façades (a `def` route is run in FastAPI's threadpool: "
                       "a hop in the surface):\n" + "\n".join(found))


def test_no_surface_imports_a_capability_engine() -> None:
    found = _every(engine_imports, ALLOWED_ENGINES)
    assert not found, "a surface takes the capability's façade (strongroom/surfaces/deps.py):\n" + "\n".join(found)


def test_the_allow_lists_name_what_exists() -> None:
    """An allow-list entry that no longer matches anything is stale: remove it."""
    for entry in ALLOWED_SYNC_ROUTES:
        module, _, name = entry.rpartition(":")
        assert f"{module}:{name}" in sync_routes((SURFACES.parents[1] / module).read_text(), module), entry
    for entry in (*ALLOWED_HOPS, *ALLOWED_ENGINES):
        assert (SURFACES.parents[1] / entry.rsplit(":", 1)[0]).is_file(), entry


@pytest.mark.parametrize("source,expected", [
    ("from anyio import to_thread\nasync def f():\n    await to_thread.run_sync(g)\n",
     ["m.py:1 from anyio import to_thread", "m.py:3 .run_sync", "m.py:3 to_thread"]),
    ("import anyio.to_thread\n", ["m.py:1 import anyio.to_thread"]),
    ("import asyncio\nasync def f():\n    await asyncio.to_thread(g)\n", ["m.py:3 .to_thread"]),
    ("from starlette.concurrency import run_in_threadpool\n",
     ["m.py:1 from starlette.concurrency import run_in_threadpool"]),
    ("async def f(loop):\n    await loop.run_in_executor(None, g)\n", ["m.py:2 .run_in_executor"]),
    ("async def f(keys):\n    return await keys.get(1)\n", []),
])
def test_the_hop_finder_finds_hops(source: str, expected: list[str]) -> None:
    assert sorted(thread_hops(source, "m.py")) == sorted(expected)


@pytest.mark.parametrize("source,expected", [
    ("@api.get('/x')\ndef f():\n    pass\n", ["m.py:f"]),
    ("@api.post('/x', status_code=201)\n@raises(X)\ndef f():\n    pass\n", ["m.py:f"]),
    ("@api.get('/x')\nasync def f():\n    pass\n", []),
    ("def helper():\n    pass\n", []),
])
def test_the_route_finder_finds_blocking_routes(source: str, expected: list[str]) -> None:
    assert sync_routes(source, "m.py") == expected


def test_the_engine_finder_finds_engines() -> None:
    assert engine_imports("from strongroom.keys import ApiKeyService, Keys\n", "m.py") == ["m.py:1 ApiKeyService"]
    assert engine_imports("from strongroom.keys import Keys\n", "m.py") == []
