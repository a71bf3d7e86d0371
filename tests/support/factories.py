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
