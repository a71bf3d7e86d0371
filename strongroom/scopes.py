"""What a scope is and what it implies: used both when a key is issued and when a request is checked.

A scope is ``read``, ``write`` or ``delete``, optionally narrowed to a resource with ``::name``
(Kalshi's ``read::portfolio_balance``, ``write::trade``, ...). A broad scope covers its children:
``read`` covers ``read::portfolio_balance``. A child can be granted without its parent. The broad
``write`` needs the broad ``read`` (a key that may change what it cannot see is refused).

``trade`` lets a key place and cancel orders through an exchange account (issue 19). Nothing implies it:
``write`` does not cover it, and the older ``write::trade`` (a Kalshi child scope, granted when it meant
nothing here) is not turned into it. A user signed in holds it (their own accounts); a key holds it only
when granted explicitly.

``verify`` lets a key ask whether another key's request is valid (``POST /v1/keys/verify``). Nothing
implies it (a session holds read, write and delete, never verify), and only an admin signed in
without a key can grant it (:func:`grantable_by`); a key that holds it may pass it on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Final, NewType

from strongroom.errors import InsufficientScope, ValidationFailed

# A scope string known to be well formed: a constant below, or a value checked by :func:`scope`.
Scope = NewType("Scope", str)

READ: Final = Scope("read")
WRITE: Final = Scope("write")
DELETE: Final = Scope("delete")
BASE: tuple[Scope, ...] = (READ, WRITE, DELETE)
ALL: frozenset[str] = frozenset(BASE)
DEFAULT: tuple[Scope, ...] = (READ, WRITE)
VERIFY: Final = Scope("verify")
TRADE: Final = Scope("trade")
# what a signed-in user holds (a session, the console, the operator): the base scopes and trade, never verify
SESSION: frozenset[str] = ALL | {TRADE}
SCOPE_RE = re.compile(r"^(?:(read|write|delete)(::[a-z0-9_]{1,64})?|verify|trade)$")
MAX_SCOPES = 64


def scope(value: str) -> Scope:
    """Return ``value`` as a Scope (``read``, ``write``, ``delete``, or one of them narrowed with ``::name``).

    Raises ValidationFailed if it is not one.
    """
    if not SCOPE_RE.match(value):
        raise ValidationFailed(f"unknown scope: {value[:80]}", fields={"scopes": f"unknown scope {value[:80]!r}"})
    return Scope(value)


def parent(scope: str) -> str:
    """Return the broad scope of ``scope`` (``read`` for ``read::x``, itself for a broad one)."""
    return scope.split("::", 1)[0]


def covers(held: Collection[str], needed: str) -> bool:
    """Return True if ``held`` grants ``needed``: the scope itself, or its broad parent."""
    return needed in held or parent(needed) in held


def covers_all(held: Collection[str], wanted: Iterable[str]) -> bool:
    """Return True if every scope of ``wanted`` is granted by ``held`` (``wanted`` is no wider)."""
    return all(covers(held, scope) for scope in wanted)


def require(held: Collection[str], needed: Scope) -> None:
    """Raise InsufficientScope unless ``held`` grants ``needed``."""
    if not covers(held, needed):
        raise InsufficientScope(f"this credential lacks the '{needed}' scope")


def parse(requested: object, *, default: Iterable[str] = DEFAULT, field: str = "scopes") -> list[str]:
    """Return the scopes of a request, validated and de-duplicated in the order given.

    ``None`` means ``default``. Raises ValidationFailed naming ``field``: not a list of strings,
    an unknown scope, an empty list, or broad ``write`` without broad ``read``.
    """
    if requested is None:
        requested = list(default)
    if not isinstance(requested, list) or not all(isinstance(s, str) for s in requested):
        raise ValidationFailed("scopes must be a list of strings", fields={field: "list of strings"})
    clean = list(dict.fromkeys(requested))
    bad = [s for s in clean if not SCOPE_RE.match(s)]
    if bad:
        raise ValidationFailed(f"unknown scope: {bad[0][:80]}", fields={field: f"unknown scope {bad[0][:80]!r}"})
    if not clean:
        raise ValidationFailed("at least one scope is required", fields={field: "empty"})
    if len(clean) > MAX_SCOPES:
        raise ValidationFailed(f"at most {MAX_SCOPES} scopes", fields={field: f"at most {MAX_SCOPES}"})
    if WRITE in clean and READ not in clean:
        raise ValidationFailed("the write scope requires the read scope", fields={field: "write requires read"})
    return clean


def grantable(held: Collection[str], requested: object, *, default: Iterable[str] = DEFAULT,
              field: str = "scopes") -> list[str]:
    """Return ``requested`` parsed (see :func:`parse`), checked to be no wider than ``held``.

    Raises ValidationFailed (malformed) or InsufficientScope (a scope ``held`` does not grant).
    """
    clean = parse(requested, default=default, field=field)
    for scope in clean:
        if not covers(held, scope):
            raise InsufficientScope(f"a key cannot grant the '{scope}' scope its creator lacks")
    return clean


def grantable_by(held: Collection[str], *, is_admin: bool, by_key: bool) -> frozenset[str]:
    """Return the scopes a principal may grant: those it holds, plus ``verify`` for an admin signed
    in without a key (the one way the scope enters the system)."""
    if is_admin and not by_key and VERIFY not in held:
        return frozenset(held) | {VERIFY}
    return frozenset(held)
