"""Surfaces built on demand (issue 23 §4, cold start): a mounted :class:`LazySurface` is known by its name,
prefix and error table; its routes are imported and built once, by its first request or the warm-up.

The kit's part without a database (concurrent first requests build once, a failed build answers the
surface's 500 and is tried again, a declaration that disagrees is refused); then the application over real
HTTP on both databases: the probes and forward authentication answer with no surface built, every surface's
first requests (at once) answer what a built surface answers, and the OpenAPI document is complete.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from support import start_server
from support.services import Fresh

from strongroom.http.errors import ErrorTable, Rendered
from strongroom.http.routes import DeclarationError, LazySurface, Surface, SurfaceApp, guarded, mount
from strongroom.principal import Principal


def render(error: Rendered) -> Response:
    return JSONResponse({"code": error.code}, status_code=error.status)


ERRORS = ErrorTable(render=render, internal=lambda: JSONResponse({"code": "internal"}, status_code=500))


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/items/{item}")
    async def read(item: int) -> dict[str, int]:
        return {"item": item}

    return api


SECRET_TEXT = "import failed: " + "sk_live_" + "0123456789"


class Declare:
    """Declares the probe surface (as a surface package's ``surface()`` does), counting its calls; the first
    ``failures`` calls raise, each call takes ``seconds`` (imports take time: first requests overlap it)."""

    def __init__(self, seconds: float = 0.0, failures: int = 0, declared: Callable[[], Surface] | None = None) -> None:
        self.calls = 0
        self.seconds = seconds
        self.failures = failures
        self.declared = declared or (lambda: Surface(name="probe", prefix="/p", schemes=(), errors=ERRORS,
                                                     routers=(router(),)))

    def __call__(self) -> Surface:
        self.calls += 1
        time.sleep(self.seconds)
        if self.calls <= self.failures:
            raise RuntimeError(SECRET_TEXT)  # a failure's message may hold anything: never logged
        return self.declared()


def kit_app(declare: Declare) -> tuple[FastAPI, LazySurface]:
    lazy = LazySurface("probe", "/p", ERRORS, declare)
    app = FastAPI()
    mount(app, [lazy], lazy)
    return app, lazy


def http(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://kit")


@pytest.mark.parametrize("root_path", ["", "/behind"])
@pytest.mark.parametrize("path", ["/p/items/1", "/p/", "/p", "/p/a/b?c", "/px/items", "/q/p/items", "/", "",
                                  "/P/items", "/p//x", "/behind/p/items/1", "/behind/px"])
def test_a_surface_mount_matches_as_starlettes_mount_does(path: str, root_path: str) -> None:
    """The mount of a lazy surface matches by a prefix test (every surface request passes it): the same match
    and child scope as Starlette's Mount, served at the root or behind a root path."""
    lazy = LazySurface("probe", "/p", ERRORS, Declare())
    app = FastAPI()
    mount(app, [lazy], lazy)
    ours = app.router.routes[-1]
    theirs = Mount("/p", app=lazy, name="probe")
    scope = {"type": "http", "path": path, "root_path": root_path, "path_params": {"outer": "1"}}
    assert ours.matches(dict(scope)) == theirs.matches(dict(scope))
    bare = {"type": "http", "path": path}  # (a server that sends no root_path)
    assert ours.matches(dict(bare)) == theirs.matches(dict(bare))


def test_concurrent_first_requests_build_the_surface_once() -> None:
    declare = Declare(seconds=0.3)
    app, lazy = kit_app(declare)

    async def first_requests() -> list[httpx.Response]:
        async with http(app) as client:
            with anyio.fail_after(10):
                return list(await asyncio.gather(*(client.get(f"/p/items/{i}") for i in range(20))))

    assert lazy.built is None
    answers = asyncio.run(first_requests())
    assert [(r.status_code, r.json()) for r in answers] == [(200, {"item": i}) for i in range(20)]
    assert declare.calls == 1 and isinstance(lazy.built, SurfaceApp)


def test_threads_loading_at_once_build_once() -> None:
    declare = Declare(seconds=0.2)
    lazy = LazySurface("probe", "/p", ERRORS, declare)
    start = threading.Barrier(8)

    def load() -> SurfaceApp:
        start.wait()
        return lazy.load()

    with ThreadPoolExecutor(8) as pool:
        built = list(pool.map(lambda _: load(), range(8)))
    assert declare.calls == 1 and all(b is built[0] for b in built) and lazy.built is built[0]


def test_a_surface_that_fails_to_build_answers_its_500_and_the_next_request_builds_it(
        caplog: pytest.LogCaptureFixture) -> None:
    declare = Declare(failures=1)
    app, lazy = kit_app(declare)

    async def two_requests() -> tuple[httpx.Response, httpx.Response]:
        async with http(app) as client:
            with anyio.fail_after(10):
                return await client.get("/p/items/1"), await client.get("/p/items/2")

    with caplog.at_level(logging.ERROR, logger="strongroom.http"):
        failed, built = asyncio.run(two_requests())
    assert (failed.status_code, failed.json()) == (500, {"code": "internal"})  # the surface's 500, no hang
    assert "unhandled RuntimeError in GET /p/items/1" in caplog.text and "sk_live" not in caplog.text
    assert (built.status_code, built.json()) == (200, {"item": 2})
    assert declare.calls == 2 and lazy.built is not None


def deny(principal: Principal, path_params: Any) -> None:
    raise AssertionError("never runs")


def test_a_declaration_build_refuses_is_the_surfaces_500_and_never_served() -> None:
    # build() refuses a guard no route uses: the lazy surface answers its 500 (and keeps refusing)
    declare = Declare(declared=lambda: Surface(name="probe", prefix="/p", schemes=(), errors=ERRORS,
                                               routers=(router(),), guards=(deny,)))
    app, lazy = kit_app(declare)

    async def requests() -> list[httpx.Response]:
        async with http(app) as client:
            return [await client.get("/p/items/1") for _ in range(2)]

    assert [(r.status_code, r.json()) for r in asyncio.run(requests())] == [(500, {"code": "internal"})] * 2
    assert lazy.built is None and declare.calls == 2
    with pytest.raises(DeclarationError, match="guards no route"):
        lazy.load()


def test_the_declared_surface_must_be_the_mounted_one() -> None:
    elsewhere = LazySurface("probe", "/q", ERRORS, Declare())
    with pytest.raises(DeclarationError, match="probe at /q was declared as probe at /p"):
        elsewhere.load()
    other_errors = ErrorTable(render=render, internal=ERRORS.internal)
    with pytest.raises(DeclarationError):
        LazySurface("probe", "/p", other_errors, Declare()).load()


def test_a_guarded_route_is_checked_when_built() -> None:
    api = router()

    @api.get("/guarded")
    @guarded(deny)
    async def unguardable() -> None: ...  # a guard on a route that does not take the caller

    declare = Declare(declared=lambda: Surface(name="probe", prefix="/p", schemes=(), errors=ERRORS,
                                               routers=(api,), guards=(deny,)))
    with pytest.raises(DeclarationError, match="does not take the caller"):
        LazySurface("probe", "/p", ERRORS, declare).load()


def test_every_served_surface_loads_as_mounted(tmp_path: Any) -> None:
    """What start-up no longer does, done eagerly: every surface of the app declares and builds (build()
    refuses an unknown or unused guard), under the name, prefix and error table it is mounted with."""
    from strongroom.app import lazy_surfaces
    from strongroom.settings import Settings

    mounted = lazy_surfaces(Settings(data_dir=tmp_path))
    assert [m.prefix for m in mounted] == ["/v1", "/trade-api/v2", "/user", "/tradr", "/public/api", "/api/v3"]
    for surface in mounted:
        built = surface.load()
        assert (built.name, built.prefix) == (surface.name, surface.prefix)
        assert any(built.gated(route) for route in built.routes), surface.name


# --- the application, over real HTTP ---------------------------------------------------------------------


@pytest.fixture
def cold(fresh: Fresh) -> Iterator[Any]:
    """A server on the fresh database whose surfaces are built only by requests (no warm-up), trusting the
    loopback as a proxy (forward authentication)."""
    server = start_server(app_options={"warm_up_surfaces": False}, data_dir=fresh.data_dir, database_url=fresh.url,
                          trusted_proxies=["127.0.0.1/32"])
    try:
        yield server
    finally:
        server.stop()


def lazy_of(app: Any) -> dict[str, LazySurface]:
    mounted = {s.prefix: s for s in app.state.surfaces}
    assert all(isinstance(s, LazySurface) for s in mounted.values()) and len(mounted) == 6
    routes = {r.path: r.app for r in app.router.routes if isinstance(r, Mount) and r.path in mounted}
    assert all(routes[p] is s for p, s in mounted.items())  # each mounted at its prefix
    return mounted


def bearer_key(server: Any) -> str:
    from strongroom.users.services import snapshot

    user = server.core.users.create(f"lazy{time.monotonic_ns() % 10**9}", "a-long-password-1")
    principal = snapshot(user).principal(client_ip="127.0.0.1", scheme="cli")
    _, secret = server.core.api_keys.create(principal, name="lazy", kind="bearer", scopes=["read"])
    return str(secret)


# one request per surface (anonymous: each answers its own 401), and /v1/me with a key, twice
FIRST = [("/v1/me", False), ("/trade-api/v2/api_keys", False), ("/user/1/accounts", False),
         ("/tradr/accounts/api-keys/x", False), ("/public/api/ver1/accounts", False), ("/api/v3/auth/user", False),
         ("/v1/me", True), ("/v1/me", True)]


def answer(response: httpx.Response) -> tuple[int, str | None, Any]:
    return response.status_code, response.headers.get("content-type"), response.json()


def test_probes_and_forward_auth_answer_with_no_surface_built(cold: Any) -> None:
    key = bearer_key(cold)
    with cold.client() as client:
        assert client.get("/readyz").status_code == 200 and client.get("/healthz").status_code == 200
        forward = client.get("/v1/auth/forward", headers={"Authorization": f"Bearer {key}", "X-Original-Method": "GET",
                                                         "X-Original-URI": "/orders", "X-Forwarded-For": "203.0.113.9"})
        refused = client.get("/trade-api/v2/api_keys%00")  # the edge answers in Kalshi's shape, unbuilt
    assert forward.status_code == 200 and forward.headers["x-strongroom-scopes"] == "read"
    assert refused.status_code == 400 and set(refused.json()) == {"error"}
    assert all(s.built is None for s in lazy_of(cold.app).values())


def test_first_requests_at_once_answer_as_built_surfaces_do(cold: Any) -> None:
    key = bearer_key(cold)
    mounted = lazy_of(cold.app)
    calls = dict.fromkeys(mounted, 0)
    for prefix, surface in mounted.items():  # count each surface's declarations (the real ones run)
        def counted(declare: Callable[[], Surface] = surface._declare, prefix: str = prefix) -> Surface:
            calls[prefix] += 1
            return declare()
        surface._declare = counted

    def get(path: str, with_key: bool) -> httpx.Response:
        with cold.client() as client:
            return client.get(path, headers={"Authorization": f"Bearer {key}"} if with_key else {})

    with ThreadPoolExecutor(len(FIRST) * 2) as pool:  # every first request twice, all at once
        first = list(pool.map(lambda request: get(*request), FIRST * 2))
    again = [get(*request) for request in FIRST]  # the surfaces built
    assert [answer(r) for r in first] == [answer(r) for r in again] * 2
    assert [r.status_code for r in again] == [401] * 6 + [200, 200]
    assert again[0].headers["content-type"] == "application/problem+json"
    assert again[-1].json()["scopes"] == ["read"]
    assert calls == dict.fromkeys(mounted, 1)  # built once each


def test_the_openapi_document_builds_every_surface_and_is_the_whole_document(cold: Any) -> None:
    from strongroom.app import create_app

    with cold.client() as client:
        doc = client.get("/openapi.json").json()
    assert all(s.built is not None for s in lazy_of(cold.app).values())
    eager = create_app(cold.settings)  # its surfaces built before the document is asked for
    for surface in lazy_of(eager).values():
        surface.load()
    assert doc == eager.openapi()
    assert {p.split("/")[1] for p in doc["paths"]} >= {"v1", "trade-api", "user", "tradr", "public", "api"}
