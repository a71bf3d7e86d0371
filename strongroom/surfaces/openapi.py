"""One OpenAPI document for the application and every mounted surface."""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from strongroom.auth.schemes.base import AuthScheme
from strongroom.auth.schemes.signed import SignedScheme
from strongroom.errors import (
    Conflict,
    DomainError,
    Forbidden,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    ValidationFailed,
)
from strongroom.surfaces.factory import AuthGate, Surface, SurfaceApp

REF = "#/components/schemas/"


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (REF + renames.get(v[len(REF):], v[len(REF):]) if k == "$ref" and isinstance(v, str)
                    and v.startswith(REF) else _rename_refs(v, renames)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def _schema_of(value: Any) -> dict[str, Any]:
    """A JSON Schema for the shape of ``value`` (a rendered error body)."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, str):
        return {"type": "string"}
    if value is None:
        return {"nullable": True}
    if isinstance(value, list):
        return {"type": "array", "items": _schema_of(value[0]) if value else {}}
    if isinstance(value, dict):
        return {"type": "object", "properties": {k: _schema_of(v) for k, v in value.items()}}
    return {}


def error_schema(surface: Surface) -> tuple[str, dict[str, Any]]:
    """Return the media type and JSON Schema of ``surface``'s error body, taken from its real
    renderer (a validation error naming a field, so optional parts show too)."""
    response = surface.errors.response(ValidationFailed("the request is not valid", fields={"name": "required"}))
    body = json.loads(bytes(response.body))
    schema = _schema_of(body)
    schema["required"] = [k for k in body if k not in ("errors", "error_attributes")]
    return (response.media_type or "application/json"), {**schema, "example": body}


def _errors_of(route: APIRoute, gated: bool) -> list[DomainError]:
    """The classes of error ``route`` can answer, as one instance each."""
    dependant = route.dependant
    found: list[DomainError] = [ServiceUnavailable("a backing service is unavailable", retry_after=2)]
    if gated:
        found += [Unauthenticated(), Forbidden(), RateLimited(retry_after=1)]
    if dependant.body_params:
        found += [MalformedBody(), PayloadTooLarge(), ValidationFailed()]
    if dependant.query_params or dependant.path_params:
        found.append(ValidationFailed())
    if dependant.path_params:
        found.append(NotFound())
    if set(route.methods or ()) & {"POST", "PUT", "PATCH", "DELETE"}:
        found.append(Conflict())
    return found


def _document_operation(operation: dict[str, Any], route: APIRoute, surface: Surface, gated: bool,
                        error_ref: str, media: str) -> None:
    """Add the surface's security and every error status the operation can answer (in the surface's
    own error schema, replacing FastAPI's generic 422)."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for code, response in list(responses.items()):
        if code == "422" and "HTTPValidationError" in json.dumps(response):
            del responses[code]
    for error in _errors_of(route, gated):
        status = surface.errors.resolve(error).status
        entry = responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
        entry.setdefault("content", {media: {"schema": {"$ref": error_ref}}})
        if status in (429, 503):
            entry.setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
    operation["responses"] = dict(sorted(responses.items()))
    if gated:
        operation["security"] = [req for scheme in surface.schemes for req in _requirements(scheme)]
    else:
        operation["security"] = []


def _requirements(scheme: AuthScheme) -> list[dict[str, list[str]]]:
    """OpenAPI security requirements of one scheme: its header sets are one requirement (all
    needed together) for a signed scheme, alternatives otherwise."""
    names = list(scheme.openapi())
    if isinstance(scheme, SignedScheme):
        return [{name: [] for name in names}]
    return [{name: []} for name in names]


def merged_openapi(app: FastAPI, surfaces: Sequence[SurfaceApp]) -> dict[str, Any]:
    """Return the application's OpenAPI document: its own routes plus every surface's, under its prefix.

    Schema names that two surfaces use for different shapes are kept apart by prefixing the later
    one with its surface's name.
    """
    own = [r for r in app.routes if isinstance(r, APIRoute)]
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=own)
    paths: dict[str, Any] = doc.setdefault("paths", {})
    components: dict[str, Any] = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    security: dict[str, Any] = components.setdefault("securitySchemes", {})
    for surface_app in surfaces:
        surface = surface_app.surface
        part = get_openapi(title=surface.title or surface.name, version=app.version,
                           routes=[r for r in surface_app.routes if isinstance(r, APIRoute)])
        renames: dict[str, str] = {}
        own_schemas = part.get("components", {}).get("schemas", {})
        for name, schema in own_schemas.items():
            if name in schemas and json.dumps(schemas[name], sort_keys=True) != json.dumps(schema, sort_keys=True):
                renames[name] = "".join(w.title() for w in surface.name.replace("-", "_").split("_")) + name
        for name, schema in own_schemas.items():
            schemas[renames.get(name, name)] = _rename_refs(schema, renames)
        media, schema = error_schema(surface)
        error_name = "".join(w.title() for w in surface.name.replace("-", "_").split("_")) + "Error"
        schemas[error_name] = schema
        routes = {(r.path, m.lower()): r for r in surface_app.routes if isinstance(r, APIRoute)
                  for m in r.methods or ()}
        for path, operations in part.get("paths", {}).items():
            for method, operation in operations.items():
                route = routes.get((path, method))
                if route is not None:
                    _document_operation(operation, route, surface, isinstance(route.app, AuthGate),
                                        REF + error_name, media)
            paths[surface.prefix + path] = _rename_refs(operations, renames)
        for scheme in surface.schemes:
            security.update(scheme.openapi())
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f'"{REF}{unused}"' not in json.dumps(paths):
            del schemas[unused]
    if not schemas:
        components.pop("schemas")
    if not security:
        components.pop("securitySchemes")
    return doc
