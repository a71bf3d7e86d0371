"""The result of authentication, passed into every service call."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from strongroom import scopes as scope_rules
from strongroom.enums import AuthMethod

BASE_SCOPES = scope_rules.BASE
ALL_SCOPES = scope_rules.SESSION  # a user signed in: read, write, delete and trade


def accounts_within(inner: Collection[int] | None, outer: Collection[int] | None) -> bool:
    """Return True if the account binding ``inner`` reaches no account that ``outer`` does not.

    ``None`` is unbound (every account of the user): within only another unbound binding.
    """
    if outer is None:
        return True
    return inner is not None and set(inner) <= set(outer)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, the key if any, what it may do and which accounts it may see."""

    user_id: int
    username: str
    is_admin: bool = False
    usage_level: str = "basic"
    key_id: str | None = None
    scopes: frozenset[str] = ALL_SCOPES
    account_ids: frozenset[int] | None = None  # None: every account of the user
    client_ip: str | None = None
    scheme: AuthMethod = AuthMethod.PASSWORD_GRANT
    # the key's own limits (when authenticated by a key): what "no more powerful than" is checked against
    key_networks: tuple[IPv4Network | IPv6Network, ...] = ()  # its IP allowlist; empty: any address
    key_expires_at: float | None = None  # its expiry, epoch seconds; None: never
    # the password hash the user's record held when this principal was made (never shown): a session is started
    # for a password sign-in only while it is still the user's (see strongroom.users.sessions.SessionService.issue)
    password_hash: str | None = field(default=None, repr=False, compare=False)

    def require(self, scope: scope_rules.Scope) -> None:
        """Raise InsufficientScope unless this principal holds ``scope`` (or its broad parent)."""
        scope_rules.require(self.scopes, scope)

    def sees_account(self, account_id: int) -> bool:
        """Return True if the principal's key binding (if any) includes ``account_id``."""
        return self.account_ids is None or account_id in self.account_ids

    def acts_for(self, user_id: int) -> bool:
        """Return True if the principal may act on ``user_id``'s resources (self, or an admin)."""
        return self.user_id == user_id or self.is_admin


# The deployment's own scheduled work (the key-health pass, background balance refreshes): acts on any
# user's accounts; audited as user 0, like the operator's command line.
SYSTEM = Principal(user_id=0, username="scheduler", is_admin=True, scheme=AuthMethod.CLI)
