"""The isolation battery: every operation of every surface that names a resource is refused to a stranger.

From the live /openapi.json, every operation with a parameter that names a resource (a path parameter, or a
query or body field named ``...id``/``...Id``/``...ids``/``...Ids``) is called:

(a) by another ordinary user, and
(b) for resources of, or under, an account (and for keys, which a bound key cannot even see beyond its accounts):
    by the owner's own key bound to a DIFFERENT account of the owner,

on each surface whose auth a test can produce (/v1 bearer keys, TradrAPI ``x-api-key``, Trading App Basic,
3Commas and Kalshi signed keys, Cadenza sign-in tokens), with a body that would otherwise be valid. Each answer
must be the surface's "not found" (or "forbidden" where the surface's contract says so) in its own error shape,
identical to the answer for an id that does not exist (no existence oracle), must not carry any field of the
owner's resources, and the owner's resources must be unchanged afterwards (re-read as the owner after each write).

Every resource parameter must be in ``KINDS`` (which kind of resource it names; ``MAKERS`` make each kind as its
owner would, through the API) or in ``NOT_RESOURCES`` (with the reason): an operation the tables do not cover fails
the test by name, so that a new route cannot be forgotten.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from support import Server, Users, install_log_capture, start_server
from support import TestUser as Person
from support.exchange_mock import Mock
from support.factories import connect_bitmex
from support.signing import load_private_key, sign_kalshi
from support.threecommas import Key as ThreeCommasKey

METHODS = ("get", "post", "put", "patch", "delete")
FULL = ["read", "write", "delete", "trade"]
SYMBOL = "SOL/USDT"
RESOURCE_FIELD = re.compile(r"(^|_)ids?$|[a-z]Ids?$")
NOT_RESOURCE = object()

# (surface, parameter) -> the kind of resource it names
KINDS: dict[tuple[str, str], str] = {
    ("v1", "user_id"): "user",
    ("v1", "account_id"): "account",
    ("v1", "account_ids"): "account",
    ("v1", "order_id"): "order",
    ("v1", "key_id"): "key",
    ("v1", "endpoint_id"): "webhook",
    ("v1", "delivery_id"): "delivery",
    ("kalshi", "api_key"): "key",
    ("tradingapp", "user_id"): "user",
    ("tradr", "key_id"): "tradr_key",  # /tradr/accounts/api-keys/{id}: an account key; /tradr/users/...: a user key
    ("tradr", "account_id"): "account",
    ("tradr", "accountId"): "account",
    ("tradr", "accountIds"): "account",
    ("tradr", "user_id"): "user",
    ("tradr", "userId"): "user",
    ("3commas", "account_id"): "account",
    ("cadenza", "tradingAccountId"): "cadenza_account",
    ("cadenza", "credentialId"): "credential",
    ("cadenza", "credentialIds"): "credential",
    ("cadenza", "tradeOrderId"): "cadenza_order",
    ("cadenza", "userId"): "cadenza_user",
}
# (surface, parameter) -> why it names no resource of a user
NOT_RESOURCES: dict[tuple[str, str], str] = {
    ("v1", "client_order_id"): "the caller's own label for the order it places",
    ("v1", "exchange"): "the public exchange catalogue (/v1/exchanges/{exchange}), no one's resource",
    ("tradingapp", "exchange_name"): "an exchange name under the user id; the user id is what is checked",
    ("kalshi", "fcm_subtrader_id"): "a Kalshi field the surface accepts and ignores (no such resource here)",
    ("3commas", "customer_id"): "an exchange credential field sent to the venue, not a Strongroom resource",
    ("cadenza", "tenantId"): "a Cadenza filter naming a tenant: Strongroom has one tenant",
    ("cadenza", "externalTradingAccountId"): "the venue's own account id, given by the caller on connect",
    ("cadenza", "dealerAccountId"): "a Cadenza field for dealers, not a Strongroom resource",
    ("cadenza", "instrumentId"): "a public market (BINANCE:SOL/USDT)",
    ("cadenza", "clientOrderId"): "the caller's own label for the order it submits",
    ("cadenza", "positionId"): "a Cadenza field with no Strongroom resource behind it",
    ("cadenza", "quoteId"): "a Cadenza field with no Strongroom resource behind it",
    ("cadenza", "orderListId"): "a Cadenza filter with no Strongroom resource behind it (order lists)",
    ("cadenza", "externalOrderListId"): "a Cadenza filter with no Strongroom resource behind it",
}
# Operations whose resource parameter is the caller's OWN new thing, or that only a surface's own session uses
# to name itself: (method, path) -> reason. Kept to a minimum.
SKIPPED: dict[tuple[str, str], str] = {}

# What a caller gets: the status of the surface's documented refusal. Looked up by (surface, kind, caller), then
# (surface, caller). None: the check does not apply (the owner's bound key and the owner's own user record).
# Webhooks and their deliveries are the user's: an endpoint receives every account's events, so a key bound to
# some accounts is refused them outright (403), whatever the endpoint.
EXPECT: dict[tuple[str, ...], int | None] = {
    ("v1", "stranger"): 404, ("v1", "bound"): 404,
    ("v1", "user", "bound"): None, ("v1", "webhook", "bound"): 403, ("v1", "delivery", "bound"): 403,
    ("kalshi", "stranger"): 404, ("kalshi", "bound"): 404,
    ("tradingapp", "stranger"): 403,  # the path names a user: another user's id is forbidden (seed contract)
    ("tradr", "stranger"): 404, ("tradr", "bound"): 403,  # a bound key beyond its accounts: 403 (TradrAPI)
    ("tradr", "user", "stranger"): 403,  # a user id that is not the caller's: 403 (TradrAPI)
    ("tradr", "user", "bound"): None,
    ("3commas", "stranger"): 404, ("3commas", "bound"): 404,
    ("cadenza", "stranger"): 404,
}
# Per operation, where it differs: (method, path, caller) -> status.
EXPECT_OP: dict[tuple[str, str, str], int] = {
    # administrators' routes: a user reads their own record, another's is not found; changes are forbidden
    ("patch", "/v1/users/{user_id}", "stranger"): 403, ("delete", "/v1/users/{user_id}", "stranger"): 403,
    # an account id in a create body is invalid input (422) for another user; for a bound key, beyond its power
    ("post", "/v1/api-keys", "stranger"): 422, ("post", "/v1/api-keys/generate", "stranger"): 422,
    ("post", "/v1/api-keys", "bound"): 403, ("post", "/v1/api-keys/generate", "bound"): 403,
    ("post", "/tradr/users/api-keys", "stranger"): 403,  # the userId is checked first
    # list filters naming another's resource: an empty page, as for an id that does not exist
    ("get", "/api/v3/tradingAccount/portfolio/list", "stranger"): 200,
    ("get", "/api/v3/credential/list", "stranger"): 200,
}
# Refusals that differ from the one for a missing id BY DESIGN, with the reason (none for a stranger).
ORACLE_ACCEPTED: dict[tuple[str, str, str], str] = {
    (method, path, "bound"): "TradrAPI answers a key of the caller's own user beyond its key's binding 403 and an "
                             "unknown key number 404 (strongroom/keys/services.py, 'by number')"
    for path in ("/tradr/accounts/api-keys/{key_id}", "/tradr/users/api-keys/{key_id}")
    for method in ("get", "patch", "delete")
}
# Query parameters an operation needs besides the resource's (what the owner would send).
QUERY: dict[str, dict[str, Any]] = {
    "/public/api/ver1/accounts/{account_id}/balance_chart_data": {"date_from": "2024-01-01"},
}


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    server: Server
    mock: Mock
    owner: Person
    stranger: Person
    http: httpx.Client
    made: dict[str, Any] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)  # strings of the owner's resources no refusal may carry
    callers: dict[tuple[str, str], Callable[..., httpx.Response]] = field(default_factory=dict)

    def owned(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.owner.headers)
        return self.http.request(method, path, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        answer = self.owned(method, path, **kwargs)
        assert answer.status_code == status, (method, path, answer.status_code, answer.text)
        return answer.json() if answer.content else None


def make(world: World, kind: str) -> Any:
    """The owner's resource of ``kind`` (made once, as its owner makes it, through the API)."""
    if kind not in world.made:
        world.made[kind] = MAKERS[kind](world)
    return world.made[kind]


def make_account(world: World) -> int:
    creds = world.mock.new_key("binance", balances={"USDT": {"free": "10000"}, "SOL": {"free": "20"}})
    name = f"iso-account-{uuid.uuid4().hex[:8]}"
    made = world.ok("POST", "/v1/exchange-accounts", 201,
                    json={"exchange": "binance", "credentials": creds, "name": name})
    account = int(made["id"])
    world.ok("PUT", f"/v1/exchange-accounts/{account}/trading-policy",
             json={"max_notional_usd": "100000", "allow_market_orders": True})
    world.markers |= {name, creds["api_key"], creds["secret"]}
    return account


def make_order(world: World) -> str:
    account = make(world, "account")
    cid = f"isocid{uuid.uuid4().hex[:10]}"
    order = world.ok("POST", f"/v1/exchange-accounts/{account}/orders", 201,
                     json={"symbol": SYMBOL, "side": "buy", "type": "limit", "amount": "1", "price": "90",
                           "client_order_id": cid})
    assert order["status"] == "open", order
    world.markers |= {cid, str(order["exchange_order_id"])}
    return str(order["id"])


def make_key(world: World) -> str:
    name = f"iso-key-{uuid.uuid4().hex[:8]}"
    made = world.ok("POST", "/v1/api-keys", 201, json={"name": name, "kind": "bearer", "scopes": FULL,
                                                        "account_ids": [make(world, "account")]})
    world.markers |= {name, made["secret"], made["hint"]}
    return str(made["key_id"])


def make_webhook(world: World) -> str:
    description = f"iso-hook-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:9/iso-{uuid.uuid4().hex[:8]}"
    made = world.ok("POST", "/v1/webhooks", 201, json={"url": url, "description": description})
    world.markers |= {description, url, made["secret"]}
    return str(made["id"])


def make_delivery(world: World) -> str:
    endpoint = make(world, "webhook")
    world.ok("POST", f"/v1/webhooks/{endpoint}/test", 202)
    deliveries = world.ok("GET", f"/v1/webhooks/{endpoint}/deliveries")["items"]
    assert deliveries, "no delivery to replay"
    return str(deliveries[0]["id"])


def make_user(world: World) -> int:
    world.markers.add(world.owner.username)
    return world.owner.id


def make_tradr_key(world: World) -> str:
    name = f"iso-tradr-{uuid.uuid4().hex[:8]}"
    made = world.ok("POST", "/tradr/accounts/api-keys", 201,
                    json={"accountId": make(world, "account"), "friendlyName": name, "roles": ["read"]})
    world.markers |= {name, made["apiKey"]}
    return str(made["id"])


def make_tradr_user_key(world: World) -> str:
    name = f"iso-tradr-user-{uuid.uuid4().hex[:8]}"
    made = world.ok("POST", "/tradr/users/api-keys", 201,
                    json={"userId": world.owner.id, "friendlyName": name, "roles": ["read"],
                          "accountIds": [make(world, "account")]})
    world.markers |= {name, made["apiKey"]}
    return str(made["id"])


def make_cadenza_account(world: World) -> str:
    account = make(world, "account")
    listed = world.ok("GET", "/api/v3/tradingAccount/list", headers=cadenza(world, world.owner))
    [found] = [a for a in listed["data"] if a["name"] == world.ok("GET", f"/v1/exchange-accounts/{account}")["name"]]
    return str(found["tradingAccountId"])


def make_cadenza_user(world: World) -> str:
    me = world.http.get("/api/v3/auth/user", headers=cadenza(world, world.owner))
    assert me.status_code == 200, me.text
    return str(me.json()["data"]["id"])


def make_credential(world: World) -> str:
    creds = world.mock.new_key("binance")
    nickname = f"iso-cred-{uuid.uuid4().hex[:8]}"
    made = world.http.post("/api/v3/credential/create", headers=cadenza(world, world.owner), json={
        "venue": "BINANCE", "credentialType": "API_KEY", "nickname": nickname, "apiKey": creds["api_key"],
        "apiSecret": creds["secret"]})
    assert made.status_code == 200, made.text
    world.markers |= {nickname, creds["api_key"], creds["secret"]}
    return str(made.json()["data"]["credentialId"])


def make_cadenza_order(world: World) -> str:
    make(world, "order")
    account = make(world, "cadenza_account")
    listed = world.http.get("/api/v3/tradeOrder/list", headers=cadenza(world, world.owner),
                            params={"tradingAccountId": account})
    assert listed.status_code == 200, listed.text
    return str(listed.json()["data"][0]["tradeOrderId"])


MAKERS: dict[str, Callable[[World], Any]] = {
    "account": make_account, "order": make_order, "key": make_key, "webhook": make_webhook,
    "delivery": make_delivery, "user": make_user, "tradr_key": make_tradr_key, "tradr_user_key": make_tradr_user_key,
    "cadenza_account": make_cadenza_account, "cadenza_user": make_cadenza_user, "credential": make_credential, "cadenza_order": make_cadenza_order,
}
# A value of each kind that names nothing: a stranger's answer for the owner's resource must be the same.
MISSING: dict[str, Any] = {
    "account": 2_000_000_001, "order": "2000000002", "key": str(uuid.UUID(int=1)), "webhook": "wh_000000000000000000000000",
    "delivery": "dl_000000000000000000000000", "user": 2_000_000_003, "tradr_key": "2000000004",
    "tradr_user_key": "2000000004", "cadenza_account": str(uuid.UUID(int=2)), "credential": str(uuid.UUID(int=3)),
    "cadenza_order": str(uuid.UUID(int=4)), "cadenza_user": str(uuid.UUID(int=5)),
}


def cadenza(world: World, user: Person) -> dict[str, str]:
    token = user.extra.get("cadenza")
    if token is None:
        answer = world.http.post("/api/v3/auth/login", json={"email": user.username, "password": user.password})
        assert answer.status_code == 200, answer.text
        token = user.extra["cadenza"] = answer.json()["data"]["accessToken"]
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- callers, per surface


def bearer_key(world: World, user: Person, **body: Any) -> dict[str, Any]:
    made = world.http.post("/v1/api-keys", headers=user.headers,
                           json={"name": f"iso-{uuid.uuid4().hex[:6]}", "kind": "bearer", "scopes": FULL, **body})
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def build_callers(world: World) -> None:
    http = world.http
    other_account = connect_bitmex(http, world.owner)  # the bound keys' account: NOT the resources' account
    world.made["other_account"] = other_account

    def plain(headers: dict[str, str]) -> Callable[..., httpx.Response]:
        def call(method: str, path: str, query: dict[str, Any], body: Any) -> httpx.Response:
            return http.request(method, path, params=query or None, headers=headers,
                                json=body if body is not None else None)
        return call

    for name, user, bind in (("stranger", world.stranger, {}), ("bound", world.owner, {"account_ids": [other_account]})):
        secret = bearer_key(world, user, **bind)["secret"]
        world.callers["v1", name] = plain({"Authorization": f"Bearer {secret}"})
        world.callers["tradr", name] = plain({"x-api-key": secret})
        hmac = http.post("/v1/api-keys", headers=user.headers,
                         json={"name": "iso-3c", "kind": "hmac", "scopes": FULL, **bind})
        assert hmac.status_code == 201, hmac.text
        world.callers["3commas", name] = threecommas(http, ThreeCommasKey(hmac.json()["key_id"],
                                                                          secret=hmac.json()["secret"]))
        rsa = http.post("/v1/api-keys/generate", headers=user.headers,
                        json={"name": "iso-kalshi", "key_type": "rsa", "scopes": FULL, **bind})
        assert rsa.status_code == 201, rsa.text
        world.callers["kalshi", name] = kalshi(http, rsa.json()["key_id"], load_private_key(rsa.json()["private_key"]))
    world.callers["tradingapp", "stranger"] = plain(world.stranger.basic)
    world.callers["cadenza", "stranger"] = plain(cadenza(world, world.stranger))


def threecommas(http: httpx.Client, key: ThreeCommasKey) -> Callable[..., httpx.Response]:
    def call(method: str, path: str, query: dict[str, Any], body: Any) -> httpx.Response:
        target = path + ("?" + urlencode(query) if query else "")
        raw = json.dumps(body).encode() if body is not None else b""
        headers = key.headers(target.encode() + raw)
        if raw:
            headers["Content-Type"] = "application/json"
        return http.request(method, target, content=raw, headers=headers)
    return call


def kalshi(http: httpx.Client, key_id: str, private: Any) -> Callable[..., httpx.Response]:
    def call(method: str, path: str, query: dict[str, Any], body: Any) -> httpx.Response:
        headers = sign_kalshi(key_id, private, method, path)
        return http.request(method, path, params=query or None, headers=headers,
                            json=body if body is not None else None)
    return call


def surface_of(path: str) -> str:
    for prefix, surface in (("/v1/", "v1"), ("/trade-api/", "kalshi"), ("/user/", "tradingapp"), ("/tradr/", "tradr"),
                            ("/public/api/", "3commas"), ("/api/v3/", "cadenza")):
        if path.startswith(prefix):
            return surface
    return "other"


# --------------------------------------------------------------------------- the document


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, name = node["$ref"].split("/")[-2:]
        node = doc["components"][section][name]
    return node


@dataclass
class Param:
    name: str
    where: str  # path, query, body
    many: bool  # a list of ids


def resource_params(doc: dict[str, Any], path: str, op: dict[str, Any]) -> list[Param]:
    """The operation's parameters that may name a resource: every path parameter, and query parameters and
    request body fields whose name says it is an id."""
    found: list[Param] = []
    for raw in op.get("parameters", []):
        param = resolve(doc, raw)
        if param["in"] == "path" or (param["in"] == "query" and RESOURCE_FIELD.search(param["name"])):
            schema = resolve(doc, param.get("schema", {}))
            found.append(Param(param["name"], param["in"], schema.get("type") == "array"))
    body = op.get("requestBody")
    if body:
        for content in body["content"].values():
            schema = resolve(doc, content.get("schema", {}))
            for name, prop in schema.get("properties", {}).items():
                if RESOURCE_FIELD.search(name):
                    prop = resolve(doc, prop)
                    many = prop.get("type") == "array" or any(
                        resolve(doc, s).get("type") == "array" for s in prop.get("anyOf", []))
                    found.append(Param(name, "body", many))
    return found


def example_body(op: dict[str, Any]) -> Any:
    body = op.get("requestBody")
    if not body:
        return None
    content = next(iter(body["content"].values()))
    return copy.deepcopy(content.get("example"))


# Bodies where the document's example would be refused for reasons of its own (another symbol, a credential the
# mock does not know); each is what the owner could send.
def valid_body(world: World, method: str, path: str, body: Any) -> Any:
    if path == "/v1/exchange-accounts/{account_id}/orders":
        return {"symbol": SYMBOL, "side": "buy", "type": "limit", "amount": "1", "price": "91"}
    if path == "/v1/exchange-accounts/{account_id}/rotate":
        return {"credentials": world.mock.new_key("binance")}
    if path == "/v1/exchange-accounts/{account_id}/trading-policy":
        return {"max_notional_usd": "1", "kill_switch": True}
    if path == "/v1/api-keys/{key_id}" and method == "patch":
        return {"name": "taken", "scopes": ["read"]}
    if path == "/v1/api-keys" or path == "/v1/api-keys/generate":
        extra = {"key_type": "ed25519"} if path.endswith("generate") else {"kind": "bearer"}
        return {"name": "iso-steal", "scopes": ["read"], **extra}
    if path == "/user/{user_id}/accounts/new":
        return {"Exchange": "BITMEX", "api_key": f"bm-{uuid.uuid4().hex}", "secret_key": uuid.uuid4().hex}
    if path == "/api/v3/credential/rotate":
        creds = world.mock.new_key("binance")
        return {"apiKey": creds["api_key"], "apiSecret": creds["secret"]}
    if path == "/api/v3/tradeOrder/submit":
        return {"instrumentId": f"BINANCE:{SYMBOL}", "orderSide": "BUY", "orderType": "LIMIT", "quantity": "1",
                "limitPrice": "91", "timeInForce": "GTC"}
    if path == "/api/v3/tradingAccount/connect":
        return {"venue": "BINANCE"}
    return body


def kind_of(surface: str, method: str, path: str, param: Param) -> str | None:
    """The kind of resource ``param`` names, None when it names none; KeyError when the tables do not say."""
    if (surface, param.name) in NOT_RESOURCES:
        return None
    kind = KINDS[surface, param.name]
    if kind == "tradr_key" and path.startswith("/tradr/users/"):
        return "tradr_user_key"
    return kind


def owner_of_everything(world: World) -> dict[str, Any]:
    """Everything the owner has, as the owner reads it through /v1 (volatile fields dropped)."""
    made = world.made
    reads: dict[str, Any] = {}

    def read(label: str, path: str, **params: Any) -> None:
        answer = world.owned("GET", path, params=params or None)
        reads[label] = (answer.status_code, scrub(answer.json() if answer.content else None))

    if "account" in made:
        account = made["account"]
        read("account", f"/v1/exchange-accounts/{account}")
        read("policy", f"/v1/exchange-accounts/{account}/trading-policy")
        read("orders", f"/v1/exchange-accounts/{account}/orders", limit=200)
    for kind in ("key", "tradr_key", "tradr_user_key"):
        if kind in made:
            read(kind, f"/v1/api-keys/{made[kind]}")
            read(kind + " policy", f"/v1/api-keys/{made[kind]}/trading-policy")
    read("keys", "/v1/api-keys", limit=200)
    read("accounts", "/v1/exchange-accounts", limit=200)
    read("me", "/v1/me")
    if "webhook" in made:
        read("webhook", f"/v1/webhooks/{made['webhook']}")
        read("deliveries", f"/v1/webhooks/{made['webhook']}/deliveries", limit=200)
    if "credential" in made:
        answer = world.http.get("/api/v3/credential/list", headers=cadenza(world, world.owner), params={"limit": 100})
        reads["credentials"] = (answer.status_code, scrub(answer.json()))
    return reads


VOLATILE = {"last_used_at", "last_used_ip", "updated_at", "fetched_at", "as_of", "next_cursor", "lastUsedAt"}


def scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def iso_server(backend: Any, mock_exchange: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    install_log_capture()
    srv = start_server(data_dir=tmp_path_factory.mktemp(f"iso-{backend.name}"), database_url=backend.url,
                       exchange_base_urls={"binance": mock_exchange.url, "okx": mock_exchange.url},
                       webhook_allow_private=True, jobs="off")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def world(iso_server: Server, mock_exchange: Any) -> Iterator[World]:
    mock = Mock(mock_exchange)
    mock.prices("binance", {SYMBOL: "100"})
    users = Users(iso_server)
    with iso_server.client() as http:
        built = World(iso_server, mock, users.create(), users.create(), http)
        build_callers(built)
        yield built
    mock.prices("binance", {SYMBOL: None})


@pytest.fixture(scope="module")
def doc(iso_server: Server) -> dict[str, Any]:
    answer = httpx.get(iso_server.url + "/openapi.json", timeout=30)
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


# --------------------------------------------------------------------------- the battery


@dataclass
class Case:
    method: str
    path: str
    surface: str
    params: list[tuple[Param, str]]  # (parameter, kind)

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.path}"


def cases(doc: dict[str, Any]) -> tuple[list[Case], list[str]]:
    """Every operation naming a resource, and every problem of the tables (an uncovered parameter)."""
    found: list[Case] = []
    problems: list[str] = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS or (method, path) in SKIPPED:
                continue
            surface = surface_of(path)
            named: list[tuple[Param, str]] = []
            for param in resource_params(doc, path, op):
                try:
                    kind = kind_of(surface, method, path, param)
                except KeyError:
                    problems.append(f"{method.upper()} {path}: {param.where} parameter {param.name!r} of surface "
                                    f"{surface} is in neither KINDS nor NOT_RESOURCES")
                    continue
                if kind is not None:
                    named.append((param, kind))
            if named:
                found.append(Case(method, path, surface, named))
    return found, problems


def expected(case: Case, caller: str) -> int | None:
    """The status ``caller`` must get from ``case`` (None: the check does not apply to this caller)."""
    if (case.method, case.path, caller) in EXPECT_OP:
        return EXPECT_OP[case.method, case.path, caller]
    statuses: list[int] = []
    for _, kind in case.params:
        status = EXPECT.get((case.surface, kind, caller), EXPECT.get((case.surface, caller)))
        if status is None:
            return None
        statuses.append(status)
    return max(statuses) if statuses else None


def request_for(world: World, case: Case, op: dict[str, Any], values: dict[str, Any]) -> tuple[str, dict[str, Any],
                                                                                             Any]:
    path = case.path
    query: dict[str, Any] = dict(QUERY.get(case.path, {}))
    body = valid_body(world, case.method, case.path, example_body(op))
    for param, kind in case.params:
        value = values[kind]
        if param.where == "path":
            path = path.replace("{" + param.name + "}", str(value))
        elif param.where == "query":
            query[param.name] = value
        else:
            body = dict(body or {})
            body[param.name] = [value] if param.many else value
    return path, query, body


def error_shape(surface: str, answer: httpx.Response, status: int) -> None:
    """The surface's own error shape for ``status``."""
    kind = answer.headers.get("content-type", "")
    body = answer.json()
    if surface == "v1":
        assert kind.startswith("application/problem+json") and body["status"] == status and body["code"], body
    elif surface == "kalshi":
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
    elif surface == "tradr":
        assert set(body) == {"statusCode", "message", "error"} and body["statusCode"] == status, body
    elif surface == "tradingapp":
        assert body == {"Status Code": 403, "Message": "You do not have permission to perform this action"}, body
    elif surface == "3commas":
        assert set(body) >= {"error", "error_description"} and body["error"], body
    elif surface == "cadenza":
        assert body["success"] is False and body["data"] is None and body["errno"] < 0, body
    else:
        raise AssertionError(f"no error shape known for {surface}")


def same_but_for(text: str, value: Any, instead: Any) -> Any:
    """``text`` (JSON) with every whole occurrence of ``value`` made ``instead``."""
    return json.loads(re.sub(rf"(?<![\w-]){re.escape(str(value))}(?![\w-])", str(instead), text))


def check(world: World, case: Case, caller_name: str, status: int, values: dict[str, Any],
          op: dict[str, Any]) -> None:
    """Call ``case`` as ``caller_name`` on the owner's resources, and on a missing one; assert the refusal."""
    caller = world.callers[case.surface, caller_name]
    path, query, body = request_for(world, case, op, values)
    answer = caller(case.method.upper(), path, query, body)
    # the most specific resource (the last named: the order under its account, the delivery under its endpoint)
    _, target = case.params[-1]
    m_path, m_query, m_body = request_for(world, case, op, {**values, target: MISSING[target]})
    missing = caller(case.method.upper(), m_path, m_query, m_body)
    assert answer.status_code == status, f"answered {answer.status_code}, not {status}: {answer.text[:300]}"
    if status >= 400:
        error_shape(case.surface, answer, status)
    if (case.method, case.path, caller_name) not in ORACLE_ACCEPTED:
        assert missing.status_code == answer.status_code, (
            f"answered {answer.status_code} for the owner's resource but {missing.status_code} for one that does "
            f"not exist: an existence oracle")
        assert same_but_for(answer.text, values[target], MISSING[target]) == missing.json(), (
            f"the refusal differs from the one for a missing id: {answer.text[:300]} vs {missing.text[:300]}")
    sent = path + json.dumps(query) + json.dumps(body)
    leaked = [m for m in world.markers if m in answer.text and m not in sent]
    assert not leaked, f"the refusal carries the owner's {leaked}"


def test_isolation_battery(world: World, doc: dict[str, Any]) -> None:
    found, problems = cases(doc)
    assert not problems, "operations the battery does not cover:\n" + "\n".join(problems)
    surfaces = {c.surface for c in found}
    assert {"v1", "kalshi", "tradingapp", "tradr", "3commas", "cadenza"} <= surfaces, surfaces
    values = {kind: make(world, kind) for kind in MAKERS}
    before = owner_of_everything(world)
    ops = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items() if m in METHODS}
    failures: list[str] = []
    checked: dict[str, int] = {}
    for case in found:
        for caller_name in [c for (s, c) in world.callers if s == case.surface]:
            status = expected(case, caller_name)
            if status is None:
                continue
            checked[case.surface] = checked.get(case.surface, 0) + 1
            where = f"{case.name} as {caller_name}"
            try:
                check(world, case, caller_name, status, values, ops[case.method, case.path])
            except AssertionError as failure:
                failures.append(f"{where}: {str(failure).splitlines()[0]}")
            if case.method != "get":
                after = owner_of_everything(world)
                changed = [k for k in before if after.get(k) != before[k]]
                if changed:
                    failures.append(f"{where}: the owner's {changed} changed")
                    before = after  # one failure, named once
    print("isolation checks per surface:", checked)
    assert not failures, f"{len(failures)} of {sum(checked.values())} refusals wrong:\n" + "\n".join(failures)
    assert checked.keys() == {"v1", "kalshi", "tradingapp", "tradr", "3commas", "cadenza"}
