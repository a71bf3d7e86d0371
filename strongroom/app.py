"""The ASGI application: one core, many surfaces."""

from __future__ import annotations

import ipaddress
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from strongroom.core import Core, build_core
from strongroom.errors import BadRequest, PayloadTooLarge
from strongroom.settings import Settings, get_settings
from strongroom.surfaces import native
from strongroom.surfaces.base import Surface, http_error, log_unexpected, validation_error

log = logging.getLogger("strongroom")


def surfaces() -> list[tuple[Surface, object]]:
    """Every surface with its router builder, most specific prefix first."""
    from strongroom.surfaces import kalshi, tradingapp

    return [(native.SURFACE, native.build_router), (kalshi.SURFACE, kalshi.build_router),
            (tradingapp.SURFACE, tradingapp.build_router)]


class BodyLimit:
    """Refuse bodies over ``max_bytes`` (by Content-Length, or while streaming) with a 413."""

    def __init__(self, app, max_bytes: int, surface_for) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.surface_for = surface_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return await self.surface_for(scope["path"]).render_error(
                        BadRequest("invalid Content-Length"))(scope, receive, send)
                if length > self.max_bytes:
                    return await self.surface_for(scope["path"]).render_error(
                        PayloadTooLarge(f"the body exceeds {self.max_bytes} bytes"))(scope, receive, send)
        seen = 0
        limit = self.max_bytes

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException, not PayloadTooLarge: FastAPI turns any other exception raised
                    # while it reads the body into a generic 400, but re-raises HTTPExceptions.
                    raise StarletteHTTPException(413, f"the body exceeds {limit} bytes")
            return message

        return await self.app(scope, limited_receive, send)


def create_app(settings: Settings | None = None, core: Core | None = None) -> FastAPI:
    """Return the application. ``core`` may be given (tests); otherwise it is built at start-up."""
    settings = settings or (core.settings if core else get_settings())
    registered = surfaces()
    default_surface = native.SURFACE

    def surface_for(path: str) -> Surface:
        for surface, _ in registered:
            if surface.owns(path):
                return surface
        return default_surface

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "core", None) is None:
            app.state.core = build_core(settings)
            owned = True
        else:
            owned = False
        app.state.core.usage.start()
        try:
            yield
        finally:
            await app.state.core.usage.stop()
            await app.state.core.gateway.aclose()
            if owned:
                app.state.core.close()

    app = FastAPI(
        title="Strongroom",
        version="0.1.0",
        description="Exchange-account vault and platform API keys, with Kalshi and Trading App compatible surfaces.",
        lifespan=lifespan,
    )
    app.state.core = core
    app.state.trusted_proxies = [ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies]
    for _, build in registered:
        app.include_router(build())

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> Response:
        """The database answers."""
        try:
            with request.app.state.core.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return {"status": "ok", "database": "ok"}

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(request: Request, exc: StarletteHTTPException) -> Response:
        return surface_for(request.url.path).render_error(http_error(exc.status_code))

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> Response:
        return surface_for(request.url.path).render_error(validation_error(exc))

    @app.exception_handler(PayloadTooLarge)
    async def too_large(request: Request, exc: PayloadTooLarge) -> Response:
        return surface_for(request.url.path).render_error(exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected(request, exc)
        return surface_for(request.url.path).render_internal()

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, surface_for=surface_for)
    return app
