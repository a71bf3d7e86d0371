"""Helpers for the 3Commas surface's tests: keys made through /v1 as a user would, and a hand signer
written from 3Commas' docs (reference threecommas.md §2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import httpx
import py3cw.request
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from support.exchange_mock import Mock
from support.signing import load_private_key

PREFIX = "/public/api"
V1 = PREFIX + "/ver1"


@dataclass
class Key:
    """A Strongroom key as a 3Commas client holds it: APIKEY and its secret (hmac) or private key (rsa)."""

    key_id: str
    secret: str | None = None
    private_pem: str | None = None

    def py3cw(self) -> py3cw.request.Py3CW:
        """py3cw's client, unchanged (its base URL is patched by the ``py3cw_server`` fixture)."""
        if self.private_pem:
            return py3cw.request.Py3CW(key=self.key_id, selfsigned=self.private_pem)
        return py3cw.request.Py3CW(key=self.key_id, secret=self.secret)

    def sign(self, message: bytes) -> str:
        """3Commas' Signature over ``message``: hex HMAC-SHA256, or base64 RSA PKCS#1 v1.5 SHA-256."""
        if self.private_pem:
            private = load_private_key(self.private_pem)
            return base64.b64encode(private.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
        assert self.secret
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()

    def headers(self, message: bytes) -> dict[str, str]:
        return {"APIKEY": self.key_id, "Signature": self.sign(message)}


def hmac_key(client: httpx.Client, user: Any, scopes: tuple[str, ...] = ("read", "write", "delete"),
             **extra: Any) -> Key:
    """An hmac key of ``user`` from POST /v1/api-keys (the secret is in that answer only)."""
    response = client.post("/v1/api-keys", headers=user.headers,
                           json={"name": "3commas", "kind": "hmac", "scopes": list(scopes), **extra})
    assert response.status_code == 201, response.text
    return Key(response.json()["key_id"], secret=response.json()["secret"])


def rsa_key(client: httpx.Client, user: Any, scopes: tuple[str, ...] = ("read", "write", "delete")) -> Key:
    """An rsa key of ``user`` from POST /v1/api-keys/generate (py3cw's ``selfsigned``)."""
    response = client.post("/v1/api-keys/generate", headers=user.headers,
                           json={"name": "3commas-rsa", "key_type": "rsa", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return Key(response.json()["key_id"], private_pem=response.json()["private_key"])


def signed(client: httpx.Client, key: Key, method: str, path: str, *, query: str = "", body: bytes = b"",
           content_type: str | None = "application/json", message: bytes | None = None) -> httpx.Response:
    """Send a request signed like py3cw: over ``path[?query] + body`` unless ``message`` is given."""
    target = path + ("?" + query if query else "")
    headers = key.headers(message if message is not None else target.encode() + body)
    if body and content_type:
        headers["Content-Type"] = content_type
    return client.request(method, target, content=body, headers=headers)


def as_json(value: Any) -> bytes:
    """JSON bytes as py3cw (requests' ``json=``) sends them: default separators, ASCII escapes."""
    return json.dumps(value).encode()


def mock_of(mock_exchange: Any) -> Mock:
    """The mock exchange's control calls (``support.exchange_mock.Mock``)."""
    return Mock(mock_exchange)
