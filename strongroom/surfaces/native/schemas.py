"""Wire models of the native /v1 API. Public models have no secret fields; secrets appear only in
the *Created/*Generated/*Rolled models returned once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from strongroom.enums import AccountStatus, AuthMethod, EventType, KeyKind, UsageLevel
from strongroom.surfaces.wire import ACCOUNT_TYPES, DecimalText, Scope, one_of

T = TypeVar("T")

KEY_ID = Field(description="The key's id (a UUID): the key id of signed requests and of Basic key_id:secret.",
               examples=["0b5e7f9e-3a4c-4b8e-9d2f-6a1c2e3f4a5b"])
ACCOUNT_IDS = "Exchange accounts (ids) the key may act on; null: every account of its user."
IP_ALLOWLIST = "Client addresses (CIDRs or single addresses) the key may be used from; empty: any."
EXPIRES_AT = "When the key stops working (ISO 8601 with a timezone); null: never."

CREDENTIAL_FIELDS = {
    "api_key": "The exchange API key (most venues).",
    "secret": "The exchange API secret (most venues).",
    "passphrase": "The API key's passphrase (OKX, KuCoin, Bitget, Coinbase Exchange, ...).",
    "private_key": "A private key (Hyperliquid, Paradex, Lighter and other wallet-based venues).",
    "address": "A wallet address (Hyperliquid, Paradex, Derive, Nado).",
    "uid": "The account's user id (Coinmate, Cryptomus, NDAX).",
    "account_id": "The account id (Hibachi, ModeTrade, WOOFi Pro).",
    "login": "The account's login (NDAX).",
}
CREDENTIALS = ("The exchange API key's fields. Which are required depends on the venue: GET /v1/exchanges/{exchange} "
               "lists them (credentials: required, optional_credentials: optional); any other field is refused "
               "(422 naming it). Each value is a non-empty string (an optional one may be null or blank: left "
               "out). Checked live with the exchange first; stored encrypted, never returned.")
CREDENTIALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {name: {"type": ["string", "null"], "description": text} for name, text in CREDENTIAL_FIELDS.items()},
    "additionalProperties": {"type": ["string", "null"]},
    "examples": [
        {"api_key": "your-binance-api-key", "secret": "your-binance-secret"},
        {"api_key": "your-okx-api-key", "secret": "your-okx-secret", "passphrase": "your-okx-passphrase"},
    ],
}
Credentials = Annotated[dict[str, Any], WithJsonSchema(CREDENTIALS_SCHEMA)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageOut(BaseModel, Generic[T]):
    items: list[T] = Field(description="This page's items, oldest first.")
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last page.",
                                    examples=["aWQ6NDI"])


class TokenOut(BaseModel):
    access_token: str = Field(description="The access token (Authorization: Bearer ...).",
                              examples=["sra_ibwZniJL9U4JHJJNRUbdRWfT6H53F63DAQJb"])
    token_type: str = Field("bearer", description="Always bearer.", examples=["bearer"])
    expires_in: int = Field(description="Seconds the access token lasts (STRONGROOM_ACCESS_TOKEN_TTL_SECONDS).",
                            examples=[900])
    refresh_token: str = Field(description="For POST /v1/auth/refresh: used once, then replaced; reusing one ends "
                                           "the whole session.", examples=["srr_PqxYLbK9uiIzV3rLttg08AWs1XPW8z3e1cKj"])


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=200, description="The refresh token of the last token pair.",
                               examples=["srr_PqxYLbK9uiIzV3rLttg08AWs1XPW8z3e1cKj"])


USAGE_LEVEL = ("Kalshi's API usage level: uploading one's own public key needs premier or market_maker on Kalshi's "
               "surface, STRONGROOM_PUBLIC_KEY_UPLOAD_LEVEL (default basic) elsewhere.")


class UserPublic(Public):
    id: int = Field(description="The user's id.", examples=[1])
    username: str = Field(description="The sign-in name.", examples=["alice"])
    email: str | None = Field(None, description="Contact address, if given.", examples=["alice@example.com"])
    is_admin: bool = Field(description="Admins manage users and see every account, key and audit event.")
    usage_level: UsageLevel = Field(description=USAGE_LEVEL)
    created_at: datetime = Field(description="When the user was created (UTC).")


class MeOut(BaseModel):
    id: int = Field(description="The user's id.", examples=[1])
    username: str = Field(description="The user's sign-in name.", examples=["alice"])
    is_admin: bool = Field(description="Whether the user is an admin.")
    usage_level: UsageLevel = Field(description=USAGE_LEVEL)
    key_id: str | None = Field(None, description="The API key used, if a key authenticated the request.",
                               examples=["0b5e7f9e-3a4c-4b8e-9d2f-6a1c2e3f4a5b"])
    scopes: list[Scope] = Field(description="What the credential may do (an access token: read, write, delete).",
                                examples=[["read", "write", "delete"]])
    account_ids: list[int] | None = Field(None, description="The accounts a bound key may act on; null: every account.",
                                          examples=[[3, 7]])
    auth_scheme: AuthMethod = Field(description="How the request authenticated.")


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=64, description="The sign-in name (unique).", examples=["bob"])
    password: str = Field(min_length=8, max_length=1024, description="At least 8 characters; stored as an Argon2 hash.",
                          examples=["correct horse battery staple"])
    email: str | None = Field(None, max_length=254, description="Contact address.", examples=["bob@example.com"])
    is_admin: bool = Field(False, description="Make the user an admin.")
    usage_level: UsageLevel = Field(UsageLevel.BASIC, description=USAGE_LEVEL)


class UserUpdate(Strict):
    usage_level: UsageLevel = Field(description=USAGE_LEVEL)


class ExchangeOut(BaseModel):
    id: str = Field(description="The catalogue id (what /v1/exchange-accounts takes as exchange).",
                    examples=["binance"])
    name: str = Field(description="The venue's name.", examples=["Binance"])
    credentials: list[str] = Field(description="The credential fields a connection requires.",
                                   examples=[["api_key", "secret"]])
    optional_credentials: list[str] = Field([], description="Credential fields a connection may add.", examples=[[]])
    account_types: list[Annotated[str, one_of(ACCOUNT_TYPES)]] = Field(
        description="The account types it offers; the first is the default.", examples=[["spot", "margin"]])
    validator: str | None = Field(None, description="How credentials are checked live (ccxt); null: they cannot be "
                                                    "(accounts stay unverified).", examples=["ccxt"])
    aliases: list[str] = Field([], description="Other names it is found by (any case).", examples=[["BINANCE"]])


class AccountPublic(Public):
    id: int = Field(description="The account's id.", examples=[3])
    public_id: uuid.UUID = Field(description="The account's public UUID (other surfaces' id).")
    user_id: int = Field(description="The owner's user id.", examples=[1])
    exchange: str = Field(description="The venue's catalogue id.", examples=["binance"])
    name: str = Field(description="The account's name.", examples=["Binance spot"])
    account_type: Annotated[str, one_of(ACCOUNT_TYPES)] = Field(description="The account type.", examples=["spot"])
    status: AccountStatus = Field(description="active; disabled (by its owner); invalid (the exchange refuses the "
                                              "key); unverified (the venue cannot be checked live); suspended (the "
                                              "key can withdraw); disconnected (terminal: credentials destroyed).")
    key_hint: str = Field(description="The API key's first and last characters (never the key).",
                          examples=["vmPU…Eh8A"])
    validated_at: datetime | None = Field(None, description="When the exchange last checked the key.")
    validation_result: str | None = Field(None, description="The last check's result (valid, invalid_credentials, "
                                                            "withdrawal_permission, no_validator).", examples=["valid"])
    created_at: datetime = Field(description="When the account was connected.")
    updated_at: datetime = Field(description="When it last changed.")
    disconnected_at: datetime | None = Field(None, description="When it was disconnected, if it was.")
    # the last balance snapshot (issue 9): totals as decimal strings, null when never loaded
    balance_usd: DecimalText | None = Field(None, description="The last snapshot's value in USD (decimal string); null when "
                                                      "never loaded or without the read scope.", examples=["31200.5"])
    balance_btc: DecimalText | None = Field(None, description="The last snapshot's value in BTC (decimal string).",
                                    examples=["0.4875"])
    balance_fetched_at: datetime | None = Field(None, description="When the last snapshot was loaded.")
    balance_age_seconds: float | None = Field(None, description="The last snapshot's age in seconds.", examples=[42.5])


class AccountCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"exchange": "binance", "name": "Binance main",
         "credentials": {"api_key": "your-binance-api-key", "secret": "your-binance-secret"}},
        {"exchange": "okx", "account_type": "spot",
         "credentials": {"api_key": "your-okx-api-key", "secret": "your-okx-secret",
                         "passphrase": "your-okx-passphrase"}},
    ]})

    exchange: str = Field(min_length=1, max_length=64, description="The venue: a catalogue id or alias (any case); "
                                                                   "GET /v1/exchanges lists them.", examples=["binance"])
    name: str | None = Field(None, max_length=100, description="A name (1-100 characters); default: the venue's name "
                                                               "and the account type.", examples=["Binance main"])
    account_type: Annotated[str, one_of(ACCOUNT_TYPES)] | None = Field(
        None, max_length=16, description="One of the venue's account_types (GET /v1/exchanges/{exchange}); "
                                         "default: its first.", examples=["spot"])
    credentials: Credentials = Field(description=CREDENTIALS)


class AccountUpdate(Strict):
    name: str = Field(min_length=1, max_length=100, description="The new name.", examples=["Binance savings"])


class RotateIn(Strict):
    credentials: Credentials = Field(description="The new API key's fields, as for connecting. " + CREDENTIALS[
        len("The exchange API key's fields. "):] + " The old ones stay until the new ones pass.")


class ApiKeyPublic(Public):
    key_id: str = KEY_ID
    name: str = Field(description="The key's name.", examples=["trading bot"])
    kind: KeyKind = Field(description="bearer: the secret is sent as a token; hmac: a shared secret signs requests; "
                                      "rsa, ed25519: a private key signs requests.")
    scopes: list[Scope] = Field(description="What the key may do.", examples=[["read", "write"]])
    account_ids: list[int] | None = Field(None, description=ACCOUNT_IDS, examples=[[3]])
    ip_allowlist: list[str] = Field(description=IP_ALLOWLIST, examples=[["203.0.113.0/24"]])
    expires_at: datetime | None = Field(None, description=EXPIRES_AT)
    enabled: bool = Field(description="A disabled key is refused until enabled again.")
    hint: str = Field(description="The secret's first and last 4 characters, or rsa:/ed25519: and the public key's fingerprint.",
                      examples=["sr_Y…APBi"])
    public_key: str | None = Field(None, description="The public key (PEM) of an rsa or ed25519 key.")
    created_at: datetime = Field(description="When the key was created.")
    updated_at: datetime = Field(description="When it last changed.")
    last_used_at: datetime | None = Field(None, description="When it last authenticated a request (written in batches: "
                                                            "up to STRONGROOM_LAST_USED_FLUSH_SECONDS late).")


class ApiKeyCreated(ApiKeyPublic):
    secret: str | None = Field(None, description="Shown once: the bearer key (sr_...) or the HMAC secret; null for "
                                                 "rsa and ed25519 keys.", examples=["sr_YdSgElOfychS37GqvsJKRPDpQTDnoO1JAPBi"])


class ApiKeyGenerated(ApiKeyPublic):
    private_key: str = Field(description="Shown once; never stored: the private key (PEM) to sign with.",
                             examples=["-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"])


class ApiKeyRolled(ApiKeyPublic):
    secret: str = Field(description="Shown once: the new bearer key or HMAC secret.",
                        examples=["sr_hQ3m0fWcQy6r1mJ2t7uKbXo9d4PzLsVnEa5C"])


class ApiKeyAttrs(Strict):
    scopes: list[Scope] | None = Field(None, description="What the key may do, no more than the caller may; "
                                                         "default: read and write.", examples=[["read", "write"]])
    account_ids: list[int] | None = Field(None, description=ACCOUNT_IDS + " Only accounts the caller reaches.",
                                          examples=[[3]])
    ip_allowlist: list[str] | None = Field(None, description=IP_ALLOWLIST, examples=[["203.0.113.0/24", "198.51.100.7"]])
    expires_at: datetime | None = Field(None, description=EXPIRES_AT, examples=["2031-01-01T00:00:00Z"])


class ApiKeyCreate(ApiKeyAttrs):
    name: str = Field(min_length=1, max_length=100, description="The key's name.", examples=["trading bot"])
    kind: KeyKind = Field(KeyKind.BEARER, description="bearer (default) or hmac: the response holds the secret; rsa "
                                                      "or ed25519: send public_key (usage level "
                                                      "STRONGROOM_PUBLIC_KEY_UPLOAD_LEVEL, default basic), or use "
                                                      "POST /v1/api-keys/generate.")
    public_key: str | None = Field(None, max_length=16384, description="For rsa and ed25519 keys: the public key (PEM).")


class ApiKeyGenerate(ApiKeyAttrs):
    name: str = Field(min_length=1, max_length=100, description="The key's name.", examples=["signing key"])
    key_type: Literal["rsa", "ed25519"] = Field("rsa", description="rsa (RSA-2048, default) or ed25519.")


class ApiKeyUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=100, description="A new name.", examples=["renamed bot"])
    scopes: list[Scope] | None = Field(None, description="New scopes (no wider than the caller's).",
                                       examples=[["read"]])
    account_ids: list[int] | None = Field(None, description=ACCOUNT_IDS, examples=[[3, 7]])
    ip_allowlist: list[str] | None = Field(None, description=IP_ALLOWLIST, examples=[[]])
    enabled: bool | None = Field(None, description="Disable (false) or enable (true) the key.")
    expires_at: datetime | None = Field(None, description=EXPIRES_AT, examples=["2031-01-01T00:00:00Z"])


class RollIn(Strict):
    grace_seconds: int = Field(0, ge=0, le=30 * 24 * 3600, description="How long the old secret keeps working "
                                                                       "(0-2592000 s; default 0: not at all).",
                               examples=[3600])


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
    key_id: str = KEY_ID
    hours: list[KeyUsageHour] = Field(description="One entry per hour with verifications, oldest first.")
    totals: KeyUsageCounts = Field(description="The sums over those hours.")


class AuditEventOut(Public):
    id: int = Field(description="The event's id.", examples=[1042])
    at: datetime = Field(description="When it happened (UTC).")
    actor_user_id: int | None = Field(None, description="The user who acted, if known.", examples=[1])
    actor_key_id: str | None = Field(None, description="The API key that acted, if one did.")
    action: str = Field(description="What was done: auth.sign_in, auth.refresh, account.connect, account.rotate, "
                                    "api_key.create, api_key.roll, user.delete, ...", examples=["account.connect"])
    target: str | None = Field(None, description="What it was done to (account:3, api_key:<id>, user:2).",
                               examples=["account:3"])
    client_ip: str | None = Field(None, description="The client's address.", examples=["203.0.113.9"])
    outcome: Annotated[str, one_of(("ok", "refused", "failed"))] = Field(
        description="ok, refused (not allowed) or failed (e.g. a wrong password).")
    details: dict[str, Any] = Field(description="More about it (never a secret).", examples=[{"exchange": "binance"}])


class EventOut(BaseModel):
    """One thing that happened (an outbox event): the body of a webhook delivery is the same."""

    id: str = Field(description="The event's id (the webhook-id of its deliveries).",
                    examples=["evt_5f0c2a9e41b7d3c8a6e2f190"])
    type: Annotated[str, one_of(EventType)] = Field(description="What happened.", examples=["api_key.revoked"])
    created_at: datetime = Field(description="When it happened (UTC).")
    user_id: int | None = Field(description="Whose it is (null: the deployment's, admins only).", examples=[1])
    data: dict[str, Any] = Field(description="Its subject: ids, names, statuses, amounts (never a secret).",
                                 examples=[{"key_id": "0b5e7f9e-3a4c-4b8e-9d2f-6a1c2e3f4a5b", "name": "bot"}])

    @classmethod
    def of(cls, event: Any) -> EventOut:
        """Return the public shape of an ``Event`` row."""
        return cls(id=event.public_id, type=str(event.type), created_at=event.created_at, user_id=event.user_id,
                   data=event.data)


# --- parameters -----------------------------------------------------------------------------------

AccountId = Annotated[int, Path(description="The exchange account's id.", examples=[3])]
KeyIdPath = Annotated[str, Path(description="The API key's id (a UUID).",
                                examples=["0b5e7f9e-3a4c-4b8e-9d2f-6a1c2e3f4a5b"])]
UserId = Annotated[int, Path(description="The user's id.", examples=[2])]
Cursor = Annotated[str | None, Query(description="The next_cursor of the previous page; omit for the first page.")]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page (1-200).")]
