"""The exchange catalogue: which venues exist and which credential fields each needs.

Loaded from the generated ``catalogue.json`` next to this module (regenerate with
``scripts/gen_catalogue.py``). This module must never import ccxt: importing ccxt costs
about 0.5-0.8 s and ~100 MB, and start-up only needs the data.
"""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom import errors

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")


@dataclass(frozen=True)
class ExchangeInfo:
    """One venue. Credential names are ours (api_key, secret, passphrase, ...), not ccxt's."""

    id: str
    name: str
    credentials: tuple[str, ...]
    optional_credentials: tuple[str, ...]
    account_types: tuple[str, ...]
    validator: str | None
    aliases: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExchangeInfo:
        """Return an ExchangeInfo built from one catalogue.json entry; raises KeyError if a key is missing."""
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            credentials=tuple(data["credentials"]),
            optional_credentials=tuple(data.get("optional_credentials", ())),
            account_types=tuple(data["account_types"]),
            validator=data.get("validator"),
            aliases=tuple(data.get("aliases", ())),
        )

    @property
    def allowed_credentials(self) -> tuple[str, ...]:
        """Return required followed by optional credential names."""
        return self.credentials + self.optional_credentials

    def to_public(self) -> dict[str, Any]:
        """Return a JSON-ready dict (lists instead of tuples; ``verifiable`` says whether a validator exists)."""
        return {
            "id": self.id,
            "name": self.name,
            "credentials": list(self.credentials),
            "optional_credentials": list(self.optional_credentials),
            "account_types": list(self.account_types),
            "validator": self.validator,
            "verifiable": self.validator is not None,
            "aliases": list(self.aliases),
        }


class Catalogue:
    """Lookup over all venues; ids and aliases resolve case-insensitively."""

    def __init__(self, entries: list[ExchangeInfo], ccxt_version: str | None = None) -> None:
        self.ccxt_version = ccxt_version
        self._entries = sorted(entries, key=lambda e: e.id)
        self._by_name: dict[str, ExchangeInfo] = {}
        for info in self._entries:
            for name in (info.id, *info.aliases):
                key = name.casefold()
                other = self._by_name.get(key)
                if other is not None and other.id != info.id:
                    raise ValueError(f"{name!r} names both {other.id!r} and {info.id!r}")
                self._by_name[key] = info

    @classmethod
    def load(cls, path: Path = CATALOGUE_PATH) -> Catalogue:
        """Return the catalogue read from ``path``; raises OSError/ValueError if it is missing or malformed."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls([ExchangeInfo.from_dict(e) for e in doc["exchanges"]], doc.get("ccxt_version"))

    def all(self) -> list[ExchangeInfo]:
        """Return every venue, sorted by id."""
        return list(self._entries)

    def get(self, name: str) -> ExchangeInfo:
        """Return the venue whose id or alias equals ``name`` ignoring case and surrounding blanks.

        Raises ``errors.NotFound`` otherwise ("unknown exchange", with the nearest ids when some are close).
        """
        info = self._by_name.get(name.strip().casefold()) if isinstance(name, str) else None
        if info is None:
            near = self.suggest(name) if isinstance(name, str) else []
            raise errors.NotFound(f"unknown exchange; did you mean {', '.join(near)}?" if near else "unknown exchange")
        return info

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        """Return up to ``limit`` catalogue ids whose id or alias is nearest to ``name`` (for "did you mean")."""
        wanted = name.strip().casefold()
        close = difflib.get_close_matches(wanted, list(self._by_name), n=limit * 3, cutoff=0.6)
        return list(dict.fromkeys(self._by_name[c].id for c in close))[:limit]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().casefold() in self._by_name

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def check_credentials(info: ExchangeInfo, credentials: Mapping[str, Any]) -> dict[str, str]:
        """Return ``credentials`` cleaned (values stripped) with only the venue's fields.

        Raises ``errors.ValidationFailed(fields=...)`` naming every problem at once:
        ``"required"`` for each missing (or null) required field, ``"unknown field"`` for each field the
        venue does not accept, ``"must be a non-empty string"`` for a present field whose value
        is not a string or is blank. An absent, null or blank *optional* field is dropped.
        """
        if not isinstance(credentials, Mapping):
            raise errors.ValidationFailed("credentials must be an object", fields={"credentials": "must be an object"})
        problems: dict[str, str] = {}
        cleaned: dict[str, str] = {}
        allowed = set(info.allowed_credentials)
        for field, value in credentials.items():
            if field not in allowed:
                problems[str(field)] = "unknown field"
                continue
            if isinstance(value, str) and value.strip():
                cleaned[field] = value.strip()
            elif value is None and field in info.credentials:
                problems[field] = "required"
            elif field in info.credentials or not (value is None or isinstance(value, str)):
                problems[field] = "must be a non-empty string"
            # else: a blank optional field is dropped
        for field in info.credentials:
            if field not in credentials:
                problems[field] = "required"
        if problems:
            raise errors.ValidationFailed("invalid credentials for " + info.name, fields=problems)
        return {field: cleaned[field] for field in info.allowed_credentials if field in cleaned}


_lock = threading.Lock()
_catalogue: Catalogue | None = None


def get_catalogue() -> Catalogue:
    """Return the process-wide catalogue, loading it on first use (thread-safe)."""
    global _catalogue
    if _catalogue is None:
        with _lock:
            if _catalogue is None:
                _catalogue = Catalogue.load()
    return _catalogue
