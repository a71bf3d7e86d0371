"""Issue 10: the 3Commas surface over raw HTTP (SQLite and PostgreSQL): the signed message in every
spelling of reference §2.2 (and the official test vectors), parameters from query, form and JSON
(the query wins), statuses, error bodies, the endpoints py3cw has no action for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from support import start_server
from support.exchange_mock import Mock
from support.threecommas import V1, Key, as_json, hmac_key, mock_of, signed

from strongroom.auth.facts import RawHeaders, RequestFacts
from strongroom.auth.schemes.signed import threecommas_messages

# --- the official test vectors (reference §2.2), against the scheme's message construction ---------

VECTOR_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
CHANGE_MODE = "/public/api/ver1/users/change_mode"
NEW = "/public/api/ver1/accounts/new"
# (method, path, raw query, raw body, expected hex)
VECTORS = [
    ("GET", CHANGE_MODE, "mode=paper", b"", "bca8d8c10acfbe8e76c5335d3efbe0a550487170a8bb7aaea0a13efabab55316"),
    ("POST", CHANGE_MODE, "", b"mode=paper", "bca8d8c10acfbe8e76c5335d3efbe0a550487170a8bb7aaea0a13efabab55316"),
    ("POST", CHANGE_MODE, "", b'{"mode": "paper"}',
     "0475b407ba6f2388d213134e478b330f74073388a232737837f79018694ae373"),
    ("POST", NEW, "type=binance&name=binance_account&api_key=XXXXXX&secret=YYYYYY", b"",
     "30f678a157230290e00475cfffccbc92ae3659d94c145a2c0e9d0fa28f41c11a"),
    ("POST", NEW, "", b'{"type": "binance", "name": "binance_account", "api_key": "XXXXXX", "secret": "YYYYYY"}',
     "4df2bca374647906f618e75decbd6618fcf13b5b1047a729f6a3ec0ede0b6489"),
    ("GET", "/public/api/ver1/accounts", "", b"", "33e48e041406370a2522ec4e674907b3984b1539568f7f59f0f62420681fc3c6"),
]


def facts(method: str, path: str, query: str, body: bytes) -> RequestFacts:
    return RequestFacts(method, path, query, RawHeaders([]), body=body)


def hex_of(message: bytes) -> str:
    return hmac.new(VECTOR_SECRET.encode(), message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("method", "path", "query", "body", "expected"), VECTORS)
def test_official_vectors(method, path, query, body, expected):
    """One of the messages the scheme accepts is the one each official vector signs."""
    messages = threecommas_messages()(facts(method, path, query, body), "")
    assert expected in [hex_of(m) for m in messages], [m.decode() for m in messages]


def test_message_spellings():
    build, with_d = threecommas_messages(), threecommas_messages(ignore_body=True)
    body = b'{"name": "x"}'
    assert build(facts("POST", "/p", "", body), "") == (b"/p" + body, b"/p?" + body)  # (a), (b)
    # (c): the query sorted as well; (a) and (b) coincide when there is a query
    assert build(facts("POST", "/p", "b=2&a=1", body), "") == (b"/p?b=2&a=1" + body, b"/p?a=1&b=2" + body)
    assert build(facts("GET", "/p", "", b""), "") == (b"/p",)
    # (d), the body unsigned: only when asked for
    assert b"/p" not in build(facts("POST", "/p", "", body), "")[2:]
    assert b"/p" in with_d(facts("POST", "/p", "", body), "")
    assert b"/p?a=1" in with_d(facts("POST", "/p", "a=1", body), "")


# --- live: the spellings, the headers, the replay rule ----------------------------------------------

@pytest.fixture(scope="session")
def mock(mock_exchange) -> Mock:
    return mock_of(mock_exchange)


@pytest.fixture
def user(users):
    return users.create()


@pytest.fixture
def key(client, user) -> Key:
    return hmac_key(client, user)


@pytest.fixture
def account(client, key, mock) -> dict:
    body = as_json({"type": "binance", "name": f"acct-{uuid.uuid4().hex[:6]}", **mock.new_key("binance")})
    response = signed(client, key, "POST", f"{V1}/accounts/new", body=body)
    assert response.status_code == 201, response.text
    return response.json()


def rename_path(account: dict) -> str:
    return f"{V1}/accounts/{account['id']}/rename"


def test_signature_spellings_accepted(client, key, account):
    path = rename_path(account)
    body = as_json({"name": "a"})
    # (a) py3cw: path + body
    assert signed(client, key, "POST", path, body=body).json()["name"] == "a"
    # (b) the TypeScript client: path + "?" + compact JSON
    compact = json.dumps({"name": "b"}, separators=(",", ":")).encode()
    response = signed(client, key, "POST", path, body=compact, message=path.encode() + b"?" + compact)
    assert response.status_code == 201 and response.json()["name"] == "b"
    # query only (form-style), and (c) the same query signed sorted
    response = signed(client, key, "POST", path, query="name=c&x=1")
    assert response.status_code == 201 and response.json()["name"] == "c"
    response = signed(client, key, "POST", path, query="x=2&name=d", message=f"{path}?name=d&x=2".encode())
    assert response.status_code == 201 and response.json()["name"] == "d"
    # hex is not case-sensitive
    message = path.encode() + as_json({"name": "e"})
    response = client.post(path, content=as_json({"name": "e"}), headers={
        "apikey": key.key_id, "SIGNATURE": key.sign(message).upper(), "Content-Type": "application/json"})
    assert response.status_code == 201 and response.json()["name"] == "e"


def test_unsigned_body_refused_by_default(client, key, account):
    path = rename_path(account)
    response = signed(client, key, "POST", path, body=as_json({"name": "forged"}), message=path.encode())
    assert response.status_code == 401 and response.json()["error"] == "signature_invalid"
    # a signature over another body
    response = signed(client, key, "POST", path, body=as_json({"name": "forged"}),
                      message=path.encode() + as_json({"name": "signed"}))
    assert response.status_code == 401 and response.json()["error"] == "signature_invalid"


def test_unsigned_body_variant_behind_the_setting(mock_exchange, tmp_path):
    """STRONGROOM_THREECOMMAS_UNSIGNED_BODY_VARIANT: the Go SDK's signature over path[?query] alone
    (a server of its own with the setting on; SQLite is enough for a setting)."""
    from strongroom.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'variant.db'}"
    upgrade(url)
    srv = start_server(data_dir=tmp_path, database_url=url, threecommas_unsigned_body_variant=True,
                       exchange_base_urls={"binance": mock_exchange.url})
    try:
        from support import Users

        user = Users(srv).create()
        with srv.client() as client:
            key = hmac_key(client, user)
            body = as_json({"type": "binance", "name": "go-sdk", **Mock(mock_exchange).new_key("binance")})
            response = signed(client, key, "POST", f"{V1}/accounts/new", body=body,
                              message=f"{V1}/accounts/new".encode())
            assert response.status_code == 201, response.text
            assert signed(client, key, "GET", f"{V1}/accounts").status_code == 200
    finally:
        srv.stop()


def test_rate_limited(mock_exchange, tmp_path):
    """429 in 3Commas' shape, with Retry-After (a server of its own with a tiny per-key limit)."""
    from strongroom.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'limited.db'}"
    upgrade(url)
    srv = start_server(data_dir=tmp_path, database_url=url, rate_limit_per_key="3/minute")
    try:
        from support import Users

        user = Users(srv).create()
        with srv.client() as client:
            key = hmac_key(client, user)
            statuses = [signed(client, key, "GET", f"{V1}/accounts", query=f"page={i + 1}") for i in range(4)]
            assert [r.status_code for r in statuses] == [200, 200, 200, 429]
            limited = statuses[-1]
            assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) > 0
            assert set(limited.json()) == {"error", "error_description"}
    finally:
        srv.stop()


def test_replay_window_covers_writes_only(client, key, account):
    path = rename_path(account)
    body = as_json({"name": "once"})
    assert signed(client, key, "POST", path, body=body).status_code == 201
    again = signed(client, key, "POST", path, body=body)
    assert again.status_code == 401 and again.json() == {
        "error": "signature_invalid", "error_description": "Provided signature is invalid"}
    # the same signature in another spelling of hex is the same signature
    message = path.encode() + body
    upper = client.post(path, content=body, headers={"APIKEY": key.key_id, "Signature": key.sign(message).upper(),
                                                      "Content-Type": "application/json"})
    assert upper.status_code == 401
    for _ in range(3):  # reads repeat freely
        assert signed(client, key, "GET", f"{V1}/accounts/{account['id']}").status_code == 200
        assert signed(client, key, "GET", f"{V1}/accounts", query="per_page=5").status_code == 200


def test_concurrent_replays_one_wins(client, key, account):
    path = rename_path(account)
    body = as_json({"name": "raced"})
    headers = {**key.headers(path.encode() + body), "Content-Type": "application/json"}
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: client.post(path, content=body, headers=headers).status_code, range(4)))
    assert sorted(statuses) == [201, 401, 401, 401]


# A write answered with an error leaves its signature usable (issue 22.1): the natural retry of the
# same signed request runs; once it succeeds, the signature is spent.

def test_a_write_answered_400_can_be_retried_and_its_success_not_replayed(client, key, mock):
    creds = mock.new_key("binance")
    first = signed(client, key, "POST", f"{V1}/accounts/new",
                   body=as_json({"type": "binance", "name": "first", **creds}))
    assert first.status_code == 201, first.text
    body = as_json({"type": "binance", "name": "second", **creds})
    refused = signed(client, key, "POST", f"{V1}/accounts/new", body=body)
    assert refused.status_code == 400 and refused.json()["error"] == "record_invalid", refused.text
    removed = signed(client, key, "POST", f"{V1}/accounts/{first.json()['id']}/remove")
    assert removed.status_code == 201, removed.text
    retried = signed(client, key, "POST", f"{V1}/accounts/new", body=body)  # the same signed request
    assert retried.status_code == 201, retried.text
    replayed = signed(client, key, "POST", f"{V1}/accounts/new", body=body)
    assert replayed.status_code == 401 and replayed.json()["error"] == "signature_invalid"


def test_a_write_answered_503_can_be_retried(client, key, mock):
    body = as_json({"type": "binance", "name": "while-down", **mock.new_key("binance")})
    mock.mode("down")
    try:
        down = signed(client, key, "POST", f"{V1}/accounts/new", body=body)
    finally:
        mock.mode("normal")
    assert down.status_code == 503 and int(down.headers["Retry-After"]) >= 1, down.text
    retried = signed(client, key, "POST", f"{V1}/accounts/new", body=body)
    assert retried.status_code == 201, retried.text
    assert signed(client, key, "POST", f"{V1}/accounts/new", body=body).status_code == 401


def test_concurrent_duplicates_of_a_slow_write_run_once(client, key, mock):
    """The signature is claimed while its request runs: duplicates arriving meanwhile are refused,
    and only the one that ran decides whether the signature stays spent."""
    creds = mock.new_key("binance")
    body = as_json({"type": "binance", "name": f"slow-{uuid.uuid4().hex[:6]}", **creds})
    headers = {**key.headers(f"{V1}/accounts/new".encode() + body), "Content-Type": "application/json"}
    mock.mode("slow", delay=0.5)
    try:
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda _: client.post(f"{V1}/accounts/new", content=body, headers=headers),
                                      range(6)))
    finally:
        mock.mode("normal")
    assert sorted(r.status_code for r in responses) == [201] + [401] * 5, [r.text for r in responses]
    accounts = signed(client, key, "GET", f"{V1}/accounts", query="per_page=100").json()
    assert [a["name"] for a in accounts].count(json.loads(body)["name"]) == 1


def test_concurrent_duplicate_connects(client, key, mock):
    creds = mock.new_key("binance")
    bodies = [as_json({"type": "binance", "name": f"dup-{i}", **creds}) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda b: signed(client, key, "POST", f"{V1}/accounts/new", body=b), bodies))
    assert sorted(r.status_code for r in responses) == [201, 400, 400, 400]
    assert all(r.json()["error_attributes"] == {"api_key": ["This account is already connected!"]}
               for r in responses if r.status_code == 400)


def test_wrong_secret_for_a_connected_key_is_invalid_api_key(client, users, key, mock):
    """Issue 22.2: no existence oracle. Whether a key is connected is told only after its secret was proven."""
    creds = mock.new_key("binance")
    assert signed(client, key, "POST", f"{V1}/accounts/new",
                  body=as_json({"type": "binance", "name": "first", **creds})).status_code == 201
    wrong = {**creds, "secret": f"wrong-{uuid.uuid4().hex}"}
    for caller in (key, hmac_key(client, users.create())):  # the same user, another user
        response = signed(client, caller, "POST", f"{V1}/accounts/new",
                          body=as_json({"type": "binance", "name": "again", **wrong}))
        assert response.status_code == 422 and response.json()["error"] == "invalid_api_key", response.text
        response = signed(client, caller, "POST", f"{V1}/accounts/new",
                          body=as_json({"type": "binance", "name": "again", **creds}))
        assert response.status_code == 400, response.text
        assert response.json()["error_attributes"] == {"api_key": ["This account is already connected!"]}


def test_ip_allowlist(client, user, account):
    outside = hmac_key(client, user, ip_allowlist=["10.9.8.0/24"])
    response = signed(client, outside, "GET", f"{V1}/accounts")
    # 3Commas answers a request from outside the whitelist like an unknown key (reference §3)
    assert response.status_code == 401 and response.json()["error"] == "api_key_invalid_or_expired"


# --- parameters -------------------------------------------------------------------------------------

def test_query_wins_over_the_body(client, key, account):
    path = rename_path(account)
    body = as_json({"name": "from-body"})
    response = signed(client, key, "POST", path, query="name=from-query", body=body)
    assert response.status_code == 201 and response.json()["name"] == "from-query"


def test_form_body(client, key, account):
    path = rename_path(account)
    body = b"name=%C3%9Cber+form"
    response = signed(client, key, "POST", path, body=body, content_type="application/x-www-form-urlencoded",
                      message=path.encode() + b"?" + body)
    assert response.status_code == 201 and response.json()["name"] == "Über form"


def test_bad_bodies(client, key, account):
    path = rename_path(account)
    for body, content_type in ((b"[1, 2]", "application/json"), (b"{not json", "application/json"),
                               (b"name=x", "text/plain")):
        response = signed(client, key, "POST", path, body=body, content_type=content_type)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "bad_request" and set(response.json()) == {"error", "error_description"}
    response = signed(client, key, "POST", path, body=as_json({"name": ""}))
    assert response.status_code == 400 and response.json()["error_attributes"] == {"name": ["is missing"]}
    response = signed(client, key, "POST", path, body=as_json({"name": 7}))
    assert response.json()["error_attributes"] == {"name": ["is invalid"]}
    response = signed(client, key, "POST", path, body=as_json({"name": "x" * 101}))
    assert response.status_code == 400 and response.json()["error_attributes"] == {"name": ["1-100 characters"]}


def test_new_validates_against_the_form(client, key, mock):
    response = signed(client, key, "POST", f"{V1}/accounts/new", body=as_json({}))
    assert response.status_code == 400 and response.json() == {
        "error": "record_invalid", "error_description": "Invalid parameters",
        "error_attributes": {"type": ["is missing"], "name": ["is missing"]}}
    response = signed(client, key, "POST", f"{V1}/accounts/new", body=as_json(
        {"type": "okex", "name": "n", "api_key": "k"}))
    assert response.json()["error_attributes"] == {"secret": ["is missing"], "passphrase": ["is missing"]}
    response = signed(client, key, "POST", f"{V1}/accounts/new", body=as_json(
        {"type": "binance", "name": "n", "api_key": "k", "secret": "s", "customer_id": "c"}))
    assert response.json()["error_attributes"] == {"customer_id": ["is not allowed"]}
    response = signed(client, key, "POST", f"{V1}/accounts/new", body=as_json(
        {"type": "binance", "name": "n", "types_to_create": ["binance_margin"], **mock.new_key("binance")}))
    assert response.json()["error_attributes"] == {"types_to_create": ["does not have a valid value"]}
    response = signed(client, key, "POST", f"{V1}/accounts/new", body=as_json(
        {"type": "nowhere", "name": "n", "api_key": "k", "secret": "s"}))
    assert response.json()["error_attributes"] == {"type": ["does not have a valid value"]}
    # form fields with a list, query-string style (types_to_create[]=...): the venue's own type is fine
    creds = mock.new_key("binance")
    query = f"type=binance&name=form&api_key={creds['api_key']}&secret={creds['secret']}&types_to_create[]=binance"
    response = signed(client, key, "POST", f"{V1}/accounts/new", query=query)
    assert response.status_code == 201 and response.json()["market_code"] == "binance"


def test_update_renames_and_rotates_in_one_write(client, key, user, account, mock):
    fresh = mock.new_key("binance")
    body = as_json({"account_id": account["id"], "name": "Rotated", **fresh})
    response = signed(client, key, "POST", f"{V1}/accounts/update", body=body)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Rotated" and response.json()["id"] == account["id"]
    native = client.get(f"/v1/exchange-accounts/{account['id']}", headers=user.headers).json()
    assert native["key_hint"] == fresh["api_key"][:4] + "…" + fresh["api_key"][-4:]
    # bad new credentials: nothing changes (neither the name nor the key)
    body = as_json({"account_id": account["id"], "name": "Never", "api_key": fresh["api_key"], "secret": "wrong"})
    response = signed(client, key, "POST", f"{V1}/accounts/update", body=body)
    assert response.status_code == 422 and response.json()["error"] == "invalid_api_key"
    assert client.get(f"/v1/exchange-accounts/{account['id']}", headers=user.headers).json()["name"] == "Rotated"
    # name only, by query
    response = signed(client, key, "POST", f"{V1}/accounts/update", query=f"account_id={account['id']}&name=Q")
    assert response.status_code == 201 and response.json()["name"] == "Q"
    response = signed(client, key, "POST", f"{V1}/accounts/update", body=as_json({"name": "x"}))
    assert response.json()["error_attributes"] == {"account_id": ["is missing"]}
    response = signed(client, key, "POST", f"{V1}/accounts/update",
                      body=as_json({"account_id": account["id"], "include_in_summary": False}))
    assert response.status_code == 400 and response.json()["error_attributes"] == {
        "include_in_summary": ["can only be true"]}
    response = signed(client, key, "POST", f"{V1}/accounts/update", body=as_json({"account_id": 2_000_000_000}))
    assert response.status_code == 404 and response.json() == {"error": "not_found", "error_description": "Not Found"}


# --- statuses and the other endpoints ---------------------------------------------------------------

def test_statuses_and_bodies(client, key, account):
    info = signed(client, key, "GET", f"{V1}/accounts/{account['id']}")
    assert info.status_code == 200 and info.headers["content-type"].startswith("application/json")
    entities = signed(client, key, "GET", f"{V1}/accounts/{account['id']}/active_trading_entities")
    assert entities.status_code == 200 and set(entities.json()["data"].values()) == {0}
    for action in ("sell_all_to_usd", "sell_all_to_btc", "convert_dust_to_bnb"):
        response = signed(client, key, "POST", f"{V1}/accounts/{account['id']}/{action}")
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "not_supported" and action in response.json()["error_description"]
    for path in (f"{V1}/accounts/{account['id']}/networks_info", f"{V1}/accounts/transfer_history"):
        assert signed(client, key, "GET", path).json()["error"] == "not_supported"
    assert signed(client, key, "POST", f"{V1}/accounts/transfer", body=as_json({"amount": 1})).status_code == 422
    missing = signed(client, key, "GET", f"{V1}/accounts/{account['id']}/nothing_here")
    assert missing.status_code == 404 and missing.json() == {"error": "not_found", "error_description": "Not Found"}
    for bad in ("0", "-1", "abc", "99999999999", "%D9%A1%D9%A2"):  # the last: Arabic-Indic digits
        assert signed(client, key, "GET", f"{V1}/accounts/{bad}").status_code == 404
    wrong = client.delete(f"{V1}/accounts/{account['id']}", headers=key.headers(b""))
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    removed = signed(client, key, "POST", f"{V1}/accounts/{account['id']}/remove")
    assert removed.status_code == 201 and removed.content == b"true"
    gone = signed(client, key, "POST", f"{V1}/accounts/{account['id']}/rename", body=as_json({"name": "z"}))
    assert gone.status_code == 404


def test_public_and_service_endpoints(client, key, account, server):
    assert client.get(f"{V1}/ping").json() == {"pong": "pong"}
    assert isinstance(client.get(f"{V1}/time").json()["server_time"], int)
    assert client.get(f"{V1}/accounts/market_list").status_code == 200
    assert signed(client, key, "GET", f"{V1}/validate").json() == {"valid": True}
    assert client.get(f"{V1}/validate").status_code == 401
    # types_to_connect (py3cw has no action for it)
    response = signed(client, key, "GET", f"{V1}/accounts/types_to_connect", query="type=binance&name=n&api_key=zz")
    assert response.json() == [{"type": "binance", "connected": False, "available": True, "unified": False}]
    response = signed(client, key, "GET", f"{V1}/accounts/types_to_connect", query="name=n")
    assert response.json()["error_attributes"] == {"type": ["is missing"]}
    summary = signed(client, key, "GET", f"{V1}/accounts/summary")
    assert summary.status_code == 200 and summary.json()["id"] is None and "usd_amount" in summary.json()


def test_types_to_connect_knows_the_key(client, key, mock):
    creds = mock.new_key("binance")
    response = signed(client, key, "POST", f"{V1}/accounts/new",
                      body=as_json({"type": "binance", "name": "known", **creds}))
    assert response.status_code == 201
    response = signed(client, key, "GET", f"{V1}/accounts/types_to_connect",
                      query=f"type=binance&name=n&api_key={creds['api_key']}&secret=s")
    assert response.json()[0]["connected"] is True


def test_market_data(client, key):
    pairs = signed(client, key, "GET", f"{V1}/accounts/market_pairs", query="market_code=binance")
    assert pairs.status_code == 200 and "USDT_BTC" in pairs.json() and "BTC_ETH" in pairs.json()
    rate = signed(client, key, "GET", f"{V1}/accounts/currency_rates", query="market_code=binance&pair=USDT_BTC")
    assert rate.status_code == 200 and Decimal(rate.json()["last"]) == 50000 and "error" not in rate.json()
    bad = signed(client, key, "GET", f"{V1}/accounts/currency_rates", query="market_code=binance&pair=USDT_NOPE")
    assert bad.status_code == 400 and bad.json()["error_attributes"] == {"pair": ["is invalid"]}
    unknown = signed(client, key, "GET", f"{V1}/accounts/market_pairs", query="market_code=nowhere")
    assert unknown.json()["error_attributes"] == {"market_code": ["does not have a valid value"]}
    # a live exchange call: never for an anonymous caller
    assert client.get(f"{V1}/accounts/market_pairs", params={"market_code": "binance"}).status_code == 401


def test_trading_calls_stay_not_supported_with_trade_scope_and_a_policy(client, user, mock):
    """Issue 19: Strongroom trades now (/v1, Cadenza), but the 3Commas surface still answers its trading calls
    with not_supported, even for a key holding ``trade`` on an account whose policy allows everything; nothing
    reaches the exchange."""
    trader = hmac_key(client, user, scopes=("read", "write", "trade"))
    exchange_key = mock.new_key("binance")
    body = as_json({"type": "binance", "name": f"acct-{uuid.uuid4().hex[:6]}", **exchange_key})
    account = signed(client, trader, "POST", f"{V1}/accounts/new", body=body).json()
    policy = client.put(f"/v1/exchange-accounts/{account['id']}/trading-policy", headers=user.headers,
                        json={"allow_market_orders": True})
    assert policy.status_code == 200, policy.text
    for action in ("sell_all_to_usd", "sell_all_to_btc", "convert_dust_to_bnb"):
        response = signed(client, trader, "POST", f"{V1}/accounts/{account['id']}/{action}")
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "not_supported" and action in response.json()["error_description"]
    assert signed(client, trader, "GET", f"{V1}/accounts/{account['id']}/leverage_data").json()["error"] == \
        "not_supported"
    entities = signed(client, trader, "GET", f"{V1}/accounts/{account['id']}/active_trading_entities")
    assert entities.status_code == 200 and set(entities.json()["data"].values()) == {0}
    held = httpx.get(f"{mock.url}/_mock/orders", params={"exchange": "binance", "api_key": exchange_key["api_key"]},
                     timeout=10).json()["orders"]
    assert held == []


def test_listing_accounts_reads_balances_in_queries_that_do_not_grow_with_the_accounts(client, key, mock, server):
    """The account list (and the summary) read every account's snapshot and profits together: the statements on
    balance_snapshots are as many for six loaded accounts as for one (they were two per account)."""
    from sqlalchemy import event

    engine = server.core.db.engine

    def snapshot_statements(path: str) -> tuple[int, list[dict]]:
        statements: list[str] = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            answer = signed(client, key, "GET", path)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert answer.status_code == 200, answer.text
        return len([s for s in statements if "balance_snapshots" in s]), answer.json()

    def connect_and_load() -> dict:
        body = as_json({"type": "binance", "name": f"acct-{uuid.uuid4().hex[:6]}", **mock.new_key("binance")})
        made = signed(client, key, "POST", f"{V1}/accounts/new", body=body)
        assert made.status_code == 201, made.text
        loaded = signed(client, key, "POST", f"{V1}/accounts/{made.json()['id']}/load_balances")
        assert loaded.status_code == 201, loaded.text
        return loaded.json()

    first = connect_and_load()
    one, listed = snapshot_statements(f"{V1}/accounts")
    assert [a["id"] for a in listed] == [first["id"]] and listed[0]["usd_amount"] == first["usd_amount"]
    one_summary, _ = snapshot_statements(f"{V1}/accounts/summary")
    more = [connect_and_load() for _ in range(5)]
    six, listed = snapshot_statements(f"{V1}/accounts")
    assert sorted(a["id"] for a in listed) == sorted(a["id"] for a in [first, *more])
    assert {a["id"]: a["usd_profit"] for a in listed} == {a["id"]: a["usd_profit"] for a in [first, *more]}
    six_summary, _ = snapshot_statements(f"{V1}/accounts/summary")
    assert (six, six_summary) == (one, one_summary)
