"""Annotated dependencies shared by every surface's routes (the caller's, ``CurrentPrincipal``, is the gate's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from strongroom.auth.facts import client_ip
from strongroom.core import Core
from strongroom.http.gate import CurrentPrincipal, current_principal


async def get_core(request: Request) -> Core:
    """The application's core (services)."""
    core: Core = request.app.state.core
    return core


async def peer_ip(request: Request) -> str | None:
    """The client's IP, believing X-Forwarded-For only from the configured trusted proxies."""
    trusted = request.app.state.trusted_proxies
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for") if trusted else None, trusted)


CoreDep = Annotated[Core, Depends(get_core)]
ClientIP = Annotated[str | None, Depends(peer_ip)]

__all__ = ["ClientIP", "CoreDep", "CurrentPrincipal", "current_principal", "get_core", "peer_ip"]
