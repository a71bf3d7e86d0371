"""Issue 14 item 2: the OpenAPI document describes every operation of every surface completely.

From the live /openapi.json: every operation has a description, a security declaration and the error
statuses it can answer (in its surface's error schema), every parameter a description, every schema
property a description; FastAPI's HTTPValidationError is gone; every example matches its schema; every
error body each surface renders matches the schema the document gives for it.

Issue 22 item 10, for integrators: every request body has an example that fits its schema, summaries are
sentences, no internal labels, each signed scheme carries a Python signing sample that the server accepts when
run as written, and the edge's refusal of control characters is declared in the schemas.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from strongroom.errors import RateLimited, ServiceUnavailable
from strongroom.settings import Settings
from strongroom.surfaces.openapi import derived_schema, error_samples, every_error_class, rendered_body, sample

METHODS = ("get", "post", "put", "patch", "delete")
# Operations that touch neither the database nor Redis: they never answer 503 (they are declared so with
# `raises(backing_services=False)`; the list makes each such declaration a visible decision).
NO_BACKING_SERVICE = {
    ("get", "/healthz"),
    ("get", "/metrics"),  # (documented when STRONGROOM_METRICS_ENABLED)
    ("get", "/v1/exchanges"),
    ("get", "/v1/exchanges/{exchange}"),
    ("get", "/public/api/ver1/ping"),
    ("get", "/public/api/ver1/time"),
    ("get", "/public/api/ver1/accounts/market_list"),
}
# The readable security scheme names (Swagger UI's Authorize dialog shows them).
SCHEMES = {"AccessToken", "BearerKey", "XApiKey", "Basic", "SrAccessKey", "SrAccessTimestamp", "SrAccessSignature",
           "KalshiAccessKey", "KalshiAccessTimestamp", "KalshiAccessSignature", "ThreeCommasApiKey",
           "ThreeCommasSignature"}


@pytest.fixture(scope="module")
def doc(server: Any) -> dict[str, Any]:
    import httpx

    response = httpx.get(server.url + "/openapi.json", timeout=30)
    assert response.status_code == 200
    return response.json()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, name = node["$ref"].split("/")[-2:]
        node = doc["components"][section][name]
    return node


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A JSON Schema 2020-12 validator for ``schema``, its $refs resolved in the document's components."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


def test_every_operation_is_documented(doc: dict[str, Any]) -> None:
    problems: list[str] = []
    ops = list(operations(doc))
    assert len(ops) > 90
    for method, path, op in ops:
        where = f"{method.upper()} {path}"
        responses = op.get("responses", {})
        if not (op.get("description") or "").strip():
            problems.append(f"{where}: no description")
        if "security" not in op:
            problems.append(f"{where}: no security declaration")
        params = [resolve(doc, p) for p in op.get("parameters", [])]
        for param in params:
            if not (param.get("description") or "").strip():
                problems.append(f"{where}: {param['in']} parameter {param['name']} has no description")
        authenticated = bool(op.get("security"))
        wanted = set()
        if not {"400", "422"} & set(responses):  # the edge refuses control characters anywhere (Trading App: 422)
            problems.append(f"{where}: no 400 (or 422) for bad bytes")
        if authenticated:
            wanted |= {"401", "403", "429"}
        if "requestBody" in op or params:
            wanted |= {"413"} if "requestBody" in op else set()
            if not {"400", "422"} & set(responses):
                problems.append(f"{where}: takes input but declares neither 400 nor 422")
        if any(p["in"] == "path" for p in params):
            wanted.add("404")
        if (method, path) not in NO_BACKING_SERVICE:
            wanted.add("503")
        missing = wanted - set(responses)
        if missing:
            problems.append(f"{where}: no {', '.join(sorted(missing))} response")
        for status, response in responses.items():
            if not status.startswith("2") and not response.get("content"):
                problems.append(f"{where}: {status} has no body schema")
            if status in ("429", "503") and "Retry-After" not in response.get("headers", {}) \
                    and path not in ("/api/v3/health",):
                problems.append(f"{where}: {status} without Retry-After")
        for requirement in op.get("security", []):
            for name in requirement:
                if name not in doc["components"]["securitySchemes"]:
                    problems.append(f"{where}: unknown security scheme {name}")
    assert not problems, "\n".join(problems)
    ids = [op["operationId"] for _, _, op in ops]
    assert len(ids) == len(set(ids)), "operationIds repeat"


def test_no_fastapi_validation_error(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text and '"ValidationError"' not in text


def test_security_schemes_are_named_and_grouped(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == SCHEMES
    assert schemes["AccessToken"]["type"] == "http" and schemes["AccessToken"]["scheme"] == "bearer"
    assert schemes["BearerKey"]["scheme"] == "bearer" and schemes["Basic"]["scheme"] == "basic"
    assert schemes["XApiKey"] == {**schemes["XApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["KalshiAccessSignature"]["name"] == "KALSHI-ACCESS-SIGNATURE"
    me = doc["paths"]["/v1/me"]["get"]["security"]
    # a signed scheme's headers are one requirement (all together); the others are alternatives
    assert {"SrAccessKey": [], "SrAccessTimestamp": [], "SrAccessSignature": []} in me
    assert {"KalshiAccessKey": [], "KalshiAccessTimestamp": [], "KalshiAccessSignature": []} in me
    for alone in ("AccessToken", "BearerKey", "XApiKey", "Basic"):
        assert {alone: []} in me
    assert doc["paths"]["/public/api/ver1/accounts"]["get"]["security"] == [
        {"ThreeCommasApiKey": [], "ThreeCommasSignature": []}]
    assert doc["paths"]["/tradr/users/api-keys"]["post"]["security"] == [{"XApiKey": []}, {"AccessToken": []}]
    assert doc["paths"]["/v1/auth/token"]["post"]["security"] == []


def test_every_schema_property_is_described(doc: dict[str, Any]) -> None:
    missing = []
    for name, schema in doc["components"]["schemas"].items():
        for prop, spec in schema.get("properties", {}).items():
            if not (spec.get("description") or "").strip() and not (
                    "$ref" in spec and resolve(doc, spec).get("description")):
                missing.append(f"{name}.{prop}")
    assert not missing, missing


def _with_examples(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list):
            yield node
        for value in node.values():
            yield from _with_examples(value)
    elif isinstance(node, list):
        for value in node:
            yield from _with_examples(value)


def test_examples_match_their_schemas(doc: dict[str, Any]) -> None:
    checked = 0
    # examples in schemas (fields and models)
    for schema in _with_examples(doc["components"]["schemas"]):
        check = validator(doc, {k: v for k, v in schema.items() if k != "examples"})
        for example in schema["examples"]:
            errors = [e.message for e in check.iter_errors(example)]
            assert not errors, (schema, example, errors)
            checked += 1
    # examples of responses (every error status's bodies)
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            for media in response.get("content", {}).values():
                for example in media.get("examples", {}).values():
                    value = resolve(doc, example)["value"]
                    errors = [e.message for e in validator(doc, media["schema"]).iter_errors(value)]
                    assert not errors, (method, path, status, value, errors)
                    assert value.get("status", value.get("statusCode", value.get("Status Code", int(status)))) \
                        == int(status)
                    checked += 1
    assert checked > 500


def _error_schema_of(doc: dict[str, Any], prefix: str) -> dict[str, Any]:
    for _method, path, op in operations(doc):
        if path.startswith(prefix + "/") and op["security"]:
            return op["responses"]["401"]["content"]
    raise AssertionError(prefix)


def test_every_rendered_error_matches_its_documented_schema(doc: dict[str, Any], server: Any) -> None:
    """Every domain error (with and without named fields, with Retry-After, naming a venue) and the 500,
    as each surface renders them, matches the error schema the document gives for that surface."""
    from strongroom.app import surfaces

    for surface in surfaces(server.settings):
        ((media, spec),) = _error_schema_of(doc, surface.prefix).items()
        assert media == (surface.errors.response(ServiceUnavailable()).media_type or "application/json")
        check = validator(doc, spec["schema"])
        bodies = error_samples(surface)
        assert len(bodies) > len(every_error_class()) + 20
        for body in bodies:
            errors = [e.message for e in check.iter_errors(body)]
            assert not errors, (surface.name, body, errors)
        # optional parts are not required: a body without them matches too, and fields show when named
        assert not check.is_valid({}), surface.name


def test_derived_error_schema_fits_every_surface(tmp_path: Any) -> None:
    """The fallback for a surface without an error model: a schema derived from its rendered errors
    requires only what every error carries."""
    from strongroom.app import surfaces

    for surface in surfaces(Settings(data_dir=tmp_path)):
        bodies = error_samples(surface)
        schema = derived_schema(bodies)
        check = jsonschema_rs.Draft202012Validator(schema)
        assert all(check.is_valid(b) for b in bodies), surface.name
        named = rendered_body(surface, sample(RateLimited))
        assert set(schema["required"]) <= set(named), surface.name


# --- real answers of every surface, as the document describes them ------------------------------------


def assert_documented(doc: dict[str, Any], method: str, template: str, response: Any) -> Any:
    """Assert ``response`` is an answer the document gives for ``method template``: a documented status,
    its media type, its required headers and its body schema. Returns the parsed body (None if empty)."""
    operation = doc["paths"][template][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], (method, template, status, response.text[:300])
    spec = operation["responses"][status]
    for name, header in spec.get("headers", {}).items():
        if resolve(doc, header).get("required"):
            assert name in response.headers, (method, template, status, name)
    if not spec.get("content"):
        assert not response.content, (method, template, status)
        return None
    media = response.headers["content-type"].split(";")[0]
    assert media in spec["content"], (method, template, status, media)
    body = response.json()
    errors = [f"{e.instance_path}: {e.message}" for e in validator(doc, spec["content"][media]["schema"])
              .iter_errors(body)]
    assert not errors, (method, template, status, body, errors)
    return body


def test_real_answers_match_the_document(doc: dict[str, Any], client: Any, users: Any, mock_exchange: Any) -> None:
    """Valid calls on every surface but /v1 (fuzzed with schemathesis' conformance checks elsewhere): each
    answer is one the document describes, body schema included."""
    import uuid

    from support.signing import load_private_key, sign_kalshi
    from support.threecommas import V1, as_json, hmac_key, mock_of, signed

    user = users.create()
    mock = mock_of(mock_exchange)

    def check(method: str, template: str, response: Any) -> Any:
        return assert_documented(doc, method, template, response)

    check("GET", "/healthz", client.get("/healthz"))
    check("GET", "/readyz", client.get("/readyz"))

    # Kalshi: RSA-PSS signed requests with a generated key
    generated = client.post("/v1/api-keys/generate", headers=user.headers, json={"name": "kalshi", "key_type": "rsa"})
    assert generated.status_code == 201
    kalshi_id, private = generated.json()["key_id"], load_private_key(generated.json()["private_key"])

    def kalshi(method: str, path: str, **kwargs: Any) -> Any:
        full = "/trade-api/v2" + path
        return client.request(method, full, headers=sign_kalshi(kalshi_id, private, method, full), **kwargs)

    check("GET", "/trade-api/v2/api_keys", kalshi("GET", "/api_keys"))
    made = check("POST", "/trade-api/v2/api_keys/generate", kalshi("POST", "/api_keys/generate", json={"name": "k2"}))
    check("DELETE", "/trade-api/v2/api_keys/{api_key}", kalshi("DELETE", f"/api_keys/{made['api_key_id']}"))
    check("DELETE", "/trade-api/v2/api_keys/{api_key}", kalshi("DELETE", f"/api_keys/{uuid.uuid4()}"))

    # Trading App: Basic with the password
    accounts = f"/user/{user.id}/accounts"
    creds = mock.new_key("binance")
    check("POST", "/user/{user_id}/accounts/new", client.post(accounts + "/new", headers=user.basic, json={
        "Exchange": "BINANCE", "api_key": creds["api_key"], "secret_key": creds["secret"]}))
    check("GET", "/user/{user_id}/accounts", client.get(accounts, headers=user.basic))
    check("DELETE", "/user/{user_id}/accounts/{exchange_name}", client.delete(accounts + "/BINANCE",
                                                                                headers=user.basic))

    # TradrAPI: an access token
    bitmex = client.post("/v1/exchange-accounts", headers=user.headers, json={
        "exchange": "bitmex", "credentials": {"api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}})
    assert bitmex.status_code == 201
    account_id = bitmex.json()["id"]
    key = check("POST", "/tradr/accounts/api-keys", client.post("/tradr/accounts/api-keys", headers=user.headers, json={
        "accountId": account_id, "roles": ["read", "write"], "ips": ["203.0.113.7"]}))
    check("GET", "/tradr/accounts/api-keys/{key_id}", client.get(f"/tradr/accounts/api-keys/{key['id']}",
                                                                 headers=user.headers))
    check("GET", "/tradr/accounts/{account_id}/api-keys", client.get(f"/tradr/accounts/{account_id}/api-keys",
                                                                      headers=user.headers))
    check("PATCH", "/tradr/accounts/api-keys/{key_id}", client.patch(
        f"/tradr/accounts/api-keys/{key['id']}", headers=user.headers, json={"friendlyName": "renamed"}))
    user_key = check("POST", "/tradr/users/api-keys", client.post("/tradr/users/api-keys", headers=user.headers,
                                                                  json={"userId": user.id, "roles": ["read"]}))
    check("GET", "/tradr/users/{user_id}/api-keys", client.get(f"/tradr/users/{user.id}/api-keys",
                                                               headers=user.headers))
    check("DELETE", "/tradr/users/api-keys/{key_id}", client.delete(f"/tradr/users/api-keys/{user_key['id']}",
                                                                    headers=user.headers))

    # 3Commas: an hmac key, a binance account on the mock with balances
    key3 = hmac_key(client, user)
    check("GET", "/public/api/ver1/ping", client.get(f"{V1}/ping"))
    check("GET", "/public/api/ver1/time", client.get(f"{V1}/time"))
    check("GET", "/public/api/ver1/accounts/market_list", client.get(f"{V1}/accounts/market_list"))
    check("GET", "/public/api/ver1/validate", signed(client, key3, "GET", f"{V1}/validate"))
    check("GET", "/public/api/ver1/accounts/market_pairs",
          signed(client, key3, "GET", f"{V1}/accounts/market_pairs", query="market_code=binance"))
    check("GET", "/public/api/ver1/accounts/currency_rates",
          signed(client, key3, "GET", f"{V1}/accounts/currency_rates", query="market_code=binance&pair=USDT_BTC"))
    creds = mock.new_key("binance", balances={"BTC": {"free": "0.5", "used": "0.1"}, "ETH": {"free": "2"},
                                              "DUSTCOIN": {"free": "7"}})
    check("GET", "/public/api/ver1/accounts/types_to_connect", signed(
        client, key3, "GET", f"{V1}/accounts/types_to_connect", query=f"type=binance&api_key={creds['api_key']}"))
    entity = check("POST", "/public/api/ver1/accounts/new", signed(client, key3, "POST", f"{V1}/accounts/new",
                   body=as_json({"type": "binance", "name": "main", **creds})))
    one = f"{V1}/accounts/{entity['id']}"
    check("POST", "/public/api/ver1/accounts/{account_id}/load_balances", signed(client, key3, "POST",
                                                                                  one + "/load_balances"))
    for method, action in (("GET", ""), ("POST", "/pie_chart_data"), ("POST", "/account_table_data"),
                           ("GET", "/active_trading_entities")):
        check(method, "/public/api/ver1/accounts/{account_id}" + action, signed(client, key3, method, one + action))
    check("GET", "/public/api/ver1/accounts/{account_id}", signed(client, key3, "GET", f"{V1}/accounts/summary"))
    check("GET", "/public/api/ver1/accounts/{account_id}/balance_chart_data", signed(
        client, key3, "GET", one + "/balance_chart_data", query="date_from=2020-01-01"))
    check("GET", "/public/api/ver1/accounts", signed(client, key3, "GET", f"{V1}/accounts"))
    check("POST", "/public/api/ver1/accounts/update", signed(client, key3, "POST", f"{V1}/accounts/update",
                                                              body=as_json({"account_id": entity["id"], "name": "n"})))
    check("POST", "/public/api/ver1/accounts/{account_id}/rename", signed(client, key3, "POST", one + "/rename",
                                                                          body=as_json({"name": "m"})))
    check("POST", "/public/api/ver1/accounts/{account_id}/sell_all_to_usd",
          signed(client, key3, "POST", one + "/sell_all_to_usd"))
    check("GET", "/public/api/ver1/accounts/transfer_data", signed(client, key3, "GET", f"{V1}/accounts/transfer_data"))
    check("POST", "/public/api/ver1/accounts/{account_id}/remove", signed(client, key3, "POST", one + "/remove"))

    # Cadenza: its own sign-in
    session = check("POST", "/api/v3/auth/login", client.post("/api/v3/auth/login", json={
        "email": user.username, "password": user.password}))["data"]
    bearer = {"Authorization": f"Bearer {session['accessToken']}"}
    check("GET", "/api/v3/auth/user", client.get("/api/v3/auth/user", headers=bearer))
    creds = mock.new_key("okx", balances={"USDT": {"free": "100"}})
    credential = check("POST", "/api/v3/credential/create", client.post("/api/v3/credential/create", headers=bearer, json={
        "venue": "OKX", "credentialType": "API_KEY", "apiKey": creds["api_key"], "apiSecret": creds["secret"],
        "apiPassphrase": creds["passphrase"]}))["data"]
    check("POST", "/api/v3/credential/verify", client.post("/api/v3/credential/verify", headers=bearer, json={
        "credentialIds": [credential["credentialId"]]}))
    trading = check("POST", "/api/v3/tradingAccount/connect", client.post("/api/v3/tradingAccount/connect",
                    headers=bearer, json={"credentialIds": [credential["credentialId"]],
                                          "externalTradingAccountId": "spot"}))["data"]
    ref = {"tradingAccountId": trading["tradingAccountId"]}
    check("GET", "/api/v3/tradingAccount/list", client.get("/api/v3/tradingAccount/list", headers=bearer))
    check("GET", "/api/v3/tradingAccount/portfolio/list", client.get("/api/v3/tradingAccount/portfolio/list",
                                                                     headers=bearer))
    check("POST", "/api/v3/tradingAccount/update", client.post("/api/v3/tradingAccount/update", headers=bearer,
                                                               json={**ref, "nickname": "renamed"}))
    check("POST", "/api/v3/tradingAccount/disable", client.post("/api/v3/tradingAccount/disable", headers=bearer,
                                                                json=ref))
    check("POST", "/api/v3/tradingAccount/enable", client.post("/api/v3/tradingAccount/enable", headers=bearer,
                                                               json=ref))
    check("GET", "/api/v3/credential/list", client.get("/api/v3/credential/list", headers=bearer))
    check("POST", "/api/v3/credential/revoke", client.post("/api/v3/credential/revoke", headers=bearer,
                                                           json={"credentialId": credential["credentialId"]}))
    check("POST", "/api/v3/tradingAccount/disconnect", client.post("/api/v3/tradingAccount/disconnect",
                                                                   headers=bearer, json=ref))
    check("GET", "/api/v3/health", client.get("/api/v3/health"))
    check("POST", "/api/v3/auth/logout", client.post("/api/v3/auth/logout", headers=bearer))


# --- for integrators (issue 22 item 10) --------------------------------------------------------------

CONTROL_IN_PARAMETERS = ("a\x00b", "a\x01b", "line\nbreak", "tab\t", "del\x7f")
INTERNAL_LABEL = re.compile(r"(?i)\bseeds?\b|\bissue\s*#?\d+|\bitem\s+\d+")


def _strings(doc: dict[str, Any], node: Any, seen: set[str]) -> Iterator[dict[str, Any]]:
    """Every string schema reachable from ``node`` (through $refs, properties, items and combinations)."""
    if isinstance(node, list):
        for item in node:
            yield from _strings(doc, item, seen)
        return
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        if node["$ref"] not in seen:
            seen.add(node["$ref"])
            yield from _strings(doc, resolve(doc, {"$ref": node["$ref"]}), seen)
        return
    if node.get("type") == "string" or "string" in (node.get("type") or []):
        yield node
    for key in ("properties", "patternProperties"):
        yield from _strings(doc, list(node.get(key, {}).values()), seen)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            yield from _strings(doc, node[key], seen)


def _refuses(doc: dict[str, Any], schema: dict[str, Any], values: tuple[str, ...]) -> bool:
    check = jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]}, validate_formats=True)
    return not any(check.is_valid(v) for v in values)


def test_every_request_body_has_an_example_that_fits(doc: dict[str, Any]) -> None:
    """Every request body shows an example (Swagger UI's "Try it out" starts from it), valid for its schema."""
    problems, bodies = [], 0
    for method, path, op in operations(doc):
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            bodies += 1
            schema = content.get("schema", {})
            examples = ([content["example"]] if "example" in content else []) + [
                resolve(doc, e)["value"] for e in content.get("examples", {}).values()]
            if not examples and not resolve(doc, schema).get("examples"):
                problems.append(f"{method.upper()} {path} ({media}): no example")
            for example in examples:
                errors = [e.message for e in validator(doc, schema).iter_errors(example)]
                if errors:
                    problems.append(f"{method.upper()} {path} ({media}): example {example} does not fit: {errors}")
    assert bodies > 30
    assert not problems, "\n".join(problems)


def test_summaries_are_sentences(doc: dict[str, Any]) -> None:
    """A summary says what the operation does, as a sentence; not the endpoint's function name."""
    problems, seen = [], 0
    for method, path, op in operations(doc):
        summary = op.get("summary", "")
        where = f"{method.upper()} {path}: {summary!r}"
        seen += 1
        if not summary.endswith(".") or not summary[:1].isupper() or len(summary.split()) < 2 or len(summary) > 80:
            problems.append(where)
        # FastAPI's default: the function name in title case ("Balance History")
        if summary.rstrip(".").istitle() and len(summary.split()) > 1:
            problems.append(where + " reads like a function name")
    assert seen > 90
    assert not problems, "\n".join(problems)


def _texts(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _texts(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _texts(v, key)
    elif isinstance(node, str) and key in ("description", "summary", "title"):
        yield key, node


def test_no_internal_labels(doc: dict[str, Any]) -> None:
    """The document speaks to integrators: no project-internal labels (seed documents, issue numbers)."""
    found = [text for _, text in _texts(doc) if INTERNAL_LABEL.search(text)]
    assert not found, found


def test_control_character_refusal_is_declared(doc: dict[str, Any]) -> None:
    """The edge refuses control characters in the path and query (and a NUL in a body's string) with 400: each
    such string's schema says so (a pattern, a format or an enum), so a client or fuzzer generating valid
    input from the document never sends what the server refuses (schemathesis' positive data)."""
    problems, checked = [], 0
    for method, path, op in operations(doc):
        where = f"{method.upper()} {path}"
        for param in (resolve(doc, p) for p in op.get("parameters", [])):
            if param["in"] not in ("path", "query"):
                continue
            for schema in _strings(doc, param.get("schema", {}), set()):
                checked += 1
                if not _refuses(doc, schema, CONTROL_IN_PARAMETERS):
                    problems.append(f"{where}: {param['in']} parameter {param['name']} allows control characters")
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            for schema in _strings(doc, content.get("schema", {}), set()):
                checked += 1
                if not _refuses(doc, schema, ("a\x00b",)):
                    problems.append(f"{where} ({media}): a body string allows NUL: {schema}")
    assert checked > 150
    assert not problems, "\n".join(problems)


def _sample(doc: dict[str, Any], scheme: str) -> Any:
    """The signing function of the Python sample in ``scheme``'s description, loaded."""
    description = doc["components"]["securitySchemes"][scheme].get("description", "")
    blocks = re.findall(r"```python\n(.*?)```", description, re.DOTALL)
    assert len(blocks) == 1, f"{scheme}: no Python signing sample in its description"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], f"<{scheme} sample>", "exec"), namespace)  # noqa: S102 - the document's own sample
    (function,) = [v for k, v in namespace.items() if k.endswith("_headers") and callable(v)]
    return function


def test_each_signed_scheme_has_a_python_sample_that_signs(doc: dict[str, Any], client: Any, users: Any) -> None:
    """Each signed scheme's description carries a short Python sample; run as written, it signs requests the
    server accepts (hmac, RSA and Ed25519 keys on /v1; RSA and Ed25519 on Kalshi; hmac and RSA on 3Commas)."""
    from support.signing import load_private_key

    groups = {tuple(sorted(r)) for _, _, op in operations(doc) for r in op.get("security", []) if len(r) > 1}
    assert len(groups) == 3, groups
    for group in groups:
        assert any("```python" in doc["components"]["securitySchemes"][n].get("description", "") for n in group), group
    user = users.create()
    made = client.post("/v1/api-keys", headers=user.headers, json={"name": "sample", "kind": "hmac",
                                                                  "scopes": ["read", "write"]}).json()
    hmac_key = (made["key_id"], made["secret"])
    pairs = {}
    for key_type in ("rsa", "ed25519"):
        made = client.post("/v1/api-keys/generate", headers=user.headers,
                           json={"name": key_type, "key_type": key_type, "scopes": ["read", "write"]}).json()
        pairs[key_type] = (made["key_id"], load_private_key(made["private_key"]))

    sr = _sample(doc, "SrAccessSignature")
    for key_id, key in (hmac_key, pairs["rsa"], pairs["ed25519"]):
        response = client.get("/v1/me", headers=sr(key_id, key, "GET", "/v1/me"))
        assert response.status_code == 200 and response.json()["key_id"] == key_id, response.text
    body = b'{"name": "made by a signed request", "scopes": ["read"]}'
    response = client.post("/v1/api-keys", content=body, headers={
        **sr(hmac_key[0], hmac_key[1], "POST", "/v1/api-keys", body), "Content-Type": "application/json"})
    assert response.status_code == 201, response.text

    kalshi = _sample(doc, "KalshiAccessSignature")
    for key_id, key in (pairs["rsa"], pairs["ed25519"]):
        path = "/trade-api/v2/api_keys"
        response = client.get(path, headers=kalshi(key_id, key, "GET", path))
        assert response.status_code == 200, response.text

    threecommas = _sample(doc, "ThreeCommasSignature")
    for key_id, key in (hmac_key, pairs["rsa"]):
        target = "/public/api/ver1/accounts?per_page=50"
        response = client.get(target, headers=threecommas(key_id, key, target))
        assert response.status_code == 200, response.text
    # a wrong key is refused: the samples really are what is checked
    response = client.get("/v1/me", headers=sr(hmac_key[0], "not-the-secret", "GET", "/v1/me"))
    assert response.status_code == 401
