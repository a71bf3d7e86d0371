"""Issue 11 (a): seed 002's own samples, taken from the seed file at test time, run verbatim against a
live server on each backend; only the host is replaced (``https://cadenza-api-uat.algo724.com`` by
the server's URL). The Binance key of the samples (``your-api-key`` / ``your-api-secret``) is put on
the mock exchange, so the Binance connect is checked live for real. Coinbase is not mocked: the
sample's Coinbase connect meets an exchange that does not answer (503 with Retry-After).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from cadenza_helpers import Api
from support import SEEDS

SEED_FILE = SEEDS / "002_7387b3df7a81b00d.txt"
SEED_HOST = "https://cadenza-api-uat.algo724.com"


def seed_text() -> str:
    if not SEED_FILE.exists():
        pytest.fail(f"seed 002 not found at {SEED_FILE}")
    return SEED_FILE.read_text(encoding="utf-8")


def python_sample() -> str:
    """The seed's Python sample: from ``import requests`` up to the curl sample."""
    text = seed_text()
    start, end = text.index("import requests"), text.index("curl -X POST")
    return text[start:end]


def curl_sample() -> str:
    """The seed's curl sample: from ``curl -X POST`` to the end of its JSON body (``}'``)."""
    text = seed_text()
    start = text.index("curl -X POST")
    end = text.index("}'", start) + 2
    return text[start:end]


def example_response() -> dict[str, Any]:
    text = seed_text()
    start = text.index("Example Response") + len("Example Response")
    end = text.index("Error Responses")
    return json.loads(text[start:end])


def example_error() -> dict[str, Any]:
    text = seed_text()
    start = text.index("Example Error") + len("Example Error")
    end = text.index("Notes", start)
    return json.loads(text[start:end])


def on_server(sample: str, url: str) -> str:
    assert sample.count(SEED_HOST) >= 1
    return sample.replace(SEED_HOST, url)


def seed_keys_on_mock(mock_exchange: Any) -> None:
    """The samples' Binance key, on the mock (idempotent)."""
    response = httpx.post(f"{mock_exchange.url}/_mock/accounts", timeout=10,
                          json={"exchange": "binance", "api_key": "your-api-key", "secret": "your-api-secret"})
    assert response.status_code == 201


def disconnect_all(api: Api) -> None:
    """Disconnect the caller's live accounts (the samples' key is one key: the next test may connect it)."""
    for account in api.get("/tradingAccount/list", limit=1000).json()["data"]:
        if account["status"] != "DISCONNECTED":
            assert api.post("/tradingAccount/disconnect", {"tradingAccountId": account["tradingAccountId"]}) \
                .status_code == 200


def test_python_sample_verbatim(cadenza_server, api, mock_exchange) -> None:
    """The seed's `requests` code, executed as it stands (host replaced): Binance connects live, the
    printed id is the account's UUID; the Coinbase call gets the envelope with a 503 (not mocked)."""
    seed_keys_on_mock(mock_exchange)
    code = on_server(python_sample(), cadenza_server.url)
    namespace: dict[str, Any] = {"access_token": api.token}
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(SEED_FILE), "exec"), namespace)  # noqa: S102 - the seed's own sample
        account = namespace["account"]
        trading_account_id = namespace["trading_account_id"]
        assert printed.getvalue() == f"Connected trading account: {trading_account_id}\n"
        assert uuid.UUID(trading_account_id) and trading_account_id == account["tradingAccountId"]
        # every field of the seed's example response, with its type
        example = example_response()["data"]
        assert set(example) <= set(account)
        for field, value in example.items():
            assert type(account[field]) is type(value), (field, account[field])
        assert account["venue"] == "BINANCE" and account["name"] == "My Binance Account"
        assert account["accountType"] == "SPOT" and account["status"] == "ACTIVE"
        assert uuid.UUID(account["userId"]) and account["createdAt"] == account["updatedAt"] > 1_600_000_000_000
        assert "your-api-secret" not in json.dumps(account)
        # the second call of the sample: Coinbase, with a passphrase (Coinbase Advanced takes none: ignored)
        coinbase = namespace["response"]
        assert coinbase.status_code == 503 and int(coinbase.headers["Retry-After"]) > 0
        assert coinbase.json() == {"data": None, "success": False, "errno": -18012,
                                   "error": "Exchange not available; try again later"}
        # the account is there, listed once
        listed = api.get("/tradingAccount/list").json()
        assert [a["tradingAccountId"] for a in listed["data"]] == [trading_account_id]
    finally:
        disconnect_all(api)


def run_curl(command: str) -> tuple[int, dict[str, str], str]:
    """Run a seed command through the shell (``-s -i`` appended so the status and headers show)."""
    proc = subprocess.run(command + " --silent --show-error --include", shell=True, capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    head, _, body = proc.stdout.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sample_verbatim(cadenza_server, api, mock_exchange) -> None:
    """The seed's curl command as it stands (host replaced): its placeholder token is no token, so the answer
    is the envelope's 401; with the placeholder replaced by a real token, it connects."""
    seed_keys_on_mock(mock_exchange)
    command = on_server(curl_sample(), cadenza_server.url)
    assert "eyJhbGciOiJIUzI1NiIs..." in command
    status, headers, body = run_curl(command)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert json.loads(body) == {"data": None, "success": False, "errno": -19002, "error": "Unauthorized"}

    try:
        status, headers, body = run_curl(command.replace("eyJhbGciOiJIUzI1NiIs...", api.token))
        assert status == 200, body
        doc = json.loads(body)
        assert doc["success"] is True and doc["errno"] == 0 and doc["error"] is None
        account = doc["data"]
        assert account["name"] == "My Trading Account" and account["venue"] == "BINANCE"
        assert account["status"] == "ACTIVE" and uuid.UUID(account["tradingAccountId"])
        assert "your-api-secret" not in body
    finally:
        disconnect_all(api)


def test_example_error_of_the_seed(api, mock_exchange) -> None:
    """The seed's example error, exactly: a key the exchange refuses."""
    seed_keys_on_mock(mock_exchange)
    response = api.post("/tradingAccount/connect",
                        {"venue": "BINANCE", "apiKey": "your-api-key", "apiSecret": "not-the-secret"})
    assert response.status_code == 400
    assert response.json() == example_error() == {"data": None, "success": False, "errno": -120001,
                                                  "error": "Invalid API credentials for BINANCE"}
    assert api.get("/tradingAccount/list").json()["data"] == []


def test_seed_samples_are_what_the_tests_run() -> None:
    """The extraction finds the samples (a changed seed fails here, not silently)."""
    assert re.search(r'"venue": "COINBASE"', python_sample())
    assert python_sample().count("requests.post(") == 2
    assert curl_sample().startswith("curl -X POST https://cadenza-api-uat.algo724.com/api/v3/tradingAccount/connect")
