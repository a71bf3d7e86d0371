"""The native surface: /v1, errors as RFC 9457 application/problem+json."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from strongroom.errors import DomainError
from strongroom.surfaces.base import Surface

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Content", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra) -> Response:
    body = {"type": f"https://strongroom.dev/problems/{code}", "title": TITLES.get(status, "Error"),
            "status": status, "detail": detail, "code": code, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


class NativeSurface(Surface):
    name = "native"
    prefix = "/v1/"

    def render_error(self, error: DomainError) -> Response:
        headers: dict[str, str] = {}
        if error.retry_after:
            headers["Retry-After"] = str(error.retry_after)
        if error.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="strongroom"'
        extra = {"errors": error.fields} if error.fields else {}
        return problem(error.status, error.code, error.message, headers, **extra)

    def render_internal(self) -> Response:
        return problem(500, "internal", "an unexpected error occurred")


SURFACE = NativeSurface()
Principal_ = SURFACE.authenticated()


def router(**kwargs) -> APIRouter:
    return APIRouter(route_class=SURFACE.route_class(), **kwargs)
