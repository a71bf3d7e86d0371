"""Wire models of the native /v1 API. Public models have no secret fields; secrets appear only in
the *Created/*Generated/*Rolled models returned once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=200)


class UserPublic(Public):
    id: int
    username: str
    email: str | None = None
    is_admin: bool
    usage_level: str
    created_at: datetime


class MeOut(BaseModel):
    id: int
    username: str
    is_admin: bool
    usage_level: str
    key_id: str | None = None
    scopes: list[str]
    account_ids: list[int] | None = None
    auth_scheme: str


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    email: str | None = Field(None, max_length=254)
    is_admin: bool = False
    usage_level: Literal["basic", "advanced", "premier", "market_maker"] = "basic"


class UserUpdate(Strict):
    usage_level: Literal["basic", "advanced", "premier", "market_maker"]


class ExchangeOut(BaseModel):
    id: str
    name: str
    credentials: list[str]
    optional_credentials: list[str] = []
    account_types: list[str]
    validator: str | None = None
    aliases: list[str] = []


class AccountPublic(Public):
    id: int
    public_id: uuid.UUID
    user_id: int
    exchange: str
    name: str
    account_type: str
    status: str
    key_hint: str
    validated_at: datetime | None = None
    validation_result: str | None = None
    created_at: datetime
    updated_at: datetime
    disconnected_at: datetime | None = None
    # the last balance snapshot (issue 9): totals as decimal strings, null when never loaded
    balance_usd: str | None = None
    balance_btc: str | None = None
    balance_fetched_at: datetime | None = None
    balance_age_seconds: float | None = None


class AccountCreate(Strict):
    exchange: str = Field(min_length=1, max_length=64)
    name: str | None = Field(None, max_length=100)
    account_type: str | None = Field(None, max_length=16)
    credentials: dict[str, Any]


class AccountUpdate(Strict):
    name: str = Field(min_length=1, max_length=100)


class RotateIn(Strict):
    credentials: dict[str, Any]


class ApiKeyPublic(Public):
    key_id: str
    name: str
    kind: str
    scopes: list[str]
    account_ids: list[int] | None = None
    ip_allowlist: list[str]
    expires_at: datetime | None = None
    enabled: bool
    hint: str
    public_key: str | None = None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    secret: str | None = Field(None, description="Shown once: bearer key or HMAC secret.")


class ApiKeyGenerated(ApiKeyPublic):
    private_key: str = Field(description="Shown once; never stored.")


class ApiKeyRolled(ApiKeyPublic):
    secret: str


class ApiKeyAttrs(Strict):
    scopes: list[str] | None = None
    account_ids: list[int] | None = None
    ip_allowlist: list[str] | None = None
    expires_at: datetime | None = None


class ApiKeyCreate(ApiKeyAttrs):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["bearer", "hmac", "rsa", "ed25519"] = "bearer"
    public_key: str | None = Field(None, max_length=16384)


class ApiKeyGenerate(ApiKeyAttrs):
    name: str = Field(min_length=1, max_length=100)
    key_type: Literal["rsa", "ed25519"] = "rsa"


class ApiKeyUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=100)
    scopes: list[str] | None = None
    account_ids: list[int] | None = None
    ip_allowlist: list[str] | None = None
    enabled: bool | None = None
    expires_at: datetime | None = None


class RollIn(Strict):
    grace_seconds: int = Field(0, ge=0, le=30 * 24 * 3600)


class KeyUsageCounts(BaseModel):
    ok: int = Field(0, description="Verified.")
    rate_limited: int = Field(0, description="Refused: over the key's rate limit.")
    ip_refused: int = Field(0, description="Refused: client IP outside the key's allowlist.")
    expired: int = Field(0, description="Refused: the key had expired.")
    disabled: int = Field(0, description="Refused: the key was disabled.")
    bad_signature: int = Field(0, description="Refused: bad secret or signature, stale timestamp or replay.")


class KeyUsageHour(KeyUsageCounts):
    hour: datetime = Field(description="Start of the hour (UTC).")


class KeyUsageOut(BaseModel):
    key_id: str
    hours: list[KeyUsageHour]
    totals: KeyUsageCounts


class AuditEventOut(Public):
    id: int
    at: datetime
    actor_user_id: int | None = None
    actor_key_id: str | None = None
    action: str
    target: str | None = None
    client_ip: str | None = None
    outcome: str
    details: dict[str, Any]
