"""The exchange catalogue and its generator (data only: no ccxt import, no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from strongroom import errors
from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo, get_catalogue

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- catalogue


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return get_catalogue()


def test_every_ccxt_exchange_is_in_the_catalogue_with_its_required_credentials(catalogue: Catalogue) -> None:
    import ccxt

    ours = {"apiKey": "api_key", "secret": "secret", "password": "passphrase", "uid": "uid",
            "walletAddress": "address", "privateKey": "private_key", "accountId": "account_id",
            "login": "login", "twofa": "twofa", "token": "token"}
    ids = {e.id for e in catalogue.all()}
    assert set(ccxt.exchanges) <= ids
    for exchange_id in ("binance", "okx", "kraken", "ndax", "hyperliquid"):
        required = {ours[k] for k, v in getattr(ccxt, exchange_id)().requiredCredentials.items() if v}
        info = catalogue.get(exchange_id)
        assert set(info.credentials) == required
        assert info.validator == "ccxt"
    assert catalogue.get("okx").credentials == ("api_key", "secret", "passphrase")
    assert catalogue.get("ndax").credentials == ("api_key", "secret", "passphrase", "uid", "login")


def test_all_is_sorted_by_id(catalogue: Catalogue) -> None:
    ids = [e.id for e in catalogue.all()]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids)) == len(catalogue)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("binance", "binance"),
        ("BINANCE", "binance"),
        ("Binance", "binance"),
        ("okex", "okx"),
        ("OKEX", "okx"),
        ("COINBASE", "coinbase"),
        ("BITMEX", "bitmex"),
        ("CONCURRENCY.COM", "currencycom"),
        ("currency.com", "currencycom"),
        ("CurrencyCom", "currencycom"),
    ],
)
def test_ids_and_aliases_resolve_case_insensitively(catalogue: Catalogue, name: str, expected: str) -> None:
    assert catalogue.get(name).id == expected


@pytest.mark.parametrize("name", ["nope", "", "binance.com", "okx2"])
def test_unknown_exchange_is_not_found(catalogue: Catalogue, name: str) -> None:
    with pytest.raises(errors.NotFound) as info:
        catalogue.get(name)
    assert info.value.message.startswith("unknown exchange")


def test_unknown_exchange_suggests_the_nearest_ids(catalogue: Catalogue) -> None:
    with pytest.raises(errors.NotFound) as info:
        catalogue.get("binanse")
    assert info.value.message.startswith("unknown exchange; did you mean binance")
    assert catalogue.suggest("kraaken")[0] == "kraken" and catalogue.suggest("zzzzzz") == []


def test_non_ccxt_seed_venues_are_present_without_validator(catalogue: Catalogue) -> None:
    bitmex = catalogue.get("bitmex")
    assert (bitmex.name, bitmex.credentials, bitmex.validator) == ("BitMEX", ("api_key", "secret"), None)
    assert bitmex.account_types == ("spot", "swap", "future")
    currencycom = catalogue.get("currencycom")
    assert (currencycom.name, currencycom.credentials, currencycom.validator) == (
        "Currency.com",
        ("api_key", "secret"),
        None,
    )
    assert set(currencycom.aliases) == {"CONCURRENCY.COM", "CURRENCY.COM"}


def test_to_public_is_json_ready(catalogue: Catalogue) -> None:
    public = catalogue.get("okx").to_public()
    assert json.loads(json.dumps(public)) == public
    assert public["id"] == "okx" and public["credentials"] == ["api_key", "secret", "passphrase"]
    assert "okex" in public["aliases"]
    assert set(public["account_types"]) <= {"spot", "margin", "swap", "future", "option"}


def test_check_credentials_names_every_missing_and_unknown_field(catalogue: Catalogue) -> None:
    okx = catalogue.get("okx")
    with pytest.raises(errors.ValidationFailed) as info:
        catalogue.check_credentials(okx, {"api_key": "k", "apiKey": "k", "urls": "http://evil"})
    assert info.value.fields == {
        "secret": "required",
        "passphrase": "required",
        "apiKey": "unknown field",
        "urls": "unknown field",
    }


def test_check_credentials_rejects_blank_and_non_strings(catalogue: Catalogue) -> None:
    okx = catalogue.get("okx")
    with pytest.raises(errors.ValidationFailed) as info:
        catalogue.check_credentials(okx, {"api_key": "   ", "secret": 42, "passphrase": None})
    assert info.value.fields == {
        "api_key": "must be a non-empty string",
        "secret": "must be a non-empty string",
        "passphrase": "required",
    }


def test_check_credentials_returns_stripped_values_in_catalogue_order(catalogue: Catalogue) -> None:
    cleaned = catalogue.check_credentials(
        catalogue.get("OKEX"), {"passphrase": " p ", "secret": "s\n", "api_key": "\tk"}
    )
    assert cleaned == {"api_key": "k", "secret": "s", "passphrase": "p"}
    assert list(cleaned) == ["api_key", "secret", "passphrase"]


def test_optional_credentials_are_accepted_and_blank_ones_dropped() -> None:
    info = ExchangeInfo("x", "X", ("api_key",), ("uid",), ("spot",), None, ())
    assert Catalogue.check_credentials(info, {"api_key": "k", "uid": " u "}) == {"api_key": "k", "uid": "u"}
    assert Catalogue.check_credentials(info, {"api_key": "k", "uid": ""}) == {"api_key": "k"}


def test_catalogue_import_does_not_import_ccxt() -> None:
    code = (
        "import sys\n"
        "import strongroom.exchanges.catalogue as c\n"
        "cat = c.get_catalogue()\n"
        "assert cat.get('BINANCE').id == 'binance'\n"
        "print('ccxt' in sys.modules, any(m.startswith('ccxt') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_generator_is_deterministic_and_matches_the_shipped_file(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.json"
    for _ in range(2):
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "gen_catalogue.py"), "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        assert out.read_bytes() == (ROOT / "strongroom" / "exchanges" / "catalogue.json").read_bytes()
