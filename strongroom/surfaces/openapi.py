"""One OpenAPI document for the application and every mounted surface."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from strongroom.surfaces.factory import SurfaceApp

REF = "#/components/schemas/"


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (REF + renames.get(v[len(REF):], v[len(REF):]) if k == "$ref" and isinstance(v, str)
                    and v.startswith(REF) else _rename_refs(v, renames)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


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
        for path, operations in part.get("paths", {}).items():
            paths[surface.prefix + path] = _rename_refs(operations, renames)
        for scheme in surface.schemes:
            security.update(scheme.openapi())
    if not schemas:
        components.pop("schemas")
    if not security:
        components.pop("securitySchemes")
    return doc
