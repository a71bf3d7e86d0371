"""3Commas' names for venues and credential fields, mapped to the catalogue's (and back).

3Commas calls a venue by its *market code* (``okex``, ``gate_io``, ``binance_us``, ...) and a
connection form's fields ``api_key``, ``secret``, ``passphrase``, ``customer_id`` and ``address``.
This module derives, from the catalogue alone, every venue's market code, its connection form
(required and optional fields with a display label) and the mapping of form fields to the
catalogue's credential names, so that any surface (3Commas', /v1) gives the same answers. It
imports no ccxt and makes no network call.

Decisions:

* The market codes of the venues 3Commas supports are 3Commas' own (:data:`CODES`); every other
  catalogue venue's code is its catalogue id. A venue has exactly one code on output; on input the
  codes, the few other spellings 3Commas has used (:data:`OTHER_SPELLINGS`) and the catalogue ids
  are accepted, case-insensitively.
* Form fields are the catalogue's credentials, named as 3Commas names them (the catalogue's ``uid``
  is 3Commas' ``customer_id``, Bitstamp's customer id); fields 3Commas has no name for keep the
  catalogue's name (``private_key``, ``account_id``, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from strongroom.errors import NotFound
from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo

# 3Commas market code -> catalogue id, for the venues 3Commas connects.
CODES: dict[str, str] = {
    "binance": "binance",
    "binance_us": "binanceus",
    "binance_futures": "binanceusdm",
    "binance_futures_coin": "binancecoinm",
    "okex": "okx",
    "bybit": "bybit",
    "kucoin": "kucoin",
    "kucoin_futures": "kucoinfutures",
    "gate_io": "gate",
    "bitfinex": "bitfinex",
    "kraken": "kraken",
    "kraken_futures": "krakenfutures",
    "coinbase": "coinbase",  # Coinbase Advanced
    "gdax": "coinbaseexchange",  # Coinbase Exchange (formerly Pro; 3Commas kept GDAX's code)
    "bitstamp": "bitstamp",
    "huobi": "htx",
    "poloniex": "poloniex",
    "bitget": "bitget",
    "gemini": "gemini",
    "bitmex": "bitmex",
    "deribit": "deribit",
    "hitbtc": "hitbtc",
    "cex": "cex",
    "bitvavo": "bitvavo",
    "mexc": "mexc",
}

# Other spellings 3Commas has used for the same venues: accepted on input, never produced.
OTHER_SPELLINGS: dict[str, str] = {
    "bybit_spot": "bybit",
    "coinbase_advanced": "coinbase",
    "coinbase_pro": "gdax",
    "okx": "okex",
    "gateio": "gate_io",
    "htx": "huobi",
}

# 3Commas' form field for a catalogue credential, where the names differ (``account_id`` would collide
# with the ``account_id`` parameter of /accounts/update).
FIELD_OF_CREDENTIAL: dict[str, str] = {"uid": "customer_id", "account_id": "exchange_account_id"}
CREDENTIAL_OF_FIELD: dict[str, str] = {field: credential for credential, field in FIELD_OF_CREDENTIAL.items()}
# The credential parameters 3Commas documents for /accounts/new and /update (whatever the venue).
DOCUMENTED_FIELDS: tuple[str, ...] = ("api_key", "secret", "passphrase", "customer_id", "address")

LABELS: dict[str, str] = {
    "api_key": "API Key:",
    "secret": "API Secret:",
    "passphrase": "Passphrase:",
    "customer_id": "Customer ID:",
    "address": "Wallet address:",
    "private_key": "Private key:",
    "exchange_account_id": "Account ID:",
    "login": "Login:",
    "twofa": "2FA secret:",
    "token": "Token:",
}


@dataclass(frozen=True)
class FormField:
    """One field of a venue's connection form: its name as sent, and a label to show."""

    field: str
    localized_name: str


@dataclass(frozen=True)
class Market:
    """A venue as 3Commas names it: its market code, its catalogue entry and its connection form."""

    code: str
    info: ExchangeInfo
    required: tuple[FormField, ...]
    optional: tuple[FormField, ...]

    @property
    def exchange(self) -> str:
        """Return the catalogue id."""
        return self.info.id

    @property
    def pretty_display_type(self) -> str:
        """Return the code in 3Commas' display spelling (``okex`` -> ``Okex``, ``binance_us`` -> ``BinanceUs``)."""
        return "".join(part[:1].upper() + part[1:] for part in self.code.split("_"))

    def exchange_name(self, account_type: str) -> str:
        """Return the venue's name with the account type, as 3Commas shows it (``OKX Spot``)."""
        return f"{self.info.name} {account_type[:1].upper()}{account_type[1:]}"

    @property
    def fields(self) -> tuple[str, ...]:
        """Return every form field's name (required first)."""
        return tuple(f.field for f in self.required + self.optional)

    def credentials(self, values: Mapping[str, Any], *, accepted: Iterable[str] = DOCUMENTED_FIELDS) -> dict[str, Any]:
        """Return the credentials in ``values`` under the catalogue's names, for
        :meth:`Catalogue.check_credentials` (which decides what is missing or not allowed).

        Takes this venue's form fields and the names in ``accepted`` (by default every credential
        3Commas documents, so that one sent to a venue that has no such field is refused rather
        than ignored); values that are absent, None or an empty string are left out.
        """
        out: dict[str, Any] = {}
        for field in dict.fromkeys((*self.fields, *accepted)):
            value = values.get(field)
            if value is None or value == "":
                continue
            out[CREDENTIAL_OF_FIELD.get(field, field)] = value
        return out


def field_name(credential: str) -> str:
    """Return 3Commas' form field name for a catalogue credential name (itself where they agree)."""
    return FIELD_OF_CREDENTIAL.get(credential, credential)


def pair_of(symbol: str) -> str | None:
    """Return 3Commas' ``QUOTE_BASE`` pair for a unified spot symbol ``BASE/QUOTE`` (None for others)."""
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote or ":" in quote or "/" in quote:
        return None
    return f"{quote}_{base}"


def symbol_of(pair: str) -> str | None:
    """Return the unified spot symbol ``BASE/QUOTE`` of 3Commas' ``QUOTE_BASE`` pair (None if malformed)."""
    quote, sep, base = pair.strip().upper().partition("_")
    if not sep or not quote.isalnum() or not base.isalnum():
        return None
    return f"{base}/{quote}"


class Markets:
    """Every catalogue venue under its market code."""

    def __init__(self, catalogue: Catalogue) -> None:
        code_of_id = {exchange_id: code for code, exchange_id in CODES.items() if exchange_id in catalogue}
        self._by_code: dict[str, Market] = {}
        self._by_exchange: dict[str, Market] = {}
        for info in catalogue.all():
            code = code_of_id.get(info.id, info.id)
            market = Market(code, info, _form(info.credentials), _form(info.optional_credentials))
            if code in self._by_code:
                raise ValueError(f"market code {code!r} names both {self._by_code[code].exchange!r} and {info.id!r}")
            self._by_code[code] = market
            self._by_exchange[info.id] = market
        self._lookup: dict[str, Market] = {}
        for market in self._by_code.values():  # catalogue ids first: a market code wins over an id
            self._lookup[market.exchange.casefold()] = market
        for other, code in OTHER_SPELLINGS.items():
            if code in self._by_code:
                self._lookup[other.casefold()] = self._by_code[code]
        for code, market in self._by_code.items():
            self._lookup[code.casefold()] = market

    def all(self) -> list[Market]:
        """Return every venue, sorted by market code."""
        return [self._by_code[code] for code in sorted(self._by_code)]

    def by_code(self, code: str) -> Market:
        """Return the venue of a market code (or another accepted spelling, or a catalogue id).

        Raises NotFound("unknown market code").
        """
        market = self._lookup.get(code.strip().casefold()) if isinstance(code, str) else None
        if market is None:
            raise NotFound("unknown market code")
        return market

    def of_exchange(self, exchange_id: str) -> Market:
        """Return the venue of a catalogue id. Raises NotFound for an id the catalogue does not have."""
        market = self._by_exchange.get(exchange_id)
        if market is None:
            raise NotFound("unknown exchange")
        return market

    def of_account(self, exchange_id: str) -> Market:
        """Return the venue of a stored account: as :meth:`of_exchange`, but a venue no longer in the
        catalogue (a regenerated catalogue dropped it) is named by its id instead of raising."""
        market = self._by_exchange.get(exchange_id)
        if market is None:
            info = ExchangeInfo(id=exchange_id, name=exchange_id, credentials=(), optional_credentials=(),
                                account_types=(), validator=None, aliases=())
            market = Market(exchange_id, info, (), ())
        return market


def _form(credentials: tuple[str, ...]) -> tuple[FormField, ...]:
    return tuple(FormField(field_name(c), LABELS.get(field_name(c), field_name(c).replace("_", " ").capitalize() + ":"))
                 for c in credentials)


@functools.cache
def markets(catalogue: Catalogue) -> Markets:
    """Return the market codes of ``catalogue`` (built once per catalogue)."""
    return Markets(catalogue)
