"""What every venue endpoint does first: count, apply the current behaviour, authenticate.

``venue_endpoint(exchange, authenticate)`` turns ``async def handler(call: Call) -> Response`` into a
Starlette endpoint. Before the handler runs it counts the request (per venue, per path, in flight,
client socket), applies the mode set by ``POST /_mock/behaviour`` (``slow`` sleeps, ``down`` answers
503, ``rate_limited`` answers the venue's 429), and for private endpoints checks the venue's
signature: an error response from ``authenticate`` is returned as is.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from devtools.mock_exchange.state import MockAccount, MockState


@dataclass
class Call:
    """One request to a venue endpoint: the request, the mock's state, and the caller's account if signed."""

    request: Request
    state: MockState
    exchange: str
    signed_by: MockAccount | None = None

    @property
    def account(self) -> MockAccount:
        """Return the authenticated account (private endpoints only)."""
        if self.signed_by is None:
            raise RuntimeError("not a private endpoint")
        return self.signed_by


Handler = Callable[[Call], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
Authenticate = Callable[[Call], Awaitable[MockAccount | Response]]

# The venue's own answer when the mock is in ``rate_limited`` mode.
RATE_LIMITED: dict[str, Callable[[], Response]] = {
    "binance": lambda: JSONResponse(
        {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."},
        status_code=429,
        headers={"Retry-After": "30"},
    ),
    "okx": lambda: JSONResponse({"code": "50011", "msg": "Too Many Requests", "data": []}, status_code=429),
}


def state_of(request: Request) -> MockState:
    """Return the mock state of the app serving ``request``."""
    state: MockState = request.app.state.mock
    return state


async def apply_behaviour(state: MockState, exchange: str) -> Response | None:
    """Apply the current mode; return a response to send instead of the normal one, or None."""
    if state.mode == "slow":
        await asyncio.sleep(state.delay_seconds)
    elif state.mode == "down":
        return Response(status_code=503, content=b"")
    elif state.mode == "rate_limited":
        return RATE_LIMITED[exchange]()
    return None


def venue_endpoint(exchange: str, authenticate: Authenticate | None = None) -> Callable[[Handler], Endpoint]:
    """Decorate a venue handler (see the module doc); ``authenticate`` makes it a private endpoint."""

    def decorate(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            state = state_of(request)
            stats = state.venue_stats(exchange)
            stats.requests += 1
            stats.paths[request.url.path] = stats.paths.get(request.url.path, 0) + 1
            if request.client is not None:
                stats.connections.add((request.client.host, request.client.port))
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            try:
                if (early := await apply_behaviour(state, exchange)) is not None:
                    return early
                call = Call(request, state, exchange)
                if authenticate is not None:
                    stats.private_requests += 1
                    outcome = await authenticate(call)
                    if isinstance(outcome, Response):
                        return outcome
                    stats.valid_signatures += 1
                    call.signed_by = outcome
                return await handler(call)
            finally:
                stats.in_flight -= 1

        return endpoint

    return decorate
