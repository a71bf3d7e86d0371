"""TradrAPI-compatible account and user API keys (seed 003) at /tradr: the routes.

How TradrAPI's keys are Strongroom's (one key store, the core's):

- Every TradrAPI key is a Strongroom *bearer* key of the caller's user; its ``id`` is the key's
  integer row id. Keys of other kinds (HMAC, RSA, Ed25519) are not shown here.
- ``roles`` (read | write | delete) are the key's broad scopes; narrower scopes (``read::x``) are
  not roles and are not shown.
- An *account key* is a key bound to exactly one exchange account: ``accountId``. A *user key*
  is any key of the user: ``accountIds`` is its binding, ``[]`` meaning every account of the user
  (when creating, an empty or missing ``accountIds`` asks for every account the caller reaches).
- ``apiKey`` is the plaintext key in the creation response only; afterwards the stored hash.
- ``ips`` is the key's IP allowlist (``[]``: any address); single addresses are shown without /32.
- The caller's own key limits what it reads and does: a key bound to accounts lists and reads only
  keys bound within its accounts (403 otherwise); creating, renaming and deleting follow the core's
  rule that a key never acts on, nor makes, a key more powerful than itself (roles, accounts, IPs,
  expiry). Access tokens act with all of their user's power.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from strongroom import scopes as scope_rules
from strongroom.errors import Conflict, LimitExceeded, NotFound, ValidationFailed
from strongroom.http.routes import guarded
from strongroom.keys import ByPage, KeyNumber, KeyQuery
from strongroom.models import ApiKey
from strongroom.principal import Principal
from strongroom.scopes import WRITE
from strongroom.surfaces.deps import CurrentPrincipal, KeysDep
from strongroom.surfaces.openapi import body_example, raises

BEARER = "bearer"
Role = Literal["read", "write", "delete"]
# TradrAPI's sort fields, as the core names them
SORT_BY = {"id": "id", "createdAt": "created_at", "updatedAt": "updated_at", "lastUsedAt": "last_used_at",
           "friendlyName": "name"}

api = APIRouter(tags=["tradr"])


def may_write(principal: Principal, path_params: Mapping[str, Any]) -> None:
    """Before the body of a create or rename: the caller holds ``write`` (a read-only key is told 403, not 422)."""
    principal.require(WRITE)


# --- shapes ------------------------------------------------------------------------------------------

class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


FRIENDLY_NAME = "The key's name."
ROLES = "read, write, delete: the key's broad scopes (no more than the caller's)."
IPS = "Addresses or CIDRs the key may be used from; empty or missing: any."
ISO = "ISO 8601 in UTC with milliseconds, as JavaScript writes it."


class NewAccountApiKey(_In):
    accountId: StrictInt = Field(description="The exchange account the key is bound to.", examples=[3])
    friendlyName: str | None = Field(None, max_length=100, description=FRIENDLY_NAME, examples=["bot for account 3"])
    roles: list[Role] = Field(min_length=1, max_length=3, description=ROLES, examples=[["read", "write"]])
    ips: list[str] | None = Field(None, max_length=100, description=IPS, examples=[["203.0.113.7"]])


class NewUserApiKey(_In):
    userId: StrictInt = Field(description="The caller's own user id.", examples=[1])
    friendlyName: str | None = Field(None, max_length=100, description=FRIENDLY_NAME, examples=["reporting"])
    roles: list[Role] = Field(min_length=1, max_length=3, description=ROLES, examples=[["read"]])
    ips: list[str] | None = Field(None, max_length=100, description=IPS, examples=[[]])
    accountIds: list[StrictInt] | None = Field(None, max_length=1000, description="The accounts the key may act on; "
                                                                                  "empty or missing: every account the "
                                                                                  "caller reaches.", examples=[[3, 7]])


class Rename(_In):
    friendlyName: str = Field(max_length=100, description="The new name.", examples=["renamed"])


class _Out(BaseModel):
    id: int = Field(description="The key's number (TradrAPI's id).", examples=[12])
    createdAt: str = Field(description="When the key was created (" + ISO + ").",
                           examples=["2024-09-17T23:55:19.607Z"])
    updatedAt: str = Field(description="When it last changed (" + ISO + ").", examples=["2024-09-17T23:55:19.607Z"])
    roles: list[Role] = Field(description="The key's broad scopes.", examples=[["read", "write"]])
    friendlyName: str | None = Field(None, description=FRIENDLY_NAME, examples=["bot for account 3"])
    apiKey: str = Field(description="In the creation response only: the key itself (send it as x-api-key); "
                                    "afterwards its stored hash.", examples=["sr_YdSgElOfychS37GqvsJKRPDpQTDnoO1JAPBi"])
    ips: list[str] = Field(description=IPS, examples=[["203.0.113.7"]])
    lastUsedAt: str | None = Field(None, description="When it last authenticated a request (" + ISO + "); left out "
                                                     "if never.", examples=["2024-09-18T08:00:00.000Z"])


class AccountApiKey(_Out):
    accountId: int = Field(description="The exchange account the key is bound to.", examples=[3])


class UserApiKey(_Out):
    userId: int = Field(description="The key's user.", examples=[1])
    accountIds: list[int] = Field(description="The accounts it may act on; []: every account of the user.",
                                  examples=[[]])


PAGE_LIMIT = Field(description="Keys per page.", examples=[10])
PAGE = Field(description="The page number, from 1.", examples=[1])
TOTAL = Field(description="Keys in all pages.", examples=[1])


class AccountApiKeyPage(BaseModel):
    data: list[AccountApiKey] = Field(description="This page's keys.")
    limit: int = PAGE_LIMIT
    page: int = PAGE
    total: int = TOTAL


class UserApiKeyPage(BaseModel):
    data: list[UserApiKey] = Field(description="This page's keys.")
    limit: int = PAGE_LIMIT
    page: int = PAGE
    total: int = TOTAL


KeyNumberPath = Annotated[int, Path(description="The key's number (TradrAPI's id).", examples=[12])]


def iso(at: datetime | None) -> str | None:
    """An instant as JavaScript's ``Date.toISOString()`` writes it (UTC, milliseconds, ``Z``)."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shown_ips(key: ApiKey) -> list[str]:
    """The allowlist, single addresses without their /32 or /128."""
    out = []
    for cidr in key.ip_allowlist or []:
        net = ipaddress.ip_network(cidr, strict=False)
        out.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
    return out


def common(key: ApiKey, plaintext: str | None) -> dict[str, object]:
    return {
        "id": key.id,
        "createdAt": iso(key.created_at),
        "updatedAt": iso(key.updated_at),
        "roles": [s for s in key.scopes if s in scope_rules.BASE],
        "friendlyName": key.name,
        "apiKey": plaintext if plaintext is not None else key.secret_hash,
        "ips": shown_ips(key),
        "lastUsedAt": iso(key.last_used_at),
    }


def account_key(key: ApiKey, plaintext: str | None = None) -> AccountApiKey:
    """The key as an AccountApiKey (it is bound to exactly one account)."""
    assert key.account_ids, "an account key is bound to one account"  # the core's single_account checks it
    return AccountApiKey.model_validate({**common(key, plaintext), "accountId": key.account_ids[0]})


def account_key_number(number: int) -> KeyNumber:
    """An account key by its id: a bearer key bound to exactly one account (any other is not found)."""
    return KeyNumber(number, BEARER, single_account=True)


def user_key(key: ApiKey, plaintext: str | None = None) -> UserApiKey:
    """The key as a UserApiKey (``accountIds`` ``[]``: every account of the user)."""
    return UserApiKey.model_validate({**common(key, plaintext), "userId": key.user_id,
                                      "accountIds": list(key.account_ids or [])})


def paging(page: int, limit: int, sort_dir: str, sort_by: str) -> ByPage:
    """The list's paging as the keys capability takes it."""
    direction = sort_dir.upper()
    if direction not in ("ASC", "DESC"):
        raise ValidationFailed("invalid sortDir", fields={"sortDir": "ASC or DESC"})
    if sort_by not in SORT_BY:
        raise ValidationFailed("invalid sortBy", fields={"sortBy": f"one of {', '.join(SORT_BY)}"})
    return ByPage(page, limit, SORT_BY[sort_by], direction == "DESC")


PageQ = Annotated[int, Query(description="page number, from 1")]
LimitQ = Annotated[int, Query(description="keys per page, 1..100")]
SortDirQ = Annotated[str, Query(alias="sortDir", description="ASC or DESC")]
SortByQ = Annotated[str, Query(alias="sortBy", description="id, createdAt, updatedAt, lastUsedAt or friendlyName")]


# --- account keys ------------------------------------------------------------------------------------

@api.post("/accounts/api-keys", status_code=201, response_model=AccountApiKey, response_model_exclude_none=True,
          summary="Create a key for one exchange account.",
          openapi_extra=body_example({
              "accountId": 3, "friendlyName": "Reporting Key", "roles": ["read"], "ips": ["203.0.113.7"]}))
@raises(NotFound, LimitExceeded)
@guarded(may_write)
async def create_account_key(body: NewAccountApiKey, principal: CurrentPrincipal, api_keys: KeysDep) -> AccountApiKey:
    """Create a key bound to one exchange account; ``apiKey`` is the plaintext key, in this response only."""
    await api_keys.require_account(principal, body.accountId)
    key, secret = await api_keys.create(principal, name=body.friendlyName or f"account {body.accountId} key",
                                        scopes=list(body.roles), account_ids=[body.accountId],
                                        ip_allowlist=body.ips)
    return account_key(key, secret)


@api.get("/accounts/api-keys/{key_id}", response_model=AccountApiKey, response_model_exclude_none=True,
         summary="Read an account key.")
async def get_account_key(key_id: KeyNumberPath, principal: CurrentPrincipal, api_keys: KeysDep) -> AccountApiKey:
    """One account key by its id (``apiKey`` is the stored hash)."""
    return account_key(await api_keys.get(principal, account_key_number(key_id)))


@api.get("/accounts/{account_id}/api-keys", response_model=AccountApiKeyPage, response_model_exclude_none=True,
         summary="List the keys of an exchange account.")
async def list_account_keys(account_id: Annotated[int, Path(description="The exchange account's id.", examples=[3])], principal: CurrentPrincipal, api_keys: KeysDep, page: PageQ = 1,
                      limit: LimitQ = 10, sort_dir: SortDirQ = "DESC", sort_by: SortByQ = "id") -> AccountApiKeyPage:
    """The keys bound to exactly this account, a page at a time."""
    wanted = paging(page, limit, sort_dir, sort_by)
    keys, total = await api_keys.page(principal, KeyQuery(kind=BEARER, bound_to=account_id), wanted)
    return AccountApiKeyPage(data=[account_key(k) for k in keys], limit=wanted.limit, page=wanted.page, total=total)


@api.patch("/accounts/api-keys/{key_id}", summary="Rename an account key.",
           openapi_extra=body_example({"friendlyName": "My renamed key"}), response_model=bool)
@raises(Conflict)
@guarded(may_write)
async def rename_account_key(key_id: KeyNumberPath, body: Rename, principal: CurrentPrincipal, api_keys: KeysDep) -> bool:
    """Rename an account key; ``true``."""
    await api_keys.update(principal, account_key_number(key_id), {"name": body.friendlyName})
    return True


@api.delete("/accounts/api-keys/{key_id}", summary="Delete an account key.", response_model=bool)
@raises(Conflict)
async def delete_account_key(key_id: KeyNumberPath, principal: CurrentPrincipal, api_keys: KeysDep) -> bool:
    """Delete an account key at once; ``true``."""
    await api_keys.delete(principal, account_key_number(key_id))
    return True


# --- user keys ---------------------------------------------------------------------------------------

@api.post("/users/api-keys", status_code=201, response_model=UserApiKey, response_model_exclude_none=True,
          summary="Create a user key.",
          openapi_extra=body_example({
              "userId": 1, "friendlyName": "My Personal Key", "roles": ["read", "write"], "ips": [],
              "accountIds": [3, 7]}))
@raises(LimitExceeded)
@guarded(may_write)
async def create_user_key(body: NewUserApiKey, principal: CurrentPrincipal, api_keys: KeysDep) -> UserApiKey:
    """Create a key of your user for ``accountIds`` (empty or missing: every account you reach);
    ``apiKey`` is the plaintext key, in this response only."""
    await api_keys.require_user(principal, body.userId)
    key, secret = await api_keys.create(principal, name=body.friendlyName or "user key", scopes=list(body.roles),
                                        account_ids=body.accountIds or None, ip_allowlist=body.ips)
    return user_key(key, secret)


@api.get("/users/api-keys/{key_id}", response_model=UserApiKey, response_model_exclude_none=True,
         summary="Read a user key.")
async def get_user_key(key_id: KeyNumberPath, principal: CurrentPrincipal, api_keys: KeysDep) -> UserApiKey:
    """One key of your user by its id (``apiKey`` is the stored hash)."""
    return user_key(await api_keys.get(principal, KeyNumber(key_id, BEARER)))


@api.get("/users/{user_id}/api-keys", response_model=UserApiKeyPage, response_model_exclude_none=True,
         summary="List your user's keys.")
async def list_user_keys(user_id: Annotated[int, Path(description="The caller's own user id.", examples=[1])], principal: CurrentPrincipal, api_keys: KeysDep, page: PageQ = 1,
                   limit: LimitQ = 10, sort_dir: SortDirQ = "DESC", sort_by: SortByQ = "id") -> UserApiKeyPage:
    """Your user's keys (those your key reaches), a page at a time."""
    await api_keys.require_user(principal, user_id)
    wanted = paging(page, limit, sort_dir, sort_by)
    keys, total = await api_keys.page(principal, KeyQuery(kind=BEARER), wanted)
    return UserApiKeyPage(data=[user_key(k) for k in keys], limit=wanted.limit, page=wanted.page, total=total)


@api.patch("/users/api-keys/{key_id}", summary="Rename a user key.",
           openapi_extra=body_example({"friendlyName": "renamed"}), response_model=bool)
@raises(Conflict)
@guarded(may_write)
async def rename_user_key(key_id: KeyNumberPath, body: Rename, principal: CurrentPrincipal, api_keys: KeysDep) -> bool:
    """Rename a key of your user; ``true``."""
    await api_keys.update(principal, KeyNumber(key_id, BEARER), {"name": body.friendlyName})
    return True


@api.delete("/users/api-keys/{key_id}", summary="Delete a user key.", response_model=bool)
@raises(Conflict)
async def delete_user_key(key_id: KeyNumberPath, principal: CurrentPrincipal, api_keys: KeysDep) -> bool:
    """Delete a key of your user at once; ``true``."""
    await api_keys.delete(principal, KeyNumber(key_id, BEARER))
    return True
