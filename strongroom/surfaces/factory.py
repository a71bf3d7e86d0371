"""Surfaces are declared, then built by one factory into a mounted sub-application.

A :class:`Surface` declares its prefix, the auth schemes it accepts (in order), its error table
(rules keyed by exception class, looked up along the class's MRO as Starlette finds exception
handlers), whether it authenticates before reading a body, checks to run before the body, and
its routes. :func:`build` turns it into a :class:`SurfaceApp`, an ASGI app the application mounts
under the prefix. Routes that take a :data:`CurrentPrincipal` are wrapped in an :class:`AuthGate`:
authentication (and any declared guard) runs before FastAPI reads or validates the body, so an
anonymous caller gets the surface's 401, never a description of its body.
"""

from __future__ import annotations

import copy
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.auth.facts import RawHeaders, RequestFacts, client_ip
from strongroom.auth.schemes.base import AuthScheme
from strongroom.errors import (
    BadRequest,
    DomainError,
    Forbidden,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    ValidationFailed,
)
from strongroom.principal import Principal
from strongroom.surfaces.deps import current_principal

if TYPE_CHECKING:
    from strongroom.core import Core

log = logging.getLogger("strongroom.http")

# A check that runs after authentication and before the body: (core, principal, raw path params).
Guard = Callable[["Core", Principal, Mapping[str, Any]], None]


# --- error tables ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """How a surface answers one class of error. ``None`` keeps the error's own value."""

    status: int | None = None
    code: str | int | None = None
    message: str | Callable[[DomainError], str] | None = None


@dataclass(frozen=True)
class Rendered:
    """An error resolved through a table: what the surface's body is built from."""

    status: int
    code: str | int
    message: str
    error: DomainError


@dataclass(frozen=True)
class ErrorTable:
    """A surface's errors: rules keyed by exception class (most specific along the MRO wins),
    a renderer for the body, the 500 body, and the ``WWW-Authenticate`` challenge for 401s.

    Every response gets ``Retry-After`` when the error has one and ``Allow`` for a 405.
    """

    render: Callable[[Rendered], Response]
    internal: Callable[[], Response]
    rules: Mapping[type[DomainError], Rule] = field(default_factory=dict)
    challenge: str | None = None

    def rule_for(self, error_type: type[DomainError]) -> Rule:
        """Return the rule of the nearest class of ``error_type``'s MRO that has one (else the error's own)."""
        for cls in error_type.__mro__:
            rule = self.rules.get(cls)
            if rule is not None:
                return rule
        return Rule()

    def resolve(self, error: DomainError) -> Rendered:
        """Return the status, code and message ``error`` has on this surface."""
        rule = self.rule_for(type(error))
        message = rule.message(error) if callable(rule.message) else rule.message
        return Rendered(rule.status or error.status, rule.code if rule.code is not None else error.code,
                        message if message is not None else error.message, error)

    def response(self, error: DomainError) -> Response:
        """Return the surface's response for ``error``, with its headers."""
        rendered = self.resolve(error)
        response = self.render(rendered)
        if error.retry_after:
            response.headers["Retry-After"] = str(error.retry_after)
        if isinstance(error, MethodNotAllowed) and error.allow:
            response.headers["Allow"] = ", ".join(error.allow)
        if rendered.status == 401 and self.challenge:
            response.headers["WWW-Authenticate"] = self.challenge
        return response


def domain_error(exc: BaseException) -> DomainError | None:
    """Return ``exc`` as a domain error: itself, or the one a framework error stands for; None if unexpected."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, RequestValidationError):
        return validation_error(exc)
    if isinstance(exc, StarletteHTTPException):
        return http_error(exc)
    return None


def http_error(exc: StarletteHTTPException) -> DomainError:
    """Map a framework HTTP error (no route, wrong method, body too large, unparsable body) to a domain error."""
    status = exc.status_code
    if status == 404:
        return NotFound("not found")
    if status == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed(allow=tuple(m.strip() for m in allow.split(",") if m.strip()))
    if status == 413:
        return PayloadTooLarge(str(exc.detail) if exc.detail else None)
    if status == 401:
        return Unauthenticated()
    if status == 403:
        return Forbidden()
    if status == 400:
        return MalformedBody("the body cannot be parsed")
    return BadRequest("bad request")


def validation_error(exc: RequestValidationError) -> DomainError:
    """Turn pydantic/FastAPI errors into ValidationFailed naming each field; inputs are never echoed."""
    fields: dict[str, str] = {}
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return MalformedBody("malformed JSON body")
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "body"
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "missing":
            msg = "required"
        else:
            msg = str(err.get("msg", "invalid"))
        fields.setdefault(name, msg)
    return ValidationFailed("the request is not valid", fields=fields)


def log_unexpected(scope: Scope, exc: BaseException) -> None:
    """Log an unexpected failure without its message (which might hold a secret): type and frames only."""
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-8)) if exc.__traceback__ else ""
    log.error("unhandled %s in %s %s\n%s", type(exc).__name__, scope.get("method"), scope.get("path"), frames)


# --- declaration -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Surface:
    """A face of Strongroom, declared: everything the factory needs to build and mount it."""

    name: str
    prefix: str  # mount point, e.g. "/v1"; routes are relative to it
    schemes: tuple[AuthScheme, ...]
    errors: ErrorTable
    routers: tuple[APIRouter, ...]
    authenticate_before_body: bool = True
    guards: Mapping[str, Guard] = field(default_factory=dict)  # route name -> check before the body
    title: str = ""
    description: str = ""


def principal_only(route: APIRoute) -> bool:
    """Return True if the route's endpoint takes nothing but the principal (async, no parameters,
    no body, no other dependency) and returns a ready Response: FastAPI would only resolve the
    principal and pass its Response through, so the factory calls it directly."""
    dependant = route.dependant
    return (inspect.iscoroutinefunction(route.endpoint)
            and len(dependant.dependencies) == 1 and dependant.dependencies[0].call is current_principal
            and not dependant.dependencies[0].dependencies
            and not (dependant.path_params or dependant.query_params or dependant.header_params
                     or dependant.cookie_params or dependant.body_params)
            and inspect.signature(route.endpoint).return_annotation in (Response, "Response"))


def needs_principal(route: APIRoute) -> bool:
    """Return True if the route (or one of its dependencies) takes the current principal."""

    def walk(dependant: Any) -> bool:
        return any(d.call is current_principal or walk(d) for d in dependant.dependencies)

    return walk(route.dependant)


# --- the built surface -----------------------------------------------------------------------------

class SurfaceApp:
    """A built surface: an ASGI app that routes within the surface and answers every error,
    whether raised by a route, by routing (404/405) or by the body limit, in the surface's shape."""

    def __init__(self, surface: Surface) -> None:
        self.surface = surface
        self.routes: list[BaseRoute] = []
        for router in surface.routers:
            for route in router.routes:
                if isinstance(route, APIRoute) and needs_principal(route):
                    route = copy.copy(route)  # routers are shared by every app built in this process
                    inner = self._direct(route) if principal_only(route) else route.app
                    route.app = AuthGate(inner, self, surface.guards.get(route.name),
                                         read_body_first=not surface.authenticate_before_body)
                self.routes.append(route)
        self.router = Router(routes=self.routes, redirect_slashes=False)
        # what FastAPI's request handling looks up along the exception's MRO (Starlette's scheme)
        self.exception_handlers: tuple[dict[Any, Any], dict[int, Any]] = ({Exception: self.handle}, {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["starlette.exception_handlers"] = self.exception_handlers
        try:
            await self.router(scope, receive, send)
        except Exception as exc:  # routing errors (404, 405) and anything raised outside a route's handler
            await self.error_response(scope, exc)(scope, receive, send)

    def _direct(self, route: APIRoute) -> ASGIApp:
        """Return an ASGI app calling ``route``'s endpoint with the gate's principal (see principal_only)."""
        endpoint = route.endpoint

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                response = await endpoint(scope["state"]["principal"])
            except Exception as exc:  # noqa: BLE001 - answered in the surface's shape, like any route
                response = await self.handle(Request(scope, receive, send), exc)
            await response(scope, receive, send)

        return app

    async def handle(self, request: Request, exc: Exception) -> Response:
        """The exception handler FastAPI calls for anything a route raises."""
        response = self.error_response(request.scope, exc)
        error = domain_error(exc)
        principal = request.scope.get("state", {}).get("principal")
        if isinstance(error, Forbidden) and principal is not None:
            await self._audit_refusal(request.scope, principal, error)
        return response

    def error_response(self, scope: Scope, exc: BaseException) -> Response:
        """Return the surface's response for ``exc`` (a 500 without detail for the unexpected)."""
        error = domain_error(exc)
        if error is not None:
            return self.surface.errors.response(error)
        if isinstance(exc, ClientDisconnect):
            log.info("client aborted %s %s", scope.get("method"), scope.get("path"))
            return self.surface.errors.response(MalformedBody("the client closed the connection"))
        log_unexpected(scope, exc)
        return self.surface.errors.internal()

    @staticmethod
    async def _audit_refusal(scope: Scope, principal: Principal, error: DomainError) -> None:
        """Authorization failures (scope, ownership) of an authenticated caller go to the audit log."""
        from anyio import to_thread

        core: Core = scope["app"].state.core
        await to_thread.run_sync(lambda: core.audit.record_now(
            "auth.authorize", "refused", principal=principal,
            details={"reason": error.code, "method": scope.get("method"), "path": str(scope.get("path", ""))[:200]}))


class AuthGate:
    """Wraps a route that needs a principal: authenticates with the surface's schemes and runs the
    route's guard before the route's handler (and so before its body is read or validated)."""

    def __init__(self, app: ASGIApp, surface_app: SurfaceApp, guard: Guard | None, *,
                 read_body_first: bool = False) -> None:
        self.app = app
        self.surface_app = surface_app
        self.schemes = surface_app.surface.schemes
        self.guard = guard
        self.read_body_first = read_body_first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        core: Core = scope["app"].state.core
        body: list[bytes] = []

        async def read_body() -> bytes:
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body.append(b"".join(chunks))
            return body[0]

        facts = request_facts(scope, read_body)
        state = scope.setdefault("state", {})
        try:
            if self.read_body_first:
                await facts.read_body()
            principal = await core.auth.authenticate(facts, self.schemes)
            state["principal"] = principal
            if self.guard is not None:
                self.guard(core, principal, scope.get("path_params", {}))
        except Exception as exc:  # noqa: BLE001 - every failure is answered in the surface's shape
            response = self.surface_app.error_response(scope, exc)
            error = domain_error(exc)
            if isinstance(error, Forbidden) and state.get("principal") is not None:
                await self.surface_app._audit_refusal(scope, state["principal"], error)
            await response(scope, receive, send)
            return
        if body:
            receive = _replay(body[0], receive)
        await self.app(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive that yields ``body`` once (already read for authentication), then the rest."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def request_facts(scope: Scope, body_reader: Callable[[], Awaitable[bytes]] | None = None) -> RequestFacts:
    """Return what authentication reads from the request in ``scope`` (nothing decoded that is not asked for)."""
    raw = scope.get("raw_path")
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else scope["path"]
    headers = RawHeaders(scope["headers"])
    client = scope.get("client")
    trusted = scope["app"].state.trusted_proxies
    ip = client_ip(client[0] if client else None, headers.get("x-forwarded-for") if trusted else None, trusted)
    return RequestFacts(scope["method"], path, scope.get("query_string", b"").decode("latin-1"), headers,
                        client_ip=ip, body_reader=body_reader)


def build(surface: Surface) -> SurfaceApp:
    """Return the ASGI app of ``surface`` (mount it at ``surface.prefix``)."""
    return SurfaceApp(surface)


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with a 413 in the shape of the surface that owns the path:
    by Content-Length before anything runs, or while a chunked body streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int, surfaces: Sequence[SurfaceApp], default: SurfaceApp) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.surfaces = sorted(surfaces, key=lambda s: -len(s.surface.prefix))
        self.default = default

    def owner(self, path: str) -> SurfaceApp:
        """Return the surface whose prefix ``path`` is under (the default surface otherwise)."""
        for surface_app in self.surfaces:
            prefix = surface_app.surface.prefix
            if path == prefix or path.startswith(prefix + "/"):
                return surface_app
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
                except ValueError:
                    error: DomainError = MalformedBody("invalid Content-Length")
                else:
                    if not too_large:
                        break
                    error = PayloadTooLarge(f"the body exceeds {self.max_bytes} bytes")
                await self.owner(scope["path"]).error_response(scope, error)(scope, receive, send)
                return
            if name == b"transfer-encoding":
                receive = self._limited(receive)
                break
        await self.app(scope, receive, send)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException: FastAPI re-raises those while it reads a body (others become 400).
                    raise StarletteHTTPException(413, f"the body exceeds {limit} bytes")
            return message

        return limited_receive
