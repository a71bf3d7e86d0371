"""The ASGI application: one core, many surfaces, each mounted under its prefix."""

from __future__ import annotations

import asyncio
import gc
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal, Protocol

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from strongroom import logs
from strongroom.core import Core, build_core
from strongroom.crypto.keyring import KeyringError
from strongroom.errors import NotFound, Unauthenticated
from strongroom.http.edge import EdgeGuard
from strongroom.http.errors import ErrorTable
from strongroom.http.routes import LazySurface, Surface, mount
from strongroom.metrics import CONTENT_TYPE
from strongroom.settings import Settings, get_settings
from strongroom.surfaces import cadenza, kalshi, native, threecommas, tradingapp, tradr
from strongroom.surfaces.forward import PATH as FORWARD_PATH
from strongroom.surfaces.forward import ForwardAuth
from strongroom.surfaces.openapi import HEADERS, merged_openapi, raises

log = logging.getLogger("strongroom")


DESCRIPTION = """Exchange-account vault and platform API keys, on six surfaces over one core:

* `/v1`: Strongroom's own API (errors as RFC 9457 `application/problem+json`);
* `/trade-api/v2`: Kalshi-compatible API keys;
* `/user`: the Trading App accounts API;
* `/tradr`: TradrAPI-compatible account and user API keys;
* `/public/api`: 3Commas-compatible exchange accounts;
* `/api/v3`: Cadenza-compatible trading accounts and credentials.

Your own services can take Strongroom's keys too: `POST /v1/keys/verify` (a key with the `verify` scope), and
forward authentication for nginx `auth_request`, Traefik `ForwardAuth` and Envoy `ext_authz` at `/v1/auth/forward`
(answered by headers, not an operation of this document: see the README, "Protect your own services").

Each operation lists the credentials it accepts (Authorize: an access token from `POST /v1/auth/token`, a bearer
key as `Authorization: Bearer` or `X-API-Key`, HTTP Basic, or the signed-request headers of a key), and every
error status it can answer in its surface's own error shape. Answers carry `X-Request-ID`; authenticated ones
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`; 429 and 503 carry `Retry-After`."""


class Liveness(BaseModel):
    status: Literal["ok"] = Field(description="Always ok: the process answers.")


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"] = Field(description="ok when every check is ok.")
    database: Literal["ok", "unreachable"] = Field(description="Whether the database answers.")
    redis: Literal["ok", "unreachable"] | SkipJsonSchema[None] = Field(
        None, description="Whether Redis answers (only when STRONGROOM_REDIS_URL is set).")
    master_key: Literal["ok", "unreachable"] | SkipJsonSchema[None] = Field(
        None, description="Whether the HSM or KMS holding the master key answers (only when one is configured).")
    jobs: Literal["ok", "stuck"] | SkipJsonSchema[None] = Field(
        None, description="stuck: the oldest due job has waited longer than STRONGROOM_JOBS_STUCK_SECONDS (no "
        "runner takes jobs). Informational: it does not make the process unready (absent when the database "
        "does not answer or the check is off).")


class SurfacePackage(Protocol):
    """What a package under ``strongroom/surfaces/`` exports: its name, prefix and error table (cheap to
    import), and ``surface(settings)``, which imports its routes and declares it."""

    NAME: str
    PREFIX: str
    ERRORS: ErrorTable

    def surface(self, settings: Settings) -> Surface: ...


SURFACES: tuple[SurfacePackage, ...] = (native, kalshi, tradingapp, tradr, threecommas, cadenza)


def surfaces(settings: Settings) -> list[Surface]:
    """Every surface this build serves, declared (their routes imported)."""
    return [package.surface(settings) for package in SURFACES]


def lazy_surfaces(settings: Settings) -> list[LazySurface]:
    """Every surface this build serves, as mounted: each built on its first request (or by the warm-up)."""
    return [LazySurface(package.NAME, package.PREFIX, package.ERRORS, partial(package.surface, settings))
            for package in SURFACES]


async def warm_up(mounted: Sequence[LazySurface]) -> None:
    """Build every surface not built yet, one after the other in a worker thread (requests go on being
    answered meanwhile; one for a surface being built waits for it). A surface that fails to build is
    logged here and answers its 500 until a request builds it."""
    for surface in mounted:
        if surface.built is not None:
            continue
        try:
            await to_thread.run_sync(surface.load)
        except Exception:  # logged; the surface's requests report it in its own shape
            log.exception("the %s surface did not build", surface.name)


def create_app(settings: Settings | None = None, core: Core | None = None, *, warm_up_surfaces: bool = True) -> FastAPI:
    """Return the application. ``core`` may be given (tests); otherwise it is built at start-up.

    The surfaces are mounted unbuilt: each is built by its first request or by the warm-up that start-up
    begins (``app.state.warm_up``, a task; none with ``warm_up_surfaces=False``): the probes and forward
    authentication need none of them."""
    settings = settings or (core.settings if core else get_settings())
    mounted = lazy_surfaces(settings)
    default = next(m for m in mounted if m.name == native.NAME)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "core", None) is None:
            app.state.core = build_core(settings)
            owned = True
        else:
            owned = False
        app.state.core.housekeeping.start()
        warming = app.state.warm_up = asyncio.get_running_loop().create_task(
            warm_up(mounted if warm_up_surfaces else ()))
        runner = None
        if settings.jobs == "inline":  # the embedded default: this process runs jobs too (imported only then)
            from strongroom.jobs.runner import build_runner

            runner = build_runner(app.state.core)
            runner.start()
        try:
            yield
        finally:
            warming.cancel()
            await asyncio.wait({warming})  # (its cancel ends it; a cancel of this shutdown is not swallowed with it)
            if runner is not None:
                await runner.stop()
            await app.state.core.housekeeping.stop()
            await app.state.core.gateway.aclose()
            if owned:
                app.state.core.close()

    # Swagger UI and ReDoc from the installed fastapi-offline package: /docs works without internet.
    app = FastAPIOffline(
        title="Strongroom",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
        # FastAPI's OpenTelemetry integration is off: its "logs" record exception messages (which may
        # hold request data), and checking for it costs every request. /metrics is ours (Prometheus).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.core = core
    app.state.surfaces = mounted  # (each LazySurface's ``built`` says whether it is built yet)
    app.state.trusted_proxies = [ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies]

    # Routed first: the probes are the cheapest routes and must not walk past the surfaces.
    @app.get("/healthz", summary="Check that the process is up.", tags=["health"], response_model=Liveness)
    @raises(backing_services=False)
    async def healthz() -> dict[str, str]:
        """The process is up (liveness: checks nothing else)."""
        return {"status": "ok"}

    @app.get("/readyz", summary="Check that the database (and Redis) answer.",
             tags=["health"], response_model=Readiness, responses={503: {
        "model": Readiness, "description": "A check failed.", "headers": {"Retry-After": {"$ref": HEADERS + "Retry-After"}}}})
    async def readyz(request: Request) -> Response:
        """The database answers, and Redis and the HSM or KMS too when configured (503 with Retry-After if not)."""
        core: Core = request.app.state.core
        checks: dict[str, str] = {}
        try:
            await to_thread.run_sync(core.db.ping)
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure of the check is a 503 "unreachable", never a 500
            log.warning("readiness: database check failed: %s", type(exc).__name__)
            checks["database"] = "unreachable"
        if core.settings.redis_url:
            checks["redis"] = "ok" if await core.limiter.ping() else "unreachable"
        if core.keys.remote:
            try:
                await to_thread.run_sync(core.keys.check)
                checks["master_key"] = "ok"
            except KeyringError as exc:
                log.warning("readiness: master key check failed: %s", exc)
                checks["master_key"] = "unreachable"
        ready = all(v == "ok" for v in checks.values())
        stuck_after = core.settings.jobs_stuck_seconds
        if checks["database"] == "ok" and stuck_after > 0:
            try:  # reported, not a readiness failure: taking this process out of rotation unsticks no queue
                waited = (await to_thread.run_sync(core.jobs.stats)).oldest_due_seconds
                checks["jobs"] = "stuck" if waited > stuck_after else "ok"
            except Exception as exc:  # noqa: BLE001 - the database answered a moment ago; leave the field out
                log.warning("readiness: job queue check failed: %s", type(exc).__name__)
        return JSONResponse({"status": "ok" if ready else "unavailable", **checks}, status_code=200 if ready else 503,
                            headers=None if ready else {"Retry-After": "5"})

    @app.get("/metrics", tags=["health"], include_in_schema=settings.metrics_enabled,
             summary="Read the Prometheus metrics.",
             response_class=PlainTextResponse)
    @raises(Unauthenticated, backing_services=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (when STRONGROOM_METRICS_ENABLED; with STRONGROOM_METRICS_TOKEN, a bearer token)."""
        if not settings.metrics_enabled:
            return default.error_response(request.scope, NotFound("not found"))
        if settings.metrics_token is not None:
            sent = request.headers.get("authorization", "")
            expected = "Bearer " + settings.metrics_token.get_secret_value()
            if not hmac.compare_digest(sent.encode(), expected.encode()):
                return default.error_response(request.scope, Unauthenticated("a metrics token is required"))
        core: Core = request.app.state.core
        return Response(await to_thread.run_sync(core.metrics.exposition), media_type=CONTENT_TYPE)

    # Each surface at its prefix; every error answered in the shape of the surface the request is in.
    mount(app, mounted, default)
    # The probes first, then the surfaces, then the documentation routes FastAPI registered when it
    # was created (rarely asked for: every request would otherwise walk past them).
    first = [r for r in app.router.routes if getattr(r, "path", None) in ("/healthz", "/readyz")]
    first += [r for r in app.router.routes if isinstance(r, Mount) and isinstance(r.app, LazySurface)]
    app.router.routes[:] = first + [r for r in app.router.routes if r not in first]

    if settings.console:
        app.router.routes.insert(len(first), Mount("/console", app=LazyConsole(settings)))

        @app.get("/console", include_in_schema=False)
        async def console_home() -> Response:
            return RedirectResponse("/console/", status_code=302)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        """The web console (the API's documentation when the console is off)."""
        return RedirectResponse("/console" if settings.console else "/docs", status_code=302)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:  # on demand: every surface built first
            app.openapi_schema = merged_openapi(app, [m.load() for m in mounted], default.load())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # Forward authentication (the hot path of a proxy) is answered by the edge guard itself, before
    # routing and FastAPI's request handling (request id, body limit and common headers still apply).
    app.add_middleware(EdgeGuard, max_bytes=settings.max_body_bytes, surfaces=mounted, default=default,
                       front=(FORWARD_PATH, ForwardAuth(settings)))
    return app


class LazyConsole:
    """The web console (``strongroom.console``), imported and built on its first request: a process that
    serves only the API never loads Jinja2 or the templates."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            from strongroom.console import create_console

            self.app = create_console(self.settings)
        if scope["type"] == "http":
            # the console's own app replaces scope["app"]: hand it the core it serves
            scope["strongroom.core"] = scope["app"].state.core
        await self.app(scope, receive, send)


def worker_app() -> FastAPI:
    """The app of one worker of ``strongroom serve --workers N`` (a fresh process: logging first)."""
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings)
    gc.freeze()  # what start-up built, out of the collector's reach (see strongroom.serving.settle_heap)
    return app
