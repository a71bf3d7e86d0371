"""Issue 22.6: a 405 lists in ``Allow`` every method of the path, on every surface (RFC 9110 §15.5.6).

The expected methods come from the live /openapi.json: for each documented path, a concrete request
path is made (each ``{parameter}`` filled in), every documented path template that matches it gives
its methods, and a method none of them has must answer 405 with exactly those methods in ``Allow``
(plus HEAD, which Starlette answers for a GET). Anonymous: a wrong method is told before credentials
are asked for, in the shape of the surface that owns the path.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def documented(client: httpx.Client) -> dict[str, set[str]]:
    """Every documented path template and its methods."""
    paths = client.get("/openapi.json").json()["paths"]
    return {path: {m.upper() for m in item if m.upper() in METHODS} for path, item in paths.items()}


def template_re(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


def test_405_allow_lists_every_method_of_the_path(client: httpx.Client) -> None:
    paths = documented(client)
    patterns = {template: template_re(template) for template in paths}
    multi = 0
    for template in paths:
        concrete = re.sub(r"\{[^/]+?\}", "1", template)
        expected = set().union(*(paths[t] for t, pattern in patterns.items() if pattern.match(concrete)))
        wrong = next((m for m in METHODS if m not in expected), None)
        if wrong is None:
            continue
        multi += len(expected) > 1
        response = client.request(wrong, concrete)
        assert response.status_code == 405, (wrong, concrete, response.status_code, response.text)
        allow = {m.strip() for m in response.headers["allow"].split(",")}
        assert allow - {"HEAD"} == expected, (wrong, concrete, response.headers["allow"], sorted(expected))
        assert "HEAD" not in allow or "GET" in expected, (concrete, response.headers["allow"])
    assert multi >= 5, "too few paths with several methods: the test proves little"


def test_405_allow_on_each_surface(client: httpx.Client, users: Any) -> None:
    """A path per surface (one of several methods where the surface has one), with valid credentials too:
    405 before anything else, in the surface's shape."""
    user = users.create()
    paths = documented(client)
    for prefix in ("/v1/", "/trade-api/v2/", "/user/", "/tradr/", "/public/api/", "/api/v3/"):
        found = sorted(((t, m) for t, m in paths.items() if t.startswith(prefix)), key=lambda tm: -len(tm[1]))
        assert found, f"no path under {prefix}"
        template, methods = found[0]
        concrete = re.sub(r"\{[^/]+?\}", "1", template).replace("/user/1/", f"/user/{user.id}/")
        wrong = next(m for m in METHODS if m not in methods)
        headers = user.basic if prefix == "/user/" else user.headers
        response = client.request(wrong, concrete, headers=headers)
        assert response.status_code == 405, (concrete, response.text)
        assert {m.strip() for m in response.headers["allow"].split(",")} - {"HEAD"} == methods, (
            concrete, response.headers["allow"])
        assert response.json(), response.text  # the surface's error body
