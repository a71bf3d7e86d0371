"""Things tests make over HTTP, the way a client would."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def connect_bitmex(client: httpx.Client, user: Any) -> int:
    """Connect a BitMEX account of ``user`` (no validator: stored unverified) with unique credentials; its id."""
    creds = {"api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
    response = client.post("/v1/exchange-accounts", json={"exchange": "bitmex", "credentials": creds},
                           headers=user.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def make_key(client: httpx.Client, user: Any, **body: Any) -> dict[str, Any]:
    """Create a /v1 API key for ``user`` (a name is made up unless given); return the creation answer."""
    body.setdefault("name", f"k-{uuid.uuid4().hex[:6]}")
    response = client.post("/v1/api-keys", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def generate(client: httpx.Client, user: Any, key_type: str = "rsa", **body: Any) -> tuple[dict[str, Any], Any]:
    """Generate a key pair on /v1 for ``user``; return the creation answer and the loaded private key."""
    from support.signing import load_private_key

    body.setdefault("name", f"g-{uuid.uuid4().hex[:6]}")
    response = client.post("/v1/api-keys/generate", json={"key_type": key_type, **body}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json(), load_private_key(response.json()["private_key"])
