"""The result of authentication, passed into every service call."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from strongroom.errors import InsufficientScope

BASE_SCOPES = ("read", "write", "delete")
ALL_SCOPES = frozenset(BASE_SCOPES)


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
    scheme: str = "password"
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    # the key's own limits (when authenticated by a key): what "no more powerful than" is checked against
    key_networks: tuple[IPv4Network | IPv6Network, ...] = ()  # its IP allowlist; empty: any address
    key_expires_at: float | None = None  # its expiry, epoch seconds; None: never

    def require(self, scope: str) -> None:
        """Raise InsufficientScope unless this principal holds ``scope``."""
        if scope not in self.scopes:
            raise InsufficientScope(f"this credential lacks the '{scope}' scope")

    def sees_account(self, account_id: int) -> bool:
        """Return True if the principal's key binding (if any) includes ``account_id``."""
        return self.account_ids is None or account_id in self.account_ids

    def acts_for(self, user_id: int) -> bool:
        """Return True if the principal may act on ``user_id``'s resources (self, or an admin)."""
        return self.user_id == user_id or self.is_admin
