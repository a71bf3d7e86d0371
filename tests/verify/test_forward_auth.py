"""/v1/auth/forward over real HTTP (SQLite and PostgreSQL), spoken to as nginx, Traefik and Envoy
speak to it: every scheme over the ORIGINAL method and URI, identity headers on 200, every refusal
as 401/403 with X-Strongroom-Reason (429 with STRONGROOM_FORWARD_PLAIN_STATUS), trusted proxies
only, the end client's address from X-Forwarded-For (allowlist and failure budget), route rules."""

from __future__ import annotations

import base64
import time

import pytest
import yaml
from support import ROOT, start_server
from support.factories import generate, make_key
from support.signing import sign_hmac, sign_kalshi
from support.threecommas import hmac_key

from strongroom.settings import SettingsError, load_settings

FORWARD = "/v1/auth/forward"
RULES = """\
# method(s)   path pattern   scopes
POST,DELETE   /orders*       write
GET           /orders*       read   # reading orders
*             /open/*        -
"""


def nginx(method: str, uri: str, client_addr: str = "198.51.100.20", **headers: str) -> dict[str, str]:
    """What the README's nginx snippet sends to the auth location."""
    return {"X-Original-Method": method, "X-Original-URI": uri, "X-Forwarded-For": client_addr, **headers}


def traefik(method: str, uri: str, client_addr: str = "198.51.100.20", **headers: str) -> dict[str, str]:
    return {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, "X-Forwarded-Host": "api.example",
            "X-Forwarded-Proto": "https", "X-Forwarded-For": client_addr, **headers}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def shared(server, **overrides):
    """Another server on the session server's database and master key (the same keys work)."""
    return start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url, **overrides)


@pytest.fixture(scope="module")
def proxied(server, tmp_path_factory):
    """A server that trusts the loopback as its proxy, with route rules."""
    rules = tmp_path_factory.mktemp("rules") / "forward.rules"
    rules.write_text(RULES)
    srv = shared(server, trusted_proxies=["127.0.0.1/32"], forward_rules=str(rules))
    yield srv
    srv.stop()


@pytest.fixture
def fwd(proxied):
    with proxied.client() as c:
        yield c


def refused(response, status: int, reason: str) -> None:
    assert response.status_code == status, (response.status_code, response.headers, response.text)
    assert response.headers["x-strongroom-reason"] == reason
    assert not any(h.startswith(("x-strongroom-user", "x-strongroom-key")) for h in response.headers)
    assert response.json()["code"] == reason


# --------------------------------------------------------------------------- who may ask


def test_a_peer_that_is_not_a_trusted_proxy_is_refused_and_not_read(client, users):
    key = make_key(client, users.create())
    refused(client.get(FORWARD, headers=nginx("GET", "/x", **bearer(key["secret"]))), 403, "untrusted_proxy")


def test_only_its_own_path_is_answered_ahead_of_the_routes(fwd, users):
    key = make_key(fwd, users.create())
    other = fwd.get(FORWARD + "ed", headers=nginx("GET", "/x", **bearer(key["secret"])))
    assert other.status_code == 404 and other.json()["code"] == "not_found"  # the native surface's 404
    assert "x-strongroom-user" not in other.headers
    assert fwd.get(FORWARD + "/", headers=nginx("GET", "/x", **bearer(key["secret"]))).status_code == 200


def test_without_the_original_request_it_refuses(fwd, users):
    key = make_key(fwd, users.create())
    refused(fwd.get(FORWARD, headers=bearer(key["secret"])), 403, "no_original_request")
    refused(fwd.get(FORWARD, headers=nginx("GET", "no-slash", **bearer(key["secret"]))), 403, "no_original_request")
    refused(fwd.get(FORWARD, headers=nginx("G T", "/x", **bearer(key["secret"]))), 403, "no_original_request")


# --------------------------------------------------------------------------- every scheme


def test_bearer_x_api_key_and_basic_pass_with_identity_headers(fwd, users):
    user = users.create()
    key = make_key(fwd, user, scopes=["read", "write"])
    for headers in (bearer(key["secret"]), {"X-API-Key": key["secret"]},
                    {"Authorization": "Basic " + base64.b64encode(f"{key['key_id']}:{key['secret']}".encode()).decode()}):
        ok = fwd.get(FORWARD, headers=nginx("GET", "/anything?x=1", **headers))
        assert ok.status_code == 200, ok.text
        assert ok.headers["x-strongroom-user"] == str(user.id)
        assert ok.headers["x-strongroom-key"] == key["key_id"]
        assert ok.headers["x-strongroom-scopes"] == "read write"
        assert ok.headers["x-strongroom-accounts"] == "*"
        assert "x-strongroom-reason" not in ok.headers and ok.content == b""
        assert int(ok.headers["ratelimit-remaining"]) < int(ok.headers["ratelimit-limit"])
    refused(fwd.get(FORWARD, headers=nginx("GET", "/x", **bearer("sr_" + "C" * 30))), 401, "unknown_key")
    other = make_key(fwd, user)
    refused(fwd.get(FORWARD, headers=nginx("GET", "/x", **bearer(key["secret"]), **{"X-API-Key": other["secret"]})),
            401, "ambiguous_credentials")
    refused(fwd.get(FORWARD, headers=nginx("GET", "/x")), 401, "unknown_key")  # no credentials


def test_kalshi_signs_the_original_method_and_path(fwd, users):
    key, private = generate(fwd, users.create())
    uri = "/trade-api/v2/portfolio/orders?limit=5"
    ok = fwd.get(FORWARD, headers=nginx("GET", uri, **sign_kalshi(key["key_id"], private, "GET", uri)))
    assert ok.status_code == 200 and ok.headers["x-strongroom-key"] == key["key_id"]
    # signed for the auth endpoint's own path, not the original: refused
    wrong = sign_kalshi(key["key_id"], private, "GET", FORWARD)
    refused(fwd.get(FORWARD, headers=nginx("GET", uri, **wrong)), 401, "bad_signature")
    # and for another method
    other = sign_kalshi(key["key_id"], private, "DELETE", uri)
    refused(fwd.get(FORWARD, headers=nginx("GET", uri, **other)), 401, "bad_signature")
    # Traefik's spelling of the same
    fresh = sign_kalshi(key["key_id"], private, "GET", uri)
    assert fwd.get(FORWARD, headers=traefik("GET", uri, **fresh)).status_code == 200
    refused(fwd.get(FORWARD, headers=traefik("GET", uri, **fresh)), 401, "replayed")


def test_envoy_sends_the_original_request_under_the_path_prefix(fwd, users):
    key, private = generate(fwd, users.create())
    headers = {**sign_kalshi(key["key_id"], private, "DELETE", "/orders/7"), "X-Forwarded-For": "198.51.100.20"}
    ok = fwd.delete(FORWARD + "/orders/7?a=b", headers=headers)
    assert ok.status_code == 200, ok.text


def test_body_signing_schemes_without_a_body_pass_with_one_are_not_verifiable(fwd, users):
    user = users.create()
    hkey = make_key(fwd, user, kind="hmac")
    signed = sign_hmac(hkey["key_id"], hkey["secret"], "GET", "/reports?day=1")
    assert fwd.get(FORWARD, headers=nginx("GET", "/reports?day=1", **signed)).status_code == 200
    with_body = sign_hmac(hkey["key_id"], hkey["secret"], "POST", "/open/x", '{"a":1}')
    refused(fwd.get(FORWARD, headers=nginx("POST", "/open/x", **with_body, **{"X-Original-Content-Length": "7"})),
            401, "body_not_verifiable")
    chunked = nginx("POST", "/open/x", **with_body, **{"X-Original-Transfer-Encoding": "chunked"})
    refused(fwd.get(FORWARD, headers=chunked), 401, "body_not_verifiable")
    # 3Commas: verified (and consumed) without a body
    tc = hmac_key(fwd, user)
    target = "/public/api/ver1/bots/7/disable"
    headers = nginx("POST", target, **{"Content-Length": "0"}, **tc.headers(target.encode()))
    assert fwd.post(FORWARD, headers=headers).status_code == 200
    refused(fwd.post(FORWARD, headers=headers), 401, "replayed")
    refused(fwd.get(FORWARD, headers=nginx("POST", target, **{"X-Original-Content-Length": "2"},
                                           **tc.headers(target.encode() + b"{}"))), 401, "body_not_verifiable")


# --------------------------------------------------------------------------- the end client


def test_the_allowlist_is_checked_against_the_end_client(fwd, users):
    key = make_key(fwd, users.create(), ip_allowlist=["198.51.100.0/24"])
    assert fwd.get(FORWARD, headers=nginx("GET", "/x", "198.51.100.20", **bearer(key["secret"]))).status_code == 200
    refused(fwd.get(FORWARD, headers=nginx("GET", "/x", "192.0.2.9", **bearer(key["secret"]))), 403, "ip_not_allowed")


@pytest.mark.parametrize("plain", [False, True])
def test_failure_budget_of_the_end_client_not_the_proxy(server, users, plain):
    srv = shared(server, trusted_proxies=["127.0.0.1/32"], auth_failures_per_ip="3/minute",
                 forward_plain_status=plain)
    try:
        with srv.client() as c:
            good = make_key(c, users.create())
            for _ in range(3):
                refused(c.get(FORWARD, headers=nginx("GET", "/x", "192.0.2.1", **bearer("sr_" + "D" * 30))),
                        401, "unknown_key")
            spent = c.get(FORWARD, headers=nginx("GET", "/x", "192.0.2.1", **bearer(good["secret"])))
            refused(spent, 429 if plain else 403, "rate_limited")
            assert int(spent.headers["retry-after"]) >= 1
            # another client behind the same proxy, and the proxy's own address, are untouched
            assert c.get(FORWARD, headers=nginx("GET", "/x", "192.0.2.2", **bearer(good["secret"]))).status_code == 200
            assert c.get("/v1/me", headers=bearer(good["secret"])).status_code == 200
    finally:
        srv.stop()


# --------------------------------------------------------------------------- rules


def test_route_rules_require_scopes(fwd, users):
    user = users.create()
    reader = make_key(fwd, user, scopes=["read"])
    writer = make_key(fwd, user, scopes=["read", "write"])
    assert fwd.get(FORWARD, headers=nginx("GET", "/orders/1", **bearer(reader["secret"]))).status_code == 200
    refused(fwd.get(FORWARD, headers=nginx("POST", "/orders?x=1", **bearer(reader["secret"]))), 403,
            "insufficient_scope")
    assert fwd.get(FORWARD, headers=nginx("POST", "/orders?x=1", **bearer(writer["secret"]))).status_code == 200
    narrow = make_key(fwd, user, scopes=["delete"])
    assert fwd.get(FORWARD, headers=nginx("PUT", "/open/thing", **bearer(narrow["secret"]))).status_code == 200
    refused(fwd.get(FORWARD, headers=nginx("GET", "/orders", **bearer(narrow["secret"]))), 403, "insufficient_scope")


def test_an_encoded_or_dotted_path_or_head_does_not_step_around_a_rule(fwd, users):
    """Upstreams decode the path and resolve dot segments, and answer HEAD like GET: so do the rules."""
    user = users.create()
    nobody = make_key(fwd, user, scopes=["delete"])  # neither read nor write
    for method, uri in [("POST", "/%6Frders/1"), ("POST", "/open/../orders"), ("POST", "/open/%2E%2E/orders"),
                        ("HEAD", "/orders/1"), ("GET", "/Orders/../orders/2")]:
        refused(fwd.get(FORWARD, headers=nginx(method, uri, **bearer(nobody["secret"]))), 403, "insufficient_scope")
    assert fwd.get(FORWARD, headers=nginx("HEAD", "/open/x", **bearer(nobody["secret"]))).status_code == 200


def test_a_client_cannot_name_the_original_request_beside_its_proxy(fwd, users):
    """Traefik passes the client's headers on: an X-Original-* the client added to a request that Traefik
    describes with X-Forwarded-* (or the other way round behind nginx) is refused, never believed."""
    user = users.create()
    reader = make_key(fwd, user, scopes=["read"])
    forged = {**traefik("POST", "/orders/1", **bearer(reader["secret"])),
              "X-Original-Method": "GET", "X-Original-URI": "/orders/1"}
    refused(fwd.get(FORWARD, headers=forged), 403, "no_original_request")
    forged = {**nginx("POST", "/orders/1", **bearer(reader["secret"])), "X-Forwarded-Method": "GET"}
    refused(fwd.get(FORWARD, headers=forged), 403, "no_original_request")


@pytest.mark.parametrize(("text", "says"), [
    ("GET /x", "line 1"),
    ("GET x read", "start with /"),
    ("# ok\nG@T /x read", "line 2"),
    ("GET /x admin", "unknown scope"),
])
def test_a_bad_rules_file_is_refused_at_start(tmp_path, text, says):
    path = tmp_path / "rules"
    path.write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_settings(forward_rules=str(path))
    assert "STRONGROOM_FORWARD_RULES" in caught.value.message and says in caught.value.message
    with pytest.raises(SettingsError):
        load_settings(forward_rules=str(tmp_path / "missing"))


# --------------------------------------------------------------------------- faults


def test_a_backing_store_that_does_not_answer_is_503_with_retry_after(server, client, users):
    key = make_key(client, users.create())
    srv = shared(server, trusted_proxies=["127.0.0.1/32"], redis_url="redis://127.0.0.1:1/0")
    try:
        with srv.client() as c:
            started = time.monotonic()
            answer = c.get(FORWARD, headers=nginx("GET", "/x", **bearer(key["secret"])))
            assert answer.status_code == 503 and int(answer.headers["retry-after"]) >= 1
            assert answer.headers["x-strongroom-reason"] == "unavailable"
            assert key["secret"] not in answer.text and time.monotonic() - started < 10
    finally:
        srv.stop()


def test_the_readme_traefik_middleware_passes_on_every_identity_header(fwd, users):
    section = (ROOT / "README.md").read_text().split("## Protect your own services", 1)[1].split("\n## ", 1)[0]
    config = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    forward = config["http"]["middlewares"]["strongroom"]["forwardAuth"]
    assert forward["address"].endswith(FORWARD)
    key = make_key(fwd, users.create())
    ok = fwd.get(FORWARD, headers=traefik("GET", "/x", **bearer(key["secret"])))
    assert ok.status_code == 200
    identity = {h for h in ok.headers if h.startswith("x-strongroom-")}
    assert {h.lower() for h in forward["authResponseHeaders"]} == identity
