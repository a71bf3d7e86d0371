"""Kalshi-compatible API keys (seed 004) at /trade-api/v2, on the core's keys: the routes.

Authentication: KALSHI-ACCESS-KEY / -TIMESTAMP (ms) / -SIGNATURE (RSA-PSS or Ed25519 over
timestamp + METHOD + path). Errors: ``{"error": {"code", "message"}}``. Status codes match
Kalshi's spec exactly, because the official SDKs deserialize by status.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from strongroom.enums import UsageLevel
from strongroom.errors import Conflict, InsufficientUsageLevel, LimitExceeded, ValidationFailed
from strongroom.models import ApiKey
from strongroom.scopes import TRADE
from strongroom.surfaces.deps import CurrentPrincipal, KeysDep
from strongroom.surfaces.openapi import body_example, raises
from strongroom.surfaces.wire import Scope

NAME = Field(min_length=1, max_length=100, description="The key's name.", examples=["trading bot"])
SCOPES = Field(None, description="What the key may do, no more than the signing key may (default: read and write).",
               examples=[["read", "write"]])


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Kalshi restricts a key to a sub-account or an FCM sub-trader with these. Strongroom has
    # neither, and silently dropping them would hand back a wider key than was asked for: refused.
    subaccount: int | None = Field(None, description="Kalshi's sub-account restriction: not supported (400 if given).")
    fcm_subtrader_id: str | None = Field(None, description="Kalshi's FCM sub-trader restriction: not supported "
                                                           "(400 if given).")

    def refuse_restrictions(self) -> None:
        if self.subaccount is not None or self.fcm_subtrader_id is not None:
            raise ValidationFailed("subaccount and fcm_subtrader_id restrictions are not supported",
                                   fields={"subaccount": "not supported"})


class CreateApiKeyRequest(_In):
    name: str = NAME
    public_key: str = Field(min_length=1, max_length=16384, description="Your RSA or Ed25519 public key (PEM).",
                            examples=["-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n"])
    scopes: list[Scope] | None = SCOPES


class GenerateApiKeyRequest(_In):
    name: str = NAME
    scopes: list[Scope] | None = SCOPES
    key_type: Literal["rsa", "ed25519"] = Field("rsa", description="rsa (RSA-2048, default) or ed25519.")


API_KEY_ID = Field(description="The key's id (the KALSHI-ACCESS-KEY header's value).",
                   examples=["0b5e7f9e-3a4c-4b8e-9d2f-6a1c2e3f4a5b"])


class ApiKeyOut(BaseModel):
    api_key_id: str = API_KEY_ID
    name: str = Field(description="The key's name.", examples=["trading bot"])
    scopes: list[Scope] = Field(description="What the key may do.", examples=[["read", "write"]])
    created_ts: str = Field(description="When the key was created (ISO 8601, UTC).",
                            examples=["2024-09-17T23:55:19.607000Z"])


class GetApiKeysResponse(BaseModel):
    api_keys: list[ApiKeyOut] = Field(description="Every key of the signing key's user.")


class CreateApiKeyResponse(BaseModel):
    api_key_id: str = API_KEY_ID


class GenerateApiKeyResponse(BaseModel):
    api_key_id: str = API_KEY_ID
    private_key: str = Field(description="Shown once, never stored: the private key (PEM; RSA as PKCS#1, Ed25519 "
                                         "as PKCS#8) to sign with.",
                             examples=["-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n"])
    key_type: Literal["rsa", "ed25519"] = Field(description="The key pair's type.")


def kalshi_scopes(held: list[str]) -> list[str]:
    """Return ``held`` as Kalshi spells scopes: ``trade`` (ours, which Kalshi lacks) as ``write::trade``, the
    scope Kalshi's clients know for trading; each once, in the order held."""
    return list(dict.fromkeys("write::trade" if s == TRADE else s for s in held))


def _out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(api_key_id=key.key_id, name=key.name, scopes=kalshi_scopes(list(key.scopes)),
                     created_ts=key.created_at.isoformat().replace("+00:00", "Z"))


api = APIRouter(tags=["kalshi"])



@api.get("/api_keys", summary="List your API keys.", response_model=GetApiKeysResponse)
def get_api_keys(principal: CurrentPrincipal, api_keys: KeysDep) -> GetApiKeysResponse:
    """All API keys of the signing key's user (a key bound to accounts: those bound within them)."""
    return GetApiKeysResponse(api_keys=[_out(k) for k in api_keys.list_all(principal)])


@api.post("/api_keys", response_model=CreateApiKeyResponse, status_code=201,
          summary="Create an API key from your own public key.",
          openapi_extra=body_example({
              "name": "trading bot",
              "public_key": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAU64LBxJljLaQzgTcpmvgPAaFvJ2NJShVfyYVFDm3fcE=\n-----END PUBLIC KEY-----\n",
              "scopes": ["read", "write"]}))
@raises(InsufficientUsageLevel, LimitExceeded)
def create_api_key(body: CreateApiKeyRequest, principal: CurrentPrincipal, api_keys: KeysDep) -> CreateApiKeyResponse:
    """Create a key from your own RSA or Ed25519 public key (premier or market_maker usage level)."""
    body.refuse_restrictions()
    # Kalshi's rule, this surface's policy: premier (or the operator's level if higher)
    key = api_keys.import_public_key(principal, name=body.name, public_key=body.public_key,
                                          scopes=body.scopes, upload_level=UsageLevel.PREMIER)
    return CreateApiKeyResponse(api_key_id=key.key_id)


@api.post("/api_keys/generate", response_model=GenerateApiKeyResponse, status_code=201,
          summary="Generate an API key and its private key.",
          openapi_extra=body_example({"name": "trading bot", "scopes": ["read", "write"]}))
@raises(LimitExceeded)
def generate_api_key(body: GenerateApiKeyRequest, principal: CurrentPrincipal,
                     api_keys: KeysDep) -> GenerateApiKeyResponse:
    """Generate a key pair: RSA-2048 (PKCS#1 PEM) by default, Ed25519 (PKCS#8) on request."""
    body.refuse_restrictions()
    key, private_pem = api_keys.generate(principal, name=body.name, key_type=body.key_type,
                                              scopes=body.scopes)
    return GenerateApiKeyResponse(api_key_id=key.key_id, private_key=private_pem, key_type=body.key_type)


@api.delete("/api_keys/{api_key}", summary="Delete an API key.", status_code=204)
@raises(Conflict)
def delete_api_key(api_key: Annotated[str, Path(description="The id of the key to delete.",
                                                examples=["0b5e7f9e-3a4c-4b8e-9d2f-6a1c2e3f4a5b"])],
                   principal: CurrentPrincipal, api_keys: KeysDep) -> Response:
    """Delete a key at once; 204 with an empty body."""
    api_keys.delete(principal, api_key)
    return Response(status_code=204)
