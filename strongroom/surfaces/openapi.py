"""One OpenAPI document for the application and every mounted surface.

Each operation is documented from what the server does:

* its security: the surface's schemes (a signed scheme's headers are one requirement: all of them together);
* every error status it can answer, in the surface's own error schema (its error table's ``model``; else a
  schema derived from the bodies it renders), each status listing the error codes behind it with an example
  body. The errors follow from the route: the edge's checks and the backing services for every route
  (400, 503), authentication for a route that takes the principal (401, 403, 429), validation for a route
  with a body, query or path parameters (400, 413, 422), 404 for one with path parameters; plus the domain
  errors it declares with :func:`raises`. Each error class is resolved through the surface's error table,
  so 3Commas' ``Conflict`` is documented as its 422 and Cadenza's ``ValidationFailed`` as its 400;
* its headers: ``Retry-After`` on 429 and 503, ``WWW-Authenticate`` on a 401 where the surface sends a
  challenge, ``RateLimit-*`` on an authenticated operation's success, ``X-Request-ID`` on every answer.

FastAPI's own ``HTTPValidationError`` is never used: validation errors are answered in the surfaces' shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from strongroom.auth.schemes.base import AuthScheme
from strongroom.auth.schemes.signed import SignedScheme
from strongroom.errors import (
    BadRequest,
    CredentialsRefused,
    CredentialsRejected,
    DomainError,
    ExchangeUnavailable,
    Forbidden,
    InsufficientScope,
    InvalidCredentials,
    IpNotAllowed,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    SignatureInvalid,
    SignInRefused,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.http.routes import Surface, SurfaceApp

REF = "#/components/schemas/"
EXAMPLES = "#/components/examples/"
HEADERS = "#/components/headers/"
F = TypeVar("F", bound=Callable[..., Any])

# Headers every answer, or every answer of an authenticated operation, carries (components/headers).
SHARED_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {"description": "The request's id (the client's X-Request-ID if well formed, else a new one); "
                                    "also in the server's logs.", "required": True, "schema": {"type": "string"}},
    "RateLimit-Limit": {"description": "Requests allowed in the current window (per key or client address).",
                        "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "Requests left in the current window.", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until the current window ends.", "schema": {"type": "integer"}},
    "Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                    "schema": {"type": "integer", "minimum": 0}},
    "WWW-Authenticate": {"description": "The authentication challenge (RFC 9110); "
                                        "error=\"invalid_token\" when a credential was sent but refused.",
                         "required": True, "schema": {"type": "string"}},
}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

# What the edge refuses (400) before any route sees it, declared on the schemas so that generated clients and
# fuzzers know: a control character in the path or the query string, a NUL in a body's string.
PARAMETER_PATTERN = "^[^\\x00-\\x1f\\x7f]*$"
BODY_STRING_PATTERN = "^[^\\x00]*$"

# A short Python sample of each signed scheme, added to the description of its signature header.
SIGNING_SAMPLES: dict[str, str] = {
    "SrAccessSignature": '''Signing in Python (`cryptography` for RSA and Ed25519 keys):

```python
import base64, hashlib, hmac, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

def sr_headers(key_id, key, method, path_and_query, body=b""):
    """key: an hmac key's secret (str), or the private key of an rsa or ed25519 key."""
    ts = str(int(time.time() * 1000))
    message = (ts + method.upper() + path_and_query).encode() + body
    if isinstance(key, str):  # hmac: lower-case hex HMAC-SHA256
        signature = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
    elif isinstance(key, rsa.RSAPrivateKey):  # rsa: base64 RSA-PSS, SHA-256, salt 32
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = base64.b64encode(key.sign(message, pss, hashes.SHA256())).decode()
    else:  # ed25519: base64 Ed25519
        signature = base64.b64encode(key.sign(message)).decode()
    return {"SR-ACCESS-KEY": key_id, "SR-ACCESS-TIMESTAMP": ts, "SR-ACCESS-SIGNATURE": signature}

# httpx.post(base + "/v1/api-keys", content=body, headers={**sr_headers(key_id, key, "POST", "/v1/api-keys", body),
#                                                          "Content-Type": "application/json"})
```''',
    "KalshiAccessSignature": '''Signing in Python (as Kalshi's SDKs do):

```python
import base64, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

def kalshi_headers(key_id, private_key, method, path):
    """path without the query string, e.g. /trade-api/v2/api_keys; an RSA or Ed25519 private key."""
    ts = str(int(time.time() * 1000))
    message = (ts + method.upper() + path).encode()
    if isinstance(private_key, rsa.RSAPrivateKey):  # base64 RSA-PSS, SHA-256, salt 32
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = private_key.sign(message, pss, hashes.SHA256())
    else:  # base64 Ed25519
        signature = private_key.sign(message)
    return {"KALSHI-ACCESS-KEY": key_id, "KALSHI-ACCESS-TIMESTAMP": ts,
            "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode()}
```''',
    "ThreeCommasSignature": '''Signing in Python (as py3cw does; no timestamp is signed):

```python
import base64, hashlib, hmac
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

def threecommas_headers(key_id, key, path_and_query, body=b""):
    """path_and_query from /public/api on, e.g. /public/api/ver1/accounts?per_page=50; the raw body sent.
    key: an hmac key's secret (str), or the private key of an rsa key (py3cw's selfsigned)."""
    message = path_and_query.encode() + body
    if isinstance(key, str):  # hex HMAC-SHA256
        signature = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
    else:  # base64 RSA PKCS#1 v1.5, SHA-256
        signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    return {"APIKEY": key_id, "Signature": signature}
```''',
}


# --- what routes declare ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Declared:
    """What a route declares for the document beyond what its signature implies."""

    errors: tuple[type[DomainError], ...] = ()
    backing_services: bool = True


_DECLARED: dict[Callable[..., Any], Declared] = {}


def raises(*errors: type[DomainError], backing_services: bool = True) -> Callable[[F], F]:
    """Declare, for the OpenAPI document, the domain errors an endpoint raises beyond those its signature
    implies (see the module's docstring); ``backing_services=False`` says it touches neither the database
    nor Redis, so it never answers 503. Returns a decorator that returns the endpoint unchanged."""

    def mark(endpoint: F) -> F:
        before = _DECLARED.get(endpoint, Declared())
        _DECLARED[endpoint] = Declared(before.errors + errors, before.backing_services and backing_services)
        return endpoint

    return mark


def body_example(value: Any, *media: str) -> dict[str, Any]:
    """Return a route's ``openapi_extra`` giving its request body ``value`` as the example (for Swagger UI's
    "Try it out"), in each of ``media`` (JSON by default); FastAPI merges it into the generated body."""
    return {"requestBody": {"content": {m: {"example": value} for m in media or ("application/json",)}}}


def declared(endpoint: Callable[..., Any]) -> Declared:
    """Return what ``endpoint`` declared with :func:`raises` (nothing: an empty declaration)."""
    return _DECLARED.get(endpoint, Declared())


# --- error samples and schemas ---------------------------------------------------------------------

# What the server says for the errors whose class docstring is not a message it sends.
MESSAGES: dict[type[DomainError], str] = {
    BadRequest: "the path or query string contains a control character",
    MalformedBody: "malformed JSON body",
    PayloadTooLarge: "the body exceeds 65536 bytes",
    ValidationFailed: "the request is not valid",
    NotFound: "not found",
    Forbidden: "you do not have permission to perform this action",
    CredentialsRefused: "invalid credentials",
    SignatureInvalid: "invalid credentials",
    SignInRefused: "wrong username or password",
    RateLimited: "too many requests",
    ServiceUnavailable: "a backing service is unavailable; try again shortly",
}


def sample(cls: type[DomainError]) -> DomainError:
    """Return an instance of ``cls`` as the server raises it (message, named fields, Retry-After, venue)."""
    kwargs: dict[str, Any] = {}
    if issubclass(cls, ValidationFailed):
        kwargs["fields"] = {"name": "required"}
    if issubclass(cls, (RateLimited, ServiceUnavailable, ExchangeUnavailable)):
        kwargs["retry_after"] = 2
    if issubclass(cls, (InvalidCredentials, CredentialsRejected, WithdrawalPermission, ExchangeUnavailable)):
        kwargs["details"] = {"exchange": "binance"}
    return cls(MESSAGES.get(cls), **kwargs)


def every_error_class() -> list[type[DomainError]]:
    """Return DomainError and all its subclasses (as imported), base classes first."""
    found: list[type[DomainError]] = []
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        cls = todo.pop(0)
        if cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return found


def rendered_body(surface: Surface, error: DomainError) -> Any:
    """Return the JSON body ``surface`` answers ``error`` with."""
    return json.loads(bytes(surface.errors.response(error).body))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def derived_schema(values: Sequence[Any], *, top: bool = True) -> dict[str, Any]:
    """Return a JSON Schema every one of ``values`` matches: the top object's keys found in every value
    are required, the others optional (nested objects, maps of fields for all we know, require none);
    a place holding several types allows each of them."""
    types = sorted({_json_type(v) for v in values})
    if types == ["object"]:
        keys = list(dict.fromkeys(k for v in values for k in v))
        schema = {"type": "object",
                  "properties": {k: derived_schema([v[k] for v in values if k in v], top=False) for k in keys}}
        return {**schema, "required": [k for k in keys if all(k in v for v in values)]} if top else schema
    if types == ["array"]:
        items = [x for v in values for x in v]
        return {"type": "array", "items": derived_schema(items, top=False) if items else {}}
    return {"type": types[0] if len(types) == 1 else types}


def error_samples(surface: Surface) -> list[Any]:
    """Return the bodies ``surface`` renders for every domain error class, with and without named fields,
    and for an unexpected failure (500)."""
    bodies = [rendered_body(surface, sample(cls)) for cls in every_error_class()]
    bodies += [rendered_body(surface, cls("invalid", fields={"name": "required"})) for cls in every_error_class()
               if cls is not DomainError and not issubclass(cls, ValidationFailed)]
    bodies.append(json.loads(bytes(surface.errors.internal().body)))
    return bodies


def error_schema(surface: Surface) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """Return the media type of ``surface``'s error bodies, the name of their schema, and the schemas
    to add to the document's components (that one and those it refers to)."""
    media = surface.errors.response(NotFound()).media_type or "application/json"
    model: type[BaseModel] | None = surface.errors.model
    if model is None:
        name = camel(surface.name) + "Error"
        return media, name, {name: {**derived_schema(error_samples(surface)), "title": name}}
    schema = model.model_json_schema(ref_template=REF + "{model}", mode="serialization")
    defs: dict[str, dict[str, Any]] = schema.pop("$defs", {})
    return media, model.__name__, {model.__name__: schema, **defs}


def camel(name: str) -> str:
    """``trading-app`` -> ``TradingApp``."""
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[-_ ]", name) if w)


def first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0].strip()


# --- per operation ---------------------------------------------------------------------------------

def route_errors(route: APIRoute, surface: Surface, gated: bool) -> list[type[DomainError]]:
    """Return the error classes ``route`` can answer with (see the module's docstring), in a stable order."""
    dependant = route.dependant
    own = declared(route.endpoint)
    found: list[type[DomainError]] = [BadRequest]  # the edge: control characters, a bad Content-Length
    if own.backing_services:
        found.append(ServiceUnavailable)
    if gated:
        found.append(CredentialsRefused)
        if any(isinstance(s, SignedScheme) for s in surface.schemes):
            found.append(SignatureInvalid)
        found += [IpNotAllowed, InsufficientScope, RateLimited]
    if dependant.body_params:
        found += [MalformedBody, PayloadTooLarge, ValidationFailed]
    if dependant.query_params or dependant.path_params:
        found.append(ValidationFailed)
    if dependant.path_params:
        found.append(NotFound)  # also any path a parameter's "/" makes unknown
    found += own.errors
    return list(dict.fromkeys(found))


@dataclass
class ErrorDoc:
    """A surface's error documentation, shared by its operations."""

    surface: Surface
    media: str
    ref: str
    examples: dict[str, Any]  # the document's components/examples

    def shown_code(self, error: DomainError) -> str:
        """Return ``error``'s code on this surface if its body shows it (Trading App's shows none), else ''."""
        code = str(self.surface.errors.resolve(error).code)
        return code if code in _leaves(rendered_body(self.surface, error)) else ""

    def example(self, error: DomainError) -> tuple[str, str]:
        """Return the example's key in an operation and its $ref (added to the components once)."""
        key = type(error).__name__
        name = camel(self.surface.name) + key
        if name not in self.examples:
            code = self.shown_code(error)
            self.examples[name] = {"summary": (f"{code}: " if code else "") + first_line(type(error).__doc__),
                                   "value": rendered_body(self.surface, error)}
        return key, EXAMPLES + name


def _leaves(body: Any) -> set[str]:
    """Every scalar of a JSON value, as text."""
    if isinstance(body, dict):
        return {c for v in body.values() for c in _leaves(v)}
    if isinstance(body, list):
        return {c for v in body for c in _leaves(v)}
    return {str(body)}


def _status_description(status: int, errors: Sequence[DomainError], doc: ErrorDoc) -> str:
    """``Conflict.`` and a line per error code behind the status (the code as the body shows it, if it does)."""
    lines: dict[str, list[str]] = {}
    for error in errors:
        code = doc.shown_code(error)
        shown = f"`{code}`" if code else ""
        what = first_line(type(error).__doc__).rstrip(".")
        if what not in lines.setdefault(shown, []):
            lines[shown].append(what)
    items = [f"- {code + ': ' if code else ''}{'; '.join([whats[0]] + [w[:1].lower() + w[1:] for w in whats[1:]])}."
             for code, whats in lines.items()]
    return HTTPStatus(status).phrase + ".\n\n" + "\n".join(items)


def _document_operation(operation: dict[str, Any], route: APIRoute, surface: Surface, gated: bool,
                        doc: ErrorDoc) -> None:
    """Add the operation's security, every error status it can answer and their headers."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for code, response in list(responses.items()):
        if code == "422" and "HTTPValidationError" in json.dumps(response):
            del responses[code]
    by_status: dict[int, list[DomainError]] = {}
    for cls in route_errors(route, surface, gated):
        error = sample(cls)
        by_status.setdefault(doc.surface.errors.resolve(error).status, []).append(error)
    for status, errors in by_status.items():
        if str(status) in responses:  # the route documents this status itself (e.g. a health check's 503)
            continue
        examples = dict(doc.example(e) for e in errors)
        unique: dict[str, str] = {}
        for key, ref in examples.items():
            body = json.dumps(doc.examples[ref[len(EXAMPLES):]]["value"], sort_keys=True)
            unique.setdefault(body, key)
        entry: dict[str, Any] = {
            "description": _status_description(status, errors, doc),
            "content": {doc.media: {"schema": {"$ref": doc.ref},
                                    "examples": {k: {"$ref": examples[k]} for k in unique.values()}}},
        }
        if status in (429, 503):
            entry["headers"] = {"Retry-After": {"$ref": HEADERS + "Retry-After"}}
        if status == 401 and doc.surface.errors.challenge:
            entry["headers"] = {"WWW-Authenticate": {"$ref": HEADERS + "WWW-Authenticate"}}
        responses[str(status)] = entry
    for code, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = {"$ref": HEADERS + "X-Request-ID"}
        if gated and code.startswith("2"):
            headers.update({name: {"$ref": HEADERS + name} for name in RATE_LIMIT_HEADERS})
    operation["responses"] = dict(sorted(responses.items()))
    operation["security"] = [req for scheme in surface.schemes for req in requirements(scheme)] if gated else []


def requirements(scheme: AuthScheme) -> list[dict[str, list[str]]]:
    """OpenAPI security requirements of one scheme: a signed scheme's headers are one requirement (all
    needed together); otherwise each of its schemes is an alternative."""
    names = list(scheme.openapi())
    if isinstance(scheme, SignedScheme):
        return [{name: [] for name in names}]
    return [{name: []} for name in names]


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (REF + renames.get(v[len(REF):], v[len(REF):]) if k == "$ref" and isinstance(v, str)
                    and v.startswith(REF) else _rename_refs(v, renames)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def _add_schemas(schemas: dict[str, Any], new: dict[str, Any], surface: Surface) -> dict[str, str]:
    """Add ``new`` to ``schemas``; a name another surface uses for a different shape is prefixed with this
    surface's name. Returns the renames made."""
    renames = {name: camel(surface.name) + name for name, schema in new.items()
               if name in schemas and json.dumps(schemas[name], sort_keys=True) != json.dumps(schema, sort_keys=True)}
    for name, schema in new.items():
        schemas[renames.get(name, name)] = _rename_refs(schema, renames)
    return renames


def _operation_ids(paths: dict[str, Any], prefix: str, routes: dict[tuple[str, str], APIRoute],
                   taken: set[str]) -> None:
    """Name each operation ``<surface>_<endpoint>`` (unique in the document: FastAPI's ids repeat across surfaces)."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            route = routes.get((path, method))
            wanted = f"{prefix}_{route.name}" if route is not None else f"{prefix}_{operation.get('operationId')}"
            if wanted in taken:
                wanted = f"{prefix}_{operation.get('operationId')}"
            taken.add(wanted)
            operation["operationId"] = wanted


def _string_patterns(node: Any, pattern: str, schemas: dict[str, Any], seen: set[str]) -> None:
    """Give every string schema in ``node`` (through $refs, properties, items, combinations) without a
    pattern, format, enum or const the ``pattern``, in place."""
    if isinstance(node, list):
        for item in node:
            _string_patterns(item, pattern, schemas, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF):
        name = ref[len(REF):]
        if name not in seen and name in schemas:
            seen.add(name)
            _string_patterns(schemas[name], pattern, schemas, seen)
        return
    types = node.get("type")
    if (types == "string" or (isinstance(types, list) and "string" in types)) \
            and not {"pattern", "format", "enum", "const"} & set(node):
        node["pattern"] = pattern
    for key in ("properties", "patternProperties", "$defs"):
        if isinstance(node.get(key), dict):
            _string_patterns(list(node[key].values()), pattern, schemas, seen)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            _string_patterns(node[key], pattern, schemas, seen)


def _declare_refused_characters(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Declare what the edge refuses with 400 (see PARAMETER_PATTERN) on the path and query parameters and
    the request bodies' strings."""
    seen: set[str] = set()
    for operations in paths.values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("path", "query"):
                    _string_patterns(parameter.get("schema"), PARAMETER_PATTERN, schemas, set())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _string_patterns(media.get("schema"), BODY_STRING_PATTERN, schemas, seen)


def merged_openapi(app: FastAPI, surfaces: Sequence[SurfaceApp], default: SurfaceApp | None = None) -> dict[str, Any]:
    """Return the application's OpenAPI document: its own routes plus every surface's, under its prefix.

    The application's own routes answer errors in ``default``'s shape (the surface of paths outside every
    surface). Schema names that two surfaces use for different shapes are kept apart by prefixing the
    later one with its surface's name. Raises ValueError if two surfaces name different security schemes alike.
    """
    own = [r for r in app.routes if isinstance(r, APIRoute)]
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=own)
    paths: dict[str, Any] = doc.setdefault("paths", {})
    components: dict[str, Any] = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    security: dict[str, Any] = components.setdefault("securitySchemes", {})
    examples: dict[str, Any] = components.setdefault("examples", {})
    components["headers"] = dict(SHARED_HEADERS)
    taken: set[str] = set()
    if default is not None:
        media, error_name, error_schemas = error_schema(default.surface)
        _add_schemas(schemas, error_schemas, default.surface)
        errors = ErrorDoc(default.surface, media, REF + error_name, examples)
        routes = {(r.path, m.lower()): r for r in own for m in r.methods or ()}
        for path, operations in paths.items():
            for method, operation in operations.items():
                _document_operation(operation, routes[(path, method)], default.surface, False, errors)
        _operation_ids(paths, "app", routes, taken)
    for surface_app in surfaces:
        surface = surface_app.surface
        surface_routes = [r for r in surface_app.routes if isinstance(r, APIRoute)]
        part = get_openapi(title=surface.title or surface.name, version=app.version, routes=surface_routes)
        renames = _add_schemas(schemas, part.get("components", {}).get("schemas", {}), surface)
        media, error_name, error_schemas = error_schema(surface)
        error_renames = _add_schemas(schemas, error_schemas, surface)
        errors = ErrorDoc(surface, media, REF + error_renames.get(error_name, error_name), examples)
        routes = {(r.path, m.lower()): r for r in surface_routes for m in r.methods or ()}
        for path, operations in part.get("paths", {}).items():
            for method, operation in operations.items():
                route = routes.get((path, method))
                if route is not None:
                    _document_operation(operation, route, surface, surface_app.gated(route), errors)
        _operation_ids(part.get("paths", {}), surface.name.replace("-", "_"), routes, taken)
        for path, operations in part.get("paths", {}).items():
            paths[surface.prefix + path] = _rename_refs(operations, renames)
        for scheme in surface.schemes:
            for name, definition in scheme.openapi().items():
                if security.setdefault(name, definition) != definition:
                    raise ValueError(f"two security schemes are named {name!r}")
    for name, sample_code in SIGNING_SAMPLES.items():
        if name in security:
            security[name] = {**security[name], "description": security[name].get("description", "") + "\n\n"
                              + sample_code}
    _declare_refused_characters(paths, schemas)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f'"{REF}{unused}"' not in json.dumps(paths):
            del schemas[unused]
    for section in ("schemas", "securitySchemes", "examples"):
        if not components[section]:
            components.pop(section)
    return doc
