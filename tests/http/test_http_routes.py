"""The HTTP kit's route declarations (strongroom/http/routes.py), without a server or a database.

A guard is attached to the route it guards (``@guarded``) and listed by its surface; ``build()`` refuses
a guard no route uses, a route guard the surface does not list, a guard or ``@direct`` on a route that
does not take the caller, and a ``@direct`` endpoint of another shape. A route that takes the caller
authenticates before its body is read; its guard runs after authentication and before the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from strongroom.auth.facts import RequestFacts
from strongroom.errors import Forbidden, Unauthenticated
from strongroom.http.errors import ErrorTable, Rendered
from strongroom.http.gate import CurrentPrincipal
from strongroom.http.routes import DeclarationError, Surface, build, direct, guarded, mount
from strongroom.principal import Principal

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def render(error: Rendered) -> Response:
    return JSONResponse({"code": error.code}, status_code=error.status)


ERRORS = ErrorTable(render=render, internal=lambda: JSONResponse({"code": "internal"}, status_code=500))


def deny(principal: Principal, path_params: Mapping[str, Any]) -> None:
    raise Forbidden(f"not {path_params.get('item')}")


def allow(principal: Principal, path_params: Mapping[str, Any]) -> None:
    return None


def surface(router: APIRouter, guards: tuple[Any, ...] = ()) -> Surface:
    return Surface(name="probe", prefix="/p", schemes=(), errors=ERRORS, routers=(router,), guards=guards)


# --- declarations checked at start-up --------------------------------------------------------------

def test_an_unlisted_guard_is_an_error_at_startup() -> None:
    router = APIRouter()

    @router.post("/items/{item}")
    @guarded(deny)
    async def renamed_at_will(item: str, principal: CurrentPrincipal) -> None: ...

    with pytest.raises(DeclarationError, match="renamed_at_will.*deny is not in the surface's guards"):
        build(surface(router))
    build(surface(router, guards=(deny,)))  # listed: fine


def test_an_unused_guard_is_an_error_at_startup() -> None:
    router = APIRouter()

    @router.post("/items/{item}")
    @guarded(deny)
    async def create(item: str, principal: CurrentPrincipal) -> None: ...

    with pytest.raises(DeclarationError, match="the guard allow guards no route"):
        build(surface(router, guards=(deny, allow)))


def test_a_guard_on_a_route_without_the_caller_is_an_error() -> None:
    router = APIRouter()

    @router.get("/open")
    @guarded(allow)
    async def open_route() -> None: ...

    with pytest.raises(DeclarationError, match="has a guard but does not take the caller"):
        build(surface(router, guards=(allow,)))


def test_direct_needs_only_the_caller_and_a_response() -> None:
    router = APIRouter()

    @router.get("/me/{x}")
    @direct
    async def me(x: str, principal: CurrentPrincipal) -> Response:
        return Response()

    with pytest.raises(DeclarationError, match="@direct needs"):
        build(surface(router))


def test_a_guard_attaches_once() -> None:
    async def endpoint(principal: CurrentPrincipal) -> None: ...

    guarded(deny)(endpoint)
    with pytest.raises(DeclarationError, match="two guards"):
        guarded(allow)(endpoint)


def test_every_served_surface_builds() -> None:
    from strongroom.app import surfaces
    from strongroom.settings import Settings

    for declared in surfaces(Settings(data_dir="/nonexistent-not-used")):
        built = build(declared)
        assert any(built.gated(route) for route in built.routes), declared.name


# --- the gate, live ---------------------------------------------------------------------------------

@dataclass
class FakeAuth:
    """Authenticates a request carrying ``x-user``; records what it was asked."""

    seen: list[str] = field(default_factory=list)

    async def authenticate(self, facts: RequestFacts, schemes: Any) -> Principal:
        self.seen.append(f"{facts.method} {facts.path}")
        user = facts.headers.get("x-user")
        if not user:
            raise Unauthenticated("authentication required")
        return Principal(user_id=1, username=user)

    async def release(self, facts: RequestFacts) -> None:
        """A request refused after authentication gives up its signature claim (none here)."""
        self.seen.append(f"release {facts.method} {facts.path}")


@dataclass
class FakeAudit:
    rows: list[tuple[str, str]] = field(default_factory=list)

    async def record_now(self, action: str, outcome: str, **kwargs: Any) -> None:  # the audit façade's
        self.rows.append((action, outcome))


class Body(BaseModel):
    name: str


def client(router: APIRouter, guards: tuple[Any, ...] = ()) -> tuple[httpx.AsyncClient, SimpleNamespace]:
    built = build(surface(router, guards))
    app = FastAPI()
    core = SimpleNamespace(auth=FakeAuth(), audit_log=FakeAudit())
    app.state.core = core
    app.state.trusted_proxies = []
    mount(app, [built], built)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://kit"), core


async def test_authentication_before_the_body_and_the_guard_after_it() -> None:
    router = APIRouter()
    calls: list[str] = []

    @router.post("/items/{item}")
    @guarded(deny)
    async def create(item: str, body: Body, principal: CurrentPrincipal) -> None:
        calls.append(item)

    @router.post("/free/{item}")
    async def create_free(item: str, body: Body, principal: CurrentPrincipal) -> dict[str, str]:
        return {"by": principal.username, "name": body.name}

    http, core = client(router, guards=(deny,))
    async with http:
        anonymous = await http.post("/p/items/a", content=b"{not json")
        guarded_call = await http.post("/p/items/a", content=b"{not json", headers={"x-user": "alice"})
        invalid = await http.post("/p/free/a", json={"nome": 1}, headers={"x-user": "alice"})
        ok = await http.post("/p/free/a", json={"name": "n"}, headers={"x-user": "alice"})
    assert anonymous.status_code == 401 and anonymous.json() == {"code": "unauthenticated"}
    assert guarded_call.status_code == 403 and guarded_call.json() == {"code": "forbidden"}
    assert core.audit_log.rows == [("auth.authorize", "refused")]  # an authenticated caller's 403 is audited
    assert calls == []
    assert invalid.status_code == 422 and invalid.json() == {"code": "validation_failed"}
    assert ok.status_code == 200 and ok.json() == {"by": "alice", "name": "n"}


async def test_a_route_without_the_caller_is_not_gated() -> None:
    router = APIRouter()

    @router.get("/open")
    async def open_route() -> dict[str, bool]:
        return {"open": True}

    http, core = client(router)
    async with http:
        response = await http.get("/p/open")
    assert response.status_code == 200 and core.auth.seen == []


async def test_direct_endpoint_gets_the_gates_principal() -> None:
    router = APIRouter()

    @router.get("/me")
    @direct
    async def me(principal: CurrentPrincipal) -> Response:
        return JSONResponse({"me": principal.username})

    http, _ = client(router)
    async with http:
        anonymous = await http.get("/p/me")
        known = await http.get("/p/me", headers={"x-user": "bob"})
    assert anonymous.status_code == 401
    assert known.json() == {"me": "bob"}


async def test_errors_in_the_surfaces_shape_wherever_raised() -> None:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret sk_live_1")

    @router.get("/items/{item}")
    async def read(item: int) -> dict[str, int]:
        return {"item": item}

    @router.delete("/items/{item}")
    async def remove(item: int) -> None: ...

    http, _ = client(router)
    async with http:
        boom = await http.get("/p/boom")
        invalid = await http.get("/p/items/x")
        missing = await http.get("/p/nowhere")
        wrong = await http.put("/p/items/1")
    assert boom.status_code == 500 and boom.json() == {"code": "internal"} and "sk_live" not in boom.text
    assert invalid.status_code == 422 and invalid.json() == {"code": "validation_failed"}
    assert missing.status_code == 404 and missing.json() == {"code": "not_found"}
    assert wrong.status_code == 405 and wrong.json() == {"code": "method_not_allowed"}
    assert wrong.headers["allow"] == "DELETE, GET"
