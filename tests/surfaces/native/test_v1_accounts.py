"""Issue 2, points 4-6: the exchange catalogue and exchange accounts over real HTTP.

Live checks go to the bundled loopback mock exchange (real ccxt signatures); every test
registers its own exchange keys on the mock so that tests never collide.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager

import httpx
import pytest
from support import ROOT, start_server
from support.problems import assert_problem

CATALOGUE_FILE = ROOT / "strongroom" / "exchanges" / "catalogue.json"
OUR_CREDENTIAL_NAMES = {"api_key", "secret", "passphrase", "uid", "address", "private_key", "account_id",
                        "login", "twofa", "token"}
# Texts the mock exchange (i.e. Binance/OKX) puts in its error bodies: never passed on.
EXCHANGE_TEXTS = ("Signature for this request", "-1022", "-2015", "Invalid API-key", "Invalid Sign", "50113",
                  "50111", "50105", "PASSPHRASE", "Too many requests", "-1003", "binance {", "okx {",
                  "mock", "ccxt", "Traceback", "http://127.0.0.1")


# --------------------------------------------------------------------------- helpers


def new_key(mock, exchange: str = "binance", *, can_withdraw: bool = False, passphrase: bool = False) -> dict:
    """Register a fresh key on the mock exchange and return its credentials (our field names)."""
    tag = uuid.uuid4().hex
    creds = {"api_key": f"key-{exchange}-{tag}", "secret": f"secret-{tag}"}
    doc = {"exchange": exchange, **creds, "can_withdraw": can_withdraw}
    if passphrase:
        creds["passphrase"] = doc["passphrase"] = f"pass-{tag}"
    response = httpx.post(f"{mock.url}/_mock/accounts", json=doc, timeout=10)
    assert response.status_code == 201, response.text
    return creds


def unique_creds() -> dict:
    """Credentials for a venue without a validator (nothing checks them)."""
    tag = uuid.uuid4().hex
    return {"api_key": f"bitmex-{tag}", "secret": f"bitmex-secret-{tag}"}


def connect(client, user, creds: dict, exchange: str = "binance", **extra):
    return client.post("/v1/exchange-accounts", headers=user.headers,
                       json={"exchange": exchange, "credentials": creds, **extra})


def connected(client, user, creds: dict, exchange: str = "binance", **extra) -> dict:
    response = connect(client, user, creds, exchange, **extra)
    assert response.status_code == 201, response.text
    return response.json()




def assert_no_secret(text: str, creds: dict) -> None:
    for name, value in creds.items():
        if name != "api_key":
            assert value not in text, f"{name} leaked"
    # the full api key is never echoed either (only a masked hint)
    assert creds["api_key"] not in text


def all_accounts(client, user, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        query = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/exchange-accounts", headers=user.headers, params=query)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            return items


def set_mode(mock, mode: str, **extra) -> None:
    response = httpx.post(f"{mock.url}/_mock/behaviour", json={"mode": mode, **extra}, timeout=10)
    assert response.status_code == 200, response.text


@contextmanager
def mock_mode(mock, mode: str, **extra):
    set_mode(mock, mode, **extra)
    try:
        yield
    finally:
        set_mode(mock, "normal")


def action(client, user, account_id: int, verb: str, **kwargs):
    return client.post(f"/v1/exchange-accounts/{account_id}/{verb}", headers=user.headers, **kwargs)


# --------------------------------------------------------------------------- catalogue


def test_exchanges_lists_every_ccxt_exchange_and_the_seed_venues(client):
    import ccxt

    response = client.get("/v1/exchanges")
    assert response.status_code == 200
    listed = {e["id"]: e for e in response.json()}
    shipped = {e["id"]: e for e in json.loads(CATALOGUE_FILE.read_text())["exchanges"]}
    assert set(ccxt.exchanges) <= set(listed)
    assert set(listed) == set(shipped)
    assert {"bitmex", "currencycom"} <= set(listed)
    for exchange_id, entry in listed.items():
        assert entry["name"], exchange_id
        assert entry["account_types"], exchange_id
        assert set(entry["credentials"]) <= OUR_CREDENTIAL_NAMES, exchange_id
        assert set(entry["optional_credentials"]) <= OUR_CREDENTIAL_NAMES, exchange_id
        assert entry["credentials"] == shipped[exchange_id]["credentials"], exchange_id
    # a few spot checks against ccxt's own requiredCredentials
    ours = {"apiKey": "api_key", "secret": "secret", "password": "passphrase", "uid": "uid",
            "walletAddress": "address", "privateKey": "private_key", "accountId": "account_id",
            "login": "login", "twofa": "twofa", "token": "token"}
    for exchange_id in ("binance", "okx", "kraken", "coinbase", "hyperliquid"):
        required = {ours[k] for k, v in getattr(ccxt, exchange_id)().requiredCredentials.items() if v}
        assert set(listed[exchange_id]["credentials"]) == required, exchange_id
    assert listed["okx"]["credentials"] == ["api_key", "secret", "passphrase"]
    assert listed["bitmex"]["name"] == "BitMEX" and listed["currencycom"]["name"] == "Currency.com"


def test_exchanges_is_public(client):
    assert client.get("/v1/exchanges").status_code == 200
    assert client.get("/v1/exchanges/binance").status_code == 200


@pytest.mark.parametrize(("name", "expected"), [
    ("binance", "binance"), ("BINANCE", "binance"), ("okex", "okx"), ("OKX", "okx"),
    ("COINBASE", "coinbase"), ("CONCURRENCY.COM", "currencycom"), ("currency.com", "currencycom"),
    ("bitmex", "bitmex"), ("BITMEX", "bitmex"),
])
def test_exchange_by_id_or_alias(client, name, expected):
    response = client.get(f"/v1/exchanges/{name}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == expected
    assert set(body["credentials"]) <= OUR_CREDENTIAL_NAMES and body["account_types"]


@pytest.mark.parametrize("name", ["nosuchexchange", "binance2", "okex.com"])
def test_unknown_exchange_is_404(client, name):
    assert_problem(client.get(f"/v1/exchanges/{name}"), 404, "not_found")


# --------------------------------------------------------------------------- connect


def test_connect_binance_with_the_demo_credentials(client, users):
    user = users.create()
    creds = {"api_key": "demo-binance-key", "secret": "demo-binance-secret"}
    response = connect(client, user, creds, name="Main")
    assert response.status_code == 201, response.text
    account = response.json()
    try:
        assert account["status"] == "active" and account["validation_result"] == "valid"
        assert account["exchange"] == "binance" and account["name"] == "Main"
        assert account["user_id"] == user.id and account["account_type"] == "spot"
        assert account["validated_at"] is not None and account["disconnected_at"] is None
        hint = account["key_hint"]
        assert hint and hint != creds["api_key"] and "…" in hint
        assert_no_secret(response.text, creds)
        assert not {"secret", "credentials", "ciphertext", "wrapped_dek", "nonce"} & set(account)
        got = client.get(f"/v1/exchange-accounts/{account['id']}", headers=user.headers)
        assert got.status_code == 200 and got.json() == account
        assert_no_secret(got.text, creds)
    finally:
        client.delete(f"/v1/exchange-accounts/{account['id']}", headers=user.headers)


def test_connect_with_a_fresh_key_and_alias(client, users, mock_exchange):
    user = users.create()
    creds = new_key(mock_exchange)
    account = connected(client, user, creds, "BINANCE", account_type="spot")
    assert account["exchange"] == "binance" and account["status"] == "active"
    assert account["name"]  # a default name is given


def test_missing_and_unknown_credential_fields_are_422_naming_each(client, users):
    user = users.create()
    before = all_accounts(client, user)
    body = assert_problem(connect(client, user, {"api_key": "k", "bogus": "x", "other": "y"}), 422,
                          "validation_failed")
    assert body["errors"]["secret"] == "required"
    assert body["errors"]["bogus"] == "unknown field" and body["errors"]["other"] == "unknown field"
    body = assert_problem(connect(client, user, {}), 422)
    assert {"api_key", "secret"} <= set(body["errors"])
    body = assert_problem(connect(client, user, {"api_key": "k", "secret": "s"}, "okx"), 422)
    assert set(body["errors"]) == {"passphrase"}
    body = assert_problem(connect(client, user, {"api_key": "k", "secret": "  "}), 422)
    assert "secret" in body["errors"]
    body = assert_problem(connect(client, user, {"api_key": 5, "secret": ["s"]}), 422)
    assert {"api_key", "secret"} <= set(body["errors"])
    # the values themselves are never echoed
    leaky = assert_problem(connect(client, user, {"api_key": "k", "zz-sensitive-value": "hunter2hunter2"}), 422)
    assert "hunter2hunter2" not in json.dumps(leaky)
    assert all_accounts(client, user) == before


def test_unknown_exchange_and_account_type_are_422(client, users):
    user = users.create()
    body = assert_problem(connect(client, user, unique_creds(), "nosuchexchange"), 422)
    assert "exchange" in body["errors"]
    body = assert_problem(connect(client, user, unique_creds(), "bitmex", account_type="option"), 422)
    assert "account_type" in body["errors"]


def test_wrong_secret_is_invalid_credentials_without_exchange_text(client, users, mock_exchange):
    user = users.create()
    creds = new_key(mock_exchange)
    before = all_accounts(client, user)
    wrong = {**creds, "secret": "not-the-secret-" + uuid.uuid4().hex}
    response = connect(client, user, wrong)
    body = assert_problem(response, 400, "invalid_credentials")
    for text in EXCHANGE_TEXTS:
        assert text.lower() not in response.text.lower(), text
    assert_no_secret(response.text, wrong)
    assert set(body) <= {"type", "title", "status", "detail", "code", "errors"}
    unknown_key = connect(client, user, {"api_key": "never-registered-" + uuid.uuid4().hex, "secret": "s3cr3t"})
    assert_problem(unknown_key, 400, "invalid_credentials")
    assert "Invalid API-key" not in unknown_key.text
    assert all_accounts(client, user) == before
    # the right secret still connects: the refusal stored nothing (no fingerprint left behind)
    assert connected(client, user, creds)["status"] == "active"


@pytest.mark.parametrize(("mode", "extra"), [("rate_limited", {}), ("down", {}), ("slow", {"delay_seconds": 4.5})])
def test_exchange_unavailable_is_503_with_retry_after_and_stores_nothing(client, users, mock_exchange, mode,
                                                                         extra):
    user = users.create()
    creds = new_key(mock_exchange)
    before = all_accounts(client, user)
    with mock_mode(mock_exchange, mode, **extra):
        response = connect(client, user, creds)
    body = assert_problem(response, 503, "exchange_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    for text in EXCHANGE_TEXTS:
        assert text.lower() not in response.text.lower(), text
    assert "errors" not in body
    assert all_accounts(client, user) == before
    # after the exchange recovers the same key connects: nothing half-stored blocks it
    assert connected(client, user, creds)["status"] == "active"


def test_rate_limited_exchange_gives_a_longer_retry_after(client, users, mock_exchange):
    user = users.create()
    creds = new_key(mock_exchange)
    with mock_mode(mock_exchange, "rate_limited"):
        limited = connect(client, user, creds)
    with mock_mode(mock_exchange, "down"):
        down = connect(client, user, creds)
    assert limited.status_code == down.status_code == 503
    assert int(limited.headers["Retry-After"]) >= int(down.headers["Retry-After"]) >= 1


def test_withdrawal_enabled_key_is_refused_unless_allowed(client, users, mock_exchange, server, backend):
    user = users.create()
    creds = new_key(mock_exchange, can_withdraw=True)
    before = all_accounts(client, user)
    assert_problem(connect(client, user, creds), 400, "withdrawal_permission")
    assert all_accounts(client, user) == before
    assert_problem(connect(client, user, {"api_key": "demo-binance-withdraw-key",
                                          "secret": "demo-binance-withdraw-secret"}), 400, "withdrawal_permission")

    lenient = start_server(data_dir=server.settings.data_dir, database_url=backend.url,
                           exchange_base_urls=server.settings.exchange_base_urls, allow_withdrawal_keys=True)
    try:
        with lenient.client() as c:
            response = connect(c, user, creds)
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "active"
    finally:
        lenient.stop()
    # stored in the shared database: the default server sees it, and refuses to revalidate it as fine
    account_id = response.json()["id"]
    assert client.get(f"/v1/exchange-accounts/{account_id}", headers=user.headers).status_code == 200
    revalidated = action(client, user, account_id, "revalidate")
    assert revalidated.status_code == 200
    assert revalidated.json()["status"] == "suspended"
    assert revalidated.json()["validation_result"] == "withdrawal_permission"


def test_okx_with_passphrase(client, users, mock_exchange):
    user = users.create()
    creds = new_key(mock_exchange, "okx", passphrase=True)
    response = connect(client, user, {**creds, "passphrase": "wrong-" + uuid.uuid4().hex}, "okex")
    assert_problem(response, 400, "invalid_credentials")
    assert "PASSPHRASE" not in response.text and "50105" not in response.text
    response = connect(client, user, creds, "okex")
    assert response.status_code == 201, response.text
    account = response.json()
    assert account["exchange"] == "okx" and account["status"] == "active"
    assert_no_secret(response.text, creds)
    demo = connect(client, user, {"api_key": "demo-okx-key", "secret": "demo-okx-secret",
                                  "passphrase": "demo-okx-passphrase"}, "okx")
    assert demo.status_code == 201, demo.text
    client.delete(f"/v1/exchange-accounts/{demo.json()['id']}", headers=user.headers)


def test_venue_without_validator_is_unverified(client, users, mock_exchange):
    user = users.create()
    stats_before = httpx.get(f"{mock_exchange.url}/_mock/stats").json()["requests"]
    account = connected(client, user, unique_creds(), "bitmex")
    assert account["status"] == "unverified" and account["validation_result"] == "no_validator"
    assert account["validated_at"] is None
    account = connected(client, user, unique_creds(), "CONCURRENCY.COM")
    assert account["exchange"] == "currencycom" and account["status"] == "unverified"
    assert httpx.get(f"{mock_exchange.url}/_mock/stats").json()["requests"] == stats_before


# --------------------------------------------------------------------------- duplicates and disconnect


def test_same_exchange_key_connected_by_another_user_is_409(client, users, mock_exchange):
    first, second = users.create(), users.create()
    creds = new_key(mock_exchange)
    account = connected(client, first, creds)
    assert_problem(connect(client, second, creds), 409, "conflict")
    assert_problem(connect(client, first, creds), 409, "conflict")
    assert all_accounts(client, second) == []
    # venues without a validator too
    loose = unique_creds()
    connected(client, first, loose, "bitmex")
    assert_problem(connect(client, second, loose, "bitmex"), 409)
    # the same api key string on another exchange is another key
    assert connected(client, second, {"api_key": creds["api_key"], "secret": "x"}, "bitmex")
    assert account["status"] == "active"


def test_no_existence_oracle_a_wrong_secret_is_invalid_credentials(client, users, mock_exchange):
    """Issue 22.2: whether an exchange key is connected is told only to a caller who proved its secret."""
    first, second = users.create(), users.create()
    creds = new_key(mock_exchange)
    account = connected(client, first, creds)
    wrong = {**creds, "secret": f"wrong-{uuid.uuid4().hex}"}
    for user in (second, first):  # another user, and the same one
        assert_problem(connect(client, user, wrong), 400, "invalid_credentials")
        assert_problem(connect(client, user, creds), 409, "conflict")  # the right secret: the duplicate answer
    # rotating one's own account to a key another user connected: the same rule
    own = connected(client, second, new_key(mock_exchange))
    assert_problem(action(client, second, own["id"], "rotate", json={"credentials": wrong}), 400,
                   "invalid_credentials")
    assert_problem(action(client, second, own["id"], "rotate", json={"credentials": creds}), 409, "conflict")
    assert [a["id"] for a in all_accounts(client, second)] == [own["id"]]
    assert [a["id"] for a in all_accounts(client, first)] == [account["id"]]


def test_disconnect_is_terminal_and_frees_the_key(client, users, mock_exchange):
    user, other = users.create(), users.create()
    creds = new_key(mock_exchange)
    account = connected(client, user, creds)
    url = f"/v1/exchange-accounts/{account['id']}"
    gone = client.delete(url, headers=user.headers)
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "disconnected" and gone.json()["disconnected_at"] is not None
    assert client.get(url, headers=user.headers).json()["status"] == "disconnected"
    assert_problem(client.patch(url, headers=user.headers, json={"name": "again"}), 409, "conflict")
    assert_problem(action(client, user, account["id"], "rotate", json={"credentials": new_key(mock_exchange)}),
                   409)
    for verb in ("enable", "disable", "revalidate"):
        assert_problem(action(client, user, account["id"], verb), 409)
    assert_problem(client.delete(url, headers=user.headers), 409)
    assert client.get(url, headers=user.headers).json()["status"] == "disconnected"
    # the same key can now be connected again, by anyone
    again = connected(client, other, creds)
    assert again["status"] == "active" and again["id"] != account["id"]


# --------------------------------------------------------------------------- list, get, rename


def test_list_with_cursor_pagination_and_filters(client, users, mock_exchange):
    user, stranger = users.create(), users.create()
    connected(client, stranger, unique_creds(), "bitmex")
    binance_ids = [connected(client, user, new_key(mock_exchange))["id"] for _ in range(3)]
    bitmex_ids = [connected(client, user, unique_creds(), "bitmex")["id"] for _ in range(2)]
    expected = set(binance_ids + bitmex_ids)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/exchange-accounts", headers=user.headers, params=params)
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [a["id"] for a in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 10
    assert len(seen) == len(set(seen)) == 5 and set(seen) == expected
    assert pages == 3

    assert {a["id"] for a in all_accounts(client, user, exchange="binance")} == set(binance_ids)
    assert {a["id"] for a in all_accounts(client, user, exchange="BINANCE")} == set(binance_ids)
    assert {a["id"] for a in all_accounts(client, user, status="unverified")} == set(bitmex_ids)
    assert {a["id"] for a in all_accounts(client, user, status="active")} == set(binance_ids)
    assert all_accounts(client, user, status="disabled") == []
    client.delete(f"/v1/exchange-accounts/{binance_ids[0]}", headers=user.headers)
    assert [a["id"] for a in all_accounts(client, user, status="disconnected")] == [binance_ids[0]]
    assert {a["id"] for a in all_accounts(client, user, exchange="binance", status="active")} == set(binance_ids[1:])

    assert_problem(client.get("/v1/exchange-accounts", headers=user.headers, params={"status": "bogus"}), 422)
    assert_problem(client.get("/v1/exchange-accounts", headers=user.headers, params={"exchange": "nope"}), 422)
    assert_problem(client.get("/v1/exchange-accounts", headers=user.headers, params={"cursor": "garbage!"}), 422)
    assert_problem(client.get("/v1/exchange-accounts", headers=user.headers, params={"limit": 0}), 422)
    assert_problem(client.get("/v1/exchange-accounts", headers=user.headers, params={"limit": 1000}), 422)


def test_other_users_accounts_are_invisible(client, users, mock_exchange):
    owner, intruder = users.create(), users.create()
    account = connected(client, owner, new_key(mock_exchange))
    url = f"/v1/exchange-accounts/{account['id']}"
    assert_problem(client.get(url, headers=intruder.headers), 404, "not_found")
    assert_problem(client.patch(url, headers=intruder.headers, json={"name": "mine"}), 404)
    assert_problem(client.delete(url, headers=intruder.headers), 404)
    for verb in ("enable", "disable", "revalidate"):
        assert_problem(action(client, intruder, account["id"], verb), 404)
    assert_problem(action(client, intruder, account["id"], "rotate", json={"credentials": new_key(mock_exchange)}),
                   404)
    assert account["id"] not in {a["id"] for a in all_accounts(client, intruder)}
    # nothing changed for the owner
    mine = client.get(url, headers=owner.headers).json()
    assert mine["status"] == "active" and mine["name"] == account["name"]
    # not even existence leaks: a missing id looks the same
    assert_problem(client.get("/v1/exchange-accounts/987654321", headers=intruder.headers), 404)
    assert_problem(client.get(url), 401)


def test_rename(client, users):
    user = users.create()
    account = connected(client, user, unique_creds(), "bitmex", name="Before")
    url = f"/v1/exchange-accounts/{account['id']}"
    renamed = client.patch(url, headers=user.headers, json={"name": "  After  "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "After"
    assert client.get(url, headers=user.headers).json()["name"] == "After"
    assert_problem(client.patch(url, headers=user.headers, json={"name": ""}), 422)
    assert_problem(client.patch(url, headers=user.headers, json={"name": "   "}), 422)
    assert_problem(client.patch(url, headers=user.headers, json={"name": "x" * 101}), 422)
    assert_problem(client.patch(url, headers=user.headers, json={"name": "ok", "status": "active"}), 422)
    assert_problem(client.patch(url, headers=user.headers, json={}), 422)
    assert client.get(url, headers=user.headers).json()["name"] == "After"


# --------------------------------------------------------------------------- rotate and status


def stored_credentials(server, account_id: int) -> dict:
    from strongroom.models import ExchangeAccount

    with server.core.db.session() as session:
        return server.core.account_store.credentials_of(session.get(ExchangeAccount, account_id))


def test_rotate_checks_new_credentials_first(client, users, mock_exchange, server):
    user = users.create()
    old = new_key(mock_exchange)
    account = connected(client, user, old)
    url = f"/v1/exchange-accounts/{account['id']}"

    # bad new credentials: refused, the old ones stay
    bad = {**new_key(mock_exchange), "secret": "wrong-" + uuid.uuid4().hex}
    assert_problem(action(client, user, account["id"], "rotate", json={"credentials": bad}), 400,
                   "invalid_credentials")
    assert client.get(url, headers=user.headers).json()["key_hint"] == account["key_hint"]
    revalidated = action(client, user, account["id"], "revalidate")
    assert revalidated.status_code == 200 and revalidated.json()["status"] == "active"
    assert revalidated.json()["validation_result"] == "valid"
    assert stored_credentials(server, account["id"]) == old

    # exchange down: refused, the old ones stay
    fresh = new_key(mock_exchange)
    with mock_mode(mock_exchange, "down"):
        response = action(client, user, account["id"], "rotate", json={"credentials": fresh})
    assert_problem(response, 503, "exchange_unavailable")
    assert "Retry-After" in response.headers
    assert stored_credentials(server, account["id"]) == old

    # field problems are 422 naming the field
    body = assert_problem(action(client, user, account["id"], "rotate", json={"credentials": {"api_key": "x"}}), 422)
    assert "secret" in body["errors"]
    # a key connected elsewhere is a conflict
    taken = new_key(mock_exchange)
    connected(client, users.create(), taken)
    assert_problem(action(client, user, account["id"], "rotate", json={"credentials": taken}), 409, "conflict")

    # good new credentials replace the old ones
    rotated = action(client, user, account["id"], "rotate", json={"credentials": fresh})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["status"] == "active" and rotated.json()["key_hint"] != account["key_hint"]
    assert_no_secret(rotated.text, fresh)
    assert stored_credentials(server, account["id"]) == fresh
    assert action(client, user, account["id"], "revalidate").json()["status"] == "active"
    # the old key is free again
    assert connected(client, user, old)["status"] == "active"


def test_disable_enable_revalidate_transitions(client, users, mock_exchange):
    user = users.create()
    creds = new_key(mock_exchange)
    account = connected(client, user, creds)
    aid = account["id"]
    url = f"/v1/exchange-accounts/{aid}"

    disabled = action(client, user, aid, "disable")
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    assert action(client, user, aid, "disable").json()["status"] == "disabled"  # idempotent
    # revalidating a disabled account keeps it disabled
    assert action(client, user, aid, "revalidate").json()["status"] == "disabled"
    enabled = action(client, user, aid, "enable")
    assert enabled.status_code == 200 and enabled.json()["status"] == "active"
    assert action(client, user, aid, "enable").json()["status"] == "active"  # idempotent

    # the exchange revokes the key (new secret on the exchange side): revalidate marks it invalid
    response = httpx.post(f"{mock_exchange.url}/_mock/accounts",
                          json={"exchange": "binance", "api_key": creds["api_key"], "secret": "changed-on-exchange"})
    assert response.status_code == 201
    invalid = action(client, user, aid, "revalidate")
    assert invalid.status_code == 200
    assert invalid.json()["status"] == "invalid" and invalid.json()["validation_result"] == "invalid_credentials"
    assert client.get(url, headers=user.headers).json()["status"] == "invalid"
    # disable then enable returns it to invalid, not active
    assert action(client, user, aid, "disable").json()["status"] == "disabled"
    assert action(client, user, aid, "enable").json()["status"] == "invalid"

    # exchange down during revalidate: 503, nothing changes
    with mock_mode(mock_exchange, "down"):
        assert_problem(action(client, user, aid, "revalidate"), 503, "exchange_unavailable")
    assert client.get(url, headers=user.headers).json()["status"] == "invalid"

    # rotating to the exchange's current secret makes it active again
    fixed = {"api_key": creds["api_key"], "secret": "changed-on-exchange"}
    rotated = action(client, user, aid, "rotate", json={"credentials": fixed})
    assert rotated.status_code == 200 and rotated.json()["status"] == "active"


def test_unverified_account_transitions(client, users):
    user = users.create()
    account = connected(client, user, unique_creds(), "bitmex")
    aid = account["id"]
    assert action(client, user, aid, "disable").json()["status"] == "disabled"
    assert action(client, user, aid, "enable").json()["status"] == "unverified"
    revalidated = action(client, user, aid, "revalidate")
    assert revalidated.status_code == 200 and revalidated.json()["status"] == "unverified"
    rotated = action(client, user, aid, "rotate", json={"credentials": unique_creds()})
    assert rotated.status_code == 200 and rotated.json()["status"] == "unverified"


def test_rotate_while_disabled_stays_disabled(client, users, mock_exchange):
    user = users.create()
    account = connected(client, user, new_key(mock_exchange))
    action(client, user, account["id"], "disable")
    rotated = action(client, user, account["id"], "rotate", json={"credentials": new_key(mock_exchange)})
    assert rotated.status_code == 200 and rotated.json()["status"] == "disabled"
    assert action(client, user, account["id"], "enable").json()["status"] == "active"


def test_connect_body_validation(client, users):
    user = users.create()
    for body in ({"credentials": unique_creds()},
                 {"exchange": "bitmex"},
                 {"exchange": "bitmex", "credentials": unique_creds(), "status": "active"},
                 {"exchange": "bitmex", "credentials": "api_key=x"},
                 {"exchange": "bitmex", "credentials": unique_creds(), "name": "x" * 101}):
        response = client.post("/v1/exchange-accounts", headers=user.headers, json=body)
        assert_problem(response, 422)
    assert all_accounts(client, user) == []
