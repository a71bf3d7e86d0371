"""/v1/auth/forward: forward authentication for a reverse proxy (nginx ``auth_request``, Traefik
``ForwardAuth``, Envoy ``ext_authz`` over HTTP).

A plain ASGI app routed ahead of the surfaces (no FastAPI request handling): it reads the original
request from the proxy's headers, asks :class:`strongroom.verify.Verifier`, and answers

* ``200`` with ``X-Strongroom-User``, ``X-Strongroom-Key``, ``X-Strongroom-Scopes`` (space-separated)
  and ``X-Strongroom-Accounts`` (comma-separated ids, ``*`` for every account of the user);
* or a refusal with ``X-Strongroom-Reason``: ``401`` (unknown_key, expired, revoked, bad_signature,
  replayed, body_not_verifiable, ambiguous_credentials), ``403`` (ip_not_allowed, insufficient_scope, untrusted_proxy,
  no_original_request, and rate_limited with ``Retry-After``: nginx passes on only 401 and 403;
  ``429`` instead with STRONGROOM_FORWARD_PLAIN_STATUS); ``503`` with ``Retry-After`` when a backing
  store does not answer.

The original request: ``X-Original-Method`` / ``X-Original-URI`` (nginx), else ``X-Forwarded-Method`` /
``X-Forwarded-Uri`` (Traefik), else this request's own method and the path after
``/v1/auth/forward`` (Envoy's ``path_prefix``). The client: ``X-Forwarded-For`` read through
STRONGROOM_TRUSTED_PROXIES. Only a peer in STRONGROOM_TRUSTED_PROXIES is answered (403
untrusted_proxy otherwise: nothing it sends is read).

A proxy's sub-request carries no body: a scheme that signs the body (SR-ACCESS, 3Commas) is refused
``body_not_verifiable`` when the original request announces one (``X-Original-Content-Length`` other
than 0 or ``X-Original-Transfer-Encoding``, as the README's nginx snippet sends, or a body on the
sub-request itself); without a body it is verified over the empty body. A signature is accepted once
(the replay guard), so a 3Commas signature (and any signed request) is consumed by its verification
here: the upstream cannot verify it again.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from functools import lru_cache, partial
from typing import TYPE_CHECKING

from strongroom.auth.facts import RawHeaders, RequestFacts, client_ip
from strongroom.errors import ServiceUnavailable
from strongroom.http.errors import domain_error, log_unexpected
from strongroom.verify.rules import load_rules
from strongroom.verify.service import Reason, Verdict, Verifier

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from strongroom.auth.facts import Network
    from strongroom.core import Core
    from strongroom.settings import Settings

log = logging.getLogger("strongroom.forward")

PATH = "/v1/auth/forward"
UNTRUSTED_PROXY = "untrusted_proxy"
NO_ORIGINAL_REQUEST = "no_original_request"
UNAVAILABLE = "unavailable"
STATUS = {Reason.IP_NOT_ALLOWED: 403, Reason.INSUFFICIENT_SCOPE: 403, Reason.RATE_LIMITED: 403}  # else 401
_METHOD = re.compile(r"^[A-Za-z]{1,16}$")
_URI = re.compile(r"^/[\x21-\x7e]*$")
_CHALLENGE = (b"www-authenticate", b'Bearer realm="strongroom"')


def _in_networks(peer: str | None, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    return any(ip in net for net in networks)


class ForwardAuth:
    """The ASGI app of ``/v1/auth/forward`` and ``/v1/auth/forward/...`` (route it ahead of the surfaces)."""

    def __init__(self, settings: Settings) -> None:
        self.trusted: list[Network] = [ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies]
        self.plain = settings.forward_plain_status
        self.rules = load_rules(settings.forward_rules) if settings.forward_rules else ()
        self._verifier: Verifier | None = None
        # Parsing addresses cost more than the rest of a warm verification: a proxy sends a few peers
        # and a bounded set of client addresses, so both answers are remembered (least recently used out).
        trusted = self.trusted
        self._is_trusted = lru_cache(maxsize=256)(partial(_in_networks, networks=tuple(trusted)))
        self._client_ip = lru_cache(maxsize=16_384)(lambda peer, hops: client_ip(peer, hops, trusted))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        peer = client[0] if client else None
        if not self._is_trusted(peer):
            await self._refuse(send, 403, UNTRUSTED_PROXY)
            return
        headers = RawHeaders(scope["headers"])
        original = self._original(scope, headers)
        if original is None:
            await self._refuse(send, 403, NO_ORIGINAL_REQUEST)
            return
        method, uri = original
        path, _, query = uri.partition("?")
        facts = RequestFacts(method, path, query, headers, client_ip=self._client_ip(peer, headers.get("x-forwarded-for")))
        verifier = self._verifier
        if verifier is None:
            core: Core = scope["app"].state.core
            verifier = self._verifier = Verifier(core.auth, self.rules)
        try:
            verdict = await verifier.verify(facts, required=verifier.required_for(method, path),
                                            body_visible=not self._body_announced(headers))
        except Exception as exc:  # noqa: BLE001 - a backing store that fails is a 503, never a traceback
            error = domain_error(exc)
            if not isinstance(error, ServiceUnavailable):
                log_unexpected(scope, exc)
            await self._refuse(send, 503, UNAVAILABLE, retry_after=error.retry_after if error else 5)
            return
        if verdict.reason is None:
            await self._allow(scope, send, verdict)
        else:
            status = STATUS.get(verdict.reason, 401)
            if verdict.reason is Reason.RATE_LIMITED and self.plain:
                status = 429
            await self._refuse(send, status, verdict.reason.value, retry_after=verdict.retry_after)

    @staticmethod
    def _original(scope: Scope, headers: RawHeaders) -> tuple[str, str] | None:
        """Return the original request's (METHOD, URI), or None if the proxy did not say, said nonsense, or
        said it twice: a proxy sets one spelling (nginx ``X-Original-*``, Traefik ``X-Forwarded-*``) and
        passes the client's other headers on, so both spellings at once means the client wrote one of them.
        Under our path (Envoy), the check request itself is the original, whatever headers it carries."""
        own = scope["path"]
        if own.startswith(PATH + "/"):
            raw = scope.get("raw_path") or own.encode("latin-1")
            rest = raw.split(b"?", 1)[0].decode("latin-1")[len(PATH):]
            query = scope.get("query_string", b"").decode("latin-1")
            method: str | None = scope["method"]
            uri: str | None = rest + ("?" + query if query else "")
        else:
            nginx = headers.get("x-original-method"), headers.get("x-original-uri")
            traefik = headers.get("x-forwarded-method"), headers.get("x-forwarded-uri")
            if any(nginx) and any(traefik):
                return None
            method, uri = nginx if any(nginx) else traefik
        if not method or not uri or not _METHOD.match(method) or not _URI.match(uri):
            return None
        return method.upper(), uri

    @staticmethod
    def _body_announced(headers: RawHeaders) -> bool:
        length = headers.get("x-original-content-length") or headers.get("content-length")
        if length is not None and length.strip() not in ("", "0"):
            return True
        return "x-original-transfer-encoding" in headers or "transfer-encoding" in headers

    async def _allow(self, scope: Scope, send: Send, verdict: Verdict) -> None:
        key = verdict.principal
        assert key is not None  # a valid verdict has its key's principal
        accounts = "*" if key.account_ids is None else ",".join(str(a) for a in sorted(key.account_ids))
        if verdict.ratelimit is not None:  # the edge adds RateLimit-* from the scope's state
            scope.setdefault("state", {})["ratelimit"] = verdict.ratelimit
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", b"0"),
            (b"x-strongroom-user", str(key.user_id).encode()),
            (b"x-strongroom-key", (key.key_id or "").encode()),
            (b"x-strongroom-scopes", " ".join(sorted(key.scopes)).encode()),
            (b"x-strongroom-accounts", accounts.encode()),
        ]})
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _refuse(send: Send, status: int, reason: str, *, retry_after: int | None = None) -> None:
        """A refusal: the status, X-Strongroom-Reason, and a problem document (for proxies that pass it on)."""
        body = json.dumps({"type": f"https://strongroom.dev/problems/{reason}", "title": TITLES.get(status, "Error"),
                           "status": status, "detail": DETAILS.get(reason, "the request is refused"),
                           "code": reason}).encode()
        headers = [(b"content-type", b"application/problem+json"), (b"content-length", b"%d" % len(body)),
                   (b"x-strongroom-reason", reason.encode())]
        if retry_after:
            headers.append((b"retry-after", b"%d" % retry_after))
        if status == 401:
            headers.append(_CHALLENGE)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


TITLES = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests", 503: "Service Unavailable"}
DETAILS = {
    UNTRUSTED_PROXY: "only a proxy listed in STRONGROOM_TRUSTED_PROXIES may ask",
    NO_ORIGINAL_REQUEST: "the proxy did not send the original method and URI (once: nginx's X-Original-* or "
                         "Traefik's X-Forwarded-Method/-Uri, not both)",
    UNAVAILABLE: "a backing service is unavailable; try again shortly",
    Reason.RATE_LIMITED.value: "too many requests",
    Reason.BODY_NOT_VERIFIABLE.value: "this scheme signs the body, which a proxy's sub-request does not carry",
    Reason.IP_NOT_ALLOWED.value: "access denied",
    Reason.INSUFFICIENT_SCOPE.value: "the key lacks a scope this route needs",
}  # the credential refusals: "the request is refused"
