"""What every surface shares: request facts for authentication, and a route class that renders
domain errors, validation errors and unexpected failures in the surface's own shape."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from strongroom.core import Core
from strongroom.errors import (
    BadRequest,
    DomainError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    ValidationFailed,
)
from strongroom.principal import Principal
from strongroom.services.auth import RequestFacts, Scheme, client_ip

log = logging.getLogger("strongroom.http")


def get_core(request: Request) -> Core:
    return request.app.state.core


CoreDep = Annotated[Core, Depends(get_core)]


def peer_ip(request: Request) -> str | None:
    """Return the client IP, believing X-Forwarded-For only from configured trusted proxies."""
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), request.app.state.trusted_proxies)


async def request_facts(request: Request) -> RequestFacts:
    raw = request.scope.get("raw_path")
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else request.scope["path"]
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}
    return RequestFacts(
        method=request.method,
        path=path,
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        # only native signatures cover the body, and only a request that announces one has one
        body=await request.body() if "sr-access-key" in headers and (
            "content-length" in headers or "transfer-encoding" in headers) else b"",
        client_ip=peer_ip(request),
    )


def http_error(status: int, detail: str | None = None) -> DomainError:
    """Map a framework HTTP error (no route, wrong method, ...) to a domain error."""
    if status == 404:
        return NotFound(detail or "not found")
    if status == 405:
        err = BadRequest("method not allowed")
        err.status = 405
        err.code = "method_not_allowed"
        return err
    if status == 401:
        return Unauthenticated()
    if status == 403:
        return Forbidden()
    if status == 413:
        return PayloadTooLarge()
    err = BadRequest(detail or "bad request")
    err.status = status if 400 <= status < 500 else 400
    return err


def validation_error(exc: RequestValidationError) -> DomainError:
    """Turn pydantic/FastAPI errors into ValidationFailed naming each field; inputs are never echoed."""
    fields: dict[str, str] = {}
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return BadRequest("malformed JSON body")
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


def log_unexpected(request: Request, exc: BaseException) -> None:
    """Log an unexpected failure without its message (which might hold a secret): type and frames only."""
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-8)) if exc.__traceback__ else ""
    log.error("unhandled %s in %s %s\n%s", type(exc).__name__, request.method, request.url.path, frames)


class Surface:
    """A face of Strongroom: its mount prefix, accepted auth schemes and error shape."""

    name = "surface"
    prefix = "/"
    schemes: frozenset[Scheme] = frozenset(Scheme)

    def render_error(self, error: DomainError) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def render_internal(self) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def owns(self, path: str) -> bool:
        return path == self.prefix.rstrip("/") or path.startswith(self.prefix)

    def authenticated(self) -> Callable[..., Any]:
        """Return a dependency that authenticates with this surface's schemes and yields a Principal."""
        surface = self

        async def principal(request: Request) -> Principal:
            core: Core = request.app.state.core
            found = await core.auth.authenticate(await request_facts(request), surface.schemes)
            request.state.principal = found
            return found

        principal.authenticates = True  # type: ignore[attr-defined]  (see _needs_auth)
        return principal

    def route_class(self) -> type[APIRoute]:
        surface = self

        class SurfaceRoute(APIRoute):
            def get_route_handler(self) -> Callable:
                original = super().get_route_handler()

                route = self

                async def handler(request: Request) -> Response:
                    try:
                        return await original(request)
                    except DomainError as exc:
                        await _audit_scope_refusal(request, exc)
                        return surface.render_error(exc)
                    except RequestValidationError as exc:
                        refusal = await _anonymous_refusal(request, route, surface)
                        return surface.render_error(refusal or validation_error(exc))
                    except StarletteHTTPException as exc:
                        refusal = await _anonymous_refusal(request, route, surface) if exc.status_code == 400 else None
                        return surface.render_error(refusal or http_error(exc.status_code, None))
                    except Exception as exc:
                        log_unexpected(request, exc)
                        return surface.render_internal()

                return handler

        return SurfaceRoute


def _needs_auth(dependant) -> bool:
    return any(getattr(d.call, "authenticates", False) or _needs_auth(d) for d in dependant.dependencies)


async def _anonymous_refusal(request: Request, route: APIRoute, surface: Surface) -> DomainError | None:
    """FastAPI parses a JSON body before it runs dependencies, so a malformed body would be
    answered before authentication. For routes that need a principal, authenticate first: an
    anonymous or badly signed caller gets 401/403/429, never a description of its body."""
    if getattr(request.state, "principal", None) is not None or not _needs_auth(route.dependant):
        return None
    core: Core = request.app.state.core
    try:
        request.state.principal = await core.auth.authenticate(await request_facts(request), surface.schemes)
    except DomainError as exc:
        return exc
    return None


async def _audit_scope_refusal(request: Request, exc: DomainError) -> None:
    """Authorization failures (scope, ownership) of an authenticated caller go to the audit log."""
    principal = getattr(request.state, "principal", None)
    if principal is None or not isinstance(exc, Forbidden):
        return
    from anyio import to_thread

    core: Core = request.app.state.core
    await to_thread.run_sync(lambda: core.audit.record_now(
        "auth.authorize", "refused", principal=principal,
        details={"reason": exc.code, "method": request.method, "path": request.url.path[:200]}))
