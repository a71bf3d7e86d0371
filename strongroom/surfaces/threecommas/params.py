"""Request parameters as 3Commas takes them: from the query string, a form body or a JSON body,
mixed freely; a parameter in the query string wins over the body's.

Problems are collected per parameter (3Commas names every bad field at once) and raised together by
:meth:`Params.check` as one ValidationFailed, rendered as ``record_invalid`` with ``error_attributes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from strongroom.errors import BadRequest, MalformedBody, ValidationFailed

MISSING = "is missing"
INVALID = "is invalid"
MAX_TEXT = 4096


def _pairs(text: str) -> dict[str, Any]:
    """Decode ``a=1&b[]=2&b[]=3`` (UTF-8 percent-escapes; ``x[]`` collects a list, else the last value wins)."""
    out: dict[str, Any] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise MalformedBody("the parameters are not valid UTF-8") from None
    for key, value in pairs:
        if key.endswith("[]"):
            listed = out.setdefault(key[:-2], [])
            if isinstance(listed, list):
                listed.append(value)
            else:
                out[key[:-2]] = [value]
        else:
            out[key] = value
    return out


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """Return the parameters in a request body: a JSON object or form fields (empty body: none).

    Raises MalformedBody (not JSON / not UTF-8 / not an object) or BadRequest (another content type).
    """
    if not body.strip():
        return {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if not kind:  # no Content-Type: JSON if it looks like an object, else form fields
        kind = "application/json" if body.lstrip()[:1] == b"{" else "application/x-www-form-urlencoded"
    if kind == "application/x-www-form-urlencoded":
        try:
            return _pairs(body.decode("ascii"))
        except UnicodeDecodeError:
            raise MalformedBody("a form body must be percent-encoded") from None
    if kind == "application/json" or kind.endswith("+json"):
        try:
            doc = json.loads(body)
        except ValueError:
            raise MalformedBody("malformed JSON body") from None
        if not isinstance(doc, dict):
            raise MalformedBody("the JSON body must be an object")
        return doc
    raise BadRequest("the body must be JSON (application/json) or form fields (application/x-www-form-urlencoded)")


async def read(request: Request) -> Params:
    """Return the request's parameters (body first, then the query string over it)."""
    values = parse_body(await request.body(), request.headers.get("content-type", ""))
    values.update(_pairs(request.scope.get("query_string", b"").decode("latin-1")))
    return Params(values)


class Params:
    """Typed access to parameters; each problem is noted under the parameter's name."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)
        self.problems: dict[str, str] = {}

    def check(self) -> None:
        """Raise ValidationFailed naming every parameter with a problem (nothing if none has)."""
        if self.problems:
            raise ValidationFailed("invalid parameters", fields=dict(self.problems))

    def _absent(self, name: str, required: bool) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                self.problems[name] = MISSING
            return True
        return False

    def text(self, name: str, *, required: bool = False) -> str | None:
        """Return a string parameter (None if absent or empty)."""
        if self._absent(name, required):
            return None
        value = self.values[name]
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            self.problems[name] = INVALID
            return None
        return value

    def integer(self, name: str, *, required: bool = False, default: int | None = None,
                minimum: int | None = None, maximum: int | None = None) -> int | None:
        """Return an integer parameter (a JSON integer or decimal digits), ``default`` if absent."""
        if self._absent(name, required):
            return default
        value = self.values[name]
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
            value = int(value)
        if (not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum)
                or (maximum is not None and value > maximum)):
            self.problems[name] = INVALID if minimum is None else f"is invalid (from {minimum} to {maximum})"
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        """Return a boolean parameter (JSON true/false, or "true"/"false"/"1"/"0")."""
        if self._absent(name, False):
            return None
        value = self.values[name]
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        self.problems[name] = INVALID
        return None

    def strings(self, name: str) -> list[str] | None:
        """Return a list-of-strings parameter (a JSON array, ``name[]=`` fields, or one string)."""
        if self._absent(name, False):
            return None
        value = self.values[name]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problems[name] = INVALID
            return None
        return list(value)

    def moment(self, name: str, *, required: bool = False) -> datetime | None:
        """Return a point in time: ISO 8601 (``Z`` or an offset; without one, UTC) or epoch seconds."""
        if self._absent(name, required):
            return None
        value = self.values[name]
        try:
            if isinstance(value, int) and not isinstance(value, bool):
                return datetime.fromtimestamp(value, UTC)
            if not isinstance(value, str) or len(value) > 64:
                raise ValueError(name)
            if value.isascii() and value.isdigit():
                return datetime.fromtimestamp(int(value), UTC)
            moment = datetime.fromisoformat(value)
        except (ValueError, OverflowError, OSError):
            self.problems[name] = INVALID
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
