"""Kalshi-compatible API keys (seed 004) at /trade-api/v2, on the core's keys: the routes.

Authentication: KALSHI-ACCESS-KEY / -TIMESTAMP (ms) / -SIGNATURE (RSA-PSS or Ed25519 over
timestamp + METHOD + path). Errors: ``{"error": {"code", "message"}}``. Status codes match
Kalshi's spec exactly, because the official SDKs deserialize by status.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from strongroom.errors import ValidationFailed
from strongroom.models import ApiKey
from strongroom.surfaces.deps import CoreDep, CurrentPrincipal


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Kalshi restricts a key to a sub-account or an FCM sub-trader with these. Strongroom has
    # neither, and silently dropping them would hand back a wider key than was asked for: refused.
    subaccount: int | None = None
    fcm_subtrader_id: str | None = None

    def refuse_restrictions(self) -> None:
        if self.subaccount is not None or self.fcm_subtrader_id is not None:
            raise ValidationFailed("subaccount and fcm_subtrader_id restrictions are not supported",
                                   fields={"subaccount": "not supported"})


class CreateApiKeyRequest(_In):
    name: str = Field(min_length=1, max_length=100)
    public_key: str = Field(min_length=1, max_length=16384)
    scopes: list[str] | None = None


class GenerateApiKeyRequest(_In):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] | None = None
    key_type: Literal["rsa", "ed25519"] = "rsa"


class ApiKeyOut(BaseModel):
    api_key_id: str
    name: str
    scopes: list[str]
    created_ts: str


class GetApiKeysResponse(BaseModel):
    api_keys: list[ApiKeyOut]


class CreateApiKeyResponse(BaseModel):
    api_key_id: str


class GenerateApiKeyResponse(BaseModel):
    api_key_id: str
    private_key: str
    key_type: str


def _out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(api_key_id=key.key_id, name=key.name, scopes=list(key.scopes),
                     created_ts=key.created_at.isoformat().replace("+00:00", "Z"))


api = APIRouter(tags=["kalshi"])



@api.get("/api_keys", response_model=GetApiKeysResponse)
def get_api_keys(principal: CurrentPrincipal, core: CoreDep) -> GetApiKeysResponse:
    """All API keys of the signing key's user."""
    return GetApiKeysResponse(api_keys=[_out(k) for k in core.api_keys.list_all(principal)])


@api.post("/api_keys", response_model=CreateApiKeyResponse, status_code=201)
def create_api_key(body: CreateApiKeyRequest, principal: CurrentPrincipal, core: CoreDep) -> CreateApiKeyResponse:
    """Create a key from your own RSA or Ed25519 public key (premier or market_maker usage level)."""
    body.refuse_restrictions()
    key = core.api_keys.import_public_key(principal, name=body.name, public_key=body.public_key,
                                          scopes=body.scopes)
    return CreateApiKeyResponse(api_key_id=key.key_id)


@api.post("/api_keys/generate", response_model=GenerateApiKeyResponse, status_code=201)
def generate_api_key(body: GenerateApiKeyRequest, principal: CurrentPrincipal,
                     core: CoreDep) -> GenerateApiKeyResponse:
    """Generate a key pair: RSA-2048 (PKCS#1 PEM) by default, Ed25519 (PKCS#8) on request."""
    body.refuse_restrictions()
    key, private_pem = core.api_keys.generate(principal, name=body.name, key_type=body.key_type,
                                              scopes=body.scopes)
    return GenerateApiKeyResponse(api_key_id=key.key_id, private_key=private_pem, key_type=body.key_type)


@api.delete("/api_keys/{api_key}", status_code=204)
def delete_api_key(api_key: str, principal: CurrentPrincipal, core: CoreDep) -> Response:
    """Delete a key at once; 204 with an empty body."""
    core.api_keys.delete(principal, api_key)
    return Response(status_code=204)
