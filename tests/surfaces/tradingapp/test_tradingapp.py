"""Issue 5: the Trading App accounts surface (seed 000) at /user/{id}/accounts.

The seed's own three curl commands run as subprocesses (``curl`` through the shell) against the
live ``server`` on each backend, with real credentials filled in; BINANCE is validated for real
against the bundled mock exchange. Then every error case, in the seed's
``{"Status Code": n, "Message": "..."}`` shape, and the links to the core (/v1 accounts, audit,
API keys as Basic credentials).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid

import httpx
import pytest
from support import SEEDS

# --- the seed's commands, copied verbatim from seeds/000 ("APIs for Accounts") ----------------

SEED_GET = """curl --location --request GET 'http://localhost:8000/user/id/accounts' \\
--header 'Authorization: Basic user_auth'"""

SEED_POST = """curl --location --request POST 'http://localhost:8000/user/id/accounts/new' \\
--header 'Authorization: Basic user_auth' \\
--header 'Content-Type: application/json' \\
--data-raw '{
  "Exchange": "BITMEX",
  "api_key": "api_key",
  "secret_key": "secret_key"
}'"""

SEED_DELETE = """curl --location --request DELETE 'http://localhost:8000/user/id/accounts/exchange_name' \\
--header 'Authorization: Basic user_auth'"""

SEED_FILE = SEEDS / "000_8a0c854cc3f23c34.txt"

CREATED = {"Status Code": 200, "Message": "Account successfully created"}
DELETED = {"Status Code": 200, "Message": "Account successfully deleted"}
UNAUTHORIZED = {"Status Code": 401, "Message": "Wrong Authentication credentials"}
FORBIDDEN = {"Status Code": 403, "Message": "You do not have permission to perform this action"}
EXISTS = {"Status Code": 422, "Message": "Account for that exchange already exists"}
MASKED = "********"


# --- helpers ----------------------------------------------------------------------------------


def basic(userinfo: str) -> str:
    return base64.b64encode(userinfo.encode()).decode()


def fill(template: str, server_url: str, user_id: int, userinfo: str, *, exchange: str = "BITMEX",
         api_key: str = "api_key", secret_key: str = "secret_key", exchange_name: str = "exchange_name") -> str:
    """The seed's command with host, id, credentials and body values substituted (nothing else)."""
    for value in (exchange, api_key, secret_key, exchange_name):
        assert "'" not in value and '"' not in value
    cmd = template.replace("http://localhost:8000", server_url)
    cmd = cmd.replace("/user/id/", f"/user/{user_id}/")
    cmd = cmd.replace("Basic user_auth", f"Basic {basic(userinfo)}")
    cmd = cmd.replace('"Exchange": "BITMEX"', f'"Exchange": "{exchange}"')
    cmd = cmd.replace('"api_key": "api_key"', f'"api_key": "{api_key}"')
    cmd = cmd.replace('"secret_key": "secret_key"', f'"secret_key": "{secret_key}"')
    cmd = cmd.replace("/accounts/exchange_name'", f"/accounts/{exchange_name}'")
    return cmd


class CurlResult:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def run_curl(cmd: str) -> CurlResult:
    """Run a seed command through the shell; ``-s -i`` is appended so the status and headers show."""
    proc = subprocess.run(cmd + " --silent --show-error --include", shell=True, capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    raw = proc.stdout.decode()
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return CurlResult(status, headers, body)


def new_mock_key(mock_exchange, exchange: str = "binance") -> tuple[str, str]:
    """A fresh key registered on the mock exchange (unique per test: parallel runs never collide)."""
    api_key, secret = f"mk{uuid.uuid4().hex}", f"ms{uuid.uuid4().hex}{uuid.uuid4().hex}"
    response = httpx.post(f"{mock_exchange.url}/_mock/accounts",
                          json={"exchange": exchange, "api_key": api_key, "secret": secret}, timeout=10)
    assert response.status_code == 201, response.text
    return api_key, secret


def fake_key() -> tuple[str, str]:
    """Credentials for venues without a validator (stored unverified)."""
    return f"ak{uuid.uuid4().hex}", f"sk{uuid.uuid4().hex}{uuid.uuid4().hex}"


def expected_hint(key: str) -> str:
    return key[:1] + "…" if len(key) <= 8 else f"{key[:4]}…{key[-4:]}"


def check_error(response, status: int, body: dict | None = None) -> dict:
    """Status and the seed's error shape; exact body when given. Never a 500."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert set(doc) == {"Status Code", "Message"}, doc
    assert doc["Status Code"] == status and isinstance(doc["Message"], str) and doc["Message"]
    if body is not None:
        assert doc == body
    return doc


def post_new(client, user_id: int, auth: dict, exchange: str, api_key: str, secret: str, key_name="Exchange"):
    return client.post(f"/user/{user_id}/accounts/new", headers=auth,
                       json={key_name: exchange, "api_key": api_key, "secret_key": secret})


def listing(client, user_id: int, auth: dict) -> list[dict]:
    response = client.get(f"/user/{user_id}/accounts", headers=auth)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert set(doc) == {"accounts"}
    return doc["accounts"]


def v1_accounts(client, user, **params) -> list[dict]:
    response = client.get("/v1/exchange-accounts", headers=user.headers, params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def basic_header(userinfo: str) -> dict[str, str]:
    return {"Authorization": f"Basic {basic(userinfo)}"}


def make_key(client, user, scopes: list[str], **extra) -> tuple[str, str]:
    response = client.post("/v1/api-keys", headers=user.headers,
                           json={"name": f"ta-{uuid.uuid4().hex[:6]}", "scopes": scopes, **extra})
    assert response.status_code == 201, response.text
    doc = response.json()
    return doc["key_id"], doc["secret"]


# --- the seed's commands ----------------------------------------------------------------------


def test_embedded_commands_are_the_seeds():
    """The templates above are the seed's text, character for character."""
    if not SEED_FILE.exists():
        pytest.skip(f"seed file not present at {SEED_FILE}; templates not re-checked against it")
    text = SEED_FILE.read_text()
    for command in (SEED_GET, SEED_POST, SEED_DELETE):
        assert command in text


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_seed_curl_commands_work_verbatim(server, users, mock_exchange, client):
    """POST BITMEX, CONCURRENCY.COM and BINANCE, GET them, DELETE them: all with the seed's curl."""
    user = users.create()
    userinfo = user.basic_userinfo
    bitmex, ccom = fake_key(), fake_key()
    binance = new_mock_key(mock_exchange)
    secrets = [bitmex[1], ccom[1], binance[1]]
    bodies: list[str] = []
    stats_before = httpx.get(f"{mock_exchange.url}/_mock/stats").json().get("binance", {}).get(
        "valid_signatures", 0)

    for exchange, (key, secret) in (("BITMEX", bitmex), ("CONCURRENCY.COM", ccom), ("BINANCE", binance)):
        result = run_curl(fill(SEED_POST, server.url, user.id, userinfo, exchange=exchange, api_key=key,
                               secret_key=secret))
        bodies.append(result.body)
        assert (result.status, result.json()) == (200, CREATED), result.body
        assert result.headers["content-type"].startswith("application/json")

    # BINANCE was checked for real against the mock (signed with its secret)
    stats_after = httpx.get(f"{mock_exchange.url}/_mock/stats").json()["binance"]["valid_signatures"]
    assert stats_after > stats_before

    result = run_curl(fill(SEED_GET, server.url, user.id, userinfo))
    bodies.append(result.body)
    assert result.status == 200
    doc = result.json()
    assert set(doc) == {"accounts"}
    assert sorted(doc["accounts"], key=lambda a: a["exchange"]) == [
        {"exchange": "BINANCE", "api_key": expected_hint(binance[0]), "secret_key": MASKED},
        {"exchange": "BITMEX", "api_key": expected_hint(bitmex[0]), "secret_key": MASKED},
        {"exchange": "CONCURRENCY.COM", "api_key": expected_hint(ccom[0]), "secret_key": MASKED},
    ]
    for account, full_key in zip(sorted(doc["accounts"], key=lambda a: a["exchange"]),
                                 (binance[0], bitmex[0], ccom[0])):
        assert account["api_key"] != full_key

    # the core stored them: BINANCE validated live, the others unverified (no validator)
    statuses = {a["exchange"]: a["status"] for a in v1_accounts(client, user)}
    assert statuses == {"binance": "active", "bitmex": "unverified", "currencycom": "unverified"}

    for name in ("BITMEX", "CONCURRENCY.COM", "BINANCE"):
        result = run_curl(fill(SEED_DELETE, server.url, user.id, userinfo, exchange_name=name))
        bodies.append(result.body)
        assert (result.status, result.json()) == (200, DELETED), result.body

    result = run_curl(fill(SEED_GET, server.url, user.id, userinfo))
    assert (result.status, result.json()) == (200, {"accounts": []})
    assert {a["status"] for a in v1_accounts(client, user)} == {"disconnected"}
    for secret in secrets:
        assert not any(secret in body for body in bodies)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_seed_curl_errors(server, users):
    """The seed's documented error responses, through its own commands."""
    user, other = users.create(), users.create()
    key, secret = fake_key()
    # 401: wrong password
    bad = f"{user.username}:wrong-{user.password}"
    for template in (SEED_GET, SEED_POST, SEED_DELETE):
        result = run_curl(fill(template, server.url, user.id, bad, api_key=key, secret_key=secret,
                               exchange_name="BITMEX"))
        assert (result.status, result.json()) == (401, UNAUTHORIZED)
        assert result.headers.get("www-authenticate", "").lower().startswith("basic")
    # 403: another user's id
    for template in (SEED_GET, SEED_POST, SEED_DELETE):
        result = run_curl(fill(template, server.url, other.id, user.basic_userinfo, api_key=key,
                               secret_key=secret, exchange_name="BITMEX"))
        assert (result.status, result.json()) == (403, FORBIDDEN)
    # 422: a second account for the same exchange
    first = run_curl(fill(SEED_POST, server.url, user.id, user.basic_userinfo, api_key=key, secret_key=secret))
    assert (first.status, first.json()) == (200, CREATED)
    key2, secret2 = fake_key()
    second = run_curl(fill(SEED_POST, server.url, user.id, user.basic_userinfo, api_key=key2, secret_key=secret2))
    assert (second.status, second.json()) == (422, EXISTS)


# --- names and aliases --------------------------------------------------------------------------


@pytest.mark.parametrize("post_name, delete_name, shown, body_key", [
    ("binance", "Binance", "BINANCE", "Exchange"),
    ("Binance", "BINANCE", "BINANCE", "exchange"),
    ("currencycom", "CURRENCY.COM", "CONCURRENCY.COM", "Exchange"),
    ("CURRENCY.COM", "currencycom", "CONCURRENCY.COM", "exchange"),
    ("Concurrency.com", "concurrency.COM", "CONCURRENCY.COM", "Exchange"),
    ("bitmex", "BitMEX", "BITMEX", "exchange"),
])
def test_names_ids_and_aliases(client, users, mock_exchange, post_name, delete_name, shown, body_key):
    user = users.create()
    key, secret = new_mock_key(mock_exchange) if shown == "BINANCE" else fake_key()
    response = post_new(client, user.id, user.basic, post_name, key, secret, key_name=body_key)
    assert (response.status_code, response.json()) == (200, CREATED)
    assert listing(client, user.id, user.basic) == [
        {"exchange": shown, "api_key": expected_hint(key), "secret_key": MASKED}]
    # the same exchange under another spelling is the same exchange
    other_key, other_secret = fake_key()
    check_error(post_new(client, user.id, user.basic, delete_name, other_key, other_secret), 422, EXISTS)
    response = client.delete(f"/user/{user.id}/accounts/{delete_name}", headers=user.basic)
    assert (response.status_code, response.json()) == (200, DELETED)
    assert listing(client, user.id, user.basic) == []


def test_unknown_exchange_is_422(client, users):
    user = users.create()
    key, secret = fake_key()
    check_error(post_new(client, user.id, user.basic, "NOT-AN-EXCHANGE", key, secret), 422)
    assert listing(client, user.id, user.basic) == []


# --- authentication and permission --------------------------------------------------------------


def test_401_missing_or_wrong_basic(client, users):
    user = users.create()
    key, secret = fake_key()
    cases = [
        {},
        basic_header(f"{user.username}:not-the-password"),
        basic_header(f"nobody-{uuid.uuid4().hex[:8]}:{user.password}"),
        basic_header(f"{user.username}"),  # no colon
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": "Basic"},
        user.headers,  # a Bearer access token is not this surface's scheme
    ]
    for headers in cases:
        for method, path, kwargs in (
            ("GET", f"/user/{user.id}/accounts", {}),
            ("POST", f"/user/{user.id}/accounts/new",
             {"json": {"Exchange": "BITMEX", "api_key": key, "secret_key": secret}}),
            ("DELETE", f"/user/{user.id}/accounts/BITMEX", {}),
        ):
            response = client.request(method, path, headers=headers, **kwargs)
            check_error(response, 401, UNAUTHORIZED)
            assert response.headers["www-authenticate"].lower().startswith("basic")
    assert listing(client, user.id, user.basic) == []


def test_403_for_another_users_id(client, users):
    alice, bob = users.create(), users.create()
    key, secret = fake_key()
    response = post_new(client, bob.id, bob.basic, "BITMEX", key, secret)
    assert (response.status_code, response.json()) == (200, CREATED)

    check_error(client.get(f"/user/{bob.id}/accounts", headers=alice.basic), 403, FORBIDDEN)
    other_key, other_secret = fake_key()
    check_error(post_new(client, bob.id, alice.basic, "CONCURRENCY.COM", other_key, other_secret), 403, FORBIDDEN)
    check_error(client.delete(f"/user/{bob.id}/accounts/BITMEX", headers=alice.basic), 403, FORBIDDEN)
    # an unknown id is also "not yours" for a non-admin: no user enumeration
    check_error(client.get("/user/2147483000/accounts", headers=alice.basic), 403, FORBIDDEN)

    # nothing changed for bob, nothing appeared for alice
    assert listing(client, bob.id, bob.basic) == [
        {"exchange": "BITMEX", "api_key": expected_hint(key), "secret_key": MASKED}]
    assert listing(client, alice.id, alice.basic) == []


def test_admin_acts_on_another_user(client, users, mock_exchange):
    admin, bob = users.create(admin=True), users.create()
    key, secret = new_mock_key(mock_exchange)
    response = post_new(client, bob.id, admin.basic, "BINANCE", key, secret)
    assert (response.status_code, response.json()) == (200, CREATED)
    expected = [{"exchange": "BINANCE", "api_key": expected_hint(key), "secret_key": MASKED}]
    assert listing(client, bob.id, admin.basic) == expected
    assert listing(client, bob.id, bob.basic) == expected  # it is bob's account
    assert listing(client, admin.id, admin.basic) == []
    [account] = v1_accounts(client, bob)
    assert account["user_id"] == bob.id and account["status"] == "active"
    response = client.delete(f"/user/{bob.id}/accounts/binance", headers=admin.basic)
    assert (response.status_code, response.json()) == (200, DELETED)
    assert listing(client, bob.id, bob.basic) == []


# --- 422 duplicate, 404 ---------------------------------------------------------------------------


def test_422_one_live_account_per_exchange(client, users):
    user = users.create()
    key, secret = fake_key()
    assert post_new(client, user.id, user.basic, "BITMEX", key, secret).json() == CREATED
    for name in ("BITMEX", "bitmex"):
        other_key, other_secret = fake_key()
        check_error(post_new(client, user.id, user.basic, name, other_key, other_secret), 422, EXISTS)
    # the same key again is also "already exists" on this surface
    check_error(post_new(client, user.id, user.basic, "BITMEX", key, secret), 422, EXISTS)
    assert len(listing(client, user.id, user.basic)) == 1

    assert client.delete(f"/user/{user.id}/accounts/BITMEX", headers=user.basic).json() == DELETED
    new_key, new_secret = fake_key()
    response = post_new(client, user.id, user.basic, "BITMEX", new_key, new_secret)
    assert (response.status_code, response.json()) == (200, CREATED)
    assert listing(client, user.id, user.basic) == [
        {"exchange": "BITMEX", "api_key": expected_hint(new_key), "secret_key": MASKED}]
    # and the old key may be connected again once its account was deleted
    assert client.delete(f"/user/{user.id}/accounts/BITMEX", headers=user.basic).json() == DELETED
    assert post_new(client, user.id, user.basic, "BITMEX", key, secret).json() == CREATED


def test_same_key_for_another_user_is_refused_in_shape(client, users):
    alice, bob = users.create(), users.create()
    key, secret = fake_key()
    assert post_new(client, alice.id, alice.basic, "BITMEX", key, secret).json() == CREATED
    check_error(post_new(client, bob.id, bob.basic, "BITMEX", key, secret), 409)
    assert listing(client, bob.id, bob.basic) == []


def test_wrong_secret_for_a_connected_key_is_invalid_credentials(client, users, mock_exchange):
    """Issue 22.2: no existence oracle. A wrong secret is 400 even when another user connected the key (the
    caller's own one account per exchange is its own business: told whatever the key)."""
    alice, bob = users.create(), users.create()
    key, secret = new_mock_key(mock_exchange)
    wrong = f"wrong{uuid.uuid4().hex}"
    assert post_new(client, alice.id, alice.basic, "BINANCE", key, secret).json() == CREATED
    invalid = {"Status Code": 400, "Message": "Invalid exchange credentials"}
    check_error(post_new(client, bob.id, bob.basic, "BINANCE", key, wrong), 400, invalid)
    # the right secret: the duplicate answer
    check_error(post_new(client, bob.id, bob.basic, "BINANCE", key, secret), 409)
    assert listing(client, bob.id, bob.basic) == []
    for secret_given in (wrong, secret):
        check_error(post_new(client, alice.id, alice.basic, "BINANCE", key, secret_given), 422, EXISTS)


def test_404_unknown_user_or_account(client, users):
    admin, user = users.create(admin=True), users.create()
    missing = 2147483000
    key, secret = fake_key()
    body = check_error(client.get(f"/user/{missing}/accounts", headers=admin.basic), 404)
    assert "user" in body["Message"].lower()
    check_error(post_new(client, missing, admin.basic, "BITMEX", key, secret), 404, body)
    check_error(client.delete(f"/user/{missing}/accounts/BITMEX", headers=admin.basic), 404, body)

    # no account on that exchange; an unknown exchange name; after deletion
    gone = check_error(client.delete(f"/user/{user.id}/accounts/BITMEX", headers=user.basic), 404)
    assert "account" in gone["Message"].lower()
    check_error(client.delete(f"/user/{user.id}/accounts/NO-SUCH-EXCHANGE", headers=user.basic), 404, gone)
    assert post_new(client, user.id, user.basic, "BITMEX", key, secret).json() == CREATED
    assert client.delete(f"/user/{user.id}/accounts/BITMEX", headers=user.basic).json() == DELETED
    check_error(client.delete(f"/user/{user.id}/accounts/BITMEX", headers=user.basic), 404, gone)
    # an unknown path under the surface is rendered in the surface's shape as well
    check_error(client.get(f"/user/{user.id}/accounts/x/y", headers=user.basic), 404)


# --- exchange outcomes ------------------------------------------------------------------------------


def test_400_invalid_exchange_credentials(client, users, mock_exchange):
    user = users.create()
    key, secret = new_mock_key(mock_exchange)
    wrong = f"wrong{uuid.uuid4().hex}"
    response = post_new(client, user.id, user.basic, "BINANCE", key, wrong)
    body = check_error(response, 400, {"Status Code": 400, "Message": "Invalid exchange credentials"})
    text = response.text.lower()
    for leak in ("signature", "-1022", "mbx", "binance", wrong, key, mock_exchange.url):
        assert leak.lower() not in text, leak
    assert body["Message"] == "Invalid exchange credentials"
    # an unknown key too
    unknown_key, unknown_secret = fake_key()
    check_error(post_new(client, user.id, user.basic, "BINANCE", unknown_key, unknown_secret), 400, body)
    assert listing(client, user.id, user.basic) == []
    assert v1_accounts(client, user) == []
    # the real secret then works
    assert post_new(client, user.id, user.basic, "BINANCE", key, secret).json() == CREATED


def test_503_when_exchange_is_down(client, users, mock_exchange):
    user = users.create()
    key, secret = new_mock_key(mock_exchange)
    try:
        switched = httpx.post(f"{mock_exchange.url}/_mock/behaviour", json={"mode": "down"}, timeout=10)
        assert switched.status_code == 200
        response = post_new(client, user.id, user.basic, "BINANCE", key, secret)
        check_error(response, 503)
        assert int(response.headers["retry-after"]) > 0
        assert secret not in response.text and key not in response.text
    finally:
        reset = httpx.post(f"{mock_exchange.url}/_mock/behaviour", json={"mode": "normal"}, timeout=10)
        assert reset.status_code == 200
    assert listing(client, user.id, user.basic) == []
    assert v1_accounts(client, user) == []
    assert post_new(client, user.id, user.basic, "BINANCE", key, secret).json() == CREATED


def test_withdrawal_key_is_refused_in_shape(client, users, mock_exchange):
    user = users.create()
    api_key, secret = f"mk{uuid.uuid4().hex}", f"ms{uuid.uuid4().hex}"
    httpx.post(f"{mock_exchange.url}/_mock/accounts",
               json={"exchange": "binance", "api_key": api_key, "secret": secret, "can_withdraw": True},
               timeout=10).raise_for_status()
    check_error(post_new(client, user.id, user.basic, "BINANCE", api_key, secret), 400)
    assert listing(client, user.id, user.basic) == []


# --- malformed bodies ---------------------------------------------------------------------------------


def test_422_malformed_bodies(client, users):
    user = users.create()
    url = f"/user/{user.id}/accounts/new"
    json_headers = {**user.basic, "Content-Type": "application/json"}
    secret = f"sk{uuid.uuid4().hex}"
    cases = [
        ('{"Exchange": "BITMEX", "api_key": "k", ', json_headers),                       # malformed JSON
        ('{"Exchange": "BITMEX", "api_key": "k"}', json_headers),                        # missing secret_key
        (json.dumps({"api_key": "kkkkkkkkk", "secret_key": secret}), json_headers),       # missing Exchange
        ('{"Exchange": "BITMEX", "api_key": "kkkkkkkkk", "secret_key": ""}', json_headers),  # empty secret
        (json.dumps({"Exchange": "BITMEX", "api_key": 12345678, "secret_key": secret}), json_headers),
        (json.dumps({"Exchange": "BITMEX", "api_key": "k", "secret_key": secret, "bogus": 1}), json_headers),
        ('["BITMEX", "k", "s"]', json_headers),                                          # not an object
        ("null", json_headers),
        ("", json_headers),                                                              # empty body
        ("Exchange=BITMEX&api_key=k&secret_key=" + secret,
         {**user.basic, "Content-Type": "application/x-www-form-urlencoded"}),           # not JSON
        ("just some text " + secret, {**user.basic, "Content-Type": "text/plain"}),
        (b"\xff\xfe\x00garbage", json_headers),                                          # not UTF-8
    ]
    for body, headers in cases:
        response = client.post(url, content=body, headers=headers)
        check_error(response, 422)
        assert secret not in response.text, body
    assert listing(client, user.id, user.basic) == []


def test_path_id_not_an_integer(client, users):
    user = users.create()
    check_error(client.get("/user/abc/accounts", headers=user.basic), 422)


# --- secrets never shown -------------------------------------------------------------------------------


def test_listing_never_shows_secrets(client, users, mock_exchange):
    user = users.create()
    seen: list[str] = []
    pairs = [("BINANCE", *new_mock_key(mock_exchange)), ("BITMEX", *fake_key()), ("CONCURRENCY.COM", *fake_key())]
    for exchange, key, secret in pairs:
        response = post_new(client, user.id, user.basic, exchange, key, secret)
        seen.append(response.text)
        assert response.json() == CREATED
    response = client.get(f"/user/{user.id}/accounts", headers=user.basic)
    seen.append(response.text)
    for account in response.json()["accounts"]:
        assert account["secret_key"] == MASKED
        assert "…" in account["api_key"]
    v1 = client.get("/v1/exchange-accounts", headers=user.headers)
    seen.append(v1.text)
    for exchange, key, secret in pairs:
        assert all(secret not in text for text in seen)
        assert all(key not in text for text in seen)  # only the hint of the key is ever shown
        seen.append(client.delete(f"/user/{user.id}/accounts/{exchange}", headers=user.basic).text)
    assert all(secret not in text for text in seen for _, _, secret in pairs)


# --- one core ----------------------------------------------------------------------------------------


def test_same_accounts_as_v1_and_audited(client, users, mock_exchange):
    user = users.create()
    key, secret = new_mock_key(mock_exchange)
    bkey, bsecret = fake_key()
    assert post_new(client, user.id, user.basic, "BINANCE", key, secret).json() == CREATED
    assert post_new(client, user.id, user.basic, "BITMEX", bkey, bsecret).json() == CREATED

    shown = {a["exchange"]: a for a in listing(client, user.id, user.basic)}
    accounts = {a["exchange"]: a for a in v1_accounts(client, user)}
    assert set(accounts) == {"binance", "bitmex"}
    assert accounts["binance"]["status"] == "active" and accounts["binance"]["validation_result"] == "valid"
    assert accounts["bitmex"]["status"] == "unverified"
    assert shown["BINANCE"]["api_key"] == accounts["binance"]["key_hint"]
    assert shown["BITMEX"]["api_key"] == accounts["bitmex"]["key_hint"]
    for account in accounts.values():
        one = client.get(f"/v1/exchange-accounts/{account['id']}", headers=user.headers)
        assert one.status_code == 200 and one.json()["status"] == account["status"]

    events = client.get("/v1/audit-events", headers=user.headers,
                        params={"action": "account.connect", "limit": 200}).json()["items"]
    ok = {e["target"]: e for e in events if e["outcome"] == "ok"}
    for account in accounts.values():
        event = ok[f"account:{account['id']}"]
        assert event["actor_user_id"] == user.id
        assert event["details"]["exchange"] == account["exchange"]
        assert event["details"]["status"] == account["status"]

    # the other way round: an account connected on /v1 is listed here, and deleted here
    okx_key = f"ok{uuid.uuid4().hex}"
    ccom = client.post("/v1/exchange-accounts", headers=user.headers,
                       json={"exchange": "currencycom", "credentials": {"api_key": okx_key, "secret": "s" * 20}})
    assert ccom.status_code == 201, ccom.text
    assert {"exchange": "CONCURRENCY.COM", "api_key": expected_hint(okx_key), "secret_key": MASKED} in listing(
        client, user.id, user.basic)
    assert client.delete(f"/user/{user.id}/accounts/currencycom", headers=user.basic).json() == DELETED
    after = client.get(f"/v1/exchange-accounts/{ccom.json()['id']}", headers=user.headers).json()
    assert after["status"] == "disconnected" and after["disconnected_at"]
    events = client.get("/v1/audit-events", headers=user.headers,
                        params={"action": "account.disconnect", "limit": 200}).json()["items"]
    assert any(e["target"] == f"account:{after['id']}" and e["outcome"] == "ok" for e in events)


def test_refusals_are_audited(client, users, mock_exchange):
    user = users.create()
    key, _ = new_mock_key(mock_exchange)
    check_error(post_new(client, user.id, user.basic, "BINANCE", key, f"bad{uuid.uuid4().hex}"), 400)
    events = client.get("/v1/audit-events", headers=user.headers,
                        params={"action": "account.connect", "limit": 200}).json()["items"]
    assert any(e["outcome"] == "refused" and e["details"].get("reason") == "invalid_credentials" for e in events)


# --- Basic with an API key --------------------------------------------------------------------------


def test_basic_with_api_key_id_and_secret(client, users, mock_exchange):
    user, other = users.create(), users.create()
    key_id, key_secret = make_key(client, user, ["read", "write", "delete"])
    auth = basic_header(f"{key_id}:{key_secret}")
    api_key, secret = new_mock_key(mock_exchange)

    response = post_new(client, user.id, auth, "BINANCE", api_key, secret)
    assert (response.status_code, response.json()) == (200, CREATED)
    assert listing(client, user.id, auth) == [
        {"exchange": "BINANCE", "api_key": expected_hint(api_key), "secret_key": MASKED}]
    events = client.get("/v1/audit-events", headers=user.headers,
                        params={"action": "account.connect", "limit": 200}).json()["items"]
    assert any(e["actor_key_id"] == key_id and e["outcome"] == "ok" for e in events)
    response = client.delete(f"/user/{user.id}/accounts/BINANCE", headers=auth)
    assert (response.status_code, response.json()) == (200, DELETED)

    # the key is its user's: another user's id is forbidden
    check_error(client.get(f"/user/{other.id}/accounts", headers=auth), 403, FORBIDDEN)
    # a wrong secret for a real key id
    check_error(client.get(f"/user/{user.id}/accounts", headers=basic_header(f"{key_id}:sr_wrong")), 401,
                UNAUTHORIZED)


def test_basic_with_read_only_key(client, users):
    user = users.create()
    key, secret = fake_key()
    assert post_new(client, user.id, user.basic, "BITMEX", key, secret).json() == CREATED
    key_id, key_secret = make_key(client, user, ["read"])
    auth = basic_header(f"{key_id}:{key_secret}")
    assert listing(client, user.id, auth) == [
        {"exchange": "BITMEX", "api_key": expected_hint(key), "secret_key": MASKED}]
    other_key, other_secret = fake_key()
    check_error(post_new(client, user.id, auth, "CONCURRENCY.COM", other_key, other_secret), 403, FORBIDDEN)
    check_error(client.delete(f"/user/{user.id}/accounts/BITMEX", headers=auth), 403, FORBIDDEN)
    # write without delete: may create, may not delete
    w_id, w_secret = make_key(client, user, ["read", "write"])
    w_auth = basic_header(f"{w_id}:{w_secret}")
    assert post_new(client, user.id, w_auth, "CONCURRENCY.COM", other_key, other_secret).json() == CREATED
    check_error(client.delete(f"/user/{user.id}/accounts/BITMEX", headers=w_auth), 403, FORBIDDEN)
    assert {a["exchange"] for a in listing(client, user.id, user.basic)} == {"BITMEX", "CONCURRENCY.COM"}


def test_basic_with_disabled_key_is_401(client, users):
    user = users.create()
    key_id, key_secret = make_key(client, user, ["read", "write", "delete"])
    auth = basic_header(f"{key_id}:{key_secret}")
    assert listing(client, user.id, auth) == []
    patched = client.patch(f"/v1/api-keys/{key_id}", headers=user.headers, json={"enabled": False})
    assert patched.status_code == 200, patched.text
    check_error(client.get(f"/user/{user.id}/accounts", headers=auth), 401, UNAUTHORIZED)


def test_key_bound_to_accounts_cannot_connect(client, users):
    user = users.create()
    key, secret = fake_key()
    assert post_new(client, user.id, user.basic, "BITMEX", key, secret).json() == CREATED
    [account] = v1_accounts(client, user)
    key_id, key_secret = make_key(client, user, ["read", "write", "delete"], account_ids=[account["id"]])
    auth = basic_header(f"{key_id}:{key_secret}")
    assert [a["exchange"] for a in listing(client, user.id, auth)] == ["BITMEX"]
    other_key, other_secret = fake_key()
    check_error(post_new(client, user.id, auth, "CONCURRENCY.COM", other_key, other_secret), 403, FORBIDDEN)
    assert client.delete(f"/user/{user.id}/accounts/BITMEX", headers=auth).json() == DELETED


# --- races ----------------------------------------------------------------------------------------


def test_concurrent_creates_leave_one_account(server, users, mock_exchange):
    """Racing POSTs for one exchange: exactly one is created, the others get the seed's 422."""
    from concurrent.futures import ThreadPoolExecutor

    user = users.create()
    keys = [new_mock_key(mock_exchange) for _ in range(6)]

    def create(pair):
        with server.client() as c:
            return post_new(c, user.id, user.basic, "BINANCE", *pair)

    with ThreadPoolExecutor(len(keys)) as pool:
        responses = list(pool.map(create, keys))
    outcomes = sorted((r.status_code, json.dumps(r.json(), sort_keys=True)) for r in responses)
    assert [o[0] for o in outcomes].count(200) == 1, outcomes
    for response in responses:
        if response.status_code != 200:
            check_error(response, 422, EXISTS)
    with server.client() as c:
        assert len(listing(c, user.id, user.basic)) == 1


def test_authentication_and_permission_come_before_the_body(client, users):
    """A bad body does not hide a 401 or 403 (the body is read only after both checks)."""
    alice, bob = users.create(), users.create()
    key_id, key_secret = make_key(client, alice, ["read"])
    read_only = basic_header(f"{key_id}:{key_secret}")
    for body in ('{"Exchange": ', '{"Exchange": "BITMEX"}', "not json", ""):
        json_type = {"Content-Type": "application/json"}
        check_error(client.post(f"/user/{alice.id}/accounts/new", content=body, headers=json_type), 401,
                    UNAUTHORIZED)
        check_error(client.post(f"/user/{alice.id}/accounts/new", content=body,
                                headers={**json_type, **basic_header(f"{alice.username}:x")}), 401, UNAUTHORIZED)
        check_error(client.post(f"/user/{bob.id}/accounts/new", content=body, headers={**json_type, **alice.basic}),
                    403, FORBIDDEN)
        check_error(client.post(f"/user/{alice.id}/accounts/new", content=body, headers={**json_type, **read_only}),
                    403, FORBIDDEN)
        check_error(client.post(f"/user/{alice.id}/accounts/new", content=body, headers={**json_type, **alice.basic}),
                    422)


def test_oversized_body_and_wrong_method_in_shape(client, users):
    user = users.create()
    big = {"Exchange": "BITMEX", "api_key": "k" * 10, "secret_key": "s" * 70_000}
    check_error(client.post(f"/user/{user.id}/accounts/new", json=big, headers=user.basic), 413)
    check_error(client.put(f"/user/{user.id}/accounts", headers=user.basic), 405)
    assert listing(client, user.id, user.basic) == []


def test_out_of_range_user_id_is_404_for_admin(client, users):
    """An id beyond the database's integer range is just an unknown user, never a 500."""
    admin, user = users.create(admin=True), users.create()
    for huge in ("2147483648", "9223372036854775808", "99999999999999999999999", "-1", "0"):
        body = check_error(client.get(f"/user/{huge}/accounts", headers=admin.basic), 404)
        assert "user" in body["Message"].lower()
        check_error(client.delete(f"/user/{huge}/accounts/BITMEX", headers=admin.basic), 404, body)
        check_error(post_new(client, int(huge), admin.basic, "BITMEX", *fake_key()), 404, body)
        check_error(client.get(f"/user/{huge}/accounts", headers=user.basic), 403, FORBIDDEN)


def test_okx_with_passphrase_is_listed_as_okx(client, users, mock_exchange):
    """Other catalogue venues work too: OKX (passphrase in the body), shown as OKX, not its old name."""
    user = users.create()
    api_key, secret, passphrase = f"ok{uuid.uuid4().hex}", f"os{uuid.uuid4().hex}", f"Pp{uuid.uuid4().hex[:10]}"
    httpx.post(f"{mock_exchange.url}/_mock/accounts", timeout=10, json={
        "exchange": "okx", "api_key": api_key, "secret": secret, "passphrase": passphrase}).raise_for_status()
    body = {"Exchange": "okx", "api_key": api_key, "secret_key": secret}
    check_error(client.post(f"/user/{user.id}/accounts/new", headers=user.basic, json=body), 422)  # no passphrase
    check_error(client.post(f"/user/{user.id}/accounts/new", headers=user.basic,
                            json={**body, "passphrase": "wrong-passphrase"}), 400)
    response = client.post(f"/user/{user.id}/accounts/new", headers=user.basic, json={**body, "passphrase": passphrase})
    assert (response.status_code, response.json()) == (200, CREATED)
    assert listing(client, user.id, user.basic) == [
        {"exchange": "OKX", "api_key": expected_hint(api_key), "secret_key": MASKED}]
    assert client.delete(f"/user/{user.id}/accounts/OKEX", headers=user.basic).json() == DELETED
