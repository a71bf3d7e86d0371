"""/v1/api-keys: issue, list, update, roll and delete platform API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from strongroom.models import ApiKey
from strongroom.services.usage import OUTCOMES
from strongroom.surfaces.deps import CoreDep, CurrentPrincipal
from strongroom.surfaces.native.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyGenerate,
    ApiKeyGenerated,
    ApiKeyPublic,
    ApiKeyRolled,
    ApiKeyUpdate,
    KeyUsageCounts,
    KeyUsageHour,
    KeyUsageOut,
    PageOut,
    RollIn,
)

api = APIRouter(prefix="/api-keys", tags=["api keys"])


def _public(key: ApiKey) -> dict[str, Any]:
    return ApiKeyPublic.model_validate(key).model_dump()


@api.post("", response_model=ApiKeyCreated, status_code=201)
def create_key(body: ApiKeyCreate, principal: CurrentPrincipal, core: CoreDep) -> ApiKeyCreated:
    """Create a key. ``secret`` (bearer, hmac) is in this response only."""
    key, secret = core.api_keys.create(principal, **body.model_dump())
    return ApiKeyCreated(**_public(key), secret=secret)


@api.post("/generate", response_model=ApiKeyGenerated, status_code=201)
def generate_key(body: ApiKeyGenerate, principal: CurrentPrincipal, core: CoreDep) -> ApiKeyGenerated:
    """Generate an RSA-2048 or Ed25519 key pair; ``private_key`` is in this response only and never stored."""
    key, private_pem = core.api_keys.generate(principal, **body.model_dump())
    return ApiKeyGenerated(**_public(key), private_key=private_pem)


@api.get("", response_model=PageOut[ApiKeyPublic])
def list_keys(principal: CurrentPrincipal, core: CoreDep, cursor: str | None = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50) -> PageOut[ApiKeyPublic]:
    page = core.api_keys.list(principal, cursor=cursor, limit=limit)
    return PageOut(items=[ApiKeyPublic.model_validate(k) for k in page.items], next_cursor=page.next_cursor)


@api.get("/{key_id}", response_model=ApiKeyPublic)
def get_key(key_id: str, principal: CurrentPrincipal, core: CoreDep) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(core.api_keys.get(principal, key_id))


@api.patch("/{key_id}", response_model=ApiKeyPublic)
def update_key(key_id: str, body: ApiKeyUpdate, principal: CurrentPrincipal, core: CoreDep) -> ApiKeyPublic:
    """Change name, scopes, account binding, allowlist, enabled or expiry; effective everywhere within 1 s."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return ApiKeyPublic.model_validate(core.api_keys.update(principal, key_id, changes))


@api.post("/{key_id}/roll", response_model=ApiKeyRolled)
def roll_key(key_id: str, principal: CurrentPrincipal, core: CoreDep, body: RollIn | None = None) -> ApiKeyRolled:
    """New secret now; the old one stays valid for ``grace_seconds`` (default 0)."""
    key, secret = core.api_keys.roll(principal, key_id, (body or RollIn()).grace_seconds)
    return ApiKeyRolled(**_public(key), secret=secret)


@api.get("/{key_id}/usage", response_model=KeyUsageOut)
def key_usage(key_id: str, principal: CurrentPrincipal, core: CoreDep,
              since: Annotated[datetime | None, Query(alias="from", description="Start (ISO 8601), inclusive.")] = None,
              until: Annotated[datetime | None, Query(alias="to", description="End (ISO 8601), inclusive.")] = None,
              ) -> KeyUsageOut:
    """Verifications of the key per hour and outcome (ok, rate_limited, ip_refused, expired, disabled,
    bad_signature), written in batches (up to STRONGROOM_LAST_USED_FLUSH_SECONDS late)."""
    rows = core.api_keys.usage(principal, key_id, since, until)
    hours: dict[datetime, dict[str, int]] = {}
    for hour, outcome, count in rows:
        hours.setdefault(hour, dict.fromkeys(OUTCOMES, 0))[outcome] = count
    totals = {o: sum(h[o] for h in hours.values()) for o in OUTCOMES}
    return KeyUsageOut(key_id=key_id, hours=[KeyUsageHour(hour=h, **counts) for h, counts in hours.items()],
                       totals=KeyUsageCounts(**totals))


@api.delete("/{key_id}", status_code=204)
def delete_key(key_id: str, principal: CurrentPrincipal, core: CoreDep) -> Response:
    core.api_keys.delete(principal, key_id)
    return Response(status_code=204)
