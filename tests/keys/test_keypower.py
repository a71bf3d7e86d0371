"""The "no more powerful than" comparison of keys (strongroom.keys.power), attribute by attribute."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from strongroom.keys.power import KeyPower, networks_within
from strongroom.principal import Principal

FULL = frozenset({"read", "write", "delete"})


def nets(*cidrs: str):
    return tuple(ip_network(c) for c in cidrs)


@pytest.mark.parametrize(("inner", "outer", "within"), [
    ((), (), True),
    (("127.0.0.1/32",), (), True),
    ((), ("127.0.0.0/8",), False),  # any address is wider than a list
    (("127.0.0.0/8",), ("127.0.0.0/8",), True),
    (("127.0.0.1/32", "127.9.0.0/16"), ("127.0.0.0/8",), True),
    (("126.0.0.0/7",), ("127.0.0.0/8",), False),
    (("10.0.0.0/8",), ("127.0.0.0/8",), False),
    (("10.1.0.0/16",), ("127.0.0.0/8", "10.0.0.0/8"), True),
    (("::1/128",), ("127.0.0.0/8",), False),  # another family is never inside
    (("2001:db8::/48",), ("2001:db8::/32", "127.0.0.0/8"), True),
])
def test_networks_within(inner, outer, within):
    assert networks_within(nets(*inner), nets(*outer)) is within


def test_excess_names_the_first_wider_attribute():
    limit = KeyPower(FULL, frozenset({1, 2}), nets("127.0.0.0/8"), 2_000_000_000.0)
    assert KeyPower(FULL, frozenset({1}), nets("127.0.0.1/32"), 1_900_000_000.0).within(limit)
    assert limit.within(limit)
    assert KeyPower(frozenset({"read", "write::trade"}), frozenset({1}), nets("127.0.0.1/32"),
                    1.0).excess_over(limit) is None
    assert KeyPower(FULL, frozenset({3}), nets("127.0.0.1/32"), 1.0).excess_over(limit) == "account_ids"
    assert KeyPower(FULL, None, nets("127.0.0.1/32"), 1.0).excess_over(limit) == "account_ids"  # unbound
    assert KeyPower(FULL, frozenset({1}), (), 1.0).excess_over(limit) == "ip_allowlist"
    assert KeyPower(FULL, frozenset({1}), nets("127.0.0.1/32"), None).excess_over(limit) == "expires_at"
    assert KeyPower(FULL, frozenset({1}), nets("127.0.0.1/32"), 2_000_000_001.0).excess_over(limit) == "expires_at"
    narrow = KeyPower(frozenset({"read"}), frozenset({1}), nets("127.0.0.1/32"), 1.0)
    assert KeyPower(FULL, frozenset({1}), nets("127.0.0.1/32"), 1.0).excess_over(narrow) == "scopes"
    assert KeyPower(frozenset({"read::balance"}), frozenset({1}), nets("127.0.0.1/32"), 1.0).within(narrow)
    # no limits at all: everything is within
    assert KeyPower(FULL, None, (), None).within(KeyPower(FULL))


def test_of_principal():
    session = Principal(user_id=1, username="u")
    assert KeyPower.of_principal(session) is None  # no key: all of the user's power
    key = Principal(user_id=1, username="u", key_id="k", scopes=frozenset({"read"}), account_ids=frozenset({5}),
                    key_networks=nets("127.0.0.0/8"), key_expires_at=10.0)
    assert KeyPower.of_principal(key) == KeyPower(frozenset({"read"}), frozenset({5}), nets("127.0.0.0/8"), 10.0)
