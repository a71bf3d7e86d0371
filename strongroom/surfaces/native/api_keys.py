"""/v1/api-keys: issue, list, update, roll and delete platform API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from strongroom.audit import OUTCOMES
from strongroom.errors import BadRequest, Conflict, InsufficientUsageLevel, LimitExceeded
from strongroom.models import ApiKey
from strongroom.surfaces.deps import CurrentPrincipal, KeysDep
from strongroom.surfaces.native.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyGenerate,
    ApiKeyGenerated,
    ApiKeyPublic,
    ApiKeyRolled,
    ApiKeyUpdate,
    Cursor,
    KeyIdPath,
    KeyUsageCounts,
    KeyUsageHour,
    KeyUsageOut,
    Limit,
    PageOut,
    RollIn,
)
from strongroom.surfaces.openapi import body_example, raises

api = APIRouter(prefix="/api-keys", tags=["api keys"])


def _public(key: ApiKey) -> dict[str, Any]:
    return ApiKeyPublic.model_validate(key).model_dump()


@api.post("", summary="Create an API key.", response_model=ApiKeyCreated, status_code=201,
          openapi_extra=body_example({
              "name": "trading bot", "kind": "bearer", "scopes": ["read", "write"], "account_ids": [3],
              "ip_allowlist": ["203.0.113.0/24"], "expires_at": "2031-01-01T00:00:00Z"}))
@raises(InsufficientUsageLevel, LimitExceeded)
async def create_key(body: ApiKeyCreate, principal: CurrentPrincipal, keys: KeysDep) -> ApiKeyCreated:
    """Create a key, no more powerful than the caller (scopes, accounts, allowlist, expiry: 403 otherwise).
    ``secret`` (bearer, hmac) is in this response only. Your own rsa or ed25519 public key needs the usage
    level STRONGROOM_PUBLIC_KEY_UPLOAD_LEVEL (default basic: anyone); a user has at most STRONGROOM_MAX_API_KEYS_PER_USER keys (400 limit_exceeded)."""
    key, secret = await keys.create(principal, **body.model_dump())
    return ApiKeyCreated(**_public(key), secret=secret)


@api.post("/generate", summary="Generate an RSA or Ed25519 key pair.", response_model=ApiKeyGenerated, status_code=201,
          openapi_extra=body_example({
              "name": "signing key", "key_type": "ed25519", "scopes": ["read"]}))
@raises(LimitExceeded)
async def generate_key(body: ApiKeyGenerate, principal: CurrentPrincipal, keys: KeysDep) -> ApiKeyGenerated:
    """Generate an RSA-2048 or Ed25519 key pair; ``private_key`` is in this response only and never stored."""
    key, private_pem = await keys.generate(principal, **body.model_dump())
    return ApiKeyGenerated(**_public(key), private_key=private_pem)


@api.get("", summary="List your API keys.", response_model=PageOut[ApiKeyPublic])
async def list_keys(principal: CurrentPrincipal, keys: KeysDep, cursor: Cursor = None,
                    limit: Limit = 50) -> PageOut[ApiKeyPublic]:
    """The caller's keys (never a secret), a page at a time; a key bound to accounts sees only keys bound within
    them."""
    page = await keys.list(principal, cursor=cursor, limit=limit)
    return PageOut(items=[ApiKeyPublic.model_validate(k) for k in page.items], next_cursor=page.next_cursor)


@api.get("/{key_id}", summary="Read an API key.", response_model=ApiKeyPublic)
async def get_key(key_id: KeyIdPath, principal: CurrentPrincipal, keys: KeysDep) -> ApiKeyPublic:
    """One of the caller's keys (404 for another user's, and for a key beyond a bound caller's accounts)."""
    return ApiKeyPublic.model_validate(await keys.get(principal, key_id))


@api.patch("/{key_id}", summary="Change an API key.", response_model=ApiKeyPublic,
           openapi_extra=body_example({
               "name": "renamed bot", "scopes": ["read"], "ip_allowlist": ["198.51.100.7"]}))
@raises(Conflict)
async def update_key(key_id: KeyIdPath, body: ApiKeyUpdate, principal: CurrentPrincipal, keys: KeysDep) -> ApiKeyPublic:
    """Change name, scopes, account binding, allowlist, enabled or expiry; effective everywhere within 1 s."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return ApiKeyPublic.model_validate(await keys.update(principal, key_id, changes))


@api.post("/{key_id}/roll", summary="Give an API key a new secret.",
          openapi_extra=body_example({"grace_seconds": 3600}), response_model=ApiKeyRolled)
@raises(BadRequest, Conflict)
async def roll_key(key_id: KeyIdPath, principal: CurrentPrincipal, keys: KeysDep, body: RollIn | None = None) -> ApiKeyRolled:
    """New secret now; the old one stays valid for ``grace_seconds`` (default 0). Keys with a public key
    (rsa, ed25519) cannot be rolled (400): create a new one and delete this one."""
    key, secret = await keys.roll(principal, key_id, (body or RollIn()).grace_seconds)
    return ApiKeyRolled(**_public(key), secret=secret)


@api.get("/{key_id}/usage", summary="Count an API key's verifications per hour.", response_model=KeyUsageOut)
async def key_usage(key_id: KeyIdPath, principal: CurrentPrincipal, keys: KeysDep,
                    since: Annotated[datetime | None, Query(alias="from", description="Start (ISO 8601), inclusive.")] = None,
                    until: Annotated[datetime | None, Query(alias="to", description="End (ISO 8601), inclusive.")] = None,
                    ) -> KeyUsageOut:
    """Verifications of the key per hour and outcome (ok, rate_limited, ip_refused, expired, disabled,
    bad_signature), written in batches (up to STRONGROOM_LAST_USED_FLUSH_SECONDS late)."""
    rows = await keys.usage(principal, key_id, since, until)
    hours: dict[datetime, dict[str, int]] = {}
    for hour, outcome, count in rows:
        hours.setdefault(hour, dict.fromkeys(OUTCOMES, 0))[outcome] = count
    totals = {o: sum(h[o] for h in hours.values()) for o in OUTCOMES}
    return KeyUsageOut(key_id=key_id, hours=[KeyUsageHour(hour=h, **counts) for h, counts in hours.items()],
                       totals=KeyUsageCounts(**totals))


@api.delete("/{key_id}", summary="Delete an API key.", status_code=204)
@raises(Conflict)
async def delete_key(key_id: KeyIdPath, principal: CurrentPrincipal, keys: KeysDep) -> Response:
    """Delete a key: refused at once, by every worker."""
    await keys.delete(principal, key_id)
    return Response(status_code=204)
