"""/v1/keys/verify: a trusted caller asks whether a request its client sent holds (the verify API).

The surface only maps shapes: the verdict comes from :class:`strongroom.verify.Verifier`, through the
one authentication pipeline. Always 200 for a verdict; 4xx only for a bad call.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strongroom.auth.facts import RequestFacts
from strongroom.errors import InsufficientScope
from strongroom.surfaces.deps import AuthDep, CurrentPrincipal
from strongroom.surfaces.openapi import raises
from strongroom.surfaces.wire import Scope, one_of
from strongroom.verify.service import Reason, Verifier, require_verifier

api = APIRouter(prefix="/keys", tags=["verify"])

_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$"  # an HTTP token (RFC 9110): a method or a header name


def _printable(value: str, what: str) -> str:
    if any(not (" " <= c <= "~" or "\x80" <= c <= "\xff" or c == "\t") for c in value):
        raise ValueError(f"the {what} must be printable Latin-1 text")
    return value


class SignedRequest(BaseModel):
    """The request as the client sent it: what a signature covers."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(pattern=_TOKEN, description="The request's method.", examples=["GET"])
    path: str = Field(min_length=1, max_length=8192, pattern=r"^/[\x21-\x7e]*$",
                      description="The path with its query string, as sent (not decoded).",
                      examples=["/trade-api/v2/portfolio/balance?limit=5"])
    headers: dict[Annotated[str, Field(pattern=_TOKEN)], Annotated[str, Field(max_length=8192)]] = Field(
        default_factory=dict, max_length=64,
        description="The headers that carry the credentials (any case): Authorization, X-API-Key, "
                    "KALSHI-ACCESS-KEY/-TIMESTAMP/-SIGNATURE, SR-ACCESS-KEY/-TIMESTAMP/-SIGNATURE, APIKEY and Signature.",
        examples=[{"KALSHI-ACCESS-KEY": "0b5e7f9e-3a4c-4b8e-9d2f-6a1c2e3f4a5b",
                   "KALSHI-ACCESS-TIMESTAMP": "1767225600000", "KALSHI-ACCESS-SIGNATURE": "base64..."}])
    body: str | None = Field(None, max_length=10_000_000,
                             description="The raw body as UTF-8 text (for schemes that sign it: SR-ACCESS, 3Commas).")
    body_base64: str | None = Field(None, description="The raw body, base64 (instead of body, for bytes that are not UTF-8).")

    @field_validator("headers")
    @classmethod
    def _values(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            _printable(text, "header values")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> SignedRequest:
        if self.body is not None and self.body_base64 is not None:
            raise ValueError("give body or body_base64, not both")
        return self

    def raw_body(self) -> bytes:
        if self.body_base64 is not None:
            try:
                return base64.b64decode(self.body_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("body_base64 is not base64") from None
        return (self.body or "").encode()


class VerifyIn(BaseModel):
    """What the client sent, and from where. Give ``key`` (a bearer key) or ``request`` (any scheme)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"key": "sr_2JbKxN4v0cXmQe8rTz5WqL9hFyA1pGd3sUo6", "client_ip": "203.0.113.7", "required_scopes": ["read"]},
        {"request": {"method": "GET", "path": "/trade-api/v2/portfolio/balance?limit=5",
                     "headers": {"KALSHI-ACCESS-KEY": "0b5e7f9e-3a4c-4b8e-9d2f-6a1c2e3f4a5b",
                                 "KALSHI-ACCESS-TIMESTAMP": "1767225600000",
                                 "KALSHI-ACCESS-SIGNATURE": "cGF5bG9hZA=="}},
         "client_ip": "203.0.113.7"},
    ]})

    key: str | None = Field(None, min_length=1, max_length=512, description="A bearer key's secret (sr_...).",
                            examples=["sr_..."])
    request: SignedRequest | None = Field(None, description="The request, for signed schemes, X-API-Key or Basic.")
    client_ip: str = Field(description="The end client's address: the key's IP allowlist is checked against it, and "
                                       "refusals count in its failure budget.", examples=["203.0.113.7"])
    required_scopes: list[Scope] = Field(default_factory=list, max_length=64,
                                         description="Scopes the key must hold (insufficient_scope otherwise).")

    @field_validator("client_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("an IPv4 or IPv6 address") from None

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else _printable(value, "key")

    @field_validator("required_scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        from strongroom.scopes import SCOPE_RE

        bad = [s for s in value if not SCOPE_RE.match(s)]
        if bad:
            raise ValueError(f"unknown scope {bad[0][:40]!r}")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> VerifyIn:
        if (self.key is None) == (self.request is None):
            raise ValueError("give exactly one of key and request")
        if self.request is not None:
            self.request.raw_body()  # a bad body_base64 is a 422 here, not later
        return self

    def facts(self) -> RequestFacts:
        """The request as authentication sees it."""
        if self.request is None:
            return RequestFacts("POST", "/", "", {"authorization": f"Bearer {self.key}"}, client_ip=self.client_ip)
        path, _, query = self.request.path.partition("?")
        headers = {name.lower(): value for name, value in self.request.headers.items()}
        return RequestFacts(self.request.method.upper(), path, query, headers, body=self.request.raw_body(),
                            client_ip=self.client_ip)


class RateLimitOut(BaseModel):
    limit: int = Field(description="Requests the key may make per window (STRONGROOM_RATE_LIMIT_PER_KEY).")
    remaining: int = Field(description="Requests left in the current window, this one counted.")
    reset: int = Field(description="Seconds until the window resets.")


class VerifyOut(BaseModel):
    """The verdict: ``valid`` with the key's identity and limits, or ``invalid`` with a reason. Never a secret."""

    valid: bool = Field(description="True if the request holds (the key is valid for it).")
    reason: Annotated[str | None, one_of(Reason)] = Field(None, description="Why the request is refused (null when "
                                                                              "valid).")
    user_id: int | None = Field(None, description="The key's owner.")
    key_id: str | None = Field(None, description="The key that signed (or is) the credential.")
    scopes: list[str] | None = Field(None, description="The key's scopes.")
    account_ids: list[int] | None = Field(None, description="The accounts the key is bound to; null: every account "
                                                            "of its user.")
    expires_at: datetime | None = Field(None, description="When the key expires; null: never.")
    ratelimit: RateLimitOut | None = Field(None, description="The key's rate-limit window after this verification.")
    retry_after: int | None = Field(None, description="With rate_limited: seconds to wait.")


@api.post("/verify", summary="Verify a request your own service received.", response_model=VerifyOut)
@raises(InsufficientScope)
async def verify_key(body: VerifyIn, principal: CurrentPrincipal, auth: AuthDep) -> VerifyOut:
    """Verify a request a client sent to your own service (a key with the ``verify`` scope, or an admin's session):
    ``valid`` with the user, key, scopes, accounts, expiry and remaining rate limit, or ``invalid`` with a reason
    (unknown_key, expired, revoked, bad_signature, replayed, ip_not_allowed, insufficient_scope, rate_limited).
    It counts in the key's usage, and a refusal in the failure budget of the key and of ``client_ip``."""
    require_verifier(principal)
    verdict = await Verifier(auth).verify(body.facts(), required=body.required_scopes)
    if verdict.reason is not None:
        return VerifyOut(valid=False, reason=verdict.reason.value, retry_after=verdict.retry_after)
    key = verdict.principal
    assert key is not None  # a valid verdict has its key's principal
    window = verdict.ratelimit
    return VerifyOut(
        valid=True, user_id=key.user_id, key_id=key.key_id, scopes=sorted(key.scopes),
        account_ids=sorted(key.account_ids) if key.account_ids is not None else None,
        expires_at=datetime.fromtimestamp(key.key_expires_at, UTC) if key.key_expires_at is not None else None,
        ratelimit=RateLimitOut(limit=window[0], remaining=window[1], reset=window[2]) if window else None)
