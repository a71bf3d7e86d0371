"""The /v1 error shape: RFC 9457 application/problem+json."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status`` (and ``code``); return its body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body), body
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and isinstance(body["code"], str) and body["code"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    if code is not None:
        assert body["code"] == code, body
    return body
