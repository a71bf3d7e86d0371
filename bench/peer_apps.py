"""Peer apps for the instruction-count comparison: what a user would write by hand instead.

Each serves ``GET /healthz`` (routed first) and an authenticated ``GET /v1/me`` answering the
caller's identity as JSON, with an API key in ``X-API-Key`` checked against an in-memory table by
its SHA-256 (a realistic hand-written check: no database, no rate limit, no audit):

* ``fastapi``: FastAPI with one ``APIKeyHeader`` dependency and the same 37 operations as
  Strongroom (its paths and methods; the others answer a stub), the way the FastAPI docs teach it.
* ``starlette``: Starlette with a pure-ASGI authentication middleware and the same routes.
* ``asgi``: one raw ASGI callable.

Loaded by bench/cg_app.py from its file (it must not import Strongroom).
"""

import hashlib
import json
import secrets
from typing import Annotated, Any

# Strongroom's operations (paths relative to the app, FastAPI path syntax), healthz and readyz first.
OPERATIONS: list[tuple[str, str]] = [
    ("GET", "/healthz"), ("GET", "/readyz"),
    ("GET", "/v1/me"), ("POST", "/v1/auth/token"), ("POST", "/v1/auth/refresh"), ("POST", "/v1/auth/logout"),
    ("POST", "/v1/users"), ("GET", "/v1/users"), ("GET", "/v1/users/{user_id}"), ("PATCH", "/v1/users/{user_id}"),
    ("DELETE", "/v1/users/{user_id}"), ("GET", "/v1/exchanges"), ("GET", "/v1/exchanges/{exchange}"),
    ("POST", "/v1/exchange-accounts"), ("GET", "/v1/exchange-accounts"), ("GET", "/v1/exchange-accounts/{a}"),
    ("PATCH", "/v1/exchange-accounts/{a}"), ("DELETE", "/v1/exchange-accounts/{a}"),
    ("POST", "/v1/exchange-accounts/{a}/rotate"), ("POST", "/v1/exchange-accounts/{a}/enable"),
    ("POST", "/v1/exchange-accounts/{a}/disable"), ("POST", "/v1/exchange-accounts/{a}/revalidate"),
    ("POST", "/v1/api-keys"), ("POST", "/v1/api-keys/generate"), ("GET", "/v1/api-keys"),
    ("GET", "/v1/api-keys/{k}"), ("PATCH", "/v1/api-keys/{k}"), ("POST", "/v1/api-keys/{k}/roll"),
    ("DELETE", "/v1/api-keys/{k}"), ("GET", "/v1/audit-events"),
    ("GET", "/trade-api/v2/api_keys"), ("POST", "/trade-api/v2/api_keys"),
    ("POST", "/trade-api/v2/api_keys/generate"), ("DELETE", "/trade-api/v2/api_keys/{k}"),
    ("GET", "/user/{u}/accounts"), ("POST", "/user/{u}/accounts/new"), ("DELETE", "/user/{u}/accounts/{e}"),
]
assert len(OPERATIONS) == 37

SECRET = "pk_" + secrets.token_urlsafe(24)
KEYS = {hashlib.sha256(SECRET.encode()).hexdigest(): {"id": 1, "username": "bench", "scopes": ["read", "write"]}}
CREDS = {"bearer": {"key_id": "peer", "secret": SECRET, "header": "X-API-Key"}}


def lookup(key: str | None) -> dict[str, Any] | None:
    return KEYS.get(hashlib.sha256(key.encode()).hexdigest()) if key else None


def fastapi_app() -> Any:
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import APIKeyHeader

    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})
    header = APIKeyHeader(name="X-API-Key", auto_error=False)

    # annotations evaluated here (no `from __future__ import annotations`): they name local objects
    async def current_user(key: Annotated[str | None, Depends(header)]) -> dict[str, Any]:
        user = lookup(key)
        if user is None:
            raise HTTPException(status_code=401, detail="invalid API key")
        return user

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/me")
    async def me(user: Annotated[dict[str, Any], Depends(current_user)]) -> dict[str, Any]:
        return user

    async def stub(user: Annotated[dict[str, Any], Depends(current_user)]) -> dict[str, str]:
        return {"status": "stub"}

    for method, path in OPERATIONS[3:]:
        app.add_api_route(path, stub, methods=[method], name=f"{method} {path}")
    # as shipped: the probes before the documentation routes FastAPI registers
    routes = app.router.routes
    first = [r for r in routes if getattr(r, "path", None) in ("/healthz", "/readyz")]
    routes[:] = first + [r for r in routes if r not in first]
    return app


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    class ApiKeyMiddleware:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] not in ("/healthz", "/readyz"):
                key = next((v.decode() for k, v in scope["headers"] if k == b"x-api-key"), None)
                user = lookup(key)
                if user is None:
                    await JSONResponse({"detail": "invalid API key"}, status_code=401)(scope, receive, send)
                    return
                scope.setdefault("state", {})["user"] = user
            await self.app(scope, receive, send)

    async def healthz(request: Any) -> Any:
        return JSONResponse({"status": "ok"})

    async def me(request: Any) -> Any:
        return JSONResponse(request.scope["state"]["user"])

    async def stub(request: Any) -> Any:
        return JSONResponse({"status": "stub"})

    routes = [Route("/healthz", healthz), Route("/readyz", healthz), Route("/v1/me", me)]
    routes += [Route(path, stub, methods=[method]) for method, path in OPERATIONS[3:]]
    return Starlette(routes=routes, middleware=[Middleware(ApiKeyMiddleware)])


def asgi_app() -> Any:
    ok = json.dumps({"status": "ok"}).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            status, body = 200, ok
        elif path == "/v1/me":
            key = next((v.decode() for k, v in scope["headers"] if k == b"x-api-key"), None)
            user = lookup(key)
            status, body = (200, json.dumps(user).encode()) if user else (401, b'{"detail":"invalid API key"}')
        else:
            status, body = 404, b'{"detail":"not found"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def build(name: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Return the peer app ``name`` (fastapi, starlette, asgi) and the credentials its client uses."""
    apps = {"fastapi": fastapi_app, "starlette": starlette_app, "asgi": asgi_app}
    return apps[name](), CREDS
