"""Annotated dependencies shared by every surface's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from strongroom.auth.facts import client_ip
from strongroom.core import Core
from strongroom.errors import Unauthenticated
from strongroom.principal import Principal


async def get_core(request: Request) -> Core:
    """The application's core (services)."""
    core: Core = request.app.state.core
    return core


async def current_principal(request: Request) -> Principal:
    """The principal the surface's auth gate found for this request.

    A route that takes this dependency is wrapped in the gate by the surface factory, which
    authenticates before the body is read; raises Unauthenticated if it was not (misconfiguration).
    """
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthenticated("authentication required")
    return principal


async def peer_ip(request: Request) -> str | None:
    """The client's IP, believing X-Forwarded-For only from the configured trusted proxies."""
    trusted = request.app.state.trusted_proxies
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for") if trusted else None, trusted)


CoreDep = Annotated[Core, Depends(get_core)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
ClientIP = Annotated[str | None, Depends(peer_ip)]
