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
import json
import logging
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.auth.facts import RawHeaders, RequestFacts, client_ip
from strongroom.auth.schemes.base import AuthScheme
from strongroom.errors import (
    BadRequest,
    CredentialsRefused,
    DomainError,
    Forbidden,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    SignatureInvalid,
    Unauthenticated,
    ValidationFailed,
)
from strongroom.logs import CLIENT_REQUEST_ID, REQUEST_ID, access, new_request_id
from strongroom.metrics import Metrics
from strongroom.principal import Principal
from strongroom.surfaces.deps import current_principal

if TYPE_CHECKING:
    from fastapi.dependencies.models import Dependant
    from pydantic import BaseModel

    from strongroom.core import Core

log = logging.getLogger("strongroom.http")

# Scope keys: the auth gate reads a signed body before the caller is known; a bad body must not
# answer before a bad signature does, so the edge's body check is deferred to the gate then.
DEFER_BODY_CHECK = "strongroom.defer_body_check"
BODY_REFUSAL = "strongroom.body_refusal"

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
    a renderer for the body, the 500 body, the ``WWW-Authenticate`` challenge for 401s, and the
    body's model (documentation only: the OpenAPI document's error schema).

    Every response gets ``Retry-After`` when the error has one and ``Allow`` for a 405.
    """

    render: Callable[[Rendered], Response]
    internal: Callable[[], Response]
    rules: Mapping[type[DomainError], Rule] = field(default_factory=dict)
    challenge: str | None = None
    model: type[BaseModel] | None = None  # the body's shape, for the OpenAPI document (None: derived from samples)

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
            challenge = self.challenge
            if challenge.startswith("Bearer") and isinstance(error, (CredentialsRefused, SignatureInvalid)):
                # RFC 6750: credentials were sent but are expired, revoked, malformed or unknown
                challenge += ', error="invalid_token"'
            response.headers["WWW-Authenticate"] = challenge
        return response


def domain_error(exc: BaseException) -> DomainError | None:
    """Return ``exc`` as a domain error: itself, or the one a framework or database error stands
    for; None if unexpected."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, Refusal):
        return exc.error
    if isinstance(exc, DBAPIError):
        return database_error(exc)
    if isinstance(exc, RequestValidationError):
        return validation_error(exc)
    if isinstance(exc, StarletteHTTPException):
        return http_error(exc)
    return None


def database_error(exc: DBAPIError) -> DomainError | None:
    """A database that cannot be reached is a 503 to retry; a value it cannot store is a 400.

    Returns None for anything else (a bug: answered as the surface's 500). Never passes on the
    error's text, which holds the statement and its parameters.
    """
    if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else type(exc).__name__)
        return ServiceUnavailable("the database is unavailable; try again shortly", retry_after=2)
    if isinstance(exc, DataError):
        return BadRequest("a value is not acceptable (for example a NUL character)")
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

    def walk(dependant: Dependant) -> bool:
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
        except Exception as exc:  # noqa: BLE001 - routing errors (404, 405) and anything raised outside a route's
            # handler: answered in the surface's shape
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
        scope[DEFER_BODY_CHECK] = True
        try:
            if self.read_body_first:
                await facts.read_body()
            principal = await core.auth.authenticate(facts, self.schemes)
            state["principal"] = principal
            state["ratelimit"] = facts.ratelimit
            scope[DEFER_BODY_CHECK] = False
            if BODY_REFUSAL in scope:
                raise scope.pop(BODY_REFUSAL)
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


class Refusal(StarletteHTTPException):
    """A domain error raised where Starlette/FastAPI only pass HTTPExceptions through (inside ``receive``)."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.status, error.message)
        self.error = error


# Percent-encoded C0 controls and DEL in a query string: never meaningful in an id, a filter or a cursor.
_ENCODED_CONTROL = re.compile(rb"%(?:[01][0-9a-fA-F]|7[fF])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSON_NUL = re.compile(rb"\\u0000|\x00")
_FORM_NUL = re.compile(rb"%00|\x00")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refusal(MalformedBody(f"duplicate key {key[:40]!r} in a JSON object"))
        seen[key] = value
    return seen


def check_body(body: bytes, content_type: str) -> None:
    """Raise :class:`Refusal` (400) for a body no surface accepts: a NUL character anywhere, or a
    JSON object with a duplicate key (which JSON parsers would otherwise resolve by "last wins")."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        if _FORM_NUL.search(body):
            raise Refusal(MalformedBody("the body contains a NUL character"))
        return
    if not (kind == "application/json" or kind.endswith("+json")):
        return
    if _JSON_NUL.search(body):
        raise Refusal(MalformedBody("the body contains a NUL character"))
    try:
        json.loads(body, object_pairs_hook=_no_duplicate_keys)
    except ValueError:
        return  # malformed JSON: the route reports it (after authentication)


class EdgeGuard:
    """What every request passes first, answered in the shape of the surface that owns the path:

    * a body over ``max_bytes`` is refused by Content-Length before anything runs, or while it
      streams in; an invalid Content-Length is a 400;
    * a path or query string with control characters (NUL, ...) is a 400;
    * a body with a NUL character, or a JSON body with a duplicate key, is a 400 when the body is
      read (so after authentication: the auth gate reads no body first);
    * every response gets ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store``
      (API answers carry tokens, secrets and account data; nothing of it belongs in a cache).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, surfaces: Sequence[SurfaceApp], default: SurfaceApp) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.surfaces = sorted(surfaces, key=lambda s: -len(s.surface.prefix))
        self.default = default
        self.names = {s.surface.prefix: s.surface.name for s in surfaces}

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
        started = time.perf_counter()
        request_id = None
        error: DomainError | None = None
        has_body = False
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    error = MalformedBody("invalid Content-Length")
                    break
                if length > self.max_bytes:
                    error = PayloadTooLarge(f"the body exceeds {self.max_bytes} bytes")
                    break
                has_body = has_body or length > 0
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                sent = value.decode("latin-1")
                request_id = sent if CLIENT_REQUEST_ID.match(sent) else None
        request_id = request_id or new_request_id()
        token = REQUEST_ID.set(request_id)
        try:
            await self._serve(scope, receive, self._with_headers(scope, send, request_id, started),
                              error, has_body, content_type)
        finally:
            REQUEST_ID.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, error: DomainError | None, has_body: bool,
                     content_type: str) -> None:
        if error is None and (_CONTROL.search(scope["path"]) or _ENCODED_CONTROL.search(scope["query_string"])):
            error = BadRequest("the path or query string contains a control character")
        if error is not None:
            await self.owner(scope["path"]).error_response(scope, error)(scope, receive, send)
            return
        if has_body:
            receive = self._guarded(scope, receive, content_type)
        await self.app(scope, receive, send)

    def _with_headers(self, scope: Scope, send: Send, request_text: str, started: float) -> Send:
        """Return ``send`` adding the common headers (and counting and logging the answer) at response start."""
        metrics: Metrics = scope["app"].state.core.metrics
        request_id = request_text.encode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-content-type-options", b"nosniff"),
                           (b"cache-control", b"no-store"), (b"x-request-id", request_id)]
                window = scope.get("state", {}).get("ratelimit")
                if window is not None:
                    headers += [(b"ratelimit-limit", b"%d" % window[0]), (b"ratelimit-remaining", b"%d" % window[1]),
                                (b"ratelimit-reset", b"%d" % window[2])]
                message["headers"] = headers
                route = scope.get("route")
                metrics.request(self.names.get(scope.get("root_path", ""), "app"), scope["method"],
                                getattr(route, "path", "-"), message["status"])
                access(scope, message["status"], started, request_text)
            await send(message)

        return send_with_headers

    def _guarded(self, scope: Scope, receive: Receive, content_type: str) -> Receive:
        body = bytearray()
        limit = self.max_bytes

        async def guarded_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
                if len(body) > limit:
                    raise Refusal(PayloadTooLarge(f"the body exceeds {limit} bytes"))
                if not message.get("more_body", False):
                    try:
                        check_body(bytes(body), content_type)
                    except Refusal as refusal:
                        if not scope.get(DEFER_BODY_CHECK):
                            raise
                        scope[BODY_REFUSAL] = refusal  # the auth gate raises it once the caller is known
            return message

        return guarded_receive


