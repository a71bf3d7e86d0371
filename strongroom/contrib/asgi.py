"""ASGI middleware for a Python service guarded by Strongroom's keys (imported by nothing in the server).

Each request's credentials (bearer key, ``X-API-Key``, Basic key id + secret, Kalshi, SR-ACCESS or
3Commas signatures) are checked through ``POST /v1/keys/verify`` with a key holding the ``verify``
scope; a valid request reaches the app with the key's identity in ``scope["state"]["strongroom"]``
(``user_id``, ``key_id``, ``scopes``, ``account_ids``, ``expires_at``), any other is answered here::

    from strongroom.contrib.asgi import StrongroomAuth

    app = StrongroomAuth(app, url="http://127.0.0.1:8000", verify_key=os.environ["STRONGROOM_VERIFY_KEY"],
                         required_scopes=("read",))

Refusals: ``401`` (unknown_key, expired, revoked, bad_signature, replayed), ``403`` (ip_not_allowed,
insufficient_scope), ``429`` with ``Retry-After`` (rate_limited), as ``{"error": reason}``; ``503``
when Strongroom cannot be asked (fail closed). Valid verdicts of bearer-style credentials (the same
secret from the same address for the same scopes) are reused for ``cache_seconds`` (default 5 s):
revoking a key reaches this service within that time, and reused verdicts are not counted in the
key's usage. Signed requests are never cached (each signature is accepted once). Needs ``httpx``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from strongroom.auth.facts import RawHeaders, client_ip

if TYPE_CHECKING:
    import httpx
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("strongroom.contrib")

# the headers that carry a credential, by scheme; only these are sent to Strongroom
BEARER_HEADERS = ("authorization", "x-api-key")
SIGNED_HEADERS = ("kalshi-access-key", "kalshi-access-timestamp", "kalshi-access-signature", "sr-access-key",
                  "sr-access-timestamp", "sr-access-signature", "apikey", "signature")
SIGNED_KEYS = ("kalshi-access-key", "sr-access-key", "apikey")  # a signed request names its key in one
BODY_SIGNED = ("sr-access-key", "apikey")  # schemes that sign the body
STATUS = {"ip_not_allowed": 403, "insufficient_scope": 403, "rate_limited": 429}  # else 401

RequiredScopes = Sequence[str] | Callable[["Scope"], Sequence[str]]


class StrongroomAuth:
    """Verify every HTTP request through Strongroom before ``app`` sees it (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, url: str, verify_key: str, required_scopes: RequiredScopes = (),
                 cache_seconds: float = 5.0, cache_size: int = 10_000, trusted_proxies: Iterable[str] = (),
                 timeout: float = 5.0, max_body_bytes: int = 1024 * 1024, client: httpx.AsyncClient | None = None,
                 ) -> None:
        self.app = app
        self.endpoint = url.rstrip("/") + "/v1/keys/verify"
        self.verify_key = verify_key
        self.required_scopes = required_scopes
        self.trusted = [ipaddress.ip_network(c, strict=False) for c in trusted_proxies]
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.cache: TTLCache[str, dict[str, Any]] | None = (
            TTLCache(maxsize=cache_size, ttl=cache_seconds) if cache_seconds > 0 else None)
        self._client = client

    async def aclose(self) -> None:
        """Close the HTTP client this middleware made (not one it was given)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = RawHeaders(scope["headers"])
        peer = scope.get("client")
        ip = client_ip(peer[0] if peer else None, headers.get("x-forwarded-for") if self.trusted else None,
                       self.trusted) or "0.0.0.0"  # an address no allowlist admits
        required = list(self.required_scopes(scope) if callable(self.required_scopes) else self.required_scopes)
        signed = any(name in headers for name in SIGNED_KEYS)
        sent = {name: value for name in (SIGNED_HEADERS if signed else BEARER_HEADERS)
                if (value := headers.get(name)) is not None}
        request: dict[str, Any] = {"method": scope["method"], "path": self._target(scope), "headers": sent}
        if signed and any(name in headers for name in BODY_SIGNED):
            body = await self._read_body(receive)
            if body is None:
                await self._answer(send, 413, "payload_too_large")
                return
            request["body_base64"] = base64.b64encode(body).decode()
            receive = _replay(body, receive)
        cache_key = None
        if not signed and self.cache is not None:
            material = json.dumps([sorted(sent.items()), ip, sorted(required)]).encode()
            cache_key = hashlib.sha256(material).hexdigest()
            identity = self.cache.get(cache_key)
            if identity is not None:
                scope.setdefault("state", {})["strongroom"] = identity
                await self.app(scope, receive, send)
                return
        verdict = await self._ask({"request": request, "client_ip": ip, "required_scopes": required})
        if verdict is None:
            await self._answer(send, 503, "unavailable", retry_after=5)
            return
        if not verdict.get("valid"):
            reason = str(verdict.get("reason") or "unknown_key")
            await self._answer(send, STATUS.get(reason, 401), reason, retry_after=verdict.get("retry_after"))
            return
        identity = {name: verdict.get(name) for name in ("user_id", "key_id", "scopes", "account_ids", "expires_at")}
        if cache_key is not None and self.cache is not None:
            self.cache[cache_key] = identity
        scope.setdefault("state", {})["strongroom"] = identity
        await self.app(scope, receive, send)

    @staticmethod
    def _target(scope: Scope) -> str:
        raw = scope.get("raw_path")
        path: str = raw.split(b"?", 1)[0].decode("latin-1") if raw else scope["path"]
        query: str = scope.get("query_string", b"").decode("latin-1")
        return path + ("?" + query if query else "")

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _ask(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Return Strongroom's verdict, or None if it cannot be had (unreachable, or this middleware's key refused)."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            response = await self._client.post(self.endpoint, json=payload,
                                               headers={"Authorization": f"Bearer {self.verify_key}"})
        except httpx.HTTPError as exc:
            log.warning("strongroom verify unreachable: %s", type(exc).__name__)
            return None
        if response.status_code == 422:  # what the client sent cannot be a credential (too long, bad bytes)
            return {"valid": False, "reason": "unknown_key"}
        if response.status_code != 200:
            log.error("strongroom verify answered %d (is the verify key valid, with the verify scope?)",
                      response.status_code)
            return None
        try:
            verdict: dict[str, Any] = response.json()
        except ValueError:
            log.error("strongroom verify answered 200 without a JSON verdict (is the endpoint right?)")
            return None
        return verdict

    @staticmethod
    async def _answer(send: Send, status: int, reason: str, retry_after: int | None = None) -> None:
        body = json.dumps({"error": reason}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if retry_after:
            headers.append((b"retry-after", b"%d" % retry_after))
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="strongroom"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive that yields ``body`` once, then waits on the original (for a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
