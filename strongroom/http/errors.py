"""The error table: how a surface answers each class of error, and what a framework or database error stands for.

A surface's :class:`ErrorTable` holds rules keyed by exception class, looked up along the class's MRO (the
most specific class with a rule wins), as Starlette finds exception handlers. :func:`domain_error` turns what
the framework, the database or the edge raise into the domain error it stands for; anything else is
unexpected: the surface's 500, without detail, logged by type and frames only (:func:`log_unexpected`).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from strongroom.errors import (
    BadRequest,
    Conflict,
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

if TYPE_CHECKING:
    from pydantic import BaseModel

log = logging.getLogger("strongroom.http")


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


class Refusal(HTTPException):
    """A domain error raised where Starlette and FastAPI pass only HTTPExceptions through (inside ``receive``)."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.status, error.message)
        self.error = error


def domain_error(exc: BaseException) -> DomainError | None:
    """Return ``exc`` as a domain error: itself, or the one a framework or database error stands
    for; None if unexpected."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, Refusal):
        return exc.error
    if isinstance(exc, DBAPIError):
        return database_error(exc)
    if isinstance(exc, StaleDataError):  # a row updated or deleted by the ORM was changed or deleted meanwhile
        log.warning("a write found its row changed or gone meanwhile: answered 409")
        return Conflict(CHANGED_MEANWHILE)
    if isinstance(exc, RequestValidationError):
        return validation_error(exc)
    if isinstance(exc, HTTPException):
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
    if isinstance(exc, IntegrityError) and _foreign_key_violation(exc.orig):
        # what a row refers to (its user, its account) was deleted between the service's check and its write
        log.warning("a write referred to a row deleted meanwhile: answered 409")
        return Conflict(CHANGED_MEANWHILE)
    return None


CHANGED_MEANWHILE = "what this request changes was changed or deleted by another request at the same time; try again"
SQLITE_CONSTRAINT_FOREIGNKEY = 787  # SQLite's extended result code


def _foreign_key_violation(orig: BaseException | None) -> bool:
    """Return True if the driver's error is a foreign key violation (PostgreSQL SQLSTATE 23503, SQLite's
    SQLITE_CONSTRAINT_FOREIGNKEY)."""
    return (getattr(orig, "sqlstate", None) == "23503"
            or getattr(orig, "sqlite_errorcode", None) == SQLITE_CONSTRAINT_FOREIGNKEY)


def http_error(exc: HTTPException) -> DomainError:
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
