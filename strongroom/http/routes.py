"""Route declarations: a surface is declared, then built into a mounted sub-application.

A :class:`Surface` declares its prefix, the auth schemes it accepts (in order), its error table, its
routers (FastAPI ``APIRouter``\\ s of shape mapping) and the guards its routes use. A route declares
what it needs where it is written:

* a route that takes the caller (a :data:`~strongroom.http.gate.CurrentPrincipal` parameter) is behind
  the surface's auth gate: authenticated before its body is read or validated;
* ``@guarded(check)`` attaches a guard to the route it decorates (run after authentication, before the
  body); the surface lists the guards it uses in ``guards``;
* ``@direct`` says an endpoint takes only the caller and returns a ready ``Response``: the surface calls it
  with the gate's principal, without FastAPI's request handling (there is nothing for it to do: no
  parameters, no body, no serialisation). For the cheapest authenticated call (``GET /v1/me``).

:func:`build` checks the declarations and refuses to start (:class:`DeclarationError`) on a guard no route
uses, a route guard the surface does not list, a guard or ``@direct`` on a route that does not take the
caller, or a ``@direct`` endpoint of another shape. It reads only the endpoints' Python signatures and the
routes' public Starlette attributes (``matches``, ``handle``, ``methods``, ``endpoint``, ``path``).

The built :class:`SurfaceApp` routes within the surface itself (the first full match wins, as in
Starlette's ``Router``; a path matched only for other methods is a 405 whose ``Allow`` lists every method
of the path) and answers every error in the surface's shape. A :class:`LazySurface` is a surface mounted
before it is built (known by its name, prefix and error table): its routes are imported and built once, by
the first request that needs them or by :meth:`LazySurface.load` (a warm-up after start-up), so a process
answers its probes without having built every surface. :func:`mount` mounts the surfaces on the
application and registers one exception handler that answers in the shape of the surface a request is in
(the paths outside every surface: the default surface's).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from anyio import to_thread
from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from strongroom.auth.schemes.base import AuthScheme
from strongroom.errors import DomainError, Forbidden, MalformedBody, MethodNotAllowed, NotFound
from strongroom.http.errors import ErrorTable, domain_error, log_unexpected
from strongroom.http.gate import CurrentPrincipal, Gate, Guard, settle
from strongroom.principal import Principal

if TYPE_CHECKING:
    from strongroom.core import Core

log = logging.getLogger("strongroom.http")

F = TypeVar("F", bound=Callable[..., Any])
SURFACE = "strongroom.surface"  # scope key: the SurfaceApp a request is in

_GUARDS: dict[Callable[..., Any], Guard] = {}
_DIRECT: set[Callable[..., Any]] = set()


def guarded(guard: Guard) -> Callable[[F], F]:
    """Attach ``guard`` to the route whose endpoint this decorates (the endpoint is returned unchanged)."""

    def attach(endpoint: F) -> F:
        if _GUARDS.setdefault(endpoint, guard) is not guard:
            raise DeclarationError(f"{endpoint.__qualname__} has two guards")
        return endpoint

    return attach


def direct(endpoint: F) -> F:
    """Declare that ``endpoint`` takes only the caller and returns a ready Response (see the module's docstring)."""
    _DIRECT.add(endpoint)
    return endpoint


class DeclarationError(Exception):
    """A surface's routes and declarations do not agree (raised by :func:`build`, at start-up)."""


@dataclass(frozen=True)
class Surface:
    """A face of Strongroom, declared: everything :func:`build` needs to build and mount it."""

    name: str
    prefix: str  # mount point, e.g. "/v1"; routes are relative to it
    schemes: tuple[AuthScheme, ...]
    errors: ErrorTable
    routers: tuple[APIRouter, ...]
    guards: tuple[Guard, ...] = ()  # every guard its routes attach with @guarded
    title: str = ""


@dataclass(frozen=True)
class Plan:
    """What the surface runs for one route that takes the caller: its gate, and the endpoint if ``@direct``."""

    gate: Gate
    direct: Callable[[Principal], Awaitable[Response]] | None = None


def takes_principal(endpoint: Callable[..., Any]) -> bool:
    """Return True if one of ``endpoint``'s parameters is the caller (annotated :data:`CurrentPrincipal`)."""
    return any(p.annotation == CurrentPrincipal for p in _signature(endpoint).parameters.values())


def _signature(endpoint: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(endpoint, eval_str=True)


def _direct_shape_ok(route: BaseRoute, endpoint: Callable[..., Any]) -> bool:
    signature = _signature(endpoint)
    returns = signature.return_annotation
    return (inspect.iscoroutinefunction(endpoint) and len(signature.parameters) == 1
            and isinstance(returns, type) and issubclass(returns, Response)
            and not getattr(route, "dependencies", None))


def plan_routes(surface: Surface, routes: Sequence[BaseRoute]) -> list[Plan | None]:
    """Return the plan of each route of ``surface`` (None for a route that does not take the caller); raise
    :class:`DeclarationError` listing every disagreement between the routes and the declarations."""
    problems: list[str] = []
    plans: list[Plan | None] = []
    used: set[Guard] = set()
    for route in routes:
        endpoint: Callable[..., Any] | None = getattr(route, "endpoint", None)
        if endpoint is None:
            plans.append(None)
            continue
        where = f"{surface.name} {getattr(route, 'path', '?')} ({endpoint.__qualname__})"
        gated = takes_principal(endpoint)
        guard = _GUARDS.get(endpoint)
        if guard is not None:
            used.add(guard)
            if guard not in surface.guards:
                problems.append(f"{where}: its guard {guard.__qualname__} is not in the surface's guards")
            if not gated:
                problems.append(f"{where}: has a guard but does not take the caller")
        is_direct = endpoint in _DIRECT
        if is_direct and not (gated and _direct_shape_ok(route, endpoint)):
            problems.append(f"{where}: @direct needs an async endpoint taking only the caller and returning a "
                            "Response, with no other dependency")
        plans.append(Plan(Gate(surface.schemes, guard), endpoint if is_direct else None) if gated else None)
    problems += [f"{surface.name}: the guard {g.__qualname__} guards no route" for g in surface.guards if g not in used]
    if problems:
        raise DeclarationError("; ".join(problems))
    return plans


class SurfaceApp:
    """A built surface: an ASGI app that routes within the surface, runs each route's gate, and answers
    every error (raised by a route, its gate, routing or the edge) in the surface's shape."""

    def __init__(self, surface: Surface) -> None:
        self.surface = surface
        self.routes: list[BaseRoute] = [route for router in surface.routers for route in router.routes]
        # (route, its plan): routes compare by value (and are unhashable), so they are kept in pairs
        self.plans = list(zip(self.routes, plan_routes(surface, self.routes), strict=True))

    @property
    def name(self) -> str:
        """The surface's name."""
        return self.surface.name

    @property
    def prefix(self) -> str:
        """Where the surface is mounted."""
        return self.surface.prefix

    def gated(self, route: BaseRoute) -> bool:
        """Return True if ``route`` is behind the surface's auth gate."""
        return any(r is route and plan is not None for r, plan in self.plans)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SURFACE] = self
        try:
            partial: list[BaseRoute] = []
            for route, plan in self.plans:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    scope["route"] = route
                    await self._serve(route, plan, scope, receive, send)
                    return
                if match is Match.PARTIAL:
                    partial.append(route)
            if partial:
                scope["route"] = partial[0]
                raise MethodNotAllowed(allow=allowed_methods(partial))
            raise NotFound("not found")
        except Exception as exc:  # noqa: BLE001 - every failure is answered in the surface's shape
            response = await self.handle(scope, exc)
            await response(scope, receive, send)

    @staticmethod
    async def _serve(route: BaseRoute, plan: Plan | None, scope: Scope, receive: Receive, send: Send) -> None:
        if plan is None:
            await route.handle(scope, receive, send)
            return
        principal, receive, facts = await plan.gate.admit(scope, receive)
        app: ASGIApp = route.handle if plan.direct is None else await plan.direct(principal)
        if facts.replay is None:
            await app(scope, receive, send)
        else:  # a signed request: an error answer gives its signature up (see settle)
            await settle(app, scope, receive, send, facts)

    async def handle(self, scope: Scope, exc: BaseException) -> Response:
        """Return the surface's response for ``exc``; an authenticated caller's 403 is audited."""
        return await answer_error(self.surface.errors, scope, exc)

    def error_response(self, scope: Scope, exc: BaseException) -> Response:
        """Return the surface's response for ``exc`` (a 500 without detail for the unexpected)."""
        return error_response(self.surface.errors, scope, exc)


def error_response(errors: ErrorTable, scope: Scope, exc: BaseException) -> Response:
    """Return the response of the error table ``errors`` for ``exc`` (a 500 without detail for the unexpected,
    logged by type and frames)."""
    error = domain_error(exc)
    if error is not None:
        return errors.response(error)
    if isinstance(exc, ClientDisconnect):
        log.info("client aborted %s %s", scope.get("method"), scope.get("path"))
        return errors.response(MalformedBody("the client closed the connection"))
    log_unexpected(scope, exc)
    return errors.internal()


async def answer_error(errors: ErrorTable, scope: Scope, exc: BaseException) -> Response:
    """Return :func:`error_response`; an authenticated caller's 403 is audited before it is returned."""
    response = error_response(errors, scope, exc)
    error = domain_error(exc)
    principal = scope.get("state", {}).get("principal")
    if isinstance(error, Forbidden) and principal is not None:
        await audit_refusal(scope, principal, error)
    return response


def allowed_methods(routes: Sequence[BaseRoute]) -> tuple[str, ...]:
    """Every method of ``routes`` (the routes matching a path for other methods), sorted."""
    return tuple(sorted({m for route in routes for m in (getattr(route, "methods", None) or ())}))


async def audit_refusal(scope: Scope, principal: Principal, error: DomainError) -> None:
    """Authorization failures (scope, ownership) of an authenticated caller go to the audit log."""
    core: Core = scope["app"].state.core
    await core.audit_log.record_now(
        "auth.authorize", "refused", principal=principal,
        details={"reason": error.code, "method": scope.get("method"), "path": str(scope.get("path", ""))[:200]})


def build(surface: Surface) -> SurfaceApp:
    """Return the ASGI app of ``surface`` (mount it at ``surface.prefix``); raises DeclarationError."""
    return SurfaceApp(surface)


class LazySurface:
    """A surface mounted before it is built: known by its name, prefix and error table (what the edge and
    the exception handlers need), its routes imported and built by :meth:`load`, once.

    The first request under the prefix builds it in a worker thread (the event loop goes on answering other
    requests, the probes among them); requests that come meanwhile wait for that build, and a build that fails
    answers them the surface's 500 (logged) and is tried again by the next request. Any thread may call
    :meth:`load` (a warm-up after start-up, the OpenAPI document, a test that builds every surface eagerly).
    """

    def __init__(self, name: str, prefix: str, errors: ErrorTable, declare: Callable[[], Surface]) -> None:
        self.name = name
        self.prefix = prefix
        self.errors = errors
        self.built: SurfaceApp | None = None  # set once, by the first load that succeeds
        self._declare = declare
        self._lock = threading.Lock()

    def load(self) -> SurfaceApp:
        """Return the built surface, declaring (importing its routes) and building it on the first call; a
        concurrent call waits for that one. Raises DeclarationError (the routes and declarations disagree, or the
        declared surface is not this one's name, prefix and error table) or what declaring raised; nothing is
        kept then, so the next call tries again."""
        built = self.built
        if built is not None:
            return built
        with self._lock:
            built = self.built
            if built is None:
                surface = self._declare()
                if (surface.name, surface.prefix) != (self.name, self.prefix) or surface.errors is not self.errors:
                    raise DeclarationError(f"{self.name} at {self.prefix} was declared as {surface.name} at "
                                           f"{surface.prefix} (or with another error table)")
                built = self.built = build(surface)
            return built

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        built = self.built
        if built is None:
            try:
                built = await to_thread.run_sync(self.load)
            except Exception as exc:  # noqa: BLE001 - a surface that does not build answers its 500, never hangs
                scope[SURFACE] = self
                await self.error_response(scope, exc)(scope, receive, send)
                return
        await built(scope, receive, send)

    async def handle(self, scope: Scope, exc: BaseException) -> Response:
        """Return the surface's response for ``exc``; an authenticated caller's 403 is audited."""
        return await answer_error(self.errors, scope, exc)

    def error_response(self, scope: Scope, exc: BaseException) -> Response:
        """Return the surface's response for ``exc`` (a 500 without detail for the unexpected)."""
        return error_response(self.errors, scope, exc)


#: A mounted surface: built at once, or on demand.
Mounted = SurfaceApp | LazySurface


class SurfaceMount(Mount):
    """The mount of a :class:`LazySurface`: once it is built, a request is handed to the built surface
    directly (as a mount of a built surface does), not through the lazy one."""

    def __init__(self, surface: LazySurface) -> None:
        super().__init__(surface.prefix, app=surface, name=surface.name)
        self.surface = surface
        self.under = self.path + "/"  # what Mount's expression matches: the prefix, a slash, anything

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Match as :class:`Mount` does (a path under the prefix), with a prefix test instead of its regular
        expression when the application is served at the root (every request of every surface passes here)."""
        if scope.get("root_path") or scope["type"] not in ("http", "websocket"):
            return super().matches(scope)
        if not scope["path"].startswith(self.under):
            return Match.NONE, {}
        return Match.FULL, {"path_params": dict(scope.get("path_params", {})),
                            "app_root_path": scope.get("app_root_path", ""), "root_path": self.path,
                            "endpoint": self.app}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        surface = self.surface
        await (surface.built or surface)(scope, receive, send)


# What a route's handling can raise that the application's exception handlers see first (inside
# FastAPI's request handling): answered by the surface the request is in.
HANDLED: tuple[type[BaseException], ...] = (HTTPException, RequestValidationError, DomainError, DBAPIError,
                                            StaleDataError, ClientDisconnect)


def mount(app: FastAPI, surfaces: Sequence[Mounted], default: Mounted) -> None:
    """Mount every surface at its prefix on ``app``, and answer every error in the shape of the surface
    the request is in (``default``'s for the paths outside every surface). Replaces ``app``'s exception
    handlers (FastAPI's own would answer in FastAPI's shape)."""

    async def answer(request: Request, exc: Exception) -> Response:
        surface_app: Mounted = request.scope.get(SURFACE, default)
        return await surface_app.handle(request.scope, exc)

    for surface_app in surfaces:
        app.router.routes.append(SurfaceMount(surface_app) if isinstance(surface_app, LazySurface)
                                 else Mount(surface_app.prefix, app=surface_app, name=surface_app.name))
    app.exception_handlers = {**dict.fromkeys(HANDLED, answer), Exception: answer}
