"""The auth gate: who is calling, checked before a route reads or validates its body.

A route takes the caller as a :data:`CurrentPrincipal` parameter; the surface runs the route's
:class:`Gate` first: it authenticates with the surface's schemes (in order), then runs the route's
guard (a check that needs the caller and the path, not the body: scope, ownership). So an anonymous
caller gets the surface's 401, never a description of the route's body. A signed scheme reads the
raw body to verify it; the gate then hands the route a ``receive`` that replays it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import Depends, Request
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.auth.facts import RawHeaders, RequestFacts, client_ip
from strongroom.auth.schemes.base import AuthScheme
from strongroom.errors import Unauthenticated
from strongroom.principal import Principal

if TYPE_CHECKING:
    from strongroom.core import Core

# Scope keys (ours): the gate reads a signed body before the caller is known; a bad body must not
# answer before a bad signature does, so the edge's body check is deferred to the gate then.
DEFER_BODY_CHECK = "strongroom.defer_body_check"
BODY_REFUSAL = "strongroom.body_refusal"

# A check that runs after authentication and before the body: (principal, raw path params).
Guard = Callable[[Principal, Mapping[str, Any]], None]


async def current_principal(request: Request) -> Principal:
    """The principal the surface's auth gate found for this request.

    Every route that takes this dependency is behind its surface's gate, which authenticates before
    the body is read; raises Unauthenticated if no gate ran (a route mounted outside a surface).
    """
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthenticated("authentication required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True)
class Gate:
    """The gate of one route: the surface's schemes, and the route's guard (if any)."""

    schemes: tuple[AuthScheme, ...]
    guard: Guard | None = None

    async def admit(self, scope: Scope, receive: Receive) -> tuple[Principal, Receive, RequestFacts]:
        """Authenticate the request in ``scope`` and run the guard; return the principal (also put in
        ``scope["state"]``), the ``receive`` the route must read from (the body replayed if a scheme
        read it) and the request's facts (``facts.replay``: the signature it claimed, if any; see
        :func:`settle`). Raises the domain error that refuses the caller (a signature claimed for a
        request refused here is given up first: the client's retry is not a replay)."""
        core: Core = scope["app"].state.core
        body: list[bytes] = []

        async def read_body() -> bytes:
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body.append(b"".join(chunks))
            return body[0]

        facts = request_facts(scope, read_body)
        state = scope.setdefault("state", {})
        scope[DEFER_BODY_CHECK] = True
        principal = await core.auth.authenticate(facts, self.schemes)
        state["principal"] = principal
        state["ratelimit"] = facts.ratelimit
        scope[DEFER_BODY_CHECK] = False
        try:
            if BODY_REFUSAL in scope:
                raise scope.pop(BODY_REFUSAL)
            if self.guard is not None:
                self.guard(principal, scope.get("path_params", {}))
        except BaseException:
            await core.auth.release(facts)
            raise
        return principal, (_replay(body[0], receive) if body else receive), facts


async def settle(app: ASGIApp, scope: Scope, receive: Receive, send: Send, facts: RequestFacts) -> None:
    """Run ``app`` for a request that claimed its signature (``facts.replay``): an error answer (4xx,
    5xx, or none at all) gives the claim up before the answer leaves, so the client's retry of the
    same signed request is not refused as a replay; a success keeps it (a later replay is refused)."""
    auth = scope["app"].state.core.auth
    answered = False

    async def watch(message: Message) -> None:
        nonlocal answered
        if message["type"] == "http.response.start":
            answered = True
            if message["status"] >= 400:
                await auth.release(facts)
        await send(message)

    try:
        await app(scope, receive, watch)
    finally:
        if not answered:
            with anyio.CancelScope(shield=True):
                await auth.release(facts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive that yields ``body`` once (already read for authentication), then the rest."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def request_facts(scope: Scope, body_reader: Callable[[], Awaitable[bytes]] | None = None) -> RequestFacts:
    """Return what authentication reads from the request in ``scope`` (nothing decoded that is not asked for)."""
    raw = scope.get("raw_path")
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else scope["path"]
    headers = RawHeaders(scope["headers"])
    client = scope.get("client")
    trusted = scope["app"].state.trusted_proxies
    ip = client_ip(client[0] if client else None, headers.get("x-forwarded-for") if trusted else None, trusted)
    return RequestFacts(scope["method"], path, scope.get("query_string", b"").decode("latin-1"), headers,
                        client_ip=ip, body_reader=body_reader)
