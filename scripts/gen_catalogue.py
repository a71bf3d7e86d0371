#!/usr/bin/env python3
"""Regenerate ``strongroom/exchanges/catalogue.json`` from the installed ccxt.

Usage::

    .venv/bin/python scripts/gen_catalogue.py            # writes the shipped file
    .venv/bin/python scripts/gen_catalogue.py --out X    # writes somewhere else
    .venv/bin/python scripts/gen_catalogue.py --check    # exit 1 if the shipped file is stale

The output is deterministic: keys are sorted, lists have a fixed order, and nothing
time- or machine-dependent is written, so running the script twice with the same ccxt
gives identical bytes.

Decisions:

* ``credentials`` are ccxt's ``requiredCredentials`` marked True, renamed to our names
  (apiKey→api_key, password→passphrase, walletAddress→address, ...) and ordered by
  ``CREDENTIAL_ORDER`` (api_key, secret, passphrase, uid, ...).
* ``optional_credentials`` is empty for every venue. ccxt marks every field it does not
  need as False, which says nothing about what a venue *accepts*; accepting such fields
  would only mean storing secrets nobody uses. Extra venue-specific optional fields can
  be listed in ``EXTRA_OPTIONAL`` below when a validator actually uses them.
* ``account_types`` are the market types whose ``has`` flag is truthy (True or
  "emulated"); ``("spot",)`` when none is.
* ``validator`` is ``"ccxt"`` for every ccxt venue and null for venues ccxt lacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "strongroom" / "exchanges" / "catalogue.json"

# ccxt credential name -> our credential name
CCXT_TO_OURS: dict[str, str] = {
    "apiKey": "api_key",
    "secret": "secret",
    "password": "passphrase",
    "uid": "uid",
    "walletAddress": "address",
    "privateKey": "private_key",
    "accountId": "account_id",
    "login": "login",
    "twofa": "twofa",
    "token": "token",
}

# Stable display / storage order of our credential names.
CREDENTIAL_ORDER: tuple[str, ...] = (
    "api_key",
    "secret",
    "passphrase",
    "uid",
    "login",
    "account_id",
    "address",
    "private_key",
    "twofa",
    "token",
)

ACCOUNT_TYPES: tuple[str, ...] = ("spot", "margin", "swap", "future", "option")

# Spellings used by the seed systems; resolution is case-insensitive anyway, the
# upper-case forms are kept so that the catalogue documents what the seeds send.
ALIASES: dict[str, list[str]] = {
    "binance": ["BINANCE"],
    "okx": ["okex", "OKEX"],
    "coinbase": ["COINBASE"],
    "bitmex": ["BITMEX"],
    "currencycom": ["CONCURRENCY.COM", "CURRENCY.COM"],
}

# Optional (accepted, not required) credentials per venue; see the module docstring.
EXTRA_OPTIONAL: dict[str, list[str]] = {}

# Venues named by the seeds that ccxt does not (or no longer) ship.
NON_CCXT: list[dict[str, Any]] = [
    {
        "id": "bitmex",
        "name": "BitMEX",
        "credentials": ["api_key", "secret"],
        "account_types": ["spot", "swap", "future"],
    },
    {
        "id": "currencycom",
        "name": "Currency.com",
        "credentials": ["api_key", "secret"],
        "account_types": ["spot"],
    },
]


def _ordered(names: set[str] | list[str]) -> list[str]:
    """Return ``names`` in ``CREDENTIAL_ORDER``; raises ValueError on an unknown name."""
    unknown = set(names) - set(CREDENTIAL_ORDER)
    if unknown:
        raise ValueError(f"unknown credential names: {sorted(unknown)}")
    return [n for n in CREDENTIAL_ORDER if n in names]


def _ccxt_entry(ccxt_module: Any, exchange_id: str) -> dict[str, Any]:
    """Return the catalogue entry for one ccxt exchange id."""
    exchange = getattr(ccxt_module, exchange_id)()
    required = {CCXT_TO_OURS[k] for k, v in exchange.requiredCredentials.items() if v}
    has = exchange.has or {}
    types = [t for t in ACCOUNT_TYPES if has.get(t)] or ["spot"]
    return {
        "id": exchange_id,
        "name": str(exchange.name or exchange_id),
        "credentials": _ordered(required),
        "optional_credentials": _ordered(EXTRA_OPTIONAL.get(exchange_id, [])),
        "account_types": types,
        "validator": "ccxt",
        "aliases": list(ALIASES.get(exchange_id, [])),
    }


def build() -> dict[str, Any]:
    """Return the whole catalogue document (imports ccxt)."""
    import ccxt  # only the generator imports ccxt

    entries = {eid: _ccxt_entry(ccxt, eid) for eid in ccxt.exchanges}
    for extra in NON_CCXT:
        if extra["id"] in entries:  # ccxt gained it back: prefer ccxt's data
            continue
        entries[extra["id"]] = {
            "id": extra["id"],
            "name": extra["name"],
            "credentials": _ordered(extra["credentials"]),
            "optional_credentials": [],
            "account_types": list(extra["account_types"]),
            "validator": None,
            "aliases": list(ALIASES.get(extra["id"], [])),
        }
    _check_aliases(entries)
    return {
        "ccxt_version": ccxt.__version__,
        "generated_by": "scripts/gen_catalogue.py",
        "exchanges": [entries[k] for k in sorted(entries)],
    }


def _check_aliases(entries: dict[str, dict[str, Any]]) -> None:
    """Raise ValueError if any id or alias resolves to two venues (case-insensitively)."""
    seen: dict[str, str] = {}
    for eid in sorted(entries):
        for name in [eid, *entries[eid]["aliases"]]:
            key = name.casefold()
            if seen.get(key, eid) != eid:
                raise ValueError(f"{name!r} names both {seen[key]!r} and {eid!r}")
            seen[key] = eid
    missing = set(ALIASES) - set(entries)
    if missing:
        raise ValueError(f"aliases for unknown venues: {sorted(missing)}")


def render(doc: dict[str, Any]) -> bytes:
    """Return the canonical bytes of ``doc`` (sorted keys, 2-space indent, trailing newline)."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output path (default: the shipped file)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if --out differs")
    args = parser.parse_args(argv)
    data = render(build())
    if args.check:
        current = args.out.read_bytes() if args.out.exists() else b""
        if current != data:
            print(f"{args.out} is stale; run scripts/gen_catalogue.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
