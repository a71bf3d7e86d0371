"""What the HTTP kit (and the OpenAPI document) rely on in FastAPI and Starlette, pinned.

The kit routes a surface with Starlette's public route interface and leaves each route's request handling
to FastAPI. If an upgrade changes one of these behaviours, this file fails first, naming it:

* ``APIRoute.matches`` answers PARTIAL for a path it has under other methods; ``methods`` holds only
  the declared methods; ``endpoint`` is the decorated function; ``dependencies`` the route's own;
* inside FastAPI's request handling, an exception is given to the handler registered for its class in
  the application's ``exception_handlers``, also for a route of a mounted sub-application; an exception
  without a handler propagates out of ``route.handle`` to its caller (the surface, which answers it);
* ``route.dependant`` lists body, query and path parameters (read by surfaces/openapi.py only).
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Body(BaseModel):
    name: str


async def dep() -> None:
    return None


def routes() -> list[APIRoute]:
    router = APIRouter()

    @router.post("/things/{thing}", dependencies=[Depends(dep)])
    async def make(thing: int, body: Body, q: str = Query("x")) -> dict[str, str]:
        return {"name": body.name}

    @router.get("/things/{thing}")
    async def read(thing: int) -> dict[str, int]:
        return {"thing": thing}

    @router.get("/http")
    async def http_error() -> None:
        raise HTTPException(418)

    @router.get("/unexpected")
    async def unexpected() -> None:
        raise LookupError("no handler for me")

    return [r for r in router.routes if isinstance(r, APIRoute)]


def scope(method: str, path: str) -> Scope:
    return {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"", "headers": []}


def test_route_interface() -> None:
    make, read, *_ = routes()
    assert make.methods == {"POST"} and read.methods == {"GET"}  # no HEAD added
    assert make.endpoint.__name__ == "make" and [d.dependency for d in make.dependencies] == [dep]
    full, child = read.matches(scope("GET", "/things/1"))
    assert full is Match.FULL and child["path_params"] == {"thing": "1"}
    partial, _ = make.matches(scope("GET", "/things/1"))
    assert partial is Match.PARTIAL
    assert read.matches(scope("GET", "/other"))[0] is Match.NONE


def test_dependant_lists_parameters() -> None:
    make, read, *_ = routes()
    assert [p.name for p in make.dependant.body_params] == ["body"]
    assert [p.name for p in make.dependant.query_params] == ["q"]
    assert [p.name for p in make.dependant.path_params] == ["thing"]
    assert not read.dependant.body_params and not read.dependant.query_params


async def test_exceptions_inside_request_handling() -> None:
    handled: list[str] = []
    escaped: list[str] = []
    all_routes = routes()

    class Sub:
        """A mounted sub-app handing requests to the routes, as a surface does."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            for route in all_routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    try:
                        await route.handle(scope, receive, send)
                    except LookupError as exc:
                        escaped.append(type(exc).__name__)
                        await JSONResponse({"escaped": True}, status_code=500)(scope, receive, send)
                    return

    async def handler(request: Request, exc: Exception) -> Response:
        handled.append(type(exc).__name__)
        return JSONResponse({"handled": True}, status_code=299)

    app = FastAPI()
    app.mount("/sub", Sub())
    app.exception_handlers = {HTTPException: handler, RequestValidationError: handler}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://pin") as client:
        invalid = await client.post("/sub/things/1", json={"nome": "x"})
        http_error = await client.get("/sub/http")
        unexpected = await client.get("/sub/unexpected")
        ok = await client.post("/sub/things/1", json={"name": "x"})
    assert invalid.status_code == 299 and http_error.status_code == 299
    assert handled == ["RequestValidationError", "HTTPException"]
    assert unexpected.status_code == 500 and escaped == ["LookupError"]
    assert ok.json() == {"name": "x"}


def test_the_kit_reads_no_fastapi_internals() -> None:
    """The kit neither copies routes nor swaps their apps, reads no dependency records and sets no
    Starlette scope key (what this file pins is all it relies on)."""
    import inspect

    from strongroom.http import edge, errors, gate, routes

    for module in (edge, errors, gate, routes):
        source = inspect.getsource(module)
        for internal in ("dependant", "starlette.exception_handlers", "copy.copy", "route.app"):
            assert internal not in source, (module.__name__, internal)
