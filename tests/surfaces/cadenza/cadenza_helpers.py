"""Helpers of the Cadenza surface tests (a module of its own: test modules import it by name)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import TestUser


@dataclass
class Api:
    """A Cadenza caller: its server, a signed-in user and that user's headers."""

    http: httpx.Client
    user: TestUser
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(f"/api/v3{path}", headers=self.headers, json=body, **kwargs)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/api/v3{path}", headers=self.headers, params=params)


def install_cadenza_client(target: Path, not_run: str) -> Path:
    """Install Cadenza's generated client from ``CADENZA_CLIENT_SRC`` into ``target``; return ``target``.

    Skips the calling test loudly, ending the message with ``not_run``, when the variable is not set (the
    client is a checkout of github.com/cyberapper/cadenza-client-python: it is not on PyPI). A failed
    install is a failure.
    """
    source = os.environ.get("CADENZA_CLIENT_SRC")
    if not source:
        pytest.skip("CADENZA CLIENT NOT RUN: CADENZA_CLIENT_SRC is not set (a checkout of "
                    f"github.com/cyberapper/cadenza-client-python; it is not on PyPI). {not_run}")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--target", str(target), source],
        capture_output=True, text=True, timeout=600, check=False)
    assert install.returncode == 0, f"installing {source} failed:\n{install.stdout}\n{install.stderr}"
    return target


def login(http: httpx.Client, user: TestUser) -> Api:
    response = http.post("/api/v3/auth/login", json={"email": user.username, "password": user.password})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return Api(http, user, data["accessToken"], data["refreshToken"])


def mock_key(mock_exchange: Any, exchange: str = "binance", **extra: Any) -> dict[str, str]:
    """A fresh key on the mock exchange, as Cadenza's fields (apiKey, apiSecret, apiPassphrase for OKX)."""
    creds = {"api_key": f"ck-{uuid.uuid4().hex}", "secret": f"cs-{uuid.uuid4().hex}{uuid.uuid4().hex}"}
    if exchange == "okx":
        creds["passphrase"] = f"cp-{uuid.uuid4().hex[:10]}"
    response = httpx.post(f"{mock_exchange.url}/_mock/accounts", json={"exchange": exchange, **creds, **extra},
                          timeout=10)
    assert response.status_code == 201, response.text
    wire = {"apiKey": creds["api_key"], "apiSecret": creds["secret"]}
    if "passphrase" in creds:
        wire["apiPassphrase"] = creds["passphrase"]
    return wire


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["success"] is True and doc["errno"] == 0 and doc["error"] is None
    return doc["data"]


def refused(response: httpx.Response, status: int, errno: int, error: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    doc = response.json()
    assert {"data", "success", "errno", "error"} <= set(doc) <= {"data", "success", "errno", "error", "details"}, doc
    assert doc["data"] is None and doc["success"] is False and doc["errno"] == errno, doc
    if error is not None:
        assert doc["error"] == error, doc
    assert "Traceback" not in response.text
    return doc


def connect(api: Api, key: dict[str, str], venue: str = "BINANCE", **extra: Any) -> httpx.Response:
    return api.post("/tradingAccount/connect", {"venue": venue, **key, **extra})


def connected(api: Api, key: dict[str, str], venue: str = "BINANCE", **extra: Any) -> dict[str, Any]:
    return ok(connect(api, key, venue, **extra))


def listing(api: Api, **params: Any) -> dict[str, Any]:
    response = api.get("/tradingAccount/list", **params)
    assert response.status_code == 200, response.text
    return response.json()


def no_secret(text: str, key: dict[str, str]) -> None:
    for name, value in key.items():
        if name != "apiKey":
            assert value not in text, name
    assert key["apiKey"] not in text  # only a hint of the key


@contextmanager
def mock_mode(mock_exchange: Any, mode: str):
    httpx.post(f"{mock_exchange.url}/_mock/behaviour", json={"mode": mode}, timeout=10).raise_for_status()
    try:
        yield
    finally:
        httpx.post(f"{mock_exchange.url}/_mock/behaviour", json={"mode": "normal"}, timeout=10).raise_for_status()


