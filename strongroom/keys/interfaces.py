"""The keys capability's contract: the façade surfaces and the console call, and the query objects they ask it
with (Warehouse's ``interfaces.py`` is the model: the docstrings are the contract).

Every method is async: the database work runs in a worker thread inside the façade, once per call, never in a
surface. Every method checks the principal: scopes, ownership (keys are only ever one's own) and the rule of
key power (a key never acts on, nor makes, a key more powerful than itself: scopes, accounts, IP allowlist,
expiry). Errors are ``strongroom.errors`` domain errors, whose codes each surface maps.

A key is named by its UUID (``key_id``), or by its row number with a :class:`KeyNumber` (surfaces whose ids
are numbers: TradrAPI); vendor-shaped listings are a :class:`KeyQuery` with :class:`ByPage` paging, never a
method per vendor.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from strongroom.models import ApiKey
from strongroom.pagination import Page
from strongroom.principal import Principal


@dataclass(frozen=True)
class KeyNumber:
    """A key by its row number (TradrAPI's id). Only keys of ``kind`` (if given) and, with ``single_account``,
    keys bound to exactly one account count (others are NotFound); a key bound to accounts beyond the calling
    key's binding is Forbidden (where a ``key_id`` is NotFound), as TradrAPI answers."""

    number: int
    kind: str | None = None  # a KeyKind value
    single_account: bool = False


@dataclass(frozen=True)
class KeyQuery:
    """Which of the caller's keys (within the calling key's reach): every filter given must match."""

    kind: str | None = None  # a KeyKind value
    bound_to: int | None = None  # only keys bound to exactly this one exchange account (the caller must reach it)


@dataclass(frozen=True)
class ByPage:
    """Numbered pages (from 1) of ``limit`` keys, sorted by ``sort_by`` (id, created_at, updated_at,
    last_used_at or name; a key never used counts as the least recently used; ties by id)."""

    page: int = 1
    limit: int = 10
    sort_by: str = "id"
    descending: bool = True


class Keys(Protocol):
    """Platform API keys: create (bearer and hmac with a secret shown once; rsa and ed25519 from a public key,
    uploaded or generated), read, list, change, roll, delete, and their usage counts. Never a stored secret."""

    async def create(self, principal: Principal, *, name: str, kind: str = "bearer",
                     scopes: Sequence[str] | None = None, account_ids: Sequence[int] | None = None,
                     ip_allowlist: Sequence[str] | None = None, expires_at: datetime | None = None,
                     public_key: str | None = None, upload_level: str | None = None) -> tuple[ApiKey, str | None]:
        """Create a key of the caller's user; return it and its secret (bearer, hmac: shown this once; None for
        rsa and ed25519, which take ``public_key``). A key made by a key inherits its account binding, allowlist
        and expiry unless narrower ones are given. Uploading a public key needs the usage level
        STRONGROOM_PUBLIC_KEY_UPLOAD_LEVEL, or ``upload_level`` if higher (a surface's policy: Kalshi's premier).

        Raises InsufficientScope (no ``write``; more than the creator holds), ValidationFailed (name, kind,
        scopes, accounts, allowlist, expiry, public key), NotFound (an account not the caller's),
        InsufficientUsageLevel, LimitExceeded (STRONGROOM_MAX_API_KEYS_PER_USER).
        """
        ...

    async def import_public_key(self, principal: Principal, *, name: str, public_key: str,
                                **attrs: Any) -> ApiKey:
        """Create an rsa or ed25519 key from an uploaded PEM (its kind read from the key); ``attrs`` are
        ``create``'s. Raises as ``create`` does (ValidationFailed for a malformed, weak or unsupported key)."""
        ...

    async def generate(self, principal: Principal, *, name: str, key_type: str = "rsa",
                       **attrs: Any) -> tuple[ApiKey, str]:
        """Generate an rsa (2048) or ed25519 key pair, keep the public key and return the key and its private
        key (PEM, shown this once, never stored); ``attrs`` are ``create``'s. Raises as ``create`` does."""
        ...

    async def get(self, principal: Principal, key: str | KeyNumber) -> ApiKey:
        """Return one of the caller's keys. Raises InsufficientScope (no ``read``), NotFound (unknown, another
        user's; by ``key_id`` also a key beyond a bound caller's accounts), Forbidden (by KeyNumber: beyond
        them)."""
        ...

    async def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50) -> Page[ApiKey]:
        """Return a page of the caller's keys it sees (a bound key: those bound within its accounts), oldest
        first. Raises InsufficientScope, ValidationFailed (cursor, limit)."""
        ...

    async def list_all(self, principal: Principal) -> builtins.list[ApiKey]:
        """Return every key of the caller's user it sees (bounded by the per-user cap), oldest first. Raises
        InsufficientScope."""
        ...

    async def page(self, principal: Principal, query: KeyQuery, paging: ByPage) -> tuple[builtins.list[ApiKey], int]:
        """Return one numbered page of the caller's keys ``query`` selects within its reach, and their total.
        Raises InsufficientScope, ValidationFailed (page < 1, limit outside 1..100, sort field), Forbidden or
        NotFound (``bound_to`` beyond a bound caller, or not a live account of the caller's user)."""
        ...

    async def update(self, principal: Principal, key: str | KeyNumber, changes: Mapping[str, Any]) -> ApiKey:
        """Change name, scopes, account_ids, ip_allowlist, enabled or expires_at (effective everywhere within
        1 s); return the key as written. Raises NotFound, ValidationFailed, InsufficientScope (the key is, or
        would become, more powerful than the caller's), Forbidden (by KeyNumber: beyond the binding), Conflict
        (it kept changing meanwhile)."""
        ...

    async def set_enabled(self, principal: Principal, key_id: str, enabled: bool) -> ApiKey:
        """Enable or disable a key (``update`` with ``enabled``); return it. Raises as ``update`` does."""
        ...

    async def roll(self, principal: Principal, key_id: str, grace_seconds: int = 0) -> tuple[ApiKey, str]:
        """Issue a new secret (returned, shown this once); the old one stays valid for ``grace_seconds`` (0:
        refused now). Raises NotFound, BadRequest (rsa and ed25519 keys are not rolled), ValidationFailed
        (grace), InsufficientScope, Conflict."""
        ...

    async def delete(self, principal: Principal, key: str | KeyNumber) -> None:
        """Delete a key, refused at once by every worker; of concurrent deletes exactly one succeeds. Raises
        NotFound (unknown, another user's, already deleted), InsufficientScope (``delete``; more powerful than
        the caller's), Forbidden (by KeyNumber: beyond the binding)."""
        ...

    async def usage(self, principal: Principal, key_id: str, since: datetime | None = None,
                    until: datetime | None = None) -> builtins.list[tuple[datetime, str, int]]:
        """Return ``(hour, outcome, count)`` rows of one of the caller's keys, oldest first (written in batches:
        up to STRONGROOM_LAST_USED_FLUSH_SECONDS late). Raises NotFound, InsufficientScope, ValidationFailed
        (``since`` after ``until``)."""
        ...

    async def require_user(self, principal: Principal, user_id: int) -> None:
        """Return if ``user_id`` is the caller's own user (keys are only ever one's own); raise Forbidden
        otherwise. No database work."""
        ...

    async def require_account(self, principal: Principal, account_id: int) -> None:
        """Return if the caller may act on exchange account ``account_id``. Raises Forbidden (a bound key, other
        accounts: checked first, so it learns nothing of accounts outside its binding), NotFound (not a live
        account of the caller's user)."""
        ...
