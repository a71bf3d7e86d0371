"""The edge guard: what every request passes first, answered in the shape of the surface that owns its path.

Size limits (by Content-Length, and while a body streams in), control characters in the path or query
string, NUL characters and duplicate keys in a JSON body, the request id (the client's ``X-Request-ID``
if well formed, else a new one) and the headers every answer carries.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.errors import BadRequest, DomainError, MalformedBody, PayloadTooLarge
from strongroom.http.errors import Refusal
from strongroom.http.gate import BODY_REFUSAL, DEFER_BODY_CHECK
from strongroom.logs import CLIENT_REQUEST_ID, REQUEST_ID, access, new_request_id
from strongroom.metrics import Metrics

if TYPE_CHECKING:
    from strongroom.http.routes import Mounted

# Percent-encoded C0 controls and DEL in a query string: never meaningful in an id, a filter or a cursor.
_ENCODED_CONTROL = re.compile(rb"%(?:[01][0-9a-fA-F]|7[fF])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSON_NUL = re.compile(rb"\\u0000|\x00")
_FORM_NUL = re.compile(rb"%00|\x00")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refusal(MalformedBody(f"duplicate key {key[:40]!r} in a JSON object"))
        seen[key] = value
    return seen


def check_body(body: bytes, content_type: str) -> None:
    """Raise :class:`Refusal` (400) for a body no surface accepts: a NUL character anywhere, or a
    JSON object with a duplicate key (which JSON parsers would otherwise resolve by "last wins")."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        if _FORM_NUL.search(body):
            raise Refusal(MalformedBody("the body contains a NUL character"))
        return
    if not (kind == "application/json" or kind.endswith("+json")):
        return
    if _JSON_NUL.search(body):
        raise Refusal(MalformedBody("the body contains a NUL character"))
    try:
        json.loads(body, object_pairs_hook=_no_duplicate_keys)
    except ValueError:
        return  # malformed JSON: the route reports it (after authentication)


class EdgeGuard:
    """What every request passes first, answered in the shape of the surface that owns the path:

    * a body over ``max_bytes`` is refused by Content-Length before anything runs, or while it
      streams in; an invalid Content-Length is a 400;
    * a path or query string with control characters (NUL, ...) is a 400;
    * a body with a NUL character, or a JSON body with a duplicate key, is a 400 when the body is
      read (so after authentication: the auth gate reads no body first);
    * every response gets ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store``
      (API answers carry tokens, secrets and account data; nothing of it belongs in a cache).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, surfaces: Sequence[Mounted], default: Mounted,
                 front: tuple[str, ASGIApp] | None = None) -> None:
        self.app = app
        # ``front``: (path, app) answered here, ahead of routing and the framework's request handling
        # (forward authentication: a proxy's hot path), the path and everything under it; one prefix
        # test for every other request instead of a middleware layer of its own.
        self.front_path: str = front[0] if front is not None else "\0"  # (no path holds a NUL: refused above)
        self.front: ASGIApp | None = front[1] if front is not None else None
        self.max_bytes = max_bytes
        self.surfaces = sorted(surfaces, key=lambda s: -len(s.prefix))
        self.default = default
        self.names = {s.prefix: s.name for s in surfaces}

    def owner(self, path: str) -> Mounted:
        """Return the surface whose prefix ``path`` is under (the default surface otherwise)."""
        for surface_app in self.surfaces:
            prefix = surface_app.prefix
            if path == prefix or path.startswith(prefix + "/"):
                return surface_app
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        error: DomainError | None = None
        has_body = False
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    error = MalformedBody("invalid Content-Length")
                    break
                if length > self.max_bytes:
                    error = PayloadTooLarge(f"the body exceeds {self.max_bytes} bytes")
                    break
                has_body = has_body or length > 0
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                sent = value.decode("latin-1")
                request_id = sent if CLIENT_REQUEST_ID.match(sent) else None
        request_id = request_id or new_request_id()
        token = REQUEST_ID.set(request_id)
        try:
            await self._serve(scope, receive, self._with_headers(scope, send, request_id, started),
                              error, has_body, content_type)
        finally:
            REQUEST_ID.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, error: DomainError | None, has_body: bool,
                     content_type: str) -> None:
        if error is None and (_CONTROL.search(scope["path"]) or _ENCODED_CONTROL.search(scope["query_string"])):
            error = BadRequest("the path or query string contains a control character")
        if error is not None:
            await self.owner(scope["path"]).error_response(scope, error)(scope, receive, send)
            return
        if has_body:
            receive = self._guarded(scope, receive, content_type)
        path, front_path = scope["path"], self.front_path
        if path.startswith(front_path) and (len(path) == len(front_path) or path[len(front_path)] == "/"):
            assert self.front is not None
            await self.front(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _with_headers(self, scope: Scope, send: Send, request_text: str, started: float) -> Send:
        """Return ``send`` adding the common headers (and counting and logging the answer) at response start."""
        metrics: Metrics = scope["app"].state.core.metrics
        request_id = request_text.encode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-content-type-options", b"nosniff"),
                           (b"cache-control", b"no-store"), (b"x-request-id", request_id)]
                window = scope.get("state", {}).get("ratelimit")
                if window is not None:
                    headers += [(b"ratelimit-limit", b"%d" % window[0]), (b"ratelimit-remaining", b"%d" % window[1]),
                                (b"ratelimit-reset", b"%d" % window[2])]
                message["headers"] = headers
                route = scope.get("route")
                metrics.request(self.names.get(scope.get("root_path", ""), "app"), scope["method"],
                                getattr(route, "path", "-"), message["status"])
                access(scope, message["status"], started, request_text)
            await send(message)

        return send_with_headers

    def _guarded(self, scope: Scope, receive: Receive, content_type: str) -> Receive:
        body = bytearray()
        limit = self.max_bytes

        async def guarded_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
                if len(body) > limit:
                    raise Refusal(PayloadTooLarge(f"the body exceeds {limit} bytes"))
                if not message.get("more_body", False):
                    try:
                        check_body(bytes(body), content_type)
                    except Refusal as refusal:
                        if not scope.get(DEFER_BODY_CHECK):
                            raise
                        scope[BODY_REFUSAL] = refusal  # the auth gate raises it once the caller is known
            return message

        return guarded_receive


