"""Wire types the surfaces' models share: the closed sets and formats of values on the wire, for the
OpenAPI document. ``WithJsonSchema`` annotations only describe: they change neither what a model
accepts nor what it returns (the services keep their own checks and error messages)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import WithJsonSchema

from strongroom import scopes

SCOPE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": scopes.SCOPE_RE.pattern,
    "description": "read, write or delete, optionally narrowed to a resource with ::name (read::portfolio_balance, "
                   "write::trade). A broad scope covers its children; broad write needs broad read. verify (POST "
                   "/v1/keys/verify) is implied by nothing and granted only by an admin signed in without a key; trade (orders "
                   "through an exchange account) is implied by nothing either (write does not cover it) and is "
                   "granted explicitly.",
    "examples": ["read", "write::trade"],
}
Scope = Annotated[str, WithJsonSchema(SCOPE_SCHEMA)]

ACCOUNT_TYPES = ("spot", "margin", "swap", "future", "option")


def one_of(values: Iterable[str] | type[StrEnum], description: str | None = None) -> WithJsonSchema:
    """Return an annotation documenting a string as one of ``values`` (validation unchanged)."""
    schema: dict[str, Any] = {"type": "string", "enum": [str(v) for v in values]}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)



# A decimal as a string, never an exponent: "31200", "0.624", "-1.5".
DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"
DecimalText = Annotated[str, WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN})]
