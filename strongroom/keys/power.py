"""How powerful a platform API key is, and whether one key is no more powerful than another.

The rule of key management, on every surface that manages keys: a principal authenticated by a key
may read, change, roll or delete another key only if that key is no more powerful than itself; it
may not make a key more powerful than itself; and the keys it creates inherit its expiry, IP
allowlist and account binding unless narrower ones are given. Sessions and passwords (no key) hold
all of their user's power.

A key is no more powerful than another when each of these is no wider:

- scopes: every scope it holds is granted by the other's (``read`` grants ``read::x``);
- account binding: bound to a subset of the other's accounts (unbound is the widest);
- IP allowlist: each of its networks inside one of the other's (an empty allowlist, any address,
  is the widest);
- expiry: no later than the other's (no expiry is the latest).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from strongroom import scopes as scope_rules
from strongroom.principal import Principal, accounts_within

Network = IPv4Network | IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Return the networks of stored (normalised) CIDR strings. Raises ValueError for a malformed one."""
    return tuple(ip_network(cidr, strict=False) for cidr in cidrs)


def networks_within(inner: Collection[Network], outer: Collection[Network]) -> bool:
    """Return True if the allowlist ``inner`` admits no address that ``outer`` refuses.

    An empty allowlist admits every address: it is within only an empty one.
    """
    if not outer:
        return True
    if not inner:
        return False
    return all(any(_subnet_of(net, limit) for limit in outer) for net in inner)


def _subnet_of(net: Network, limit: Network) -> bool:
    """Return True if ``net`` lies inside ``limit`` (never across IP versions)."""
    if isinstance(net, IPv4Network) and isinstance(limit, IPv4Network):
        return net.subnet_of(limit)
    if isinstance(net, IPv6Network) and isinstance(limit, IPv6Network):
        return net.subnet_of(limit)
    return False


@dataclass(frozen=True)
class KeyPower:
    """What a key may do: its scopes, account binding, IP allowlist and expiry."""

    scopes: frozenset[str]
    account_ids: frozenset[int] | None = None  # None: every account of the user
    networks: tuple[Network, ...] = ()  # empty: any address
    expires_at: float | None = None  # epoch seconds; None: never

    @classmethod
    def of_principal(cls, principal: Principal) -> KeyPower | None:
        """Return the power of the key ``principal`` authenticated with, or None if it used no key."""
        if principal.key_id is None:
            return None
        return cls(frozenset(principal.scopes), principal.account_ids, tuple(principal.key_networks),
                   principal.key_expires_at)

    def excess_over(self, limit: KeyPower) -> str | None:
        """Return the first attribute in which this key is more powerful than ``limit``, or None.

        The attribute is named as the API names it: ``scopes``, ``account_ids``, ``ip_allowlist``
        or ``expires_at``.
        """
        if not scope_rules.covers_all(limit.scopes, self.scopes):
            return "scopes"
        if not accounts_within(self.account_ids, limit.account_ids):
            return "account_ids"
        if not networks_within(self.networks, limit.networks):
            return "ip_allowlist"
        if limit.expires_at is not None and (self.expires_at is None or self.expires_at > limit.expires_at):
            return "expires_at"
        return None

    def within(self, limit: KeyPower) -> bool:
        """Return True if this key is no more powerful than ``limit``."""
        return self.excess_over(limit) is None
