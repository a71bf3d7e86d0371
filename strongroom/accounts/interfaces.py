"""The accounts capability's contract: the façade surfaces and the CLI call, the query they ask it with and
the policies they pass (Warehouse's ``interfaces.py`` is the model: the docstrings are the contract).

Every method is async: database work runs in a worker thread inside the service, the exchange call (the
live check of credentials) on the event loop. Every method checks the principal (scopes, ownership, a
key's account binding); errors are ``strongroom.errors`` domain errors, whose codes each surface maps.

Vendor-shaped needs are met with an :class:`AccountQuery` and a :class:`ConnectPolicy` built by the
surface, never with a method per vendor. :class:`Credentials` are the stored exchange keys (Cadenza's
credentials) accounts can be connected with.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, overload

from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.models import ExchangeAccount, ExchangeCredential
from strongroom.pagination import OffsetPage, Page
from strongroom.principal import Principal


@dataclass(frozen=True)
class AccountQuery:
    """Which exchange accounts: every filter given must match; an empty collection matches nothing.

    Always narrowed to what the caller may see: one user's accounts (``user_id``, default the caller's own;
    another user's only for an admin), within a key's account binding.
    """

    user_id: int | None = None  # whose accounts (default: the caller's)
    everyone: bool = False  # every user's accounts (admins only; ``user_id`` then narrows without a 404)
    exchange: str | None = None  # a catalogue id or alias
    statuses: Collection[str] | None = None  # AccountStatus values
    live_only: bool = False  # only accounts that still hold credentials (not disconnected)
    ids: Collection[int] | None = None
    public_ids: Collection[uuid.UUID] | None = None
    api_key: str | None = None  # this exchange API key (its keyed fingerprint: needs ``exchange``)
    api_key_hint: str | None = None  # an exchange API key with this key's hint (first and last four characters)


@dataclass(frozen=True)
class Reach:
    """One trading account a credential's key reaches, as verify reports it.

    ``availability`` is ``"own"`` (connected by the credential's owner: ``account`` is that account),
    ``"unavailable"`` (connected by another user; nothing of theirs is given) or ``"new"`` (not
    connected: the venue's default account type).
    """

    credential: ExchangeCredential
    account_type: str
    availability: str
    account: ExchangeAccount | None = None


@dataclass(frozen=True)
class ByCursor:
    """Cursor paging: ``limit`` accounts after ``cursor`` (oldest first); the page says the next cursor."""

    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class ByOffset:
    """Offset paging: ``limit`` accounts from ``offset`` (oldest first), with the total count."""

    offset: int = 0
    limit: int = 50


@dataclass(frozen=True)
class ConnectPolicy:
    """How a surface's API connects accounts, beyond the rules every connect follows."""

    one_per_exchange: bool = False  # a second live account of the owner on one exchange is AccountExists


class Accounts(Protocol):
    """Exchange accounts: connect (checked live, stored encrypted), find, read, rename, rotate, revalidate,
    enable/disable and disconnect. Credentials are never returned."""

    async def resolve_exchange(self, name: str) -> ExchangeInfo:
        """Return the catalogue entry of an id or alias; ValidationFailed naming ``exchange`` if unknown."""
        ...

    async def connect(self, principal: Principal, exchange: str, credentials: Mapping[str, Any], *,
                      name: str | None = None, account_type: str | None = None, user_id: int | None = None,
                      policy: ConnectPolicy | None = None) -> ExchangeAccount:
        """Check ``credentials`` live with the exchange, then store them encrypted for ``user_id`` (default the
        caller); return the new account (``active``, or ``unverified`` for venues without a validator).

        Raises InsufficientScope, Forbidden (another user, a key bound to accounts), NotFound (no such user),
        ValidationFailed (exchange, fields, account type, name), AccountExists (``policy.one_per_exchange``),
        AlreadyConnected (the key is connected already: only after the live check, so a wrong secret is
        always InvalidCredentials), InvalidCredentials, WithdrawalPermission, ExchangeUnavailable (nothing
        stored).
        """
        ...

    @overload
    async def find(self, principal: Principal, query: AccountQuery, paging: ByCursor) -> Page[ExchangeAccount]: ...

    @overload
    async def find(self, principal: Principal, query: AccountQuery,
                   paging: ByOffset) -> OffsetPage[ExchangeAccount]: ...

    async def find(self, principal: Principal, query: AccountQuery,
                   paging: ByCursor | ByOffset) -> Page[ExchangeAccount] | OffsetPage[ExchangeAccount]:
        """Return one page (oldest first) of the accounts ``query`` selects that the caller may see.

        Raises InsufficientScope (no ``read``), Forbidden (another user's or ``everyone``, not an admin),
        NotFound (no such user), ValidationFailed (exchange, status, ``api_key`` without ``exchange``, limit,
        cursor, offset).
        """
        ...

    async def get(self, principal: Principal, account_id: int) -> ExchangeAccount:
        """Return one account; NotFound if it is not the caller's to see."""
        ...

    async def get_by_public_id(self, principal: Principal, public_id: uuid.UUID) -> ExchangeAccount:
        """Return the account with this stable UUID; NotFound if it is not the caller's to see."""
        ...

    async def rename(self, principal: Principal, account_id: int, name: str) -> ExchangeAccount:
        """Rename; return the account. Raises NotFound, ValidationFailed (1-100 characters), Conflict
        (disconnected)."""
        ...

    async def rotate(self, principal: Principal, account_id: int, credentials: Mapping[str, Any], *,
                     name: str | None = None) -> ExchangeAccount:
        """Replace the credentials (checked live first; the old ones stay until the new ones pass), and with
        ``name`` rename in the same write. Raises as ``connect`` does, and NotFound, Conflict (disconnected)."""
        ...

    async def revalidate(self, principal: Principal, account_id: int) -> ExchangeAccount:
        """Check the stored credentials live again; the account becomes ``active``, ``invalid`` or
        ``suspended`` (returned, not raised). Raises NotFound, Conflict (disconnected), ExchangeUnavailable
        (nothing changes), CredentialsUnreadable."""
        ...

    async def set_enabled(self, principal: Principal, account_id: int, enabled: bool) -> ExchangeAccount:
        """Enable (the status follows the last live check again) or disable; raises NotFound, Conflict."""
        ...

    async def disconnect(self, principal: Principal, target: int | AccountQuery) -> ExchangeAccount:
        """Disconnect (terminal: the credentials are destroyed) the account ``target`` (an id), or the oldest
        live account the query selects (``user_id`` and ``exchange``: an unknown exchange is NotFound);
        return it. Needs ``delete``. Raises NotFound, Forbidden, Conflict (an id already disconnected)."""
        ...


class Credentials(Protocol):
    """Stored exchange keys (Cadenza's credentials), each checked live and sealed, from which accounts are
    connected: create, read, list, connect, verify, rotate and revoke. A secret is never returned.

    Managing them needs a user's own power: a key bound to accounts is Forbidden.
    """

    async def create(self, principal: Principal, exchange: str, credentials: Mapping[str, Any], *,
                     nickname: str | None = None, kind: str | None = None) -> ExchangeCredential:
        """Check an exchange key live, then store it sealed; return it (``active``, or ``created`` for a venue
        without a live check). Raises ValidationFailed (venue, fields, nickname), Forbidden,
        InvalidCredentials, WithdrawalPermission, ExchangeUnavailable (nothing stored)."""
        ...

    async def get(self, principal: Principal, public_id: uuid.UUID) -> ExchangeCredential:
        """Return one of the caller's credentials; NotFound if it is not the caller's. Raises Forbidden."""
        ...

    async def list(self, principal: Principal, *, kinds: Collection[str] | None = None,
                   statuses: Collection[str] | None = None, public_ids: Collection[uuid.UUID] | None = None,
                   offset: int = 0, limit: int = 1000) -> OffsetPage[ExchangeCredential]:
        """Return an offset page (oldest first, with the total) of the caller's credentials (revoked ones
        too); ``kinds``, ``statuses`` (CredentialStatus values) and ``public_ids`` restrict it (an empty
        collection matches nothing). Raises Forbidden, ValidationFailed (status, limit, offset)."""
        ...

    async def linked(self, account_ids: Collection[int]) -> dict[int, ExchangeCredential]:
        """Return the credential each of ``account_ids`` was connected with (accounts without one are left
        out), in one query: for showing accounts the caller was already allowed to see."""
        ...

    async def connect_inline(self, principal: Principal, exchange: str, credentials: Mapping[str, Any], *,
                             name: str | None = None, account_type: str | None = None,
                             kind: str | None = None) -> tuple[ExchangeAccount, ExchangeCredential]:
        """Connect an account with keys given inline, stored as a credential too and linked to it in the same
        transaction (one live check for both); return both. Raises as ``Accounts.connect`` does."""
        ...

    async def connect(self, principal: Principal, public_id: uuid.UUID, *, exchange: str | None = None,
                      name: str | None = None, account_type: str | None = None
                      ) -> tuple[ExchangeAccount, ExchangeCredential]:
        """Connect an account of the credential's owner with a stored credential (checked live again; a key the
        exchange now refuses marks it ``expired``); return both. ``exchange``, if given, must be its venue.
        Raises NotFound, Conflict (revoked, or rotated or revoked meanwhile), ValidationFailed, and as
        ``Accounts.connect`` does."""
        ...

    async def verify(self, principal: Principal, public_ids: Collection[uuid.UUID]) -> builtins.list[Reach]:
        """Check each credential live again (recorded on it) and return the trading accounts its key reaches
        (see :class:`Reach`). Raises ValidationFailed (none, or more than 20 ids), NotFound, Conflict (revoked),
        Forbidden, InvalidCredentials and WithdrawalPermission (the credential is now ``expired``),
        ExchangeUnavailable (nothing changes)."""
        ...

    async def rotate(self, principal: Principal, public_id: uuid.UUID, changes: Mapping[str, str]) -> ExchangeCredential:
        """Replace the fields given (the others are kept), checked live first; the credential and every live
        account connected with it are rewritten in one transaction. Returns the credential. Raises
        ValidationFailed, NotFound, Forbidden, Conflict (revoked, or changed meanwhile), AlreadyConnected,
        InvalidCredentials, WithdrawalPermission, ExchangeUnavailable (nothing changes)."""
        ...

    async def revoke(self, principal: Principal, public_id: uuid.UUID) -> ExchangeCredential:
        """Revoke (terminal): its secrets are destroyed and every live account connected with it is
        disconnected, in one transaction; of concurrent revocations exactly one succeeds. Returns the
        credential. Raises NotFound, Forbidden, InsufficientScope (``delete``), Conflict (already revoked)."""
        ...
